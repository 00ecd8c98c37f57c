"""Fixtures of the system tier: a cached Debian bookworm root, a real master, chrooted minions,
a loopback HTTP server with the depot and signed apt repositories.

Run only this tier:  .venv/bin/pytest tests/system   (or: pytest -m system)

The tier skips, with one line saying why, when it cannot run here: not root,
host tools missing, or (on a cold cache only) no debootstrap, no Python 3.11
host venv, or no reachable Debian mirror. Cache: WORKSTATION_SYSTEM_CACHE
(default ~/.cache/salt-workstation/system); WORKSTATION_SYSTEM_NO_OVERLAY=1 forces the
copy fallback; WORKSTATION_SYSTEM_MIRROR overrides the mirror read from the
host's apt sources.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import archives
from tests.support.depot import DepotServer
from tests.system import aptrepo
from tests.system.minion import ChrootMinion, PillarTree
from tests.system.rootfs import RootfsCache, Unavailable
from tests.system.sandbox import Sandbox, sweep_stale

HOST_TOOLS = {
    "chroot": "coreutils",
    "mount": "mount",
    "umount": "mount",
    "dpkg-deb": "dpkg",
    "gpg": "gpg",
    "gpgconf": "gpgconf",
    "gpg-agent": "gpg-agent",
}
BLENDER = ("blender", "4.2.3")

_TIMINGS: dict[str, float] = {}
_COUNTER = itertools.count(1)


def _in_tier(item) -> bool:
    return Path(str(item.fspath)).is_relative_to(Path(__file__).parent)


def pytest_itemcollected(item):
    if _in_tier(item):
        item.add_marker(pytest.mark.system)


@pytest.hookimpl(
    trylast=True
)  # after -m / -k deselection: no checks when no system test was selected
def pytest_collection_modifyitems(items):
    """One skip reason for the whole tier, decided once (pytest -rs prints it as one line)."""
    selected = [item for item in items if _in_tier(item)]
    if not selected:
        return
    _, reason = _precheck()
    if reason:
        for item in selected:
            item.add_marker(pytest.mark.skip(reason=f"system tier skipped: {reason}"))


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember a failed test body, so its teardown prints the minion's log."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


def pytest_terminal_summary(terminalreporter):
    if _TIMINGS:
        parts = [f"{name} {seconds:.1f} s" for name, seconds in _TIMINGS.items()]
        terminalreporter.write_line("system tier: " + ", ".join(parts))


def _record_slowest(what: str, seconds: float) -> None:
    key = f"slowest {what}"
    _TIMINGS[key] = max(_TIMINGS.get(key, 0.0), seconds)


def _why_not_here() -> str | None:
    if sys.platform != "linux":
        return "it needs Linux (chroot, overlayfs, debootstrap)"
    if os.geteuid() != 0:
        return "it needs root (chroot, mount, debootstrap); run it as root"
    missing = sorted(
        {package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None}
    )
    if missing:
        return f"host tools are missing: apt-get install -y {' '.join(missing)}"
    return None


_PRECHECK: dict = {}


def _precheck() -> tuple[RootfsCache | None, str | None]:
    """(the cache, None) when the tier can run here, else (None or the cache, the reason); decided once."""
    if "result" not in _PRECHECK:
        cache, reason = None, _why_not_here()
        if reason is None:
            try:
                cache = RootfsCache()
                reason = cache.why_not()
            except Unavailable as exc:
                reason = str(exc)
        _PRECHECK["result"] = (cache, reason)
    return _PRECHECK["result"]


@pytest.fixture(scope="session")
def rootfs_cache():
    """The cached root filesystem's layers, built on first use; skips the tier when it cannot run here."""
    cache, reason = _precheck()
    if reason:
        pytest.skip(f"system tier skipped: {reason}")
    sweep_stale(cache.runs)
    started = time.monotonic()
    cache.session_layers = cache.layers()
    _TIMINGS[
        "rootfs " + ("build (" + "+".join(cache.built) + ")" if cache.built else "cache warm")
    ] = time.monotonic() - started
    return cache


@dataclass
class StudioServer:
    url: str
    server: DepotServer
    blender: dict  # the catalog entry
    repos: aptrepo.StudioRepositories


@pytest.fixture(scope="session")
def studio_server(rootfs_cache, tmp_path_factory):
    """One loopback HTTP server: /depot (a blender tarball), /debian (signed), /debian-unsigned, /debian-other-key."""
    root = tmp_path_factory.mktemp("studio-http")
    app, version = BLENDER
    tarball = archives.write_tar(
        root / "depot" / app / f"{app}-{version}.tar.gz",
        archives.app_files(app, version),
        top=f"{app}-{version}",
    )
    blender = {
        "source": f"{app}/{tarball.name}",
        "hash": archives.sha256_of(tarball),
        "strip_components": 1,
        "launchers": {app: f"bin/{app}"},
    }
    gpg = aptrepo.Gpg()
    try:
        repos = aptrepo.build_repositories(root, tmp_path_factory.mktemp("debs"), gpg)
    finally:
        gpg.close()
    with DepotServer(root) as server:
        yield StudioServer(server.url, server, blender, repos)


@pytest.fixture(scope="session")
def pillar_tree(tmp_path_factory):
    return PillarTree(tmp_path_factory.mktemp("system-pillar"))


@pytest.fixture(scope="session")
def system_master(rootfs_cache, salt_factories, pillar_tree, tmp_path_factory):
    """A real salt-master on 127.0.0.1 serving the formula through the `workstation` fileserver backend."""
    started = time.monotonic()
    overrides = {
        "interface": "127.0.0.1",
        "fileserver_backend": ["roots", "workstation"],
        "file_roots": {"base": [str(tmp_path_factory.mktemp("system-file-roots"))]},
        "pillar_roots": {"base": [str(pillar_tree.dir)]},
        "auto_accept": True,
        "worker_threads": 3,
    }
    factory = salt_factories.salt_master_daemon("ws-system-master", overrides=overrides)
    with factory.started(start_timeout=120):
        _TIMINGS["master start"] = time.monotonic() - started
        yield factory


@pytest.fixture(scope="session")
def salt_cli(system_master):
    return system_master.salt_cli(timeout=600)


def workstation_pillar(
    server: StudioServer, tree: str = "good", key: str = "pinned", fingerprint: str = "pinned"
) -> dict:
    """The pillar of the issue: blender from the depot, two packages apps from the `studio` repository.

    tree: which served repository (good, unsigned, other_key); key / fingerprint: `pinned` (the
    key that signs the good tree) or `other` (a second key).
    """
    repos = server.repos
    keys = {
        "pinned": (repos.key, repos.fingerprint),
        "other": (repos.other_key, repos.other_fingerprint),
    }
    app, version = BLENDER
    return {
        "install_root": "/opt/studio",
        "phase": "bake",  # a root filesystem without a running systemd is an image being baked
        "depot": f"{server.url}/depot",
        "repositories": {
            "studio": {
                "url": f"{server.url}/{repos.trees[tree]}",
                "dist": aptrepo.SUITE,
                "components": [aptrepo.COMPONENT],
                "key": keys[key][0],
                "fingerprint": keys[fingerprint][1].lower(),  # the contract takes either case
            }
        },
        "catalog": {
            app: {"versions": {version: dict(server.blender)}},
            "gpu-driver-standin": {
                "versions": {
                    "1.0-1": {
                        "kind": "packages",
                        "packages": {"studio-gpu-driver-standin": "1.0-1"},
                        "services": ["studio-standin.service"],
                    }
                }
            },
            "nice-dcv": {
                "versions": {
                    "2024.0-1": {"kind": "packages", "packages": {"nice-dcv-server": "2024.0-1"}}
                }
            },
        },
        "productions": {
            "nightfall": {
                "apps": {app: version, "gpu-driver-standin": "1.0-1", "nice-dcv": "2024.0-1"}
            },
        },
    }


class Station:
    """One test's minion in its own fresh root, and state.apply through the master."""

    def __init__(self, minion: ChrootMinion, cli, pillar: dict):
        self.minion, self.cli, self.pillar = minion, cli, pillar

    def apply(self, *args, timeout: int = 600) -> dict:
        started = time.monotonic()
        ret = self.cli.run(
            "state.apply", "workstation", *args, minion_tgt=self.minion.id, _timeout=timeout
        )
        _record_slowest("state.apply", time.monotonic() - started)
        assert isinstance(ret.data, dict), (
            f"state.apply {' '.join(args)} returned no state data (exit {ret.returncode}):\n"
            f"{ret.stdout}\n{ret.stderr}\n{self.minion.log_tail()}"
        )
        return ret.data


@pytest.fixture
def station_factory(rootfs_cache, system_master, salt_cli, pillar_tree, studio_server, request):
    """start(pillar) -> Station: a fresh root (never the cache itself) with a minion of the master in it.

    Teardown stops the minion, kills whatever else runs in the root, unmounts
    /dev, /sys, /proc and the overlay (checked against /proc/mounts, lazily as
    a last resort) and deletes the root, whether the test passed, failed or was
    interrupted.
    """
    stations: list[Station] = []
    sandboxes: list[Sandbox] = []

    def start(pillar: dict) -> Station:
        started = time.monotonic()
        sandbox = Sandbox(rootfs_cache.session_layers, rootfs_cache.runs, rootfs_cache.overlay)
        sandboxes.append(sandbox)
        sandbox.open()
        minion_id = f"ws-system-{os.getpid()}-{next(_COUNTER)}"
        pillar_tree.set(minion_id, pillar)
        minion = ChrootMinion(sandbox, minion_id, system_master)
        station = Station(minion, salt_cli, pillar)
        stations.append(station)
        minion.start(salt_cli)
        _record_slowest("fresh root + minion up", time.monotonic() - started)
        return station

    try:
        yield start
    finally:
        started = time.monotonic()
        errors = []
        for station in stations:
            if request.node.stash.get(_CALL_FAILED, False):
                print(f"\n===== minion {station.minion.id} =====\n{station.minion.log_tail(120)}")
            try:
                station.minion.stop()
            except Exception as exc:
                errors.append(f"stopping {station.minion.id}: {exc}")
            pillar_tree.drop(station.minion.id)
        for sandbox in sandboxes:
            try:
                sandbox.close()
            except Exception as exc:
                errors.append(str(exc))
        _record_slowest("teardown", time.monotonic() - started)
        if errors:
            pytest.fail("system tier teardown: " + "; ".join(errors))
