"""Build real archives for tests: DCC-shaped apps, and hostile ones that must be refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

# Fixed timestamps make every build of an archive byte-identical, so its hash is stable.
FIXED_MTIME = 1_700_000_000
TAR_MODES = {".tar.gz": "w:gz", ".tar.xz": "w:xz", ".tar.bz2": "w:bz2", ".tar": "w"}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def app_files(app: str, version: str) -> dict[str, tuple[bytes, int]]:
    """A small app: an executable launcher that prints its version, a library and a script."""
    launcher = f'#!/bin/sh\necho "{app} {version} $*"\n'.encode()
    return {
        "bin/" + app: (launcher, 0o755),
        f"lib/lib{app}.so": (f"{app}-{version}-library".encode() * 64, 0o644),
        "scripts/startup.py": (f"print('{app} {version}')\n".encode(), 0o644),
        "README": (f"{app} {version}\n".encode(), 0o444),
    }


def _tarinfo(name, size=0, mode=0o644, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, linkname
    info.mtime = FIXED_MTIME
    return info


def write_tar(path: Path, files: dict, top: str | None = None, extra=()) -> Path:
    """files: {relative path: (bytes, mode)}; extra: raw TarInfo/bytes pairs added as they are."""
    mode = next(m for suffix, m in TAR_MODES.items() if str(path).endswith(suffix))
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "w:gz":  # tarfile would stamp the gzip header with the current time
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
            _fill_tar(tarfile.open(fileobj=compressed, mode="w"), files, top, extra)
        return path
    _fill_tar(tarfile.open(path, mode), files, top, extra)
    return path


def _fill_tar(tar, files, top, extra):
    with tar:
        if top:
            tar.addfile(_tarinfo(top, mode=0o755, kind=tarfile.DIRTYPE))
        for name, (data, file_mode) in files.items():
            full = f"{top}/{name}" if top else name
            tar.addfile(_tarinfo(full, len(data), file_mode), io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data else None)


def write_zip(path: Path, files: dict, top: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (data, file_mode) in files.items():
            info = zipfile.ZipInfo(f"{top}/{name}" if top else name)
            info.external_attr = (0o100000 | file_mode) << 16
            archive.writestr(info, data)
    return path


def hostile_members(kind: str):
    """(TarInfo, data) pairs for one attack, by name."""
    if kind == "absolute":
        return [(_tarinfo("/tmp/evil-absolute", 4), b"evil")]
    if kind == "dotdot":
        return [(_tarinfo("app/../../evil-dotdot", 4), b"evil")]
    if kind == "symlink_escape":
        return [(_tarinfo("app/escape", kind=tarfile.SYMTYPE, linkname="../../../../etc"), b"")]
    if kind == "symlink_absolute":
        return [(_tarinfo("app/etc", kind=tarfile.SYMTYPE, linkname="/etc"), b"")]
    if kind == "symlink_chain":
        # Each link looks harmless alone; together `up` resolves above the destination.
        return [
            (_tarinfo("app/here", kind=tarfile.SYMTYPE, linkname="."), b""),
            (_tarinfo("app/up", kind=tarfile.SYMTYPE, linkname="here/.."), b""),
        ]
    if kind == "write_through_symlink":
        return [
            (_tarinfo("app/lib", kind=tarfile.SYMTYPE, linkname="."), b""),
            (_tarinfo("app/lib/../evil-through", 4), b"evil"),
        ]
    if kind == "hardlink_escape":
        return [(_tarinfo("app/passwd", kind=tarfile.LNKTYPE, linkname="/etc/passwd"), b"")]
    if kind == "device":
        return [(_tarinfo("app/sda", kind=tarfile.BLKTYPE), b"")]
    if kind == "fifo":
        return [(_tarinfo("app/pipe", kind=tarfile.FIFOTYPE), b"")]
    if kind == "reserved":
        return [(_tarinfo("app/.workstation-manifest.json", 2), b"{}")]
    raise ValueError(kind)


HOSTILE_KINDS = (
    "absolute", "dotdot", "symlink_escape", "symlink_absolute", "symlink_chain",
    "write_through_symlink", "hardlink_escape", "device", "fifo", "reserved",
)
