"""Progress events and the fleet report, as plain data."""

from __future__ import annotations

import json

from salt_workstation import report
from salt_workstation.progress import TAG, ProgressBoard, ProgressReporter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_is_rate_limited_but_phase_changes_and_the_end_always_go_out():
    sent, clock = [], Clock()
    progress = ProgressReporter(
        lambda tag, data: sent.append((tag, data)),
        "houdini",
        "20.5.410",
        "ws-1",
        rate=2.0,
        clock=clock,
    )
    for step in range(100):  # 100 reads in 1 s of download
        clock.now = step / 100
        progress("download", step * 1024, 100 * 1024)
    clock.now = 1.0
    progress("installer", 100 * 1024, 100 * 1024)
    progress("done", 100 * 1024, 100 * 1024)

    phases = [data["phase"] for _, data in sent]
    assert phases == ["download", "download", "installer", "done"]  # 2 a second while downloading
    assert {tag for tag, _ in sent} == {TAG}
    assert sent[-1][1] == {
        "minion": "ws-1",
        "app": "houdini",
        "version": "20.5.410",
        "phase": "done",
        "bytes_done": 102400,
        "bytes_total": 102400,
    }


def test_board_finishes_only_when_every_install_seen_has_ended():
    board = ProgressBoard()
    assert not board.finished()
    board.update(
        {
            "minion": "a",
            "app": "nuke",
            "version": "15.1v3",
            "phase": "download",
            "bytes_done": 2**20,
            "bytes_total": 4 * 2**20,
        }
    )
    board.update({"minion": "b", "app": "nuke", "version": "15.1v3", "phase": "done"})
    assert not board.finished()
    assert (
        ProgressBoard.line(board.installs[("a", "nuke", "15.1v3")])
        == "a nuke 15.1v3: download 1.0 MiB of 4.0 MiB (25%)"
    )
    board.update(
        {
            "minion": "a",
            "app": "nuke",
            "version": "15.1v3",
            "phase": "failed",
            "error": "hash mismatch",
        }
    )
    assert board.finished()
    assert (
        ProgressBoard.line(board.installs[("a", "nuke", "15.1v3")])
        == "a nuke 15.1v3: failed: hash mismatch"
    )


def test_the_end_keeps_the_download_total_so_a_watcher_sees_one_total():
    sent = []
    progress = ProgressReporter(lambda tag, data: sent.append(data), "blender", "4.3.1", "ws-1")
    progress("download", 100, 200_000_000)
    progress("download", 200_000_000, 200_000_000)  # rate-limited away, but remembered
    progress("done")

    assert [data["phase"] for data in sent] == ["download", "done"]
    assert (sent[-1]["bytes_done"], sent[-1]["bytes_total"]) == (200_000_000, 200_000_000)
    assert ProgressBoard.line(sent[-1]) == "ws-1 blender 4.3.1: done 190.7 MiB of 190.7 MiB (100%)"


def test_the_watch_outcome_says_what_ran_or_that_nothing_did():
    board = ProgressBoard()
    assert board.outcome(10, 3600, 10.2) == {
        "finished": True,
        "installs": {},
        "comment": "nothing ran: no install started on the targeted minions within 10 s",
    }
    board.update({"minion": "a", "app": "nuke", "version": "15.1v3", "phase": "download"})
    board.update({"minion": "b", "app": "nuke", "version": "15.1v3", "phase": "failed"})
    assert board.outcome(10, 60, 60.4) == {
        "finished": False,
        "installs": {"a nuke 15.1v3": "download", "b nuke 15.1v3": "failed"},
        "comment": "gave up after 60 s with 1 still running; 0 done, 1 failed",
    }
    board.update({"minion": "a", "app": "nuke", "version": "15.1v3", "phase": "done"})
    assert board.outcome(10, 60, 41.2)["comment"] == "2 installs in 41 s: 1 done, 1 failed"


def _answer(action="keep", drift=(), installed=None):
    plan = {
        "productions": {"nightfall": {"blender": {"version": "4.3.1", "action": action}}},
        "errors": [],
    }
    return report.minion_summary(plan, list(drift), {}, installed or {"blender": ["4.3.1"]})


def test_drift_lists_states_that_would_change_or_fail_in_run_order():
    state_return = {
        "b": {
            "__id__": "workstation-app-nuke-15.1v3",
            "__run_num__": 2,
            "result": False,
            "changes": {},
            "comment": "nuke 15.1v3 was not installed: hash\nsecond line",
        },
        "a": {
            "__id__": "workstation-app-blender-4.2.3",
            "__run_num__": 1,
            "result": None,
            "changes": {"installed": True, "dest": "/opt"},
            "comment": "would be installed",
        },
        "c": {
            "__id__": "workstation-pillar-validated",
            "__run_num__": 0,
            "result": True,
            "changes": {},
            "comment": "ok",
        },
    }
    assert report.drift_of(state_return) == [
        {
            "id": "workstation-app-blender-4.2.3",
            "result": None,
            "changes": ["dest", "installed"],
            "comment": "would be installed",
        },
        {
            "id": "workstation-app-nuke-15.1v3",
            "result": False,
            "changes": [],
            "comment": "nuke 15.1v3 was not installed: hash",
        },
    ]
    assert report.drift_of(["Rendering SLS 'base:workstation' failed"])[0]["result"] is False


def test_fleet_lists_silent_minions_and_renders_every_format():
    drift = [
        {
            "id": "workstation-app-blender-4.3.1",
            "result": None,
            "changes": ["installed"],
            "comment": "would be installed",
        }
    ]
    fleet = report.fleet(
        {"ws-1": _answer(), "ws-2": _answer("install", drift, {"blender": ["4.2.3"]})},
        ["ws-1", "ws-2", "ws-3"],
        "ws-*",
        12.3,
        timeout=10,
        gather_job_timeout=2,
    )

    assert (fleet["answered"], fleet["expected"], fleet["drifted"]) == (2, 3, ["ws-2"])
    assert (fleet["converged"], fleet["silent"], fleet["errors"]) == (["ws-1"], ["ws-3"], [])
    assert fleet["minions"]["ws-3"]["status"] == "no answer"
    # one timing, the whole run, and the wait for a silent minion, in the table and the page alike
    summary = (
        "2 of 3 minions answered (ws-*): 1 converged, 1 drifted, 1 silent. The report took 12.3 s "
        "from start to end; a silent minion is waited for 10 s, then asked 2 s more."
    )
    table = report.render_table(fleet)
    assert table.splitlines()[:2] == [summary, "drifted: ws-2"]
    assert "ws-2    drift      -       workstation-app-blender-4.3.1" in table
    # wanted vs installed: what an apply would do, and what is there now
    assert "  ws-2    blender 4.3.1 (install; installed: 4.2.3)" in table
    assert "  ws-1    blender 4.3.1" in table
    assert json.loads(report.render_json(fleet))["minions"]["ws-1"]["drift"] == []
    page = report.render_html(fleet)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    # the summary heads the page, before any table, with the drifted production linked
    head = page[: page.index("<table")]
    assert f"<p id=summary>{summary}<br>Drifted minions: ws-2." in head
    assert "Drifted productions: <a href='#production-nightfall'>nightfall</a>." in head
    assert "id='production-nightfall'" in page
    assert (
        "<tr class=drift data-minion='ws-2'>" in page
        and "<td class=drift>4.3.1 (install; installed: 4.2.3)" in page
    )


def test_a_machine_whose_image_lacks_versions_its_pillar_wants_now_is_flagged():
    from salt_workstation import image

    baked = {"baked_at": "2026-11-30T08:00:00Z", "apps": {"blender": ["4.2.3"], "nuke": ["15.1v3"]}}
    wanted = {"blender": ["4.2.3", "4.3.0"], "nuke": ["15.1v3"]}

    def summary(extra):
        plan = {"productions": {"nightfall": {"blender": {"version": "4.2.3", "action": "keep"}}}}
        return report.minion_summary(plan, [], extra)

    returns = {
        "ws-old-image": summary({"image": {**baked, "lacks": image.lacks(baked, wanted)}}),
        "ws-fresh-image": summary({"image": {**baked, "lacks": image.lacks(baked, baked["apps"])}}),
        "ws-no-image": summary({}),
    }
    fleet = report.fleet(returns, list(returns), "*", 1.0)
    table = report.render_table(fleet)

    assert image.lacks(baked, wanted) == ["blender 4.3.0"]
    assert image.lacks(None, wanted) == []
    assert fleet["image_lacking"] == ["ws-old-image"]
    assert "images lacking wanted versions: ws-old-image" in table
    assert "image baked 2026-11-30T08:00:00Z: lacks blender 4.3.0" in table
    assert "image baked 2026-11-30T08:00:00Z: has all" in table
    assert json.loads(report.render_json(fleet))["minions"]["ws-old-image"]["image"]["lacks"] == [
        "blender 4.3.0"
    ]
    page = report.render_html(fleet)
    assert "Images lacking wanted versions: ws-old-image." in page[: page.index("<table")]
    assert "<th>next boot without driver<th>image<th>drift</tr>" in page
    lacking = "<td class=drift>baked 2026-11-30T08:00:00Z: lacks blender 4.3.0<td></tr>"
    assert f"<td>ws-old-image<td>converged<td>—<td>—{lacking}" in page
    assert (
        "<td>ws-fresh-image<td>converged<td>—<td>—<td>baked 2026-11-30T08:00:00Z: has all" in page
    )
    assert "<td>ws-no-image<td>converged<td>—<td>—<td>—<td></tr>" in page


def test_the_html_page_flags_a_minion_whose_next_boot_has_no_driver_as_the_table_does():
    problem = (
        "kernel 6.1.0-29-amd64, the newest installed, has no NVIDIA module <under /lib/modules>"
    )

    def summary(next_boot):
        return report.minion_summary(
            {"productions": {}}, [], {"gpu": {"reboot_required": False, "next_boot": next_boot}}
        )

    fleet = report.fleet(
        {"ws-1": summary({"problem": problem}), "ws-2": summary({"problem": None})},
        ["ws-1", "ws-2"],
        "*",
        1.0,
    )
    page = report.render_html(fleet)

    assert f"ws-1: NO NVIDIA DRIVER AT NEXT BOOT: {problem}" in report.render_table(fleet)
    assert "No NVIDIA driver at next boot: ws-1." in page[: page.index("<table")]
    assert "<th>reboot pending<th>next boot without driver<th>image<th>drift</tr>" in page
    escaped = problem.replace("<", "&lt;").replace(">", "&gt;")
    assert f"<td>ws-1<td>converged<td>no<td class=missing>{escaped}<td>—<td></tr>" in page
    assert "<td>ws-2<td>converged<td>no<td>—<td>—<td></tr>" in page
