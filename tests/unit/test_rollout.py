"""The rollout's core: wave sizing, the halting rules, and the summary in its three forms."""

from __future__ import annotations

import json

import pytest

from salt_workstation import rollout
from salt_workstation.errors import WorkstationError

MINIONS = [f"ws-{n:02d}" for n in range(1, 21)]


def state(id_, result=True, changes=None, comment="ok", run=0):
    return {
        f"mod_|-{id_}_|-{id_}_|-fun": {
            "__id__": id_,
            "__run_num__": run,
            "result": result,
            "changes": changes or {},
            "comment": comment,
            "name": id_,
        }
    }


CONVERGED = state("workstation-app-blender-4.2.3")
TO_INSTALL = state("workstation-app-blender-4.3.0", result=None, changes={"installed": "4.3.0"})
INSTALLED = state("workstation-app-blender-4.3.0", changes={"installed": "4.3.0"})
BROKEN = state(
    "workstation-app-blender-4.3.0",
    result=False,
    comment="blender 4.3.0: the archive's sha256 is 00ab..., the catalog says 9f3c...\nmore",
)


@pytest.mark.parametrize(
    ("canary", "growth", "max_wave", "sizes"),
    [
        (1, 2, None, [1, 2, 4, 8, 5]),
        ("10%", 2, None, [2, 4, 8, 6]),
        ("5%", 3, None, [1, 3, 9, 7]),
        (2, 2, 3, [2, 3, 3, 3, 3, 3, 3]),
        ("0", 2, None, [1, 2, 4, 8, 5]),  # a canary of none is still one minion
        (50, 2, None, [20]),
    ],
)
def test_waves_start_with_the_canary_and_grow(canary, growth, max_wave, sizes):
    planned = rollout.waves(list(reversed(MINIONS)), canary, growth, max_wave)
    assert [len(wave) for wave in planned] == sizes
    assert [m for wave in planned for m in wave] == MINIONS  # each once, in a stable order


@pytest.mark.parametrize("bad", ["ten", "-1", "120%", "1.5"])
def test_a_share_that_is_neither_count_nor_percentage_is_refused_by_name(bad):
    with pytest.raises(
        WorkstationError, match=r"canary=.* count of minions \(3\) nor a percentage"
    ):
        rollout.waves(MINIONS, bad)


def test_failures_name_state_ids_and_first_comment_line():
    assert rollout.failures(BROKEN) == [
        {
            "id": "workstation-app-blender-4.3.0",
            "comment": "blender 4.3.0: the archive's sha256 is 00ab..., the catalog says 9f3c...",
        }
    ]
    assert rollout.failures(INSTALLED) == []
    assert rollout.failures(["Rendering SLS 'base:workstation' failed"]) == [
        {"id": "state.apply", "comment": "Rendering SLS 'base:workstation' failed"}
    ]


def test_a_failed_canary_halts_and_leaves_every_later_wave_pending():
    planned = rollout.waves(MINIONS[:7], 1)
    record = rollout.Rollout("ws-*", {m: TO_INSTALL for m in MINIONS[:7]}, planned)

    assert record.record(1, {"ws-01": BROKEN}, 12.5) is False

    summary = record.summary()
    assert summary["halted"] == {
        "wave": 1,
        "reason": "1 of 1 minions failed in wave 1; max_failure=0 allows 0",
    }
    assert summary["counts"] == {"failed": 1, "pending": 6}
    assert [wave["status"] for wave in summary["waves"]] == ["halted", "pending", "pending"]
    assert summary["minions"]["ws-01"]["failed"][0]["id"] == "workstation-app-blender-4.3.0"


def test_failures_within_max_failure_go_on_and_a_silent_minion_counts_as_failed():
    planned = [MINIONS[:1], MINIONS[1:11]]
    record = rollout.Rollout("ws-*", {m: TO_INSTALL for m in MINIONS}, planned, max_failure="10%")
    assert record.record(1, {"ws-01": INSTALLED}, 1.0)
    second = {m: INSTALLED for m in MINIONS[1:10]}  # ws-11 never answers
    assert record.record(2, second, 1.0) is True
    assert record.minions["ws-11"]["failed"] == [
        {"id": "no answer", "comment": "the minion did not return within the timeout"}
    ]
    assert record.waves[1]["allowed_failures"] == 1

    record2 = rollout.Rollout("ws-*", {m: TO_INSTALL for m in MINIONS}, planned, max_failure="10%")
    returns = {m: INSTALLED for m in MINIONS[1:9]}
    assert record2.record(2, returns, 1.0) is False  # two of ten: more than 10 %
    assert "2 of 10 minions failed in wave 2" in record2.halted["reason"]


def test_a_minion_converged_before_that_fails_halts_whatever_max_failure_says():
    baseline = {"ws-01": CONVERGED, "ws-02": TO_INSTALL, "ws-03": TO_INSTALL}
    record = rollout.Rollout("ws-*", baseline, [["ws-01", "ws-02", "ws-03"]], max_failure="50%")
    returns = {"ws-01": BROKEN, "ws-02": INSTALLED, "ws-03": INSTALLED}
    assert record.record(1, returns, 1.0) is False
    assert record.halted["reason"] == "ws-01 converged before this rollout and failed after it"
    assert record.minions["ws-01"]["converged_before"] is True


def test_deferred_minions_are_neither_applied_nor_counted():
    record = rollout.Rollout(
        "ws-*", {"ws-01": TO_INSTALL, "ws-02": TO_INSTALL}, [["ws-01", "ws-02"]]
    )
    record.defer("ws-02", "an artist has a remote session (display.status)")
    assert record.record(1, {"ws-01": INSTALLED}, 1.0)
    assert record.waves[0]["applied"] == 1
    assert record.summary()["counts"] == {"converged": 1, "deferred": 1}


def test_is_busy_reads_display_sessions():
    assert rollout.is_busy({"dcv": {"sessions": 1, "ports": {"8443/tcp": True}}})
    assert not rollout.is_busy({"dcv": {"sessions": 0}, "vnc": {"sessions": 0}})
    assert not rollout.is_busy({})
    assert not rollout.is_busy("'display.status' is not available.")


def test_the_plan_table_json_and_html_say_the_same():
    baseline = {"ws-01": TO_INSTALL, "ws-02": CONVERGED, "ws-03": None}
    record = rollout.Rollout("ws-*", baseline, [["ws-01"], ["ws-02", "ws-03"]], test=True)
    for minion in baseline:
        record.plan(minion)
    summary = record.summary()

    table = rollout.render_table(summary)
    assert table.splitlines()[0].startswith(
        "rollout of ws-*: plan only (test=True), nothing applied; 1 no answer, 2 planned;"
    )
    assert "wave 1 (1 minions) pending" in table
    assert "ws-01   planned    workstation-app-blender-4.3.0" in table
    assert (
        json.loads(json.dumps(summary))["minions"]["ws-03"]["status"] == "no answer"
    )  # plain data

    page = rollout.join_html("<body><h1>Fleet</h1><p>x</p><table id=minions></table>", "<S>")
    assert page == "<body><h1>Fleet</h1><p>x</p><S><table id=minions></table>"
    section = rollout.render_html(summary)
    assert '<tr class="" data-minion="ws-01"><td>1<td>ws-01<td>planned<td></tr>' in section
