"""Version bumps reuse the disk (issue #16): a new version's files that equal an installed
version's (same path, size, mode and bytes) become hardlinks to them while the archive streams,
so nothing of them is written; the rest is written once. Removing either version never harms the
other, nothing writes through a shared inode, and deep verify still checks every file."""

from __future__ import annotations

import os

from salt_workstation import engine, plan
from tests.support import archives

KIB = 1024


def _io_written() -> int:
    """Bytes this process has handed to write() so far (the kernel's count, /proc/self/io wchar)."""
    with open("/proc/self/io") as stats:
        return next(int(line.split()[1]) for line in stats if line.startswith("wchar:"))


def _common(seed: int = 1, count: int = 24) -> dict:
    rng = __import__("random").Random(seed)
    return {f"lib/part{i:02}.bin": (rng.randbytes(128 * KIB), 0o644) for i in range(count)}


def _build(depot, version: str, files: dict, extra=()):
    files = {**archives.app_files("tool", "1"), **files}  # the launcher and friends stay the same
    path = depot.root / "tool" / f"tool-{version}.tar.gz"
    archives.write_tar(path, files, top=f"tool-{version}", extra=extra)
    return depot.spec("tool", version, depot.entry(path))


def _inode(store, version, rel):
    return os.stat(store.layout.version_dir("tool", version) / rel).st_ino


def test_a_bump_links_identical_files_and_writes_only_what_changed(store, depot):
    old_files = _common()
    big_old = os.urandom(3 << 20)
    old = _build(depot, "1.0", {**old_files, "lib/big.bin": (big_old, 0o644)})
    store.install(old)
    new_files = dict(old_files)
    new_files["lib/part00.bin"] = (b"x" * (128 * KIB), 0o644)  # same size, other bytes
    new_files["lib/part01.bin"] = (old_files["lib/part01.bin"][0], 0o755)  # same bytes, other mode
    new_files["lib/added.bin"] = (os.urandom(64 * KIB), 0o644)
    big_new = big_old[:-10] + b"0123456789"  # differs in its last block only
    new = _build(depot, "1.1", {**new_files, "lib/big.bin": (big_new, 0o644)})

    before = _io_written()
    manifest = store.install(new)
    written = _io_written() - before

    shared = manifest["shared"]
    unchanged = [f"lib/part{i:02}.bin" for i in range(2, 24)] + list(
        archives.app_files("tool", "1")
    )
    assert shared["with"] == ["1.0"]
    assert shared["files"] == len(unchanged)
    assert shared["bytes"] == sum(
        len(new_files.get(p, archives.app_files("tool", "1").get(p))[0]) for p in unchanged
    )
    for rel in unchanged:
        assert _inode(store, "1.0", rel) == _inode(store, "1.1", rel), rel
    for rel in ("lib/part00.bin", "lib/part01.bin", "lib/big.bin"):
        assert _inode(store, "1.0", rel) != _inode(store, "1.1", rel), rel
    dest, old_dest = (
        store.layout.version_dir("tool", "1.1"),
        store.layout.version_dir("tool", "1.0"),
    )
    assert (dest / "lib/big.bin").read_bytes() == big_new  # its equal prefix copied, then the rest
    assert (old_dest / "lib/big.bin").read_bytes() == big_old
    assert oct(os.stat(dest / "lib/part01.bin").st_mode & 0o777) == "0o755"
    assert oct(os.stat(old_dest / "lib/part01.bin").st_mode & 0o777) == "0o644"
    # Written once: the changed and new files, the manifests; never the 22 unchanged ones.
    changed = 128 * KIB + 128 * KIB + 64 * KIB + len(big_new)
    assert written < changed + 512 * KIB, f"{written} bytes written for {changed} changed"
    assert store.verify("tool", "1.1", deep=True)["ok"]
    assert store.verify("tool", "1.0", deep=True)["ok"]
    assert store.manifest("tool", "1.1")["shared"] == shared
    inventory = plan.inventory({}, store)["tool"]
    assert inventory["1.1"]["shared"] == shared
    assert inventory["1.0"]["shared"] == {"files": 0, "bytes": 0, "with": []}


def test_removing_either_version_leaves_the_other_whole(tmp_path, depot):
    files = _common()
    for removed, kept in (("1.0", "1.1"), ("1.1", "1.0")):
        store = engine.AppStore(tmp_path / f"studio-{removed}")
        store.install(_build(depot, "1.0", files))
        store.install(_build(depot, "1.1", {**files, "lib/new.bin": (b"new", 0o644)}))
        assert store.manifest("tool", "1.1")["shared"]["files"] > 20
        assert store.remove("tool", removed)
        report = store.verify("tool", kept, deep=True)
        assert report["ok"], report
        assert report["files"] == len(files) + 4 + (kept == "1.1")


def test_a_changed_installed_file_is_not_shared_and_the_new_one_is_right(store, depot):
    files = _common()
    store.install(_build(depot, "1.0", files))
    damaged = store.layout.version_dir("tool", "1.0") / "lib/part03.bin"
    damaged.write_bytes(
        b"d" * (128 * KIB)
    )  # same size and mode, other bytes: a bad disk, a hand edit
    manifest = store.install(_build(depot, "1.1", files))
    assert manifest["shared"]["files"] == len(files) + 4 - 1
    assert (store.layout.version_dir("tool", "1.1") / "lib/part03.bin").read_bytes() == files[
        "lib/part03.bin"
    ][0]
    assert store.verify("tool", "1.1", deep=True)["ok"]
    assert store.verify("tool", "1.0", deep=True)["changed"] == ["lib/part03.bin: content changed"]


def test_a_later_member_at_a_shared_path_replaces_the_link_never_writes_through_it(store, depot):
    files = _common(count=4)
    store.install(_build(depot, "1.0", files))
    again = archives._tarinfo("tool-1.1/lib/part02.bin", size=5, mode=0o644)
    store.install(_build(depot, "1.1", files, extra=[(again, b"later")]))
    assert (store.layout.version_dir("tool", "1.1") / "lib/part02.bin").read_bytes() == b"later"
    assert (store.layout.version_dir("tool", "1.0") / "lib/part02.bin").read_bytes() == files[
        "lib/part02.bin"
    ][0]
    assert store.verify("tool", "1.0", deep=True)["ok"]


def test_a_first_install_shares_nothing(store, depot):
    manifest = store.install(_build(depot, "1.0", _common(count=2)))
    assert manifest["shared"] == {"files": 0, "bytes": 0, "with": []}


def test_a_symlink_planted_in_the_installed_version_is_never_followed_to_share(
    store, depot, tmp_path
):
    files = _common(count=4)
    store.install(_build(depot, "1.0", files))
    lib = store.layout.version_dir("tool", "1.0") / "lib"
    outside = tmp_path / "outside-lib"
    lib.rename(outside)
    lib.symlink_to(outside)  # the same files, reachable only through the planted link
    manifest = store.install(_build(depot, "1.1", files))
    assert manifest["shared"]["files"] == 3  # bin/tool, scripts/startup.py, README: not below lib/
    for name in files:
        new = store.layout.version_dir("tool", "1.1") / name
        assert os.stat(new).st_ino != os.stat(outside / name.split("/", 1)[1]).st_ino
    assert store.verify("tool", "1.1", deep=True)["ok"]


def test_unshare_gives_a_linked_file_an_inode_of_its_own(tmp_path):
    """What runs before libarchive would write an archive hardlink's own data through its target
    (pax, cpio): the staged link to the installed file becomes a private copy first."""
    from salt_workstation import safefs

    installed, staging = tmp_path / "installed", tmp_path / "staging"
    installed.mkdir()
    staging.mkdir()
    (installed / "lib.so").write_bytes(b"library" * 1000)
    os.chmod(installed / "lib.so", 0o751)
    os.link(installed / "lib.so", staging / "lib.so")
    with safefs.Dir.root(staging) as folder:
        folder.unshare("lib.so")
    copy, original = os.stat(staging / "lib.so"), os.stat(installed / "lib.so")
    assert copy.st_ino != original.st_ino and original.st_nlink == 1
    assert oct(copy.st_mode & 0o777) == "0o751" and copy.st_mtime_ns == original.st_mtime_ns
    (staging / "lib.so").write_bytes(b"changed")  # a write through the staged name ...
    assert (installed / "lib.so").read_bytes() == b"library" * 1000  # ... stays there
    assert [name for name in os.listdir(staging) if name.endswith(".tmp")] == []
