"""The one safe filesystem layer: every write, rename and removal under a folder we manage.

A managed root (install_root, /etc/profile.d, the launcher bin folder, ...) is opened
once, by its path, as an administrator configured it: it may itself be a symlink.
Below it every step goes through directory file descriptors with O_NOFOLLOW, so
a symlink that someone planted inside our tree is reported, never followed.

- Names below a root are single path components (`component`): no '/', no NUL,
  not '.' or '..', at most NAME_MAX bytes. The pillar contract checks them first;
  this is the second line of defence.
- Walks and removals are iterative (a stack of open folders), so depth is bounded
  by open file descriptors, never by Python's recursion limit or PATH_MAX.
- Every write is checked and fsynced before the rename that publishes it, and the
  folder is fsynced after (`durable=False` leaves the fsyncs out, for a copy that
  may be lost: a cache); ENOSPC, EDQUOT and EIO become `DiskError`s that name
  the place and the shortfall.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from salt_workstation.errors import DiskError, UnsafePath, WorkstationError

NAME_MAX = 255
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
_RENAME_EXCHANGE = 2


def component(name, what: str = "name") -> str:
    """`name` when it is one safe path component; UnsafePath otherwise."""
    if not isinstance(name, str) or not name:
        raise UnsafePath(f"{what} {name!r} is not a folder or file name")
    if name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(
            f"{what} {name!r} is not a single folder or file name (no '/', NUL, '.' or '..')"
        )
    if len(os.fsencode(name)) > NAME_MAX:
        raise UnsafePath(f"{what} {name[:40]!r}... is longer than {NAME_MAX} bytes")
    return name


def mib(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count / 2**10:.0f} KiB"


def free_bytes(fd: int) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `fd`."""
    info = os.fstatvfs(fd)
    return info.f_bavail * info.f_frsize


def disk_error(
    exc: OSError, where: str, needed: int | None = None, fd: int | None = None
) -> WorkstationError:
    """An OSError from writing under `where` as a message an operator can act on."""
    if exc.errno not in _DISK_ERRNOS:
        return WorkstationError(f"could not write under {where}: {exc.strerror or exc}")
    if exc.errno == errno.EIO:
        return DiskError(
            f"the disk under {where} reported an I/O error; check the disk (dmesg) before applying again"
        )
    if exc.errno == errno.EROFS:
        return DiskError(
            f"{where} is on a read-only filesystem; remount it read-write or move install_root"
        )
    detail = ""
    if needed is not None and fd is not None:
        with contextlib.suppress(OSError):
            detail = f": {mib(max(needed - free_bytes(fd), 1))} more needed"
    quota = " (the user's quota)" if exc.errno == errno.EDQUOT else ""
    return DiskError(f"disk full under {where}{quota}{detail}")


def _libc():
    libc = ctypes.CDLL(
        None, use_errno=True
    )  # the libc this process runs on; find_library would fork ldconfig
    functions = {}
    for name, argtypes in (
        (
            "renameat2",
            [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint],
        ),
        ("syncfs", [ctypes.c_int]),
    ):
        function = getattr(libc, name, None)
        if function is not None:
            function.argtypes = argtypes
        functions[name] = function
    return functions


_LIBC = _libc()


@dataclass(frozen=True)
class Entry:
    """One entry of a walk: its path relative to the walked folder, and its lstat."""

    rel: str
    name: str
    parent_fd: int
    info: os.stat_result
    depth: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


class Dir:
    """An open folder, and the path it had when opened (for messages only)."""

    def __init__(self, fd: int, path: str):
        self.fd = fd
        self.path = path

    # ---- opening ---------------------------------------------------------------

    @classmethod
    def root(cls, path, create: bool = False, mode: int = 0o755) -> Dir:
        """Open a managed root by its path, as configured (the one place a link may be followed)."""
        path = os.fspath(path)
        if not os.path.isabs(path):
            raise UnsafePath(f"{path!r} is not an absolute path")
        try:
            if create:
                os.makedirs(path, mode=mode, exist_ok=True)
            return cls(
                os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path.rstrip("/") or "/"
            )
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise UnsafePath(f"{path} is not a folder") from None
        except OSError as exc:
            raise disk_error(exc, path) from None

    def join(self, *names: str) -> str:
        return "/".join([self.path.rstrip("/"), *names])

    def child(self, name: str, create: bool = False, mode: int = 0o755) -> Dir:
        """The folder `name` in this one, never through a symlink; made (mode) when `create`."""
        component(name)
        if create:
            with contextlib.suppress(FileExistsError):
                self._wrap(os.mkdir, name, mode, dir_fd=self.fd)
        try:
            return Dir(os.open(name, DIR_FLAGS, dir_fd=self.fd), self.join(name))
        except (NotADirectoryError, OSError) as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
        kind = "a symlink" if self.is_symlink(name) else "not a folder"
        raise UnsafePath(
            f"{self.join(name)} is {kind}; salt-workstation does not follow or replace what it did not "
            "create there. Move it aside (the real folder belongs at that path), then apply again"
        )

    def descend(self, *names: str, create: bool = False, mode: int = 0o755) -> Dir:
        """child() for each name in turn; the folders passed through are closed."""
        current = self
        for name in names:
            try:
                following = current.child(name, create=create, mode=mode)
            finally:
                if current is not self:
                    current.close()
            current = following
        return current if current is not self else Dir(os.dup(self.fd), self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading -----------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(component(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return self.lstat(name) is not None

    def is_symlink(self, name: str) -> bool:
        info = self.lstat(name)
        return info is not None and stat.S_ISLNK(info.st_mode)

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def read_bytes(self, name: str) -> bytes | None:
        """A regular file's bytes (None when absent); a symlink or folder there is UnsafePath."""
        try:  # O_NONBLOCK: a FIFO planted there must not hang the open; it is refused below
            fd = os.open(component(name), FILE_READ_FLAGS | os.O_NONBLOCK, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise UnsafePath(
                    f"{self.join(name)} is not a regular file; it is not read"
                ) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder opens read-only too
            os.close(fd)
            raise UnsafePath(f"{self.join(name)} is not a regular file; it is not read")
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def readlink(self, name: str) -> str | None:
        try:
            return os.readlink(component(name), dir_fd=self.fd)
        except (FileNotFoundError, OSError):
            return None

    def walk(self, max_depth: int | None = None) -> Iterator[Entry]:
        """Every entry below this folder, parents before children, never through a symlink.

        Iterative: one open descriptor per level of the folder being read, so depth costs
        descriptors, not Python stack. Entries of each folder come sorted by name.
        """
        stack: list[tuple[int, str, list[str], int]] = [
            (os.dup(self.fd), "", self.listdir()[::-1], 0)
        ]
        try:
            while stack:
                fd, prefix, pending, depth = stack[-1]
                if not pending:
                    os.close(fd)
                    stack.pop()
                    continue
                name = pending.pop()
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entry = Entry(prefix + name, name, fd, info, depth + 1)
                yield entry
                if entry.is_dir:
                    if max_depth is not None and entry.depth >= max_depth:
                        raise UnsafePath(
                            f"{self.join(entry.rel[:80])}... is more than {max_depth} folders deep"
                        )
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                    stack.append(
                        (child, entry.rel + "/", sorted(os.listdir(child))[::-1], depth + 1)
                    )
        finally:
            for fd, *_ in stack:
                os.close(fd)

    # ---- writing -----------------------------------------------------------------

    def _wrap(self, function, *args, needed: int | None = None, **kwargs):
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:
                raise disk_error(exc, self.path, needed, self.fd) from None
            raise

    def mkdir(self, name: str, mode: int = 0o755) -> Dir:
        """A new folder (it must not exist), opened."""
        self._wrap(os.mkdir, component(name), mode, dir_fd=self.fd)
        return self.child(name)

    def _replace(self, name: str, what: str, make, durable: bool = True) -> None:
        """Make `name` anew in one rename: `make(temporary)` creates it beside its place, then the
        rename and (`durable`) the folder fsynced. A folder at `name` is refused; a symlink there is
        replaced, never followed; a failure leaves no temporary behind."""
        component(name)
        info = self.lstat(name)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise WorkstationError(f"{self.join(name)} is a folder; remove it so the {what}")
        temporary = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            make(temporary)
            self._wrap(os.rename, temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise
        if durable:
            self.fsync()

    def write_file(
        self,
        name: str,
        data: bytes,
        mode: int,
        uid: int | None = None,
        gid: int | None = None,
        durable: bool = True,
    ) -> None:
        """Replace `name` with `data` in one rename (see _replace): owner and mode set before the
        first byte, every byte written and (`durable`) fsynced before the rename."""
        self.write_stream(name, [data], mode, uid=uid, gid=gid, needed=len(data), durable=durable)

    def write_stream(
        self,
        name: str,
        chunks,
        mode: int,
        check=None,
        uid: int | None = None,
        gid: int | None = None,
        needed: int | None = None,
        durable: bool = True,
    ) -> None:
        """Replace `name` with the bytes of `chunks` (an iterable) in one rename, as write_file does
        for bytes it holds; `check()` runs after the last byte and before the rename, and whatever
        it raises leaves nothing behind (a download whose hash does not match). `durable=False`
        leaves out the fsyncs: for a copy whose loss costs nothing but fetching it again."""

        def make(temporary):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = self._wrap(os.open, temporary, flags, mode, dir_fd=self.fd, needed=needed)
            try:
                if uid is not None or gid is not None:
                    os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
                os.fchmod(fd, mode)  # the umask may have taken bits off
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[self._wrap(os.write, fd, view, needed=len(view)) :]
                if durable:
                    self._wrap(os.fsync, fd)
            finally:
                os.close(fd)
            if check is not None:
                check()

        self._replace(name, "file can be written", make, durable=durable)

    def symlink(self, name: str, target: str) -> None:
        """Make `name` a symlink to `target` in one rename (see _replace)."""
        self._replace(
            name,
            "link can be made",
            lambda temporary: self._wrap(os.symlink, target, temporary, dir_fd=self.fd),
        )

    def chmod(self, name: str, mode: int) -> None:
        """chmod a folder or file found here, never through a symlink."""
        info = self.lstat(name)
        if info is None or stat.S_ISLNK(info.st_mode):
            return
        fd = os.open(
            name, DIR_FLAGS if stat.S_ISDIR(info.st_mode) else FILE_READ_FLAGS, dir_fd=self.fd
        )
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def rename(self, old: str, new: str, into: Dir | None = None) -> None:
        """Rename `old` here to `new` here (or in `into`, on the same filesystem)."""
        target = into or self
        self._wrap(
            os.rename, component(old), component(new), src_dir_fd=self.fd, dst_dir_fd=target.fd
        )

    def exchange(self, first: str, second: str) -> bool:
        """Swap two entries of this folder in one atomic step; False where the kernel cannot."""
        function = _LIBC["renameat2"]
        if function is None:
            return False
        first_b, second_b = os.fsencode(component(first)), os.fsencode(component(second))
        if function(self.fd, first_b, self.fd, second_b, _RENAME_EXCHANGE) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(err, os.strerror(err), self.join(first))

    def fsync(self) -> None:
        """Make renames and creations in this folder durable."""
        with contextlib.suppress(
            OSError
        ):  # some filesystems (tmpfs on old kernels) refuse fsync on folders
            os.fsync(self.fd)

    def sync_filesystem(self) -> None:
        """Flush everything written on this folder's filesystem (one syscall for a whole unpacked tree)."""
        function = _LIBC["syncfs"]
        if function is None or function(self.fd) != 0:
            err = ctypes.get_errno() if function is not None else 0
            if err in _DISK_ERRNOS:
                raise disk_error(OSError(err, os.strerror(err)), self.path)
            os.sync()

    def open_file(self, name: str) -> int:
        """A read-only descriptor of the regular file `name`, never through a symlink (UnsafePath
        otherwise); the caller closes it."""
        try:
            fd = os.open(component(name), FILE_READ_FLAGS | os.O_NONBLOCK, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR):
                raise UnsafePath(
                    f"{self.join(name)} is not a regular file; it is not read"
                ) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{self.join(name)} is not a regular file; it is not read")
        return fd

    def hardlink(self, name: str, source: Dir, source_name: str) -> None:
        """A new name `name` here for the regular file `source_name` in `source` (same filesystem):
        the link itself is never followed, and a file already at `name` is replaced (unlinked first,
        as an archive's later member replaces an earlier one); a folder there is refused."""
        component(name)
        info = self.lstat(name)
        if info is not None:
            if stat.S_ISDIR(info.st_mode):
                raise UnsafePath(f"{self.join(name)} is a folder; a file cannot take its place")
            os.unlink(name, dir_fd=self.fd)
        self._wrap(
            os.link,
            component(source_name),
            name,
            src_dir_fd=source.fd,
            dst_dir_fd=self.fd,
            follow_symlinks=False,
        )

    def unshare(self, name: str) -> None:
        """Give the regular file `name` an inode of its own (a private copy, renamed over it), so a
        write or chmod through this name can never reach another name of the same inode."""
        source = self.open_file(name)
        try:
            info = os.fstat(source)
            if info.st_nlink <= 1:
                return

            def make(temporary):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                target = self._wrap(os.open, temporary, flags, 0o600, dir_fd=self.fd)
                try:
                    left = info.st_size
                    while left:
                        copied = self._wrap(os.sendfile, target, source, None, min(left, 1 << 30))
                        if not copied:
                            raise OSError(errno.EIO, f"{self.join(name)} shrank while copied")
                        left -= copied
                    os.fchmod(target, stat.S_IMODE(info.st_mode))
                    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
                finally:
                    os.close(target)

            self._replace(name, "file can be copied", make)
        finally:
            os.close(source)

    # ---- removing ---------------------------------------------------------------

    def remove(self, name: str) -> bool:
        """Remove a file, a symlink (never what it points to) or a whole folder; False when absent.

        Iterative, through descriptors; it never leaves this filesystem: a mount point
        inside the tree stops the removal with UnsafePath.
        """
        info = self.lstat(name)
        if info is None:
            return False
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=self.fd)
            return True
        device = info.st_dev
        top = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        stack: list[tuple[int, str, list[str]]] = [(top, name, os.listdir(top))]
        try:
            while stack:
                fd, _own_name, pending = stack[-1]
                if pending:
                    child = pending.pop()
                    child_info = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISDIR(child_info.st_mode):
                        os.unlink(child, dir_fd=fd)
                        continue
                    if child_info.st_dev != device:
                        raise UnsafePath(
                            f"{self.join(name)} holds a mount point ({child}); nothing more was removed"
                        )
                    child_fd = os.open(child, DIR_FLAGS, dir_fd=fd)
                    stack.append((child_fd, child, os.listdir(child_fd)))
                    continue
                os.close(fd)
                stack.pop()
                os.rmdir(_own_name, dir_fd=stack[-1][0] if stack else self.fd)
        finally:
            for fd, *_ in stack:
                os.close(fd)
        return True

    def remove_empty_dir(self, name: str) -> bool:
        """Remove the folder `name` if it is empty; False when it is not (absent, not empty, a link or a
        mount point: the kernel refuses each of those in the one rmdir)."""
        try:
            os.rmdir(component(name), dir_fd=self.fd)
        except OSError:
            return False
        return True

    def remove_empty_dirs(self) -> None:
        """Remove every empty folder below this one, deepest first (this one stays)."""
        folders = sorted(
            (entry.rel for entry in self.walk() if entry.is_dir), key=lambda rel: -rel.count("/")
        )
        for rel in folders:
            parent, _, leaf = rel.rpartition("/")
            with (
                self.descend(*parent.split("/")) if parent else self.descend() as holder,
                contextlib.suppress(OSError),
            ):  # not empty, or gone: both fine
                os.rmdir(leaf, dir_fd=holder.fd)


@contextlib.contextmanager
def working_directory(folder: Dir):
    """Run with the process's cwd at `folder` (for libarchive, which takes relative paths from there)."""
    previous = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(folder.fd)
        yield
    finally:
        os.fchdir(previous)
        os.close(previous)


def open_under(root, *names: str, create: bool = False, mode: int = 0o755) -> Dir:
    """The folder root/names..., the root opened as configured and every step below without following links."""
    with Dir.root(root, create=create) as top:
        return top.descend(*names, create=create, mode=mode)


def write_file(
    path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None
) -> None:
    """Write one file whose folder is a managed place of its own (e.g. /etc/profile.d); the folder is made
    when missing. The folder's path is taken as configured; the file itself is never written through a link."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    with Dir.root(folder or ".", create=True) as holder:
        holder.write_file(name, data, mode, uid, gid)


def read_file(path) -> bytes | None:
    """The bytes of the regular file at `path`, never read through a link (its folder is taken as
    configured); None when absent. A link, folder or other non-file there is UnsafePath."""
    folder, name = os.path.split(os.fspath(path))
    try:
        holder = Dir.root(folder or ".")
    except FileNotFoundError:
        return None
    with holder:
        return holder.read_bytes(name)


def remove_file(path) -> bool:
    """Remove one file or symlink (never a folder, never through a link); False when absent."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    try:
        holder = Dir.root(folder)
    except FileNotFoundError:
        return False
    with holder:
        info = holder.lstat(name)
        if info is None:
            return False
        if stat.S_ISDIR(info.st_mode):
            raise WorkstationError(
                f"{path} is a folder; salt-workstation removes only the files it wrote"
            )
        os.unlink(name, dir_fd=holder.fd)
        holder.fsync()
        return True
