"""A depot that misbehaves: each install fails cleanly, soon, and says why; the next apply installs.

All seven faults are made at once in one workstation (one app each, production `fault`
wants them all), so one apply surfaces them all and the tier stays fast; each fault
then has its own test of what its state said and how soon.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import (
    Sandbox,
    assert_contained,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_recovers,
    assert_verifies,
    baseline,
    install_id,
    with_fault_production,
)
from tests.support.depot import refusing_port

VERSION = "1.0"
IDLE_TIMEOUT, DEADLINE = 2, 3
LIMITS = {"depot_idle_timeout": IDLE_TIMEOUT, "depot_deadline": DEADLINE}
# fault: (what its comment must say, the longest its state may take to fail, in seconds)
FAULTS = {
    "truncate": ((), 10),
    "stall": (("stopped sending",), IDLE_TIMEOUT + 4),
    "throttle": (("did not finish within",), DEADLINE + 4),
    "changed-content": (("Nothing was installed",), 10),
    "404": ((), 10),
    "500": ((), 10),
    "refused": ((), 10),
}


def app_of(fault: str) -> str:
    return f"net-{fault}"


@pytest.fixture(scope="module")
def depot_faults(tmp_path_factory, fault_depot, builds, timings):
    """The whole story once: baseline, every fault in one apply, faults gone, the next applies."""
    box = Sandbox(tmp_path_factory.mktemp("depot-faults"), fault_depot, builds)
    story = {"box": box}
    try:
        entries = {
            app_of(fault): box.entry(builds.sized(app_of(fault), VERSION, 4), app_of(fault))
            for fault in FAULTS
        }
        pillar = baseline(
            box, {app: {"versions": {VERSION: entry}} for app, entry in entries.items()}
        )
        paths = {fault: f"/{box.name}/{entries[app_of(fault)]['source']}" for fault in FAULTS}
        with refusing_port() as port:
            refused = entries[app_of("refused")]
            catalog = {
                **pillar["catalog"],
                app_of("refused"): {
                    "versions": {
                        VERSION: {
                            **refused,
                            "source": f"http://127.0.0.1:{port}/{refused['source']}",
                        }
                    }
                },
            }
            with_fault_production(
                box,
                pillar,
                {app_of(fault): VERSION for fault in FAULTS},
                catalog=catalog,
                limits=LIMITS,
            )
            box.depot.truncate(paths["truncate"])
            box.depot.stall(paths["stall"], after=256 * 1024)
            box.depot.throttle_path(
                paths["throttle"], rate=256 * 1024
            )  # 4 MiB in 16 s: far past the deadline
            box.depot.serve_instead(
                paths["changed-content"], builds.good("good", "1.0").read_bytes()
            )
            box.depot.answer(paths["404"], 404)
            box.depot.answer(paths["500"], 500)
            story["before"] = box.snapshot()
            story["run"] = box.apply(timeout=sum(longest for _, longest in FAULTS.values()) + 30)
        story["after"] = box.snapshot()
        for fault in FAULTS:
            timings.record(f"depot {fault}", story["run"], install_id(app_of(fault), VERSION))
        box.depot.clear()
        with_fault_production(
            box, pillar, {app_of(fault): VERSION for fault in FAULTS}, limits=LIMITS
        )
        yield story
    finally:
        box.teardown()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_depot_fault_fails_its_install_cleanly_and_soon(depot_faults, fault):
    box, run = depot_faults["box"], depot_faults["run"]
    fragments, longest = FAULTS[fault]

    assert_not_installed(run, app_of(fault), VERSION, *fragments)
    seconds = run.ids[install_id(app_of(fault), VERSION)]["duration"] / 1000
    assert seconds <= longest, f"the fault took {seconds:.1f} s to surface"
    assert not (box.app_dir(app_of(fault)) / VERSION).exists()


def test_depot_faults_touch_nothing_else(depot_faults):
    box, run = depot_faults["box"], depot_faults["run"]

    assert_no_traceback(run)
    assert_contained(run, *(app_of(fault) for fault in FAULTS))
    assert_in_place(depot_faults["before"], depot_faults["after"])
    assert_verifies(box, ("good", "1.0"))


def test_once_the_depot_behaves_the_next_apply_installs_every_app(depot_faults):
    box = depot_faults["box"]

    assert_recovers(box, *((app_of(fault), VERSION) for fault in FAULTS))
