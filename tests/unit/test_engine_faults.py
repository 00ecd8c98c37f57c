"""The engine under faults: disk full, planted symlinks, hostile names, deep trees, bombs, stalls,
orphaned installers. Each test names the failure it guards against (issue #11)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from salt_workstation import engine, pillar, safefs, unpack
from salt_workstation.depot import HashingReader
from salt_workstation.errors import (
    DepotError,
    DiskError,
    HashMismatch,
    LimitExceeded,
    UnsafeArchive,
    UnsafePath,
)
from tests.support import archives
from tests.unit.conftest import snapshot

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def leftovers(root: Path, app: str) -> list[str]:
    folder = root / "apps" / app
    return sorted(name for name in os.listdir(folder) if name.startswith((".staging-", ".trash-")))


def random_files(count: int, size: int) -> dict:
    """Incompressible files: the download is as large as what it unpacks to."""
    return {f"lib/part{index:03}.bin": (os.urandom(size), 0o644) for index in range(count)}


def compressible_files(count: int, size: int) -> dict:
    """Files that gzip shrinks about 100 times: the download fits where the unpacked files do not."""
    return {
        f"lib/part{index:03}.bin": (os.urandom(4096) * (size // 4096), 0o644)
        for index in range(count)
    }


# ---- 1. disk full never promotes a damaged version ------------------------------------------


@needs_root
def test_a_disk_full_spell_mid_unpack_fails_the_install_and_promotes_nothing(tmp_path, depot):
    """Before: libarchive's failed writes were only logged, and a version with zero-filled files
    was promoted and reported installed."""
    archive = depot.app_archive("blender", "4.2", extra_files=compressible_files(12, 1 << 20))
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    assert archive.stat().st_size < 1 << 20  # so the check before downloading lets it through
    with small_tmpfs(tmp_path / "small", "6m") as root:
        store = engine.AppStore(root)
        with pytest.raises(DiskError, match=r"disk full under .*small.*Nothing was installed"):
            store.install(spec)
        assert store.installed() == {}
        assert store.status(spec) == engine.ABSENT
        assert leftovers(root, "blender") == []


@needs_root
def test_a_version_that_cannot_fit_is_refused_before_downloading(tmp_path, depot):
    archive = depot.app_archive("blender", "4.2", extra_files=random_files(4, 1 << 20))
    raw = depot.entry(archive, size=64 << 20)
    spec = depot.spec("blender", "4.2", raw)
    with (
        small_tmpfs(tmp_path / "small", "8m") as root,
        pytest.raises(
            DiskError, match=r"disk full under .*: \d+ MiB more needed .*nothing was downloaded"
        ),
    ):
        engine.AppStore(root).install(spec)


# ---- 2/3. names and planted symlinks --------------------------------------------------------


@pytest.mark.parametrize("app", ["/abs", "../evil", "..", ".", "a/b"])
def test_an_app_name_that_is_not_one_component_is_refused_by_the_engine_too(
    store, depot, tmp_path, app
):
    """Before: an absolute app name in the catalog installed files outside install_root."""
    spec = pillar.VersionSpec(
        app=app, version="1.0", kind="archive", source="file:///nowhere", hash="sha256:" + "0" * 64
    )
    before = snapshot(tmp_path)
    with pytest.raises(UnsafePath):
        store.install(spec)
    assert snapshot(tmp_path) == before


def test_a_symlink_planted_at_the_app_folder_is_never_followed(store, depot, tmp_path):
    """Before: the lock and the staging folder were made in the link's target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("someone's files")
    (store.layout.apps).mkdir(parents=True)
    (store.layout.apps / "blender").symlink_to(outside)
    spec = depot.build("blender", "4.2")
    before = snapshot(outside)
    with pytest.raises(UnsafePath, match="is a symlink"):
        store.install(spec)
    assert snapshot(outside) == before
    assert store.status(spec) == engine.FOREIGN
    assert "is a symlink" in store.blocker("blender", "4.2")


def test_retention_never_deletes_through_a_planted_version_symlink(store, depot, tmp_path):
    """Before: retention deleted a version folder in the link's target."""
    current = depot.build("blender", "4.2")
    store.install(current)
    outside = tmp_path / "outside" / "4.1"
    outside.mkdir(parents=True)
    (outside / ".workstation-manifest.json").write_text('{"app": "blender"}')
    (store.layout.app_dir("blender") / "4.1").symlink_to(outside)
    before = snapshot(tmp_path / "outside")
    assert store.prune("blender", keep=["4.2"], retain=0) == []
    with pytest.raises(UnsafePath, match="symlink"):
        store.remove("blender", "4.1")
    assert snapshot(tmp_path / "outside") == before


def test_an_install_root_that_is_itself_a_symlink_works(tmp_path, depot):
    """Studios point /opt/studio at a bigger disk. Before, libarchive refused to write through it."""
    real = tmp_path / "big-disk" / "studio"
    real.mkdir(parents=True)
    (tmp_path / "studio").symlink_to(real)
    store = engine.AppStore(tmp_path / "studio")
    spec = depot.build("blender", "4.2")
    store.install(spec)
    assert store.status(spec) == engine.INSTALLED
    assert (real / "apps/blender/4.2/bin/blender").is_file()
    assert store.verify("blender", "4.2")["ok"] is True


# ---- 5. deep and long paths -----------------------------------------------------------------


def deep_member(depth: int, name_length: int = 1):
    parts = ["d" * name_length] * depth
    return archives._tarinfo("app/" + "/".join(parts) + "/leaf", 4), b"leaf"


def test_an_archive_deeper_than_the_limit_is_refused_cleanly(store, depot):
    info, data = deep_member(1000)
    archive = archives.write_tar(
        depot.root / "blender" / "deep.tar.gz",
        archives.app_files("blender", "4.2"),
        top="app",
        extra=[(info, data)],
    )
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    with pytest.raises(UnsafeArchive, match="folders deep"):
        store.install(spec)
    assert leftovers(store.layout.root, "blender") == []


@pytest.fixture
def removes_deep_trees(tmp_path):
    """Deep trees go through the iterative remover, also when a test fails: pytest's own clean-up
    of old temporary folders is a recursive rmtree, which a 1,000-level tree would break."""
    yield
    with safefs.Dir.root(tmp_path) as folder:
        for name in folder.listdir():
            folder.remove(name)


def test_a_deep_tree_planted_in_a_version_does_not_wedge_verify_or_removal(
    store, depot, removes_deep_trees
):
    """Before: verify, retention and every later install failed with RecursionError."""
    spec = depot.build("blender", "4.2")
    store.install(spec)
    with safefs.open_under(store.layout.root, "apps", "blender", "4.2") as folder:
        current = folder.descend()
        for _ in range(1100):
            following = current.mkdir("d")
            current.close()
            current = following
        current.close()
    report = store.verify("blender", "4.2", deep=True)
    assert report["ok"] is False and report["extra"][0] == "d" and len(report["extra"]) == 1100
    assert store.status(spec, deep=True) == engine.DAMAGED
    store.install(spec)  # a repair: reinstalls over it
    assert store.verify("blender", "4.2")["ok"] is True
    assert store.remove("blender", "4.2") is True


def test_paths_longer_than_path_max_install_verify_and_remove(store, depot):
    info, data = deep_member(30, 200)  # 30 x 201 bytes: well past PATH_MAX (4096)
    archive = archives.write_tar(
        depot.root / "blender" / "long.tar.gz",
        archives.app_files("blender", "4.2"),
        top="app",
        extra=[(info, data)],
    )
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    store.install(spec)
    assert store.verify("blender", "4.2", deep=True)["ok"] is True
    assert store.remove("blender", "4.2") is True
    assert store.installed() == {}


def test_symlink_chains_resolve_in_memory_at_any_length():
    records = [
        unpack.Record("a", "symlink", 0o777, target="."),
        unpack.Record("b", "symlink", 0o777, target="a/.."),
        unpack.Record("loop", "symlink", 0o777, target="loop"),
    ]
    assert unpack.resolve_inside(records, "a/a/a/x") == "x"
    assert unpack.resolve_inside(records, "b") is None
    assert unpack.resolve_inside(records, "loop") is None
    assert unpack.resolve_inside(records, "/".join(["d" * 200] * 40)) == "/".join(["d" * 200] * 40)


# ---- 8. compression bombs -------------------------------------------------------------------


def bomb(path: Path, unpacked: int) -> Path:
    """A tar.gz of one file of zeros, written in blocks: a few hundred KiB that inflate to `unpacked`."""
    return archives.write_bomb(path, unpacked, {}, name="app/bin/blender", mode=0o755)


@pytest.fixture(scope="module")
def gigabyte_bomb(tmp_path_factory) -> Path:
    return bomb(tmp_path_factory.mktemp("bomb") / "blender" / "bomb.tar.gz", 1 << 30)


@pytest.mark.parametrize(
    ("pinned", "error", "message"),
    [
        (True, LimitExceeded, "compression bomb"),
        (
            False,
            HashMismatch,
            "Nothing was installed",
        ),  # stopped early all the same; the hash names the cause
    ],
    ids=["right-hash", "wrong-hash"],
)
def test_a_compression_bomb_stops_early_with_or_without_its_hash(
    tmp_path, gigabyte_bomb, pinned, error, message
):
    """Before: 1 MB that inflates to 1 GiB installed when its hash was pinned, and with a wrong
    hash wrote the whole GiB to staging before it was refused."""
    raw = {
        "source": gigabyte_bomb.name,
        "hash": archives.sha256_of(gigabyte_bomb) if pinned else "sha256:" + "0" * 64,
        "strip_components": 1,
    }
    spec = pillar.resolve_spec("blender", "4.2", raw, str(gigabyte_bomb.parent))
    store = engine.AppStore(
        tmp_path / "studio", engine.Limits(max_expansion=200, max_unpacked_bytes=1 << 40)
    )
    started = time.monotonic()
    with pytest.raises(error, match=message):
        store.install(spec)
    assert time.monotonic() - started < 5  # it stopped well before writing the GiB
    assert leftovers(store.layout.root, "blender") == []


def test_a_declared_size_bounds_the_unpacked_bytes(store, depot):
    archive = depot.app_archive("blender", "4.2")
    spec = depot.spec("blender", "4.2", depot.entry(archive, size=100))
    with pytest.raises(LimitExceeded, match="more than its catalog size of 100 bytes"):
        store.install(spec)


# ---- 6. a depot that stalls, or never finishes ------------------------------------------------


@contextlib.contextmanager
def stalling_depot(payload: bytes, send: int):
    """An HTTP server on loopback that announces `payload`, sends `send` bytes of it, then goes quiet."""
    server = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload[:send]
            )
            release.wait(30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/app.tar.gz"
    finally:
        release.set()
        server.close()


def test_a_stalled_depot_fails_within_the_idle_timeout_with_how_far_it_got(tmp_path, depot):
    """Before: a traceback in the state comment, after about 30 s."""
    archive = depot.app_archive("blender", "4.2", extra_files=random_files(3, 1 << 20))
    payload = archive.read_bytes()
    with stalling_depot(payload, len(payload) // 2) as url:
        spec = pillar.resolve_spec(
            "blender", "4.2", depot.entry(archive, source=url), str(depot.root)
        )
        store = engine.AppStore(tmp_path / "studio", engine.Limits(depot_idle_timeout=1))
        started = time.monotonic()
        with pytest.raises(
            DepotError, match=r"the depot stopped sending .* after 1 MiB of 3 MiB for 1 s"
        ):
            store.install(spec)
        assert time.monotonic() - started < 5
    assert leftovers(store.layout.root, "blender") == []


def test_the_download_deadline_bounds_a_slow_depot():
    class Slow(io.RawIOBase):
        def readinto(self, buffer):
            time.sleep(0.05)
            buffer[:1] = b"x"
            return 1

    reader = HashingReader(Slow(), "sha256", total=10**6, deadline=0.2, shown="slow.tar.gz")
    with pytest.raises(LimitExceeded, match=r"did not finish within 0.2 s .*depot_deadline"):
        reader.drain()


# ---- 7. installers die with the process that started them ---------------------------------


def test_an_installer_and_its_children_die_when_salt_is_killed(tmp_path):
    """Before: a vendor installer kept running after salt-call was killed, and wrote into the next
    install's log."""
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "install.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, subprocess, sys, time\n"
                f"subprocess.Popen([sys.executable, {engine._REAPER!r}, str(os.getpid()), '--', {str(script)!r}],"
                " start_new_session=True)\n"
                "time.sleep(300)\n"
            ),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the installer never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(child):
            assert time.monotonic() < deadline, (
                "the installer's child outlived the process that started it"
            )
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(parent.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False
