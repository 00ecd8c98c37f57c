"""Parallel installs (issue #16): one apply installs its app versions at once, through Salt's
`parallel: True` on the install states, at most `install_workers` at a time (the engine's install
slots), with test=True exact and a converged apply that forks and fetches nothing."""

from __future__ import annotations

import pytest

from tests.faults.conftest import (
    Sandbox,
    assert_no_traceback,
    assert_verifies,
    install_id,
)

APPS = ("par-a", "par-b", "par-c")
VERSION = "1.0"
RATE = 1 << 20  # bytes per second per connection: each 2 MiB app takes about 2 s to download


def _span(state) -> tuple[float, float]:
    """(start, end) in seconds of the day, from a state's start_time and duration."""
    hours, minutes, seconds = state["start_time"].split(":")
    start = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return start, start + state["duration"] / 1000


@pytest.fixture(scope="module")
def parallel_story(tmp_path_factory, fault_depot, builds):
    box = Sandbox(tmp_path_factory.mktemp("parallel"), fault_depot, builds)
    story = {"box": box}
    try:
        catalog = {
            **box.good_catalog("1.0"),
            **{
                app: {"versions": {VERSION: box.entry(builds.sized(app, VERSION, 2), app)}}
                for app in APPS
            },
        }
        for app in APPS:
            box.depot.throttle_path(
                f"/{box.name}/{catalog[app]['versions'][VERSION]['source']}", RATE
            )
        apps = {"good": "1.0", **{app: VERSION for app in APPS}}
        box.write_pillar(box.pillar(catalog, {"show": {"apps": apps}}, install_workers=2))
        asked = box.depot.requests
        story["dry"] = box.apply("test=True")
        story["dry_requests"] = box.depot.requests - asked
        box.depot.reset_peak()
        story["run"] = box.apply(timeout=60)
        story["peak"] = box.depot.peak
        asked = box.depot.requests
        story["again"] = box.apply()
        story["again_requests"] = box.depot.requests - asked
        story["rendered"] = box.call("state.show_sls", "workstation.apps")
        yield story
    finally:
        box.depot.clear()
        box.teardown()


def test_the_installs_run_at_once_bounded_by_install_workers(parallel_story):
    run = parallel_story["run"]
    assert_no_traceback(run)
    assert run.not_true() == {}
    assert parallel_story["peak"] == 2  # four installs, two slots: never three downloads at once
    spans = sorted(_span(run.ids[install_id(app, VERSION)]) for app in APPS)
    first, second = spans[0], spans[1]
    assert second[0] < first[1] - 1, f"the installs did not overlap: {spans}"
    assert_verifies(parallel_story["box"], ("good", "1.0"), *((app, VERSION) for app in APPS))


def test_test_mode_predicts_exactly_what_the_parallel_apply_changes(parallel_story):
    dry, run = parallel_story["dry"], parallel_story["run"]
    assert parallel_story["dry_requests"] == 0
    for app in ("good", *APPS):
        key = install_id(app, VERSION)
        assert dry.ids[key]["result"] is None
        assert dry.ids[key]["changes"] == run.ids[key]["changes"], key


def test_a_converged_apply_runs_nothing_in_parallel_and_fetches_nothing(parallel_story):
    again = parallel_story["again"]
    assert again.not_true() == {} and again.changed() == {}
    assert parallel_story["again_requests"] == 0
    assert '"parallel"' not in parallel_story["rendered"].stdout
