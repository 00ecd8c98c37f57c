"""The formula files this package ships: which they are, and their copy into Salt's file cache.

The fileserver backend serves them to a master's minions (`shipped`, `walk`).

A machine cloned from a sealed image has the extension, so the formula, installed, but an
empty Salt cache: the seal removed it. Through a master, Salt's file client downloads a
file it has not cached (its hash, then the file in chunks: three round trips to the master),
and checks one it has against the master's hash (one round trip), downloading it only when
they differ. `seed` puts the installed copy where the file client caches it, so the first
apply of a clone checks the formula, as every later apply does, instead of downloading it
(docs/baking.md). The master's files still win: a copy that differs from what the master
serves (another version, a studio's override in its file_roots) is downloaded over, and a
file Salt already cached is never touched.
"""

from __future__ import annotations

import os

from salt_workstation import FORMULA_ROOT, safefs

SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = (".py", ".pyc")


def shipped(rel: str) -> bool:
    """Whether `rel` (relative to FORMULA_ROOT) is a formula file, not Python the package carries."""
    parts = rel.split(os.sep)
    return not SKIPPED_DIRS.intersection(parts) and not rel.endswith(SKIPPED_SUFFIXES)


def walk():
    """(folder relative to FORMULA_ROOT, its formula files), folders and files sorted by name."""
    for dirpath, dirnames, filenames in os.walk(FORMULA_ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        rel_dir = os.path.relpath(dirpath, FORMULA_ROOT)
        yield rel_dir, [name for name in sorted(filenames) if shipped(name)]


def files() -> list[str]:
    """Every formula file the package ships, relative to FORMULA_ROOT."""
    return [
        os.path.normpath(os.path.join(rel_dir, name)) for rel_dir, names in walk() for name in names
    ]


def seed(cachedir: str, saltenv: str) -> list[str]:
    """Copy every formula file that Salt's file cache for `saltenv` (`<cachedir>/files/<saltenv>`,
    where the file client keeps what it fetched) lacks; returns the files copied, relative to it.

    Salt's own cache: folders 0700 and files 0600 (a state run's umask), no fsync (a copy lost
    to a crash is downloaded again). Never through a link planted in the cache."""
    copied = []
    with safefs.Dir.root(cachedir) as cache:
        for rel_dir, names in walk():
            folder = [] if rel_dir == "." else rel_dir.split(os.sep)
            with cache.descend("files", saltenv, *folder, create=True, mode=0o700) as target:
                for name in names:
                    if target.lstat(name) is not None:
                        continue
                    data = (FORMULA_ROOT / rel_dir / name).read_bytes()
                    target.write_file(name, data, 0o600, durable=False)
                    copied.append(os.path.normpath(os.path.join(rel_dir, name)))
    return copied
