"""50 real minions on one master: the fleet report's time until all have answered, a rollout over
all of them in growing waves, and the progress events of the concurrent installs in order per
minion. The figures go to the summary line of the run (see conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time

import psutil
import pytest
import salt.utils.event
import yaml

from salt_workstation.progress import TAG
from tests.scale.conftest import FIGURES, MINION_COUNT
from tests.support import archives
from tests.support.daemons import start_together, stop_together
from tests.support.depot import DepotServer
from tests.support.masterless import system_paths_under

MINIONS = [f"ws-scale-{n:02d}" for n in range(1, MINION_COUNT + 1)]
APP, VERSION = "scaleapp", "1.0"
SOURCE = f"{APP}/{APP}-{VERSION}.tar.gz"
ARCHIVE_MIB = 2
DOWNLOAD_BYTES_PER_S = 1 << 20  # each download takes about two seconds: several events each
# What keeps 50 minions cheap: no reverse DNS lookups for the fqdns grain.
MINION_OVERRIDES = {"enable_fqdns_grains": False}


@pytest.fixture(scope="module")
def scale_depot(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-depot")
    blob = random.Random(17).randbytes(ARCHIVE_MIB << 20)  # incompressible: the archive is 2 MiB
    archive = archives.write_tar(
        root / SOURCE,
        {
            "bin/scaleapp": (b"#!/bin/sh\necho scaleapp\n", 0o755),
            "lib/data.bin": (blob, 0o644),
        },
        top=f"{APP}-{VERSION}",
    )
    with DepotServer(root) as server:
        server.throttle_path(f"/{SOURCE}", DOWNLOAD_BYTES_PER_S)
        server.catalog = {
            APP: {
                "versions": {
                    VERSION: {
                        "source": SOURCE,
                        "hash": archives.sha256_of(archive),
                        "strip_components": 1,
                        "launchers": {APP: "bin/scaleapp"},
                    }
                }
            }
        }
        yield server


@pytest.fixture(scope="module")
def scale_master(salt_factories, tmp_path_factory, scale_depot):
    pillar_root = tmp_path_factory.mktemp("scale-pillar")
    studio = tmp_path_factory.mktemp("scale-studios")
    minion_root = studio / "{{ grains.id }}"
    (pillar_root / "top.sls").write_text("base:\n  'ws-scale-*':\n    - workstation\n")
    workstation = {
        "install_root": str(minion_root / "studio"),
        "lookup": system_paths_under(minion_root),
        "depot": scale_depot.url,
        "catalog": scale_depot.catalog,
        "productions": {"nightfall": {"apps": {APP: VERSION}}},
    }
    (pillar_root / "workstation.sls").write_text(yaml.safe_dump({"workstation": workstation}))
    overrides = {
        "fileserver_backend": ["roots", "workstation"],
        "pillar_roots": {"base": [str(pillar_root)]},
        "file_roots": {"base": [str(tmp_path_factory.mktemp("scale-roots"))]},
        "open_mode": True,
        "worker_threads": 4,
    }
    factory = salt_factories.salt_master_daemon("scale-master", overrides=overrides)
    with factory.started(start_timeout=120):
        factory.studio = studio
        yield factory


def _processes(factories):
    for factory in factories:
        with contextlib.suppress(psutil.Error):
            daemon = psutil.Process(factory.pid)
            yield daemon
            yield from daemon.children(recursive=True)


def _rss_mib(factories) -> float:
    """Resident memory of the minions' processes (each daemon and its children), MiB."""
    total = 0
    for process in _processes(factories):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


def cpu_s(factories) -> float:
    """CPU seconds the minions have used so far (their processes and the job processes they reaped):
    the cost on a dedicated machine, whatever else this one was doing."""
    total = 0.0
    for process in _processes(factories):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@pytest.fixture(scope="module")
def fifty(scale_master):
    factories = [
        scale_master.salt_minion_daemon(minion_id, overrides=MINION_OVERRIDES)
        for minion_id in MINIONS
    ]
    started = time.monotonic()
    try:
        start_together(factories, workers=10, start_timeout=600)
        FIGURES["start"] = (
            f"{MINION_COUNT} minions up in {time.monotonic() - started:.0f} s "
            f"({cpu_s(factories):.0f} CPU-s in the minions)"
        )
        FIGURES["memory"] = f"{_rss_mib(factories) / MINION_COUNT:.0f} MiB RSS per idle minion"
        yield factories
    finally:
        stopping = time.monotonic()
        stop_together(factories)
        FIGURES["stop"] = f"stopped in {time.monotonic() - stopping:.0f} s"


def test_report_of_fifty_minions_until_all_have_answered(scale_master, fifty):
    run = scale_master.salt_run_cli(timeout=600)

    started, cpu, master_cpu = time.monotonic(), cpu_s(fifty), cpu_s([scale_master])
    result = run.run("workstation.report", "ws-scale-*", "format=json", "timeout=300")
    wall, cpu = time.monotonic() - started, cpu_s(fifty) - cpu
    master_cpu = cpu_s([scale_master]) - master_cpu

    report = result.data
    assert report["expected"] == report["answered"] == MINION_COUNT, report
    assert report["drifted"] == MINIONS  # nothing installed yet: every minion would install
    for minion in MINIONS:
        assert report["minions"][minion]["productions"]["nightfall"][APP] == {
            "wanted": VERSION,
            "action": "install",
            "installed": [],
        }
    FIGURES["report"] = (
        f"workstation.report: all {MINION_COUNT} answered; the report took {report['seconds']} s "
        f"({wall:.1f} s wall for salt-run; CPU-s: {cpu:.0f} in the minions, {master_cpu:.0f} in the master)"
    )


class EventLog:
    """Every install progress event on the master's bus, in the order the master received them."""

    def __init__(self, master):
        self.events: list[dict] = []
        self._stop = threading.Event()
        self._bus = salt.utils.event.get_master_event(
            master.config, master.config["sock_dir"], listen=True
        )
        self._bus.subscribe(TAG)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self):
        while not self._stop.is_set():
            event = self._bus.get_event(wait=0.5, tag=TAG, full=True)
            if event:
                self.events.append(event["data"].get("data", event["data"]))

    def close(self, drain_s=3.0):
        time.sleep(drain_s)  # the last events of the last wave are on their way
        self._stop.set()
        self._thread.join(10)
        self._bus.destroy()


def test_rollout_over_fifty_minions_with_progress_events_in_order_per_minion(scale_master, fifty):
    events = EventLog(scale_master)
    try:
        started, cpu, master_cpu = time.monotonic(), cpu_s(fifty), cpu_s([scale_master])
        result = scale_master.salt_run_cli(timeout=900).run(
            "workstation.rollout", "ws-scale-*", "canary=10%", "growth=3", "format=json"
        )
        wall, cpu = time.monotonic() - started, cpu_s(fifty) - cpu
        master_cpu = cpu_s([scale_master]) - master_cpu
    finally:
        events.close()

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["halted"] is None, result.stdout[-3000:]
    assert summary["counts"] == {"converged": MINION_COUNT}
    assert [len(wave["minions"]) for wave in summary["waves"]] == [5, 15, 30]
    for minion in MINIONS:
        assert os.path.isdir(scale_master.studio / minion / "studio" / "apps" / APP / VERSION)

    per_minion: dict[str, list[dict]] = {}
    for data in events.events:
        assert (data["app"], data["version"]) == (APP, VERSION)
        per_minion.setdefault(data["minion"], []).append(data)
    assert sorted(per_minion) == MINIONS
    for minion, seen in per_minion.items():
        phases = [data["phase"] for data in seen]
        assert phases[-1] == "done" and phases.count("done") == 1, (minion, phases)
        assert set(phases[:-1]) == {"download"}, (minion, phases)
        # Download bytes never go backwards. ("done" carries the installed bytes, not the archive's.)
        downloaded = [data["bytes_done"] for data in seen[:-1]]
        assert downloaded == sorted(downloaded), (minion, downloaded)
        assert len(seen) >= 3, (minion, seen)  # a start, progress in between, the end
    waves = ", ".join(f"{len(w['minions'])} in {w['seconds']} s" for w in summary["waves"])
    FIGURES["rollout"] = (
        f"rollout of {MINION_COUNT} in waves {waves}; {wall:.1f} s wall; CPU-s: {cpu:.0f} in the "
        f"minions, {master_cpu:.0f} in the master; "
        f"{len(events.events)} progress events, in order for every minion"
    )
