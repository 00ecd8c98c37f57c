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
        _add_members(tar, files, top, extra)


def _add_members(tar, files, top, extra):
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
    "absolute",
    "dotdot",
    "symlink_escape",
    "symlink_absolute",
    "symlink_chain",
    "write_through_symlink",
    "hardlink_escape",
    "device",
    "fifo",
    "reserved",
)


# ---- archives shaped to hurt: deep, long, and small ones that inflate enormously ----------------


def deep_path(depth: int, name: str = "d") -> str:
    """A relative path `depth` folders deep, ending in a file: d/d/.../d/leaf."""
    return "/".join([name] * depth + ["leaf"])


def long_path(levels: int = 30, length: int = 200) -> str:
    """A relative path of `levels` folders of `length` characters each: past PATH_MAX (4096) in total."""
    return "/".join(f"{index:03d}".ljust(length, "x") for index in range(levels)) + "/leaf"


class _Zeros(io.RawIOBase):
    """`size` zero bytes, read in blocks: a gigabyte never sits in memory."""

    def __init__(self, size: int):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def write_bomb(
    path: Path,
    inflated: int,
    files: dict,
    top: str | None = None,
    name: str = "data/zeros.bin",
    mode: int = 0o644,
) -> Path:
    """A tar.gz holding `files` and one file `name` of `inflated` zero bytes, written as a stream
    (1 GiB of zeros gzips to about 1 MiB, and never sits in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        _add_members(tar, files, top, ())
        full = f"{top}/{name}" if top else name
        tar.addfile(_tarinfo(full, inflated, mode), io.BufferedReader(_Zeros(inflated), 1 << 20))
    return path
