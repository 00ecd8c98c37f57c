"""Sealing a baked root, so that every machine cloned from the image is a machine of its own.

Before an image is captured, what identifies the machine that baked it goes: the
minion id and the minion's keys (every clone would otherwise present the same key
to the master), /etc/machine-id (truncated to empty: systemd makes a new one at
first boot), the SSH host keys, Salt's cache and logs, and temporary files.

Every path is one of `workstation:os:seal` (defaults.yaml), read below
`workstation:os:seal:root`, so a test seals a tree and an image built in a chroot
is sealed from outside it. Every removal goes through safefs: no link is followed,
no mount point crossed. What `plan` lists is exactly what `apply` removes or resets,
so a dry run is exact.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath

from salt_workstation import pillar, safefs
from salt_workstation.errors import UnsafePath, WorkstationError

# (changes key, workstation:os:seal key, what is done there)
#   file:     the file is removed
#   contents: every entry of the folder is removed (the folder stays)
#   hostkeys: the folder's ssh_host_* files are removed
#   truncate: the file is emptied (its mode kept)
TARGETS = (
    ("minion_id", "minion_id", "file"),
    ("minion_keys", "minion_pki", "contents"),
    ("machine_id", "machine_id", "truncate"),
    ("ssh_host_keys", "ssh_dir", "hostkeys"),
    ("salt_cache", "salt_cache", "contents"),
    ("salt_logs", "salt_logs", "contents"),
    ("temporary", "temporary", "contents"),
)
SETTING_KEYS = ("root", *sorted({key for _, key, _ in TARGETS}))
HOST_KEY_PREFIX = "ssh_host_"


class SealRefused(WorkstationError):
    """Sealing was asked for on a machine that is not an image being baked."""


def refuse_unless_bake(phase) -> None:
    """Sealing removes the machine's identity: only an image bake may do that."""
    if phase != "bake":
        raise SealRefused(
            f"sealing removes this machine's minion key, machine-id and SSH host keys, so it runs only "
            f"while an image is baked ({pillar.path_of('phase')} is {phase!r}, not 'bake'); "
            "set it to bake in the bake's pillar"
        )


def settings_of(config) -> dict:
    """`workstation:os:seal`, checked: absolute paths (temporary: a list of them)."""
    seal = ((config or {}).get("os") or {}).get("seal")
    where = pillar.path_of("os", "seal")
    if not isinstance(seal, dict):
        raise WorkstationError(f"{where} must map {', '.join(SETTING_KEYS)} to absolute paths")
    for key in SETTING_KEYS:
        values = seal.get(key)
        values = values if isinstance(values, list) and key == "temporary" else [values]
        for value in values:
            if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
                raise WorkstationError(
                    f"{where}:{key} must be an absolute path{'s' if key == 'temporary' else ''}, "
                    f"got {seal.get(key)!r}"
                )
    return seal


def _parts(image_path: str) -> list[str]:
    parts = [part for part in PurePosixPath(image_path).parts[1:] if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{image_path} climbs out of the image ('..'); name the folder itself")
    return parts


def _open_folder(top: safefs.Dir, image_path: str) -> safefs.Dir | None:
    """The image's folder at image_path, never through a link; None when it is not there."""
    try:
        return top.descend(*_parts(image_path))
    except FileNotFoundError:
        return None


def _paths(seal: dict, key: str) -> list[str]:
    value = seal[key]
    return list(value) if isinstance(value, list) else [value]


def _entries(top: safefs.Dir, image_path: str, how: str) -> list[tuple[str, str]]:
    """(folder path in the image, entry name) of what sealing changes at image_path."""
    if how in ("contents", "hostkeys"):
        folder = _open_folder(top, image_path)
        if folder is None:
            return []
        with folder:
            names = folder.listdir()
            if how == "hostkeys":
                names = [
                    name
                    for name in names
                    if name.startswith(HOST_KEY_PREFIX)
                    and not stat.S_ISDIR(folder.lstat(name).st_mode)
                ]
        return [(image_path.rstrip("/") or "/", name) for name in names]
    parent, name = os.path.split(image_path.rstrip("/"))
    folder = _open_folder(top, parent)
    if folder is None:
        return []
    with folder:
        info = folder.lstat(safefs.component(name, "seal path"))
    if info is None:
        return []
    if how == "truncate":
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(
                f"{image_path} is not a regular file; remove it, then seal again "
                "(systemd wants an empty file there)"
            )
        if info.st_size == 0:
            return []
    return [(parent, name)]


def plan(seal: dict) -> dict:
    """What sealing changes now, as the state's changes: {changes key: [image paths]}; {} when sealed."""
    changes: dict = {}
    with _root(seal) as top:
        for what, key, how in TARGETS:
            for image_path in _paths(seal, key):
                found = _entries(top, image_path, how)
                if found:
                    changes.setdefault(what, []).extend(
                        str(PurePosixPath(folder) / name) for folder, name in found
                    )
    return changes


def apply(seal: dict, planned: dict) -> None:
    """Remove or reset exactly what `plan` listed."""
    truncate = {key for key, _, how in TARGETS if how == "truncate"}
    with _root(seal) as top:
        for what, image_paths in planned.items():
            for image_path in image_paths:
                parent, name = os.path.split(image_path)
                folder = _open_folder(top, parent)
                if folder is None:
                    continue
                with folder:
                    try:
                        if what in truncate:
                            mode = stat.S_IMODE(folder.lstat(name).st_mode)
                            folder.write_file(name, b"", mode)
                        else:
                            folder.remove(name)
                    except OSError as exc:
                        raise safefs.disk_error(exc, folder.join(name)) from None


def seal(config, test: bool = False, root: str | None = None) -> dict:
    """Seal the image the merged config names, or the one at `root` (refused unless phase is bake);
    returns the changes."""
    refuse_unless_bake((config or {}).get("phase", "all"))
    settings = settings_of(config)
    if root is not None:
        settings = settings_of({"os": {"seal": {**settings, "root": root}}})
    planned = plan(settings)
    if planned and not test:
        apply(settings, planned)
    return planned


def _root(seal: dict) -> safefs.Dir:
    try:
        return safefs.Dir.root(seal["root"])
    except FileNotFoundError:
        raise WorkstationError(
            f"the image root {seal['root']} ({pillar.path_of('os', 'seal', 'root')}) does not exist"
        ) from None
