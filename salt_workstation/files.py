"""Writing a file the one safe way: a temporary beside it, mode and owner set before the
first byte, flushed, then one rename. A reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import secrets

from salt_workstation.errors import WorkstationError


def write_atomically(path: str, data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Replace `path` with `data`; its folders are created (0755) when missing. Never follows a link."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path) and not os.path.islink(path):
        raise WorkstationError(f"{path} is a folder; remove it so the file can be written")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            if uid is not None or gid is not None:
                os.fchown(descriptor, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(descriptor, mode)  # the umask may have taken bits off
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
