"""The only code of the launchers that changes the system: it makes what status found differs.

Files go through safefs (descriptors, no link below install_root followed, atomic checked
writes); a file outside install_root (desktop entries, menus, studio-launch) has its own folder
as its managed root. Mounts are Salt's own states (mount.mounted, mount.unmounted), not code here.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from salt_workstation import safefs
from salt_workstation.launchers import plan
from salt_workstation.launchers.plan import Changes, Entry, Settings
from salt_workstation.safefs import Dir


def _folder(path: Path, root: Path | None, create: bool = False) -> Dir:
    """The folder `path`, opened as plan.place says (made 0755 when `create`); FileNotFoundError when absent."""
    return safefs.open_under(*plan.place(path, root), create=create)


def write_entry(path: Path, entry: Entry, root: Path | None = None) -> None:
    """Write atomically (safefs: a temporary beside it, mode from the first byte, one rename);
    a link in its place is replaced, never written through."""
    with _folder(path.parent, root, create=True) as folder:
        if entry.link is not None:
            folder.symlink(path.name, entry.link)
        else:
            folder.write_file(path.name, entry.data, entry.mode)


def remove(path: Path, root: Path | None) -> None:
    """Remove a file or link (never what it points to), or an emptied folder that is no mount point."""
    try:
        folder = _folder(path.parent, root)
    except FileNotFoundError:
        return
    with folder:
        info = folder.lstat(path.name)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            folder.remove_empty_dir(
                path.name
            )  # the kernel refuses a mount point or a folder with anything in it
        else:
            folder.remove(path.name)
        folder.fsync()


def write_credentials(settings: Settings, path: Path, entry: Entry) -> None:
    """The SMB credentials file (0600) in its folder, made or tightened to 0700."""
    with _folder(path.parent.parent, settings.install_root, create=True) as parent:
        parent.child(path.parent.name, create=True, mode=0o700).close()
        parent.chmod(path.parent.name, 0o700)  # the umask may have taken bits away, or it was open
    write_entry(path, entry, settings.install_root)


def apply(settings: Settings, changes: Changes, production: str | None = None) -> None:
    """Make `changes` (status.pending for a production, status.leftovers for those that left):
    the files first, then the removals, then the manifest, so a failure is retried by the next apply."""
    root = settings.install_root
    for path, entry in changes.written.items():
        write_entry(path, entry, root)
    if changes.folders:
        with _folder(settings.productions, root) as productions:
            for folder in changes.folders:
                productions.remove(folder.name)  # never through a link, never across a mount
            productions.fsync()
    for path in changes.removed:
        remove(path, root)
    if production is not None:
        try:
            with _folder(settings.production_dir(production), root) as folder:
                folder.remove_empty_dirs()
        except FileNotFoundError:
            pass
    if changes.manifest is not None:
        data = (
            json.dumps({"productions": changes.manifest}, indent=1, sort_keys=True).encode() + b"\n"
        )
        write_entry(settings.manifest, Entry(data, 0o644), root)
