"""Deterministic DCC-shaped tar.gz archives for the benchmarks.

An archive looks like a vendor DCC tarball: one top folder ``{app}-{version}/``,
a nested tree (bin, lib, python site-packages, plugins, resources ...), a few
large shared libraries and textures, a couple of thousand medium files and many
small scripts, headers and icons, plus a few relative ``.so`` symlinks.
Content is a mix of text (~0.3 gzip ratio), binary-like (~0.4) and random
(incompressible) bytes, tuned so the whole archive compresses like a real DCC
(about 169 MB for 395 MiB unpacked).

Everything comes from one seeded ``random.Random``, fixed mtimes/owners and a
gzip header with mtime 0, so the same parameters give the same bytes. Archives
are cached by name under the work folder with a small JSON sidecar (sha256,
sizes, file count).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import time
from pathlib import Path

GENERATOR_VERSION = 4
MTIME = 1_735_689_600  # 2025-01-01
POOL_BYTES = 16 << 20

# (extension, content kind, weight) per size class.
_KINDS = {
    "large": [(".so", "binary", 0.55), (".exr", "random", 0.10), (".pak", "text", 0.35)],
    "medium": [
        (".so", "binary", 0.35),
        (".py", "text", 0.25),
        (".h", "text", 0.30),
        (".png", "random", 0.10),
    ],
    "small": [
        (".py", "text", 0.40),
        (".h", "text", 0.20),
        (".json", "text", 0.17),
        (".pyc", "binary", 0.15),
        (".png", "random", 0.08),
    ],
}
# Share of the content bytes and of the file count per size class.
_CLASS_BYTES = {"large": 0.45, "medium": 0.40, "small": 0.15}
_CLASS_FILES = {"large": 0.004, "medium": 0.12}

_TOP_DIRS = [
    "bin",
    "lib",
    "lib/plugins",
    "python/lib/python3.11/site-packages",
    "houdini/otls",
    "houdini/scripts",
    "toolkit/include",
    "toolkit/samples",
    "resources/icons",
    "resources/fonts",
    "docs/html",
    "config",
]


def _zipf(rng, items, k, s):
    weights = [1.0 / (i + 1) ** s for i in range(len(items))]
    return rng.choices(items, weights=weights, k=k)


class _Pools:
    """Large byte pools that files slice from at random offsets (gzip's window is 32 KiB, so
    slices of one pool compress like the pool itself, never like a repeat)."""

    def __init__(self, rng: random.Random):
        vocab = [
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12)))
            for _ in range(2000)
        ]
        separators = [" ", " ", " ", "(", ")", ", ", ".", "\n", "\n    ", " = ", ": "]
        text = bytearray()
        while len(text) < POOL_BYTES:
            words = _zipf(rng, vocab, 200_000, 1.1)
            seps = rng.choices(separators, k=len(words))
            text += "".join(w + s for w, s in zip(words, seps, strict=False)).encode()
        self.text = bytes(text[:POOL_BYTES])
        tokens = [rng.randbytes(rng.randint(2, 10)) for _ in range(3000)]
        binary = bytearray()
        while len(binary) < POOL_BYTES:
            binary += b"".join(_zipf(rng, tokens, 300_000, 1.1))
        self.binary = bytes(binary[:POOL_BYTES])

    def content(self, rng: random.Random, kind: str, size: int) -> bytes:
        if kind == "random":
            return rng.randbytes(size)
        pool = self.text if kind == "text" else self.binary
        parts, left = [], size
        while left:
            take = min(left, rng.randint(256 << 10, 4 << 20))
            start = rng.randrange(0, len(pool) - take + 1)
            parts.append(pool[start : start + take])
            left -= take
        return b"".join(parts)


def _sizes(rng: random.Random, count: int, budget: int) -> list[int]:
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(count)]
    total = sum(weights)
    sizes = [int(budget * w / total) for w in weights]
    sizes[0] += budget - sum(sizes)
    return sizes


def _tree(rng: random.Random, dirs: int) -> list[str]:
    tree = list(_TOP_DIRS)
    while len(tree) < dirs:
        parent = rng.choice(tree)
        if parent.count("/") >= 7:
            continue
        tree.append(
            f"{parent}/{rng.choice(['core', 'ui', 'nodes', 'sim', 'io', 'render', 'utils', 'geo'])}"
            f"{rng.randint(0, 999):03d}"
        )
    return tree


def plan_files(seed: int, size_bytes: int, files: int, launcher: str):
    """[(relative path, kind, size, mode)] for one archive, before any content is made."""
    rng = random.Random(seed)
    n_large = max(1, round(files * _CLASS_FILES["large"]))
    n_medium = max(1, round(files * _CLASS_FILES["medium"]))
    n_small = max(1, files - n_large - n_medium - 1)
    tree = _tree(rng, max(len(_TOP_DIRS), files // 12))
    planned = [(f"bin/{launcher}", "launcher", 0, 0o755)]
    used = {planned[0][0]}
    for klass, count in (("large", n_large), ("medium", n_medium), ("small", n_small)):
        kinds = _KINDS[klass]
        for size in _sizes(rng, count, int(size_bytes * _CLASS_BYTES[klass])):
            ext, kind, _ = rng.choices(kinds, weights=[w for *_, w in kinds], k=1)[0]
            folder = "bin" if klass == "small" and rng.random() < 0.01 else rng.choice(tree)
            name = f"{folder}/{rng.choice(['lib', 'hou', 'op', 'sop', 'vex', 'usd', 'gl'])}{len(planned):05d}{ext}"
            if name in used:
                continue
            used.add(name)
            mode = 0o755 if folder == "bin" else 0o644
            planned.append((name, kind, size, mode))
    return planned, tree


def _info(name: str, kind=tarfile.REGTYPE, size=0, mode=0o644, linkname="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size, mode, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
    return info


def build(
    path: Path, *, app: str, version: str, size_mib: float, files: int, seed: int, launcher: str
) -> dict:
    """Write the archive at path (if its sidecar says it is not there yet) and return the sidecar."""
    sidecar = path.with_suffix(".json")
    params = {
        "app": app,
        "version": version,
        "size_mib": size_mib,
        "files": files,
        "seed": seed,
        "launcher": launcher,
        "generator": GENERATOR_VERSION,
    }
    if path.exists() and sidecar.exists():
        meta = json.loads(sidecar.read_text())
        if meta.get("params") == params:
            return meta
    started = time.monotonic()
    planned, tree = plan_files(seed, int(size_mib * (1 << 20)), files, launcher)
    rng = random.Random(seed * 7919 + 1)
    pools = _Pools(random.Random(seed * 104729 + 2))
    top = f"{app}-{version}"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    digest = hashlib.sha256()
    unpacked = members = symlinks = 0

    class _Hashing(io.RawIOBase):
        def __init__(self, raw):
            self.raw = raw

        def writable(self):
            return True

        def write(self, data):
            digest.update(data)
            return self.raw.write(data)

    with (
        open(temporary, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", compresslevel=6, fileobj=_Hashing(raw), mtime=0
        ) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        dirs = {top}
        for folder in sorted(tree):
            parts = folder.split("/")
            for depth in range(1, len(parts) + 1):
                dirs.add(f"{top}/{'/'.join(parts[:depth])}")
        for folder in sorted(dirs):
            tar.addfile(_info(folder, tarfile.DIRTYPE, mode=0o755))
            members += 1
        for name, kind, size, mode in planned:
            if kind == "launcher":
                data = f'#!/bin/sh\necho "{app} {version} $*"\n'.encode()
            else:
                data = pools.content(rng, kind, size)
            tar.addfile(_info(f"{top}/{name}", size=len(data), mode=mode), io.BytesIO(data))
            unpacked += len(data)
            members += 1
            if name.endswith(".so") and rng.random() < 0.08:
                link = name.rsplit("/", 1)[-1]
                tar.addfile(_info(f"{top}/{name}.1", tarfile.SYMTYPE, mode=0o777, linkname=link))
                members += 1
                symlinks += 1
    temporary.replace(path)
    meta = {
        "params": params,
        "file": path.name,
        "sha256": digest.hexdigest(),
        "compressed_bytes": path.stat().st_size,
        "unpacked_bytes": unpacked,
        "files": len(planned),
        "symlinks": symlinks,
        "dirs": len(dirs),
        "members": members,
        "top": top,
        "launcher": f"bin/{launcher}",
        "build_seconds": round(time.monotonic() - started, 1),
    }
    sidecar.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return meta
