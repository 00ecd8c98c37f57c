"""The fleet view from a real master: a report over 10 minions (converged, drifted, one that never
answers), the HTML page in headless Chromium, and live progress from install events."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from salt_workstation.report import render_table
from tests.integration.conftest import MASTER_WAKEUP, system_paths_under
from tests.support.catalog import build_depot
from tests.support.daemons import start_together, stop_together
from tests.support.depot import DepotServer
from tests.support.states import failed

CONVERGED = [f"ws-fleet-{n:02d}" for n in range(1, 6)]
DRIFTED = [f"ws-fleet-{n:02d}" for n in range(6, 10)]
SILENT = "ws-fleet-10"


@pytest.fixture(scope="module")
def fleet_depot(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-depot")
    catalog = build_depot(root)
    with DepotServer(root) as server:
        server.catalog = {"blender": catalog["blender"]}
        yield server


@pytest.fixture(scope="module")
def fleet_master(salt_factories, tmp_path_factory, fleet_depot):
    pillar_root = tmp_path_factory.mktemp("fleet-pillar")
    studio = tmp_path_factory.mktemp("fleet-studios")
    (pillar_root / "top.sls").write_text("base:\n  'ws-fleet-*':\n    - workstation\n")
    # Each minion works in its own folder: the pillar renderer fills in the minion id.
    minion_root = studio / "{{ grains.id }}"
    workstation = {
        "install_root": str(minion_root / "studio"),
        "lookup": system_paths_under(minion_root),
        "depot": fleet_depot.url,
        "catalog": fleet_depot.catalog,
        "productions": {"nightfall": {"apps": {"blender": "4.2.3"}}},
    }
    (pillar_root / "workstation.sls").write_text(yaml.safe_dump({"workstation": workstation}))
    overrides = {
        "fileserver_backend": ["roots", "workstation"],
        "pillar_roots": {"base": [str(pillar_root)]},
        "file_roots": {"base": [str(tmp_path_factory.mktemp("fleet-roots"))]},
        "open_mode": True,
        **MASTER_WAKEUP,
    }
    factory = salt_factories.salt_master_daemon("fleet-master", overrides=overrides)
    with factory.started(start_timeout=120):
        factory.studio = studio
        yield factory


@pytest.fixture(scope="module")
def fleet(fleet_master):
    """Ten minions, started side by side; the last is stopped once the master knows it."""
    factories = [
        fleet_master.salt_minion_daemon(minion_id) for minion_id in CONVERGED + DRIFTED + [SILENT]
    ]
    start_together(factories, workers=4)
    cli = fleet_master.salt_cli(timeout=300)
    try:
        factories[-1].terminate()  # its key stays accepted: targeted, but it never answers
        applied = cli.run("state.apply", "workstation", minion_tgt=CONVERGED[0], _timeout=300)
        assert failed(applied.data) == {}
        for minion_id in CONVERGED[1:]:
            assert failed(cli.run("state.apply", "workstation", minion_tgt=minion_id).data) == {}
        yield factories
    finally:
        stop_together(factories)


def salt_run_as_typed(master, *args, timeout=300) -> str:
    """What an operator sees from `salt-run ARGS` with no --out (the factories' CLI adds --out=json)."""
    cmdline = [
        arg
        for arg in master.salt_run_cli().cmdline(*args)
        if not arg.startswith(("--out=", "--out-indent="))
    ]
    done = subprocess.run(cmdline, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_report_of_ten_minions_lists_drift_convergence_and_silence(fleet_master, fleet):
    started = time.monotonic()
    printed = salt_run_as_typed(
        fleet_master, "workstation.report", "ws-fleet-*", "format=json", "timeout=10"
    )
    seconds = time.monotonic() - started

    report = json.loads(printed)  # format=json prints JSON, with no --out=json needed
    assert report["expected"] == 10 and report["answered"] == 9, report["minions"]
    assert report["minions"][SILENT]["status"] == "no answer"
    assert report["silent"] == [SILENT] and report["converged"] == CONVERGED
    assert report["drifted"] == DRIFTED
    assert report["seconds"] >= 10 and report["timeout"] == 10  # the run includes the wait
    master_log = Path(fleet_master.config["log_file"]).read_text()
    assert "workstation_update_interval" not in master_log  # no start-up warning from our backend
    for minion in CONVERGED:
        assert report["minions"][minion]["drift"] == []
        assert report["minions"][minion]["productions"]["nightfall"]["blender"] == {
            "wanted": "4.2.3",
            "action": "keep",
            "installed": ["4.2.3"],
        }
    drift = report["minions"][DRIFTED[0]]["drift"]
    assert [item["id"] for item in drift] == [
        "workstation-app-blender-4.2.3",
        "workstation-launchers-nightfall-launchers-managed",
        "workstation-launchers-studio-launch-installed",
    ]
    assert report["minions"][DRIFTED[0]]["productions"]["nightfall"]["blender"] == {
        "wanted": "4.2.3",
        "action": "install",
        "installed": [],
    }
    print(
        f"\nfleet report of 10 minions in {report['seconds']} s, the silent one waited for; "
        f"{seconds:.1f} s wall for salt-run\n" + render_table(report)
    )


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="chromium is not installed (make installs it as root)"
)
def test_html_report_renders_in_a_real_browser_with_drift_marked(fleet_master, fleet, tmp_path):
    page = tmp_path / "fleet.html"  # as the docs say: format=html, no --out
    page.write_text(
        salt_run_as_typed(
            fleet_master, "workstation.report", "ws-fleet-*", "format=html", "timeout=10"
        )
    )
    assert page.read_text().startswith("<!DOCTYPE html>")

    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    summary = dom[dom.index('<p id="summary">') : dom.index("<table")]  # above every table
    assert "9 of 10 minions answered (ws-fleet-*): 5 converged, 4 drifted, 1 silent." in summary, (
        summary
    )
    assert '<table class="production" id="production-nightfall" data-production="nightfall">' in dom
    for minion in DRIFTED:
        assert f'<tr class="drift" data-minion="{minion}">' in dom
    for minion in CONVERGED:
        assert f'<tr class="ok" data-minion="{minion}">' in dom
    assert f'<tr class="missing" data-minion="{SILENT}"><td>{SILENT}</td><td>no answer</td>' in dom
    assert dom.count('<td class="drift">4.2.3 (install; installed: nothing)</td>') == len(DRIFTED)
    assert '<a href="#production-nightfall">nightfall</a>' in summary


def test_watch_with_nothing_installing_stops_after_idle_and_says_nothing_ran(fleet_master):
    run = fleet_master.salt_run_cli(timeout=120)
    started = time.monotonic()
    result = run.run("workstation.watch", "ws-nobody-*", "idle=2", "timeout=60")
    seconds = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.data == {
        "finished": True,
        "installs": {},
        "comment": "nothing ran: no install started on the targeted minions within 2 s",
    }
    assert seconds < 30, seconds  # idle, not the 60 s timeout


def test_watch_follows_install_progress_to_the_end_on_a_non_tty(fleet_master, fleet, fleet_depot):
    fleet_depot.throttle = 0.002  # slow enough that each download sends several events
    run = fleet_master.salt_run_cli(timeout=300)
    watch = subprocess.Popen(  # the runner as an operator starts it: before the apply, in a pipe
        [*run.cmdline("workstation.watch", "ws-fleet-0[67]", "idle=10", "start=60", "timeout=120")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(3)  # the runner is listening before the installs start
        cli = fleet_master.salt_cli(timeout=300)
        # One job for both: one after the other, a loaded machine can take longer than idle=3
        # between the first install's end and the second's start, and the watch rightly ends.
        applied = cli.run("state.apply", "workstation", minion_tgt="ws-fleet-0[67]").data
        assert sorted(applied) == DRIFTED[:2], applied
        for minion in DRIFTED[:2]:
            assert failed(applied[minion]) == {}
        output, _ = watch.communicate(timeout=120)
    finally:
        fleet_depot.throttle = 0
        watch.kill()

    lines = [line for line in output.splitlines() if line.startswith("ws-fleet-")]
    for minion in DRIFTED[:2]:
        mine = [line for line in lines if line.startswith(f"{minion} blender 4.2.3: ")]
        assert mine and mine[-1].startswith(f"{minion} blender 4.2.3: done"), output
        assert any(": download " in line for line in mine), lines
        assert len(mine) <= 2 * 60 + 3  # rate-limited: at most two a second
    assert watch.returncode == 0, output
    assert "2 installs in" in output and "2 done, 0 failed" in output
