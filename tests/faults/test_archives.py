"""Archives shaped to hurt: a thousand folders deep, paths past PATH_MAX, a compression bomb;
and a thousand-deep tree planted in an installed version."""

from __future__ import annotations

import os
import threading

import pytest

from tests.faults.conftest import (
    MIB,
    assert_contained,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_recovers,
    assert_verifies,
    baseline,
    converge,
    install_id,
    launcher_files,
    with_fault_production,
)

DEPTH = 1000


def test_a_thousand_folders_deep_archive_is_refused_and_another_version_still_installs(
    sandbox, builds, timings
):
    app = "deep"
    sandbox.scrub.append(sandbox.app_dir(app))
    catalog = {
        app: {
            "versions": {
                "1.0": sandbox.entry(builds.deep(app, "1.0", DEPTH), app),
                "2.0": sandbox.entry(builds.good(app, "2.0"), app),
            }
        }
    }
    pillar = baseline(sandbox, catalog)
    productions = {
        **pillar["productions"],
        "fault": {"apps": {app: "1.0"}},
        "fault-2": {"apps": {app: "2.0"}},
    }
    sandbox.write_pillar({**pillar, "productions": productions})
    before = sandbox.snapshot()

    run = sandbox.apply()

    timings.record("deep archive", run, install_id(app, "1.0"))
    assert_not_installed(run, app, "1.0", "folders deep")
    assert run.ids[install_id(app, "2.0")]["result"] is True, (
        "another version of the app was wedged"
    )
    assert_contained(run, app)
    assert not (sandbox.app_dir(app) / "1.0").exists()
    assert_in_place(before, sandbox.snapshot(), launcher_files("fault-2", app))
    assert_verifies(sandbox, ("good", "1.0"), (app, "2.0"))

    productions.pop("fault")
    sandbox.write_pillar({**pillar, "productions": productions})
    converge(sandbox)
    assert sandbox.leftovers(app) == []


def plant_deep_tree(folder, depth: int) -> None:
    """os.mkdir `depth` folders deep under folder, one level at a time (no path ever grows long)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def test_a_deep_tree_planted_in_a_version_is_reported_extra_and_the_version_can_still_be_removed(
    sandbox, builds
):
    catalog = sandbox.good_catalog("1.0", "2.0")
    pillar = baseline(sandbox, catalog)
    version_dir = sandbox.app_dir("good") / "1.0"
    sandbox.scrub.append(version_dir)
    plant_deep_tree(version_dir, DEPTH)

    report = sandbox.verify("good", "1.0")

    assert report.get("ok") is False and "error" not in report, report.get("error")
    assert "d" in report["extra"] and "/".join(["d"] * DEPTH) in report["extra"]

    sandbox.write_pillar(
        {**pillar, "retain": 0, "productions": {"show": {"apps": {"good": "2.0"}}}}
    )
    before = sandbox.snapshot()
    run = sandbox.apply()
    assert_no_traceback(run)
    assert run.not_true() == {}
    assert run.ids["workstation-app-good-retention"]["changes"] == {"removed": ["1.0"]}
    assert not version_dir.exists()
    assert_in_place(before, sandbox.snapshot(), launcher_files("show", "good"))
    assert_recovers(sandbox, ("good", "2.0"))


def test_paths_longer_than_path_max_install_verify_and_remove_or_fail_cleanly(
    sandbox, builds, timings
):
    app = "long"
    sandbox.scrub.append(sandbox.app_dir(app))
    catalog = {app: {"versions": {"1.0": sandbox.entry(builds.long_paths(app, "1.0"), app)}}}
    pillar = baseline(sandbox, catalog)
    with_fault_production(sandbox, pillar, {app: "1.0"})
    before = sandbox.snapshot()

    run = sandbox.apply()

    timings.record("paths past PATH_MAX", run, install_id(app, "1.0"))
    assert_no_traceback(run)
    installed = run.ids[install_id(app, "1.0")]["result"] is True
    if installed:
        assert_verifies(sandbox, (app, "1.0"))
    else:
        assert_not_installed(run, app, "1.0")
        assert_contained(run, app)
    assert_in_place(
        before, sandbox.snapshot(), launcher_files("fault", app) if installed else set()
    )
    assert_verifies(sandbox, ("good", "1.0"))

    sandbox.write_pillar({**pillar, "retain": 0})  # production `fault` goes, and with it `long`
    converge(sandbox)
    assert not (sandbox.app_dir(app) / "1.0").exists(), (
        "the version with long paths was not removed"
    )
    assert sandbox.leftovers(app) == []


class PeakUsage:
    """The most bytes install_root's filesystem held while an apply ran (sampled every 10 ms)."""

    def __init__(self, box):
        self.box, self.peak, self._stop = box, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.box.used_bytes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("right_hash", [True, False], ids=["right-hash", "wrong-hash"])
def test_a_compression_bomb_is_refused_before_it_fills_the_disk(
    sandbox, builds, timings, right_hash
):
    app = "bomb"
    sandbox.mount_tmpfs(400)
    archive = builds.bomb(app, "1.0")  # about 1 MiB that inflates to 1 GiB of zeros
    entry = sandbox.entry(archive, app)
    if not right_hash:
        entry["hash"] = "sha256:" + "0" * 64
    pillar = baseline(sandbox, {app: {"versions": {"1.0": entry}}})
    with_fault_production(sandbox, pillar, {app: "1.0"})
    before, used_before = sandbox.snapshot(), sandbox.used_bytes()

    with PeakUsage(sandbox) as usage:
        run = sandbox.apply()

    written = usage.peak - used_before
    timings.record(
        f"compression bomb, {'right' if right_hash else 'wrong'} hash", run, install_id(app, "1.0")
    )
    print(f"staging peaked at {written / MIB:.0f} MiB")
    if right_hash:
        comment = assert_not_installed(run, app, "1.0")
        assert "compression bomb" in comment or "expands" in comment, comment
    else:
        assert written < 300 * MIB, f"{written / MIB:.0f} MiB were written before the refusal"
        assert_not_installed(run, app, "1.0")
    assert_contained(run, app)
    assert_in_place(before, sandbox.snapshot())
    assert not (sandbox.app_dir(app) / "1.0").exists()
    assert_verifies(sandbox, ("good", "1.0"))

    sandbox.write_pillar(pillar)
    converge(sandbox)
    assert sandbox.leftovers(app) == []
