"""The fleet view from a real master: a report over 10 minions (converged, drifted, one that never
answers), the HTML page in headless Chromium, and live progress from install events."""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from salt_workstation.report import render_table
from tests.integration.conftest import system_paths_under
from tests.support.catalog import build_depot
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
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda factory: factory.start(start_timeout=180), factories))
    cli = fleet_master.salt_cli(timeout=300)
    try:
        factories[-1].terminate()  # its key stays accepted: targeted, but it never answers
        applied = cli.run("state.apply", "workstation", minion_tgt=CONVERGED[0], _timeout=300)
        assert failed(applied.data) == {}
        for minion_id in CONVERGED[1:]:
            assert failed(cli.run("state.apply", "workstation", minion_tgt=minion_id).data) == {}
        yield factories
    finally:
        for factory in factories:
            factory.terminate()


def test_report_of_ten_minions_lists_drift_convergence_and_silence(fleet_master, fleet):
    run = fleet_master.salt_run_cli(timeout=300)

    started = time.monotonic()
    result = run.run("workstation.report", "ws-fleet-*", "format=json", "timeout=10")
    seconds = time.monotonic() - started

    report = result.data
    assert report["expected"] == 10 and report["answered"] == 9
    assert report["minions"][SILENT]["status"] == "no answer"
    assert report["drifted"] == DRIFTED
    for minion in CONVERGED:
        assert report["minions"][minion]["drift"] == []
        assert report["minions"][minion]["productions"]["nightfall"]["blender"] == {
            "wanted": "4.2.3",
            "action": "keep",
        }
    drift = report["minions"][DRIFTED[0]]["drift"]
    assert [item["id"] for item in drift] == [
        "workstation-app-blender-4.2.3",
        "workstation-launchers-nightfall-launchers-managed",
        "workstation-launchers-studio-launch-installed",
    ]
    assert (
        report["minions"][DRIFTED[0]]["productions"]["nightfall"]["blender"]["action"] == "install"
    )
    print(
        f"\nfleet report of 10 minions: the 9 answering in {report['answers_seconds']} s, "
        f"the silent one given up after {report['seconds']} s; {seconds:.1f} s wall for salt-run\n"
        + render_table(report)
    )


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="chromium is not installed (make installs it as root)"
)
def test_html_report_renders_in_a_real_browser_with_drift_marked(fleet_master, fleet, tmp_path):
    run = fleet_master.salt_run_cli(timeout=300)
    page = tmp_path / "fleet.html"
    page.write_text(run.run("workstation.report", "ws-fleet-*", "format=html", "timeout=5").stdout)

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

    assert '<table class="production" data-production="nightfall">' in dom
    for minion in DRIFTED:
        assert f'<tr class="drift" data-minion="{minion}">' in dom
    for minion in CONVERGED:
        assert f'<tr class="ok" data-minion="{minion}">' in dom
    assert f'<tr class="missing" data-minion="{SILENT}"><td>{SILENT}</td><td>no answer</td>' in dom
    assert dom.count('<td class="drift">4.2.3 (install)</td>') == len(DRIFTED)


def test_watch_follows_install_progress_to_the_end_on_a_non_tty(fleet_master, fleet, fleet_depot):
    fleet_depot.throttle = 0.002  # slow enough that each download sends several events
    run = fleet_master.salt_run_cli(timeout=300)
    watch = subprocess.Popen(  # the runner as an operator starts it: before the apply, in a pipe
        [*run.cmdline("workstation.watch", "ws-fleet-0[67]", "idle=3", "timeout=120")],
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
        assert mine[-1].startswith(f"{minion} blender 4.2.3: done"), lines
        assert any(": download " in line for line in mine), lines
        assert len(mine) <= 2 * 60 + 3  # rate-limited: at most two a second
    assert watch.returncode == 0, output
