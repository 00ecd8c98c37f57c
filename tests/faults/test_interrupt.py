"""salt-call killed with SIGKILL mid-install, an installer that leaves a child behind, two applies at once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import (
    MIB,
    alive,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_recovers,
    assert_verifies,
    baseline,
    install_id,
    launcher_files,
    pids_in,
    running_in,
    with_fault_production,
)


def wait_for(condition, seconds: float, what: str, process=None):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        assert process is None or process.poll() is None, f"the apply ended before {what}"
        time.sleep(0.05)


def staging_appeared(box, app):
    app_dir = box.app_dir(app)
    return lambda: (
        app_dir.is_dir() and any(p.name.startswith(".staging-") for p in app_dir.iterdir())
    )


def kill_apply(process) -> None:
    """SIGKILL salt-call itself (a power cut, as far as the install can tell)."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_salt_call_killed_mid_install_leaves_no_version_and_the_next_apply_converges(
    sandbox, builds
):
    app, version = "slow", "1.0"
    archive = builds.sized(app, version, 4)
    entry = sandbox.entry(archive, app)
    pillar = baseline(sandbox, {app: {"versions": {version: entry}}})
    sandbox.depot.throttle_path(
        sandbox.publish(archive), rate=512 * 1024
    )  # 8 s: time to be killed in
    with_fault_production(sandbox, pillar, {app: version})
    before = sandbox.snapshot()

    apply = sandbox.start_apply()
    try:
        wait_for(staging_appeared(sandbox, app), 30, "a staging folder", apply)
    finally:
        kill_apply(apply)

    assert app not in sandbox.installed(), (
        "dcc.list_installed lists a version whose install was killed"
    )
    assert not (sandbox.app_dir(app) / version).exists(), "a half version became visible"
    assert_in_place(before, sandbox.snapshot())
    assert_verifies(sandbox, ("good", "1.0"))

    sandbox.depot.clear()
    assert_recovers(sandbox, (app, version))


def test_an_installer_killed_with_salt_call_leaves_no_process_behind(sandbox, builds):
    app, version = "vendor", "1.0"
    pid_file, hang = sandbox.probe / "installer.pids", sandbox.probe / "hang-once"
    sandbox.pid_files.append(pid_file)
    entry = sandbox.entry(
        builds.installer(app, version),
        app,
        kind="installer",
        installer={"command": ["./install.sh", "{dest}", str(pid_file), str(hang)], "timeout": 120},
    )
    pillar = baseline(sandbox, {app: {"versions": {version: entry}}})
    with_fault_production(sandbox, pillar, {app: version})
    hang.touch()
    before = sandbox.snapshot()

    apply = sandbox.start_apply()
    try:
        wait_for(pid_file.exists, 30, "the installer's child starting", apply)
    finally:
        kill_apply(apply)
    leaders = pids_in(pid_file)
    deadline = time.monotonic() + 5
    while running_in(leaders) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert [pid for pid in leaders if alive(pid)] == [] and running_in(leaders) == [], (
        "the installer (or the child it left) still runs 5 s after salt-call was killed"
    )
    assert app not in sandbox.installed()
    assert_in_place(before, sandbox.snapshot())
    assert_verifies(sandbox, ("good", "1.0"))

    assert_recovers(sandbox, (app, version))
    time.sleep(0.5)  # a child left behind writes every 0.1 s
    log = sandbox.install_root / "logs" / f"{app}-{version}-install.log"
    assert "left-behind child" not in log.read_text(errors="replace"), (
        "the old installer's child wrote the new log"
    )


@pytest.mark.parametrize("concurrent", [False, True], ids=["queued", "concurrent"])
def test_two_applies_at_once_each_end_cleanly_and_leave_a_converged_machine(
    sandbox, builds, concurrent
):
    app, version = "twin", "1.0"
    archive = builds.sized(app, version, 4)
    entry = sandbox.entry(archive, app)
    pillar = baseline(sandbox, {app: {"versions": {version: entry}}})
    sandbox.depot.throttle_path(sandbox.publish(archive), rate=2 * MIB)  # 2 s each: the two overlap
    with_fault_production(sandbox, pillar, {app: version})
    before = sandbox.snapshot()
    args = ("concurrent=True",) if concurrent else ()

    started = [sandbox.start_apply(*args) for _ in range(2)]
    runs = [sandbox.finish(process, timeout=60) for process in started]

    for run in runs:
        assert_no_traceback(run)
        if isinstance(run.data, list):  # Salt's own refusal: another state run holds the machine
            assert any("is running as PID" in line for line in run.data), run.data
            continue
        if run.ids[install_id(app, version)]["result"] is not True:
            assert_not_installed(run, app, version)
        others = {
            key: c
            for key, c in run.not_true().items()
            if not key.startswith((f"workstation-app-{app}-", "workstation-launchers-fault"))
        }
        assert others == {}
    assert_in_place(before, sandbox.snapshot(), launcher_files("fault", app))

    sandbox.depot.clear()
    assert_recovers(sandbox, ("good", "1.0"), (app, version))
