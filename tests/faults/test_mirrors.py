"""Depot mirrors under faults (issue #16), in one masterless apply: the pillar's depot is a list
whose first mirror refuses connections; one app's own source list starts with a mirror that
stalls, another's with one that serves other bytes. The first two install from the next mirror,
with a note per skipped one; the lying one fails as a hash mismatch and is never retried."""

from __future__ import annotations

import pytest

from tests.faults.conftest import (
    Sandbox,
    assert_contained,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_recovers,
    baseline,
    install_id,
    with_fault_production,
)
from tests.support.depot import refusing_port

VERSION = "1.0"
IDLE_TIMEOUT = 2
APPS = ("mirror-refused", "mirror-stall", "mirror-lies")


@pytest.fixture(scope="module")
def mirror_faults(tmp_path_factory, fault_depot, builds, timings):
    box = Sandbox(tmp_path_factory.mktemp("mirror-faults"), fault_depot, builds)
    story = {"box": box}
    try:
        entries = {app: box.entry(builds.sized(app, VERSION, 2), app) for app in APPS}
        stall = box.publish(builds.sized("mirror-stall", VERSION, 2), "stalling-mirror.tar.gz")
        lies = box.publish(builds.sized("mirror-lies", VERSION, 2), "lying-mirror.tar.gz")
        pillar = baseline(box)
        with refusing_port() as port:
            story["down"] = down = f"http://127.0.0.1:{port}/dcc"
            catalog = {
                **pillar["catalog"],
                "mirror-refused": {"versions": {VERSION: entries["mirror-refused"]}},
                "mirror-stall": {
                    "versions": {
                        VERSION: {
                            **entries["mirror-stall"],
                            "source": [
                                f"{box.depot.url}{stall}",
                                entries["mirror-stall"]["source"],
                            ],
                        }
                    }
                },
                "mirror-lies": {
                    "versions": {
                        VERSION: {
                            **entries["mirror-lies"],
                            "source": [f"{box.depot.url}{lies}", entries["mirror-lies"]["source"]],
                        }
                    }
                },
            }
            with_fault_production(
                box,
                pillar,
                {app: VERSION for app in APPS},
                catalog=catalog,
                depot=[down, box.depot_url],
                limits={"depot_idle_timeout": IDLE_TIMEOUT},
            )
            box.depot.stall(stall, after=256 * 1024)
            box.depot.serve_instead(lies, builds.good("good", "1.0").read_bytes())
            story["before"] = box.snapshot()
            asked = box.depot.requests
            story["run"] = box.apply(timeout=60)
            story["requests"] = box.depot.requests - asked
        story["after"] = box.snapshot()
        for app in APPS:
            timings.record(f"mirror {app}", story["run"], install_id(app, VERSION))
        box.depot.clear()
        with_fault_production(box, pillar, {app: VERSION for app in APPS[:2]}, catalog=catalog)
        yield story
    finally:
        box.teardown()


def test_a_refusing_mirror_is_skipped_at_once_with_a_note(mirror_faults):
    run, down = mirror_faults["run"], mirror_faults["down"]
    state = run.ids[install_id("mirror-refused", VERSION)]
    assert state["result"] is True, state["comment"]
    assert f"depot mirror skipped: could not read {down}/" in state["comment"]
    assert state["duration"] / 1000 < 5


def test_a_stalling_mirror_is_left_after_the_idle_timeout_then_the_depot_list_is_tried(
    mirror_faults,
):
    run, down = mirror_faults["run"], mirror_faults["down"]
    state = run.ids[install_id("mirror-stall", VERSION)]
    assert state["result"] is True, state["comment"]
    notes = [line for line in state["comment"].splitlines() if line.startswith("- ")]
    assert len(notes) == 2, state["comment"]  # the stalling source, then the refusing depot
    assert "stalling-mirror.tar.gz" in notes[0] and "stopped sending" in notes[0]
    assert down in notes[1]
    assert IDLE_TIMEOUT <= state["duration"] / 1000 < IDLE_TIMEOUT + 5


def test_a_lying_mirror_fails_as_a_hash_mismatch_and_no_other_is_asked(mirror_faults):
    run, box = mirror_faults["run"], mirror_faults["box"]
    comment = assert_not_installed(run, "mirror-lies", VERSION, "lying-mirror.tar.gz")
    assert "Nothing was installed" in comment and "skipped" not in comment
    assert not (box.app_dir("mirror-lies") / VERSION).exists()
    # the stall's and the lie's mirrors, and the good depot once each for the two that install
    assert mirror_faults["requests"] == 4


def test_mirror_faults_touch_nothing_else_and_the_next_apply_converges(mirror_faults):
    box, run = mirror_faults["box"], mirror_faults["run"]
    assert_no_traceback(run)
    assert_contained(run, "mirror-lies")
    assert_in_place(mirror_faults["before"], mirror_faults["after"])
    assert_recovers(box, *((app, VERSION) for app in APPS[:2]))
