"""What a folder holds, to prove that a run wrote and deleted nothing where it should not."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path, skip=None) -> dict:
    """{relative path: (mode, size, mtime_ns)} for everything under root, links not followed.

    skip: a path or a list of paths left out with all they hold (an install_root, a Salt cache).
    """
    skipped = {
        Path(path) for path in ([skip] if isinstance(skip, (str, os.PathLike)) else skip or ())
    }
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if Path(dirpath) / name not in skipped]
        for name in dirnames + [name for name in filenames if Path(dirpath) / name not in skipped]:
            full = Path(dirpath) / name
            info = full.lstat()
            result[str(full.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return result
