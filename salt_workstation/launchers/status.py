"""What is on this machine now for the launchers, and how it differs from the plan. Reading only.

Below install_root every folder is opened without following a link (safefs): a link or a file
planted where a production's folder, or its bin, plugins or .secrets folder, belongs raises
UnsafePath naming its path, and a folder where a file belongs is refused here, so that a run
stops before anything is changed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from salt_workstation import paths, safefs
from salt_workstation.errors import WorkstationError
from salt_workstation.launchers import plan
from salt_workstation.launchers.contract import mapping
from salt_workstation.launchers.plan import MANIFEST, SECRETS, Changes, Entry, Settings
from salt_workstation.safefs import Dir

# Where an app's icon is looked for in its version folder, first found wins ({app} is the app name).
ICON_CANDIDATES = (
    "{app}.svg",
    "{app}.png",
    "icon.svg",
    "icon.png",
    "icons/{app}.svg",
    "icons/{app}.png",
    "share/icons/hicolor/scalable/apps/{app}.svg",
    "share/icons/hicolor/256x256/apps/{app}.png",
)


def _folder(path: Path, root: Path | None) -> Dir | None:
    """The folder `path`, opened (plan.place says how); None when it is not there."""
    try:
        return safefs.open_under(*plan.place(path, root))
    except FileNotFoundError:
        return None


def read_manifest(settings: Settings) -> dict:
    """{production: {"outside": [paths], "mounts": [{name, path, device}]}} as last written."""
    try:
        folder = _folder(settings.productions, settings.install_root)
        if folder is None:
            return {}
        with folder:
            data = json.loads(folder.read_bytes(MANIFEST) or b"null")
    except (OSError, ValueError, WorkstationError):
        return {}
    productions = data.get("productions") if isinstance(data, dict) else None
    return productions if isinstance(productions, dict) else {}


def find_icon(version_dir: Path, app: str) -> str | None:
    """The app's icon inside its version folder (ICON_CANDIDATES), when there is one."""
    for candidate in ICON_CANDIDATES:
        path = version_dir / candidate.format(app=app)
        if path.is_file() and paths.is_inside(version_dir, path):
            return str(path)
    return None


def matches(path: Path, entry: Entry, root: Path | None = None) -> bool:
    """True when path already is exactly this entry (bytes and mode, or link target).

    A folder where the entry belongs is refused here, so that a run stops before it changes anything.
    """
    folder = _folder(path.parent, root)
    if folder is None:
        return False
    with folder:
        info = folder.lstat(path.name)
        if info is None:
            return False
        if stat.S_ISDIR(info.st_mode):
            raise WorkstationError(
                f"{path} is a folder; salt-workstation writes a file there. "
                "Move the folder aside, then apply again"
            )
        if entry.link is not None:
            return stat.S_ISLNK(info.st_mode) and folder.readlink(path.name) == entry.link
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != entry.mode:
            return False
        return folder.read_bytes(path.name) == entry.data


def credentials_current(settings: Settings, path: Path, entry: Entry) -> bool:
    """True when the credentials file is this entry (0600) in a folder only root can open (0700)."""
    same = matches(path, entry, settings.install_root)
    folder = _folder(path.parent, settings.install_root)
    if folder is None:
        return False
    with folder:
        return same and stat.S_IMODE(os.fstat(folder.fd).st_mode) == 0o700


def _removable_mount_point(path: str, test: bool) -> bool:
    """An emptied folder where a released mount was (under test, a mount still there counts as emptied:
    its unmount state runs first)."""
    point = Path(path)
    if point.is_symlink() or not point.is_dir():
        return False
    if test and os.path.ismount(point):
        return True
    return not os.path.ismount(point) and not any(point.iterdir())


def _managed_files(settings: Settings, production: str) -> list[Path]:
    """Every file and link below the production's bin, plugins and .secrets folders."""
    production_dir = settings.production_dir(production)
    folder = _folder(production_dir, settings.install_root)
    if folder is None:
        return []
    found = []
    with folder:
        for top in ("bin", "plugins", SECRETS):
            if not folder.exists(top):
                continue
            with folder.child(top) as below:  # a link or a file there is refused, naming its path
                found += [
                    production_dir / top / entry.rel for entry in below.walk() if not entry.is_dir
                ]
    return found


def _record(
    settings: Settings, production: str, files: dict[Path, Entry], mounts: list[dict]
) -> dict:
    """What the manifest keeps for a production: its files outside its own folder, and its mounts."""
    production_dir = settings.production_dir(production)
    return {
        "outside": sorted(str(p) for p in files if not p.is_relative_to(production_dir)),
        "mounts": mounts,
    }


def pending(config, production: str, files: dict[Path, Entry], test: bool = False) -> Changes:
    """What bringing one production to `files` changes: what to write, what it no longer has, and its
    manifest record. Everything is compared here, before anything is changed."""
    settings = Settings.from_config(config)
    manifest = read_manifest(settings)
    previous = mapping(manifest.get(production))
    records = plan.mount_records(config, production, previous)
    keep = {
        Path(m.credentials_file) for m in plan.mounts(config, production)[0] if m.credentials_file
    }
    removed = [
        path
        for path in _managed_files(settings, production)
        if path not in files and path not in keep
    ]
    written = {
        path: entry
        for path, entry in sorted(files.items())
        if not matches(path, entry, settings.install_root)
    }
    removed += [
        Path(p) for p in previous.get("outside", []) if Path(p) not in files and os.path.lexists(p)
    ]
    kept_mounts = {(m["name"], m["path"]) for m in records}
    removed += [
        Path(m["path"])
        for m in previous.get("mounts", [])
        if isinstance(m, dict)
        and (m.get("name"), m.get("path")) not in kept_mounts
        and _removable_mount_point(m["path"], test)
    ]
    record = _record(settings, production, files, records)
    after = None if manifest.get(production) == record else {**manifest, production: record}
    return Changes(written=written, removed=sorted(set(removed)), manifest=after)


def _has_folder(productions: Dir | None, production: str) -> bool:
    """True when the production's folder is there; a link or a file in its place is UnsafePath."""
    if productions is None or productions.lstat(production) is None:
        return False
    productions.child(production).close()
    return True


def _remembering_mounts(config, manifest: dict, keep) -> dict:
    """The manifest with the mounts the kept productions ask for added, even where their launchers
    could not be written, so that a mount is always released once unwanted."""
    updated = {production: dict(mapping(record)) for production, record in manifest.items()}
    for production in keep:
        wanted = [plan.mount_record(m) for m in plan.mounts(config, production)[0]]
        if wanted:
            record = updated.setdefault(production, {"outside": [], "mounts": []})
            mounts = [m for m in record.get("mounts", []) if isinstance(m, dict)]
            known = {(m.get("name"), m.get("path")) for m in mounts}
            record["mounts"] = plan.by_name(
                mounts + [m for m in wanted if (m["name"], m["path"]) not in known]
            )
    return updated


def leftovers(config, keep, test: bool = False) -> Changes:
    """What the productions not in `keep` left, by the manifest: their folder, desktop files, menus and
    emptied mount points; and the manifest afterwards, which also remembers the mounts the kept
    productions ask for. Every production folder is checked: a link in the place of one is UnsafePath."""
    settings = Settings.from_config(config)
    manifest = read_manifest(settings)
    gone = sorted(set(manifest) - set(keep))
    productions = _folder(settings.productions, settings.install_root) if gone else None
    try:
        folders = [settings.production_dir(p) for p in gone if _has_folder(productions, p)]
    finally:
        if productions is not None:
            productions.close()
    removed = []
    for production in gone:
        record = mapping(manifest[production])
        removed += [Path(p) for p in record.get("outside", []) if os.path.lexists(p)]
        removed += [
            Path(m["path"])
            for m in record.get("mounts", [])
            if isinstance(m, dict) and _removable_mount_point(m.get("path", ""), test)
        ]
    after = _remembering_mounts(config, {p: r for p, r in manifest.items() if p not in gone}, keep)
    return Changes(
        removed=sorted(set(removed)), folders=folders, manifest=None if after == manifest else after
    )
