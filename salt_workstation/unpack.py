"""Safe streaming extraction: one pass over the source, through libarchive, into a staging folder.

Every entry is checked before it is written: no absolute paths, no '..', no
device files or fifos, no links that leave the destination, no setuid/setgid
bits, no file with a name the manifest reserves. libarchive's own secure flags
stay on as a second guard, and symlinks are re-resolved once all is written.
Each regular file is hashed as it is written, for `dcc.verify` later.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import posixpath
import queue
import stat
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import libarchive
from libarchive import ffi
from libarchive.exception import ArchiveError
from libarchive.extract import (
    EXTRACT_PERM,
    EXTRACT_SECURE_NODOTDOT,
    EXTRACT_SECURE_SYMLINKS,
    EXTRACT_TIME,
    new_archive_write_disk,
)

from salt_workstation.errors import InstallError, UnsafeArchive
from salt_workstation.paths import RESERVED_NAMES, is_inside

READ_BLOCK = 1 << 20
FILE_HASH = "sha256"
# Absolute paths are ours (we rewrite every entry under the staging folder),
# so libarchive's no-absolute-paths guard stays off; the rest stay on.
WRITE_FLAGS = EXTRACT_PERM | EXTRACT_TIME | EXTRACT_SECURE_SYMLINKS | EXTRACT_SECURE_NODOTDOT
PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
GZIP_MAGIC = b"\x1f\x8b"
AHEAD_BLOCKS = 4  # blocks of READ_BLOCK in flight between the read-ahead thread and libarchive


class _ReadAhead:
    """Read (and so hash) the source in a thread, and gunzip it there when it is gzip.

    `tar -xz` inflates in a gzip process of its own; libarchive inflates on the thread that
    writes the files. Moving the read, the source hash and the inflating to a thread lets a
    second core do them while the first creates files: zlib and hashlib release the GIL on
    large blocks, and libarchive's calls through ctypes release it too. libarchive then reads
    a plain tar (or, for xz/zstd/bz2, still inflates itself, with only the read and hash ahead).
    At most AHEAD_BLOCKS blocks wait in the queue, so memory stays flat.
    """

    def __init__(self, stream, first: bytes):
        self._stream = stream
        self._queue: queue.Queue = queue.Queue(AHEAD_BLOCKS)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._eof = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(first,), name="read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _blocks(self, first: bytes):
        yield first
        buffer = bytearray(READ_BLOCK)
        while not self._stop.is_set():
            count = self._stream.readinto(buffer)
            if not count:
                return
            yield bytes(memoryview(buffer)[:count])

    def _run(self, first: bytes) -> None:
        try:
            if first[:2] != GZIP_MAGIC:
                for block in self._blocks(first):
                    if not self._put(block):
                        return
                return
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            for block in self._blocks(first):
                data = block
                while data:
                    if inflater.eof:  # another gzip member follows, or trailing bytes libarchive also ignores
                        data = inflater.unused_data + data
                        if data[:2] != GZIP_MAGIC:
                            break
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    out = inflater.decompress(data, READ_BLOCK)
                    data = inflater.unconsumed_tail
                    if out and not self._put(out):
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller once libarchive is done
            self.error = exc
        finally:
            self._put(None)  # a truncated source ends early; libarchive reports it, the hash names it

    def readinto(self, buffer) -> int:
        while not self._pending and not self._eof:
            block = self._queue.get()
            if block is None:
                self._eof = True
            else:
                self._pending = memoryview(block)
                report = getattr(self._stream, "report", None)
                if report:  # progress goes out from this thread: Salt's event client is not thread-safe
                    report()
        count = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _read_ahead(stream):
    """The stream as libarchive should read it: seekable sources (a spooled zip) as they are."""
    if stream.seekable():
        yield stream
        return
    ahead = _ReadAhead(stream, stream.read(READ_BLOCK))
    try:
        yield ahead
    finally:
        ahead.close()
    if ahead.error is not None:
        raise ahead.error


@dataclass(frozen=True)
class Record:
    """One extracted entry, as the manifest keeps it."""

    path: str
    type: str  # file | dir | symlink | hardlink
    mode: int
    size: int = 0
    digest: str | None = None
    target: str | None = None

    def as_list(self):
        return [self.path, self.type, self.mode, self.size, self.digest, self.target]

    @classmethod
    def from_list(cls, row):
        return cls(*row)


def member_path(name: str, strip_components: int) -> str | None:
    """The archive member's path inside the destination, or None when stripping leaves nothing."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"member '{name}' has an absolute path")
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"member '{name}' climbs out of the destination with '..'")
    parts = parts[strip_components:]
    if not parts:
        return None
    reserved = next((part for part in parts if part in RESERVED_NAMES), None)
    if reserved:
        raise UnsafeArchive(f"member '{name}' uses the name {reserved}, which the manifest reserves")
    return "/".join(parts)


def _check_symlink(rel: str, target: str, name: str) -> None:
    if not target or target.startswith("/"):
        raise UnsafeArchive(f"symlink '{name}' points to the absolute path '{target}', outside the destination")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchive(f"symlink '{name}' -> '{target}' leaves the destination")


def extract(stream, dest: Path, strip_components: int = 0) -> list[Record]:
    """Unpack the archive read from `stream` into the existing, empty folder `dest`."""
    dest = Path(dest)
    records: list[Record] = []
    buff, size, offset = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_longlong()
    try:
        with _read_ahead(stream) as source, \
                libarchive.stream_reader(source, block_size=READ_BLOCK) as archive, \
                new_archive_write_disk(WRITE_FLAGS) as writer:
            for entry in archive:
                name = entry.pathname
                rel = member_path(name, strip_components)
                if rel is None:
                    continue
                record = _prepare(entry, name, rel, dest, strip_components)
                entry.pathname = str(dest / rel)
                ffi.write_header(writer, entry._entry_p)
                if record.type == "file":
                    record = _copy_data(entry, writer, record, buff, size, offset)
                ffi.write_finish_entry(writer)
                records.append(record)
    except ArchiveError as exc:
        raise UnsafeArchive(f"the archive could not be unpacked safely: {exc}") from None
    except OSError as exc:
        raise InstallError(f"unpacking failed: {exc}") from None
    _check_links_resolve_inside(dest, records)
    return records


def _prepare(entry, name: str, rel: str, dest: Path, strip_components: int) -> Record:
    perm = entry.perm & ~PRIVILEGE_BITS
    entry.perm = perm
    if entry.isdir:
        return Record(rel, "dir", perm)
    if entry.issym:
        target = entry.linkpath
        _check_symlink(rel, target, name)
        return Record(rel, "symlink", perm, target=target)
    if entry.islnk:
        target = member_path(entry.linkpath or "", strip_components)
        if target is None:
            raise UnsafeArchive(f"hardlink '{name}' has no target inside the destination")
        entry.linkpath = str(dest / target)
        return Record(rel, "hardlink", perm, target=target)
    if entry.isreg:
        return Record(rel, "file", perm, size=entry.size or 0)
    kind = "device file" if entry.ischr or entry.isblk else "fifo or socket"
    raise UnsafeArchive(f"member '{name}' is a {kind}; DCC archives carry only files, folders and links")


def _copy_data(entry, writer, record, buff, size, offset) -> Record:
    """Move one file's blocks from the reader to the writer, hashing them on the way."""
    digest = hashlib.new(FILE_HASH)
    read_p = entry._archive_p
    written = 0
    while ffi.read_data_block(read_p, ctypes.byref(buff), ctypes.byref(size), ctypes.byref(offset)) != ffi.ARCHIVE_EOF:
        if size.value:
            digest.update(ctypes.string_at(buff, size.value))
            written += size.value
        ffi.write_data_block(writer, buff, size, offset)
    return Record(record.path, "file", record.mode, written, digest.hexdigest())


def _check_links_resolve_inside(dest: Path, records: list[Record]) -> None:
    """Lexical checks miss chains such as `a -> .` plus `b -> a/..`; resolve every link for real."""
    for record in records:
        if record.type == "symlink" and not is_inside(dest, dest / record.path):
            raise UnsafeArchive(f"symlink '{record.path}' -> '{record.target}' resolves outside the destination")


def hash_file(path: Path) -> str:
    digest = hashlib.new(FILE_HASH)
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(dest: Path) -> list[Record]:
    """Records for a folder written by a vendor installer rather than by extract()."""
    dest = Path(dest)
    records = []
    seen_inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(dest):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(dest).as_posix()
            if rel in RESERVED_NAMES:
                continue
            info = full.lstat()
            perm = stat.S_IMODE(info.st_mode)
            if perm & PRIVILEGE_BITS and not stat.S_ISLNK(info.st_mode):
                perm &= ~PRIVILEGE_BITS
                os.chmod(full, perm)
            if stat.S_ISLNK(info.st_mode):
                records.append(Record(rel, "symlink", perm, target=os.readlink(full)))
            elif stat.S_ISDIR(info.st_mode):
                records.append(Record(rel, "dir", perm))
            elif stat.S_ISREG(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if info.st_nlink > 1 and key in seen_inodes:
                    records.append(Record(rel, "hardlink", perm, target=seen_inodes[key]))
                    continue
                seen_inodes[key] = rel
                records.append(Record(rel, "file", perm, info.st_size, hash_file(full)))
            else:
                raise UnsafeArchive(f"the installer created '{rel}', which is not a file, folder or link")
    _check_links_resolve_inside(dest, records)
    return records
