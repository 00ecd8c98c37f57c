"""Safe streaming extraction: one pass over the source, through libarchive, into a staging folder.

Every entry is checked before it is written: no absolute paths, no '..', no
device files or fifos, no links that leave the destination, no setuid/setgid
bits, no file with a name the manifest reserves, no path deeper than MAX_DEPTH.
libarchive writes relative to the staging folder's descriptor (the process's
cwd while it runs), with its own secure flags as a second guard, and every
write it makes is checked: a failed or short write fails the install, where
libarchive itself would only warn. Each regular file is hashed as it is written,
for `dcc.verify` later.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import posixpath
import queue
import stat
import threading
import zlib
from dataclasses import dataclass

import libarchive
from libarchive import ffi
from libarchive.exception import ArchiveError
from libarchive.extract import (
    EXTRACT_PERM,
    EXTRACT_SECURE_NOABSOLUTEPATHS,
    EXTRACT_SECURE_NODOTDOT,
    EXTRACT_SECURE_SYMLINKS,
    EXTRACT_TIME,
    new_archive_write_disk,
)

from salt_workstation import safefs
from salt_workstation.errors import (
    InstallError,
    LimitExceeded,
    UnsafeArchive,
    UnsafePath,
    WorkstationError,
)
from salt_workstation.paths import RESERVED_NAMES

READ_BLOCK = 1 << 20
FILE_HASH = "sha256"
# Entries are written relative to the staging folder (the cwd while extracting), so every guard stays on.
WRITE_FLAGS = (
    EXTRACT_PERM
    | EXTRACT_TIME
    | EXTRACT_SECURE_SYMLINKS
    | EXTRACT_SECURE_NODOTDOT
    | EXTRACT_SECURE_NOABSOLUTEPATHS
)
MAX_DEPTH = (
    256  # folders; real DCC trees stay under 40, and deeper ones only wedge tools that walk them
)
BOMB_FLOOR = (
    64 << 20
)  # below this much unpacked, no expansion ratio is judged (small archives compress well)
SYMLINK_HOPS = 40  # as the kernel's MAXSYMLINKS
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
        self._thread = threading.Thread(
            target=self._run, args=(first,), name="read-ahead", daemon=True
        )
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
                    if (
                        inflater.eof
                    ):  # another gzip member follows, or trailing bytes libarchive also ignores
                        data = inflater.unused_data + data
                        if data[:2] != GZIP_MAGIC:
                            break
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    out = inflater.decompress(data, READ_BLOCK)
                    data = inflater.unconsumed_tail
                    if out and not self._put(out):
                        return
        except BaseException as exc:
            self.error = exc
        finally:
            self._put(
                None
            )  # a truncated source ends early; libarchive reports it, the hash names it

    def readinto(self, buffer) -> int:
        while not self._pending and not self._eof:
            block = self._queue.get()
            if block is None:
                self._eof = True
            else:
                self._pending = memoryview(block)
                report = getattr(self._stream, "report", None)
                if (
                    report
                ):  # progress goes out from this thread: Salt's event client is not thread-safe
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
    """The stream as libarchive should read it: seekable sources (a spooled zip) as they are.

    When reading the source failed (the depot stalled or broke off), libarchive only sees
    a truncated archive: the read's own error is the one to report.
    """
    if stream.seekable():
        yield stream
        return
    ahead = _ReadAhead(stream, stream.read(READ_BLOCK))
    try:
        yield ahead
    except (ArchiveError, WorkstationError, OSError):
        ahead.close()
        if ahead.error is not None:
            raise ahead.error from None
        raise
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
        raise UnsafeArchive(f"member '{name[:200]}' has an absolute path")
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"member '{name[:200]}' climbs out of the destination with '..'")
    parts = parts[strip_components:]
    if not parts:
        return None
    if len(parts) > MAX_DEPTH:
        raise UnsafeArchive(
            f"member '{name[:80]}...' is {len(parts)} folders deep; the limit is {MAX_DEPTH} "
            "folders deep, and no DCC needs more"
        )
    reserved = next((part for part in parts if part in RESERVED_NAMES), None)
    if reserved:
        raise UnsafeArchive(
            f"member '{name[:200]}' uses the name {reserved}, which the manifest reserves"
        )
    too_long = next((part for part in parts if len(os.fsencode(part)) > safefs.NAME_MAX), None)
    if too_long:
        raise UnsafeArchive(
            f"member '{name[:80]}...' has a name longer than {safefs.NAME_MAX} bytes"
        )
    return "/".join(parts)


def _check_symlink(rel: str, target: str, name: str) -> None:
    if not target or target.startswith("/"):
        raise UnsafeArchive(
            f"symlink '{name}' points to the absolute path '{target}', outside the destination"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchive(f"symlink '{name}' -> '{target}' leaves the destination")


class Budget:
    """How many bytes one version may unpack, checked as they are written, so a compression bomb
    stops early whether or not its hash is pinned.

    limit: workstation:limits:max_unpacked_bytes. declared: the catalog's `size`, when given; it
    bounds the unpacked bytes exactly and stands in for the expansion ratio. max_expansion: unpacked
    bytes per source byte read so far (`source_read()`), judged past BOMB_FLOOR.
    """

    def __init__(
        self,
        limit: int | None = None,
        declared: int | None = None,
        max_expansion: int | None = None,
        source_read=None,
    ):
        self.limit = limit
        self.declared = declared
        self.max_expansion = max_expansion if declared is None else None
        self.source_read = source_read or (lambda: 0)
        self.used = 0

    def add(self, count: int) -> None:
        self.used += count
        if self.declared is not None and self.used > self.declared:
            raise LimitExceeded(
                f"it unpacks to more than its catalog size of {self.declared} bytes; "
                "fix the size in the catalog or the depot file"
            )
        if self.limit is not None and self.used > self.limit:
            raise LimitExceeded(
                f"it unpacks to more than {safefs.mib(self.limit)} "
                "(workstation:limits:max_unpacked_bytes); raise the limit if the app is that large"
            )
        if self.max_expansion and self.used > BOMB_FLOOR:
            read = self.source_read()
            if self.used > self.max_expansion * max(read, 1):
                raise LimitExceeded(
                    f"it looks like a compression bomb: {safefs.mib(self.used)} unpacked from {safefs.mib(read)} "
                    f"read expands more than {self.max_expansion} times (workstation:limits:max_expansion). "
                    "If the app is genuine, declare its unpacked `size` in the catalog"
                )


class Reuse:
    """Files of the app's installed versions that a new version's identical files become hardlinks to.

    `candidates` maps a path inside the version to (version, Record) from that version's file
    list: a member at the same path, of the same size and mode, is compared byte for byte with
    the installed file while it streams, and nothing of it is written unless they differ (then
    its bytes so far are copied from the installed file, and the rest from the archive: each
    file is written at most once). An identical file becomes one more name of the installed
    inode, so it takes no space; removing either version removes only its names.

    Nothing is ever written through a shared inode: a later member at a linked path replaces
    the link, and an archive hardlink that carries data of its own first gets a private copy.
    """

    def __init__(self, app_dir: safefs.Dir, candidates: dict):
        self.app_dir = app_dir
        self.candidates = candidates
        self.linked: dict[str, str] = {}  # path in the new version -> version it shares
        self.linked_bytes = 0
        self._folder: tuple | None = (
            None  # (version, parent path, Dir): archives come folder by folder
        )

    def _parent(self, version: str, parent: str) -> safefs.Dir:
        if self._folder is None or self._folder[:2] != (version, parent):
            self.close()
            names = [version, *(parent.split("/") if parent else [])]
            self._folder = (version, parent, self.app_dir.descend(*names))
        return self._folder[2]

    def candidate(self, rel: str, size: int, mode: int):
        """(the installed file's read descriptor, its folder, its name, its version), or None."""
        found = self.candidates.get(rel)
        if found is None or not size:
            return None
        version, record = found
        if record.size != size or record.mode != mode:
            return None
        parent, _, name = rel.rpartition("/")
        try:
            folder = self._parent(version, parent)
            fd = folder.open_file(name)
        except (OSError, WorkstationError):
            return None  # gone, or a link planted in the old version: write the file
        info = os.fstat(fd)
        if info.st_size != size or stat.S_IMODE(info.st_mode) != mode:
            os.close(fd)
            return None
        return fd, folder, name, version

    def link(self, staging: safefs.Dir, rel: str, source: safefs.Dir, name: str, version: str):
        parent, _, leaf = rel.rpartition("/")
        try:
            with staging.descend(*(parent.split("/") if parent else []), create=True) as folder:
                folder.hardlink(leaf, source, name)
        except UnsafePath as exc:
            raise UnsafeArchive(f"the archive could not be unpacked safely: {exc}") from None
        self.linked[rel] = version

    def before_write(self, staging: safefs.Dir, rel: str, record: Record, data_size: int) -> None:
        """What libarchive is about to write at `rel` must not reach a shared inode."""
        if rel in self.linked:
            # A later member at the same path replaces the earlier one: drop our link first.
            self.linked_bytes -= self.candidates[rel][1].size
            del self.linked[rel]
            with _in_staging(staging, rel) as (folder, leaf):
                folder.remove(leaf)
        if record.type == "hardlink" and data_size > 0 and record.target in self.linked:
            with _in_staging(staging, record.target) as (folder, leaf):
                folder.unshare(leaf)  # libarchive writes a hardlink's own data through its target
            self.linked_bytes -= self.candidates[record.target][1].size
            del self.linked[record.target]

    def close(self) -> None:
        if self._folder is not None:
            self._folder[2].close()
            self._folder = None


@contextlib.contextmanager
def _in_staging(staging: safefs.Dir, rel: str):
    parent, _, leaf = rel.rpartition("/")
    try:
        with staging.descend(*(parent.split("/") if parent else [])) as folder:
            yield folder, leaf
    except UnsafePath as exc:
        raise UnsafeArchive(f"the archive could not be unpacked safely: {exc}") from None


def _raw(name: str, argtypes: list, restype=ctypes.c_int):
    """A libarchive call that returns its status as is: libarchive-c's wrappers only log ARCHIVE_WARN,
    which is what a failed write() returns, so a disk-full spell would pass unnoticed."""
    function = ffi.libarchive[
        "archive_" + name
    ]  # indexing makes a new function object, without errcheck
    function.argtypes, function.restype = argtypes, restype
    return function


_WRITE_HEADER = _raw("write_header", [ffi.c_archive_p, ctypes.c_void_p])
_WRITE_DATA_BLOCK = _raw(
    "write_data_block",
    [ffi.c_archive_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_longlong],
    ctypes.c_ssize_t,
)
_WRITE_FINISH_ENTRY = _raw("write_finish_entry", [ffi.c_archive_p])


def _check_write(status: int, writer, rel: str, refused=InstallError) -> None:
    """Any status below ARCHIVE_OK from the disk writer fails the install; disk errors keep their errno.

    `refused` is the error for anything else: a header libarchive will not write (through a
    symlink, say) is an unsafe archive; a failed data write is a failed install.
    """
    if status >= ffi.ARCHIVE_OK:
        return
    code = ffi.errno(writer)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
        raise OSError(code, os.strerror(code), rel)
    message = (ffi.error_string(writer) or b"").decode("utf-8", "replace") or os.strerror(code)
    if refused is UnsafeArchive:
        raise UnsafeArchive(f"the archive could not be unpacked safely: {message}")
    raise refused(f"writing '{rel[:200]}' failed: {message}")


def extract(
    stream, dest, strip_components: int = 0, budget: Budget | None = None, reuse=None
) -> list[Record]:
    """Unpack the archive read from `stream` into the existing, empty folder `dest` (a path or a safefs.Dir).

    Disk errors come out as OSError (ENOSPC, EIO, ...), for the caller to word with what it knows.
    """
    with dest if isinstance(dest, safefs.Dir) else safefs.Dir.root(dest) as folder:
        try:
            return _extract_into(stream, folder, strip_components, budget or Budget(), reuse)
        finally:
            if reuse is not None:
                reuse.close()


def _extract_into(
    stream, folder: safefs.Dir, strip_components: int, budget: Budget, reuse: Reuse | None
) -> list[Record]:
    records: list[Record] = []
    buff, size, offset = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_longlong()
    try:
        # The writer closes first, while the cwd is still the staging folder: libarchive sets
        # folder modes and times in a fix-up pass at close, by relative path.
        with (
            safefs.working_directory(folder),
            _read_ahead(stream) as source,
            libarchive.stream_reader(source, block_size=READ_BLOCK) as archive,
            new_archive_write_disk(WRITE_FLAGS) as writer,
        ):
            for entry in archive:
                name = entry.pathname
                rel = member_path(name, strip_components)
                if rel is None:
                    continue
                record = _prepare(entry, name, rel, strip_components)
                entry.pathname = rel
                candidate = None
                if reuse is not None:
                    reuse.before_write(folder, rel, record, entry.size or 0)
                    if record.type == "file":
                        candidate = reuse.candidate(rel, record.size, record.mode)
                if candidate is not None:
                    record = _share_or_copy(
                        entry, writer, record, buff, size, offset, budget, candidate, folder, reuse
                    )
                    records.append(record)
                    continue
                _check_write(_WRITE_HEADER(writer, entry._entry_p), writer, rel, UnsafeArchive)
                if record.type == "file":
                    record = _copy_data(entry, writer, record, buff, size, offset, budget)
                _check_write(_WRITE_FINISH_ENTRY(writer), writer, rel)
                records.append(record)
    except ArchiveError as exc:
        raise UnsafeArchive(f"the archive could not be unpacked safely: {exc}") from None
    _check_links_resolve_inside(records)
    return records


def _prepare(entry, name: str, rel: str, strip_components: int) -> Record:
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
        entry.linkpath = target
        return Record(rel, "hardlink", perm, target=target)
    if entry.isreg:
        return Record(rel, "file", perm, size=entry.size or 0)
    kind = "device file" if entry.ischr or entry.isblk else "fifo or socket"
    raise UnsafeArchive(
        f"member '{name}' is a {kind}; DCC archives carry only files, folders and links"
    )


def _copy_data(entry, writer, record, buff, size, offset, budget: Budget) -> Record:
    """Move one file's blocks from the reader to the writer, hashing and counting them on the way."""
    digest = hashlib.new(FILE_HASH)
    read_p = entry._archive_p
    written = 0
    while (
        ffi.read_data_block(read_p, ctypes.byref(buff), ctypes.byref(size), ctypes.byref(offset))
        != ffi.ARCHIVE_EOF
    ):
        if not size.value:
            continue
        budget.add(size.value)
        digest.update(ctypes.string_at(buff, size.value))
        written += size.value
        _check_write(_WRITE_DATA_BLOCK(writer, buff, size, offset), writer, record.path)
    if record.size and written != record.size:
        raise InstallError(
            f"'{record.path[:200]}' holds {written} of its {record.size} bytes in the archive"
        )
    return Record(record.path, "file", record.mode, written, digest.hexdigest())


def _share_or_copy(
    entry, writer, record, buff, size, offset, budget: Budget, candidate, staging, reuse: Reuse
) -> Record:
    """A member that may equal an installed file: compare its blocks with that file as they stream.
    Equal to the end: a hardlink, nothing written. Different from some block on: write the entry
    then, its bytes so far copied from the installed file (they were equal), the rest streamed."""
    fd, source, source_name, version = candidate
    try:
        digest = hashlib.new(FILE_HASH)
        read_p = entry._archive_p
        same, position = True, 0
        while (
            ffi.read_data_block(
                read_p, ctypes.byref(buff), ctypes.byref(size), ctypes.byref(offset)
            )
            != ffi.ARCHIVE_EOF
        ):
            if not size.value:
                continue
            budget.add(size.value)
            block = ctypes.string_at(buff, size.value)
            digest.update(block)
            if same:
                if offset.value == position and os.pread(fd, len(block), position) == block:
                    position += len(block)
                    continue
                same = False
                _check_write(
                    _WRITE_HEADER(writer, entry._entry_p), writer, record.path, UnsafeArchive
                )
                _copy_prefix(fd, position, writer, record.path)
            _check_write(_WRITE_DATA_BLOCK(writer, buff, size, offset), writer, record.path)
        if same:
            if position != record.size:
                raise InstallError(
                    f"'{record.path[:200]}' holds {position} of its {record.size} bytes in the archive"
                )
            reuse.link(staging, record.path, source, source_name, version)
            reuse.linked_bytes += record.size
        else:
            _check_write(_WRITE_FINISH_ENTRY(writer), writer, record.path)
    finally:
        os.close(fd)
    return Record(record.path, "file", record.mode, record.size, digest.hexdigest())


def _copy_prefix(fd: int, count: int, writer, rel: str) -> None:
    """The first `count` bytes of the installed file (equal to the member's) into the entry being written."""
    done = 0
    while done < count:
        chunk = os.pread(fd, min(READ_BLOCK, count - done), done)
        if not chunk:
            raise InstallError(f"'{rel[:200]}': the installed copy shrank while it was compared")
        block = ctypes.create_string_buffer(chunk, len(chunk))
        _check_write(_WRITE_DATA_BLOCK(writer, block, len(chunk), done), writer, rel)
        done += len(chunk)


def resolve_inside(records: list[Record], rel: str) -> str | None:
    """Where `rel` leads once every symlink among `records` is followed, relative to the destination;
    None when it leaves the destination or loops. Pure bookkeeping: no path-length limit, no disk."""
    links = {record.path: record.target for record in records if record.type == "symlink"}
    pending = [part for part in rel.split("/") if part]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        if candidate in links:
            hops += 1
            target = links[candidate]
            if hops > SYMLINK_HOPS or target.startswith("/"):
                return None
            pending = [p for p in target.split("/") if p] + pending
            continue
        resolved.append(part)
    return "/".join(resolved)


def _check_links_resolve_inside(records: list[Record]) -> None:
    """Lexical checks miss chains such as `a -> .` plus `b -> a/..`: follow every link through the others."""
    for record in records:
        if record.type == "symlink" and resolve_inside(records, record.path) is None:
            raise UnsafeArchive(
                f"symlink '{record.path}' -> '{record.target}' resolves outside the destination"
            )


def hash_file(folder: safefs.Dir | int, name: str) -> str:
    """The sha256 of the regular file `name` in `folder`, opened without following a link."""
    digest = hashlib.new(FILE_HASH)
    fd = os.open(
        name, safefs.FILE_READ_FLAGS, dir_fd=folder if isinstance(folder, int) else folder.fd
    )
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(READ_BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(dest) -> list[Record]:
    """Records for a folder written by a vendor installer rather than by extract()."""
    records = []
    seen_inodes: dict[tuple[int, int], str] = {}
    with dest if isinstance(dest, safefs.Dir) else safefs.Dir.root(dest) as folder:
        for entry in folder.walk(max_depth=MAX_DEPTH):
            if entry.rel in RESERVED_NAMES:
                continue
            info = entry.info
            perm = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                records.append(
                    Record(
                        entry.rel,
                        "symlink",
                        perm,
                        target=os.readlink(entry.name, dir_fd=entry.parent_fd),
                    )
                )
                continue
            if perm & PRIVILEGE_BITS:
                perm &= ~PRIVILEGE_BITS
                os.chmod(entry.name, perm, dir_fd=entry.parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                records.append(Record(entry.rel, "dir", perm))
            elif stat.S_ISREG(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if info.st_nlink > 1 and key in seen_inodes:
                    records.append(Record(entry.rel, "hardlink", perm, target=seen_inodes[key]))
                    continue
                seen_inodes[key] = entry.rel
                records.append(
                    Record(
                        entry.rel,
                        "file",
                        perm,
                        info.st_size,
                        hash_file(entry.parent_fd, entry.name),
                    )
                )
            else:
                raise UnsafeArchive(
                    f"the installer created '{entry.rel}', which is not a file, folder or link"
                )
    _check_links_resolve_inside(records)
    return records
