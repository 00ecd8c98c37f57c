"""`salt '*' state.apply workstation` through a real master and minion, against a loopback HTTP depot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import archives
from tests.support.states import by_id, changed, failed

LAUNCHER_STATES = {
    "workstation-launchers-nightfall-launchers-managed",
    "workstation-launchers-harbor-launchers-managed",
    "workstation-launchers-studio-launch-installed",
}
EXPECTED_INSTALLS = {
    "workstation-app-blender-4.2.3",
    "workstation-app-houdini-20.0.751",
    "workstation-app-houdini-20.5.410",
    "workstation-app-nuke-15.1v3",
    "workstation-app-ocio-2.4.0",
}


def test_first_install_two_productions_share_one_blender(workstation):
    data = workstation.apply()

    assert failed(data) == {}
    assert (
        set(changed(data)) == EXPECTED_INSTALLS | LAUNCHER_STATES
    )  # blender 4.2.3 once, for both productions
    blender = workstation.version_dir("blender", "4.2.3")
    out = subprocess.run(
        [str(blender / "blender"), "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "blender 4.2.3 --version"
    # Vendor installers ran with their real command lines and were promoted like archives.
    assert (workstation.version_dir("houdini", "20.5.410") / "bin" / "hython").is_file()
    assert (workstation.version_dir("nuke", "15.1v3") / "Nuke15.1").is_file()
    assert (
        workstation.version_dir("ocio", "2.4.0") / "studio-config-v2.4.0" / "config.ocio"
    ).is_file()
    assert (
        (workstation.install_root / "logs" / "houdini-20.5.410-install.log")
        .read_text()
        .startswith("installed into")
    )

    inventory = workstation.run("workstation.inventory").data
    assert inventory["blender"]["4.2.3"]["productions"] == ["harbor", "nightfall"]
    assert inventory["nuke"]["15.1v3"]["productions"] == ["nightfall"]
    verify = workstation.run("dcc.verify", "houdini", "20.5.410").data
    assert verify["ok"] is True and verify["files"] > 3 and verify["folders"] > 0


def test_second_apply_changes_nothing_and_never_touches_the_depot(workstation):
    workstation.apply()
    requests_before = workstation.depot.requests

    data = workstation.apply()

    assert failed(data) == {}
    assert changed(data) == {}
    assert workstation.depot.requests == requests_before


def test_dry_run_on_a_fresh_machine_predicts_the_real_run_exactly(workstation):
    requests_before = workstation.depot.requests

    predicted = by_id(workstation.apply("test=True"))

    assert workstation.depot.requests == requests_before, "test=True downloaded something"
    assert not workstation.install_root.exists(), "test=True wrote something"
    assert {
        key for key, state in predicted.items() if state["result"] is None
    } == EXPECTED_INSTALLS | LAUNCHER_STATES

    real = by_id(workstation.apply())

    assert {key: state["changes"] for key, state in predicted.items()} == {
        key: state["changes"] for key, state in real.items()
    }
    assert all(state["result"] is True for state in real.values())


def test_dry_run_on_a_converged_machine_predicts_nothing(workstation):
    workstation.apply()

    predicted = workstation.apply("test=True")

    assert changed(predicted) == {}
    assert all(state["result"] is True for state in predicted.values())


def test_version_switch_keeps_the_previous_for_rollback_and_retain_zero_removes_it(workstation):
    workstation.apply()
    switched = workstation.pillar()
    for production in switched["productions"].values():
        production["apps"]["blender"] = "4.1.1"
    workstation.set_pillar(switched)

    plan = workstation.run("workstation.plan").data
    assert plan["productions"]["nightfall"]["blender"]["action"] == "install"
    assert plan["remove"] == {}  # 4.2.3 becomes the retained previous version
    data = by_id(workstation.apply())
    assert data["workstation-app-blender-4.1.1"]["changes"]["installed"] is True
    assert workstation.version_dir("blender", "4.2.3").is_dir()

    # Rollback: 4.2.3 is still there, so going back downloads nothing.
    workstation.set_pillar(workstation.pillar())
    requests_before = workstation.depot.requests
    rolled_back = workstation.apply()
    assert (
        set(changed(rolled_back)) <= LAUNCHER_STATES
    )  # the launchers point back at 4.2.3; nothing installed
    assert workstation.depot.requests == requests_before
    assert workstation.version_dir("blender", "4.1.1").is_dir()  # now the retained previous version

    workstation.set_pillar(workstation.pillar(retain=0))
    assert workstation.run("workstation.plan").data["remove"] == {"blender": ["4.1.1"]}
    pruned = by_id(workstation.apply())
    assert pruned["workstation-app-blender-retention"]["changes"] == {"removed": ["4.1.1"]}
    assert not workstation.version_dir("blender", "4.1.1").exists()
    assert workstation.version_dir("blender", "4.2.3").is_dir()


def test_hash_mismatch_fails_that_app_only_and_keeps_what_was_installed(workstation):
    workstation.apply()
    nuke = workstation.version_dir("nuke", "15.1v3")
    before = sorted(path.name for path in nuke.iterdir())
    broken = workstation.pillar()
    spec = broken["catalog"]["nuke"]["versions"]["15.1v3"]
    spec["hash"] = "sha256:" + "0" * 64  # a re-release with a wrong hash in the catalog
    workstation.set_pillar(broken)

    data = by_id(workstation.apply())

    comment = data["workstation-app-nuke-15.1v3"]["comment"]
    assert data["workstation-app-nuke-15.1v3"]["result"] is False
    assert "nuke 15.1v3" in comment and "Nothing was installed" in comment and "0" * 64 in comment
    assert sorted(path.name for path in nuke.iterdir()) == before
    # Only nuke fails; its retention state does not run after a failed install, so nothing is pruned,
    # and nightfall's launchers stay as they were until its apps are all in place.
    assert failed(data).keys() == {
        "workstation-app-nuke-15.1v3",
        "workstation-app-nuke-retention",
        "workstation-launchers-nightfall-launchers-managed",
    }
    assert not [p for p in nuke.parent.iterdir() if p.name.startswith(".staging")]


def test_hostile_archive_is_refused_and_nothing_lands_outside_install_root(workstation, tmp_path):
    hostile = workstation.depot.root / "evil" / "evil-1.0.tar.gz"
    archives.write_tar(
        hostile,
        {"bin/evil": (b"#!/bin/sh\n", 0o755)},
        top="app",
        extra=archives.hostile_members("dotdot") + archives.hostile_members("symlink_escape"),
    )
    pillar = workstation.pillar()
    pillar["catalog"]["evil"] = {
        "versions": {
            "1.0": {
                "source": "evil/evil-1.0.tar.gz",
                "hash": archives.sha256_of(hostile),
                "strip_components": 1,
            }
        }
    }
    pillar["productions"]["nightfall"]["apps"]["evil"] = "1.0"
    workstation.set_pillar(pillar)

    data = by_id(workstation.apply())

    state = data["workstation-app-evil-1.0"]
    assert state["result"] is False
    assert "evil 1.0" in state["comment"] and "climbs out" in state["comment"]
    assert not workstation.version_dir("evil", "1.0").exists()
    assert not (workstation.install_root / "apps" / "evil-dotdot").exists()
    assert not list(tmp_path.glob("**/evil-dotdot"))
    assert failed(data).keys() == {
        "workstation-app-evil-1.0",
        "workstation-app-evil-retention",
        "workstation-launchers-nightfall-launchers-managed",
    }


def test_bad_pillar_names_the_path_and_the_fix_while_valid_apps_converge(workstation):
    pillar = workstation.pillar()
    pillar["productions"]["nightfall"]["apps"]["nuke"] = (
        2025.10  # YAML would read 2025.10 as 2025.1
    )
    pillar["productions"]["harbor"]["apps"]["houdini"] = "19.5.1"
    workstation.set_pillar(pillar)

    report = workstation.run("workstation.validate").data
    data = by_id(workstation.apply())

    paths = {error["path"] for error in report["errors"]}
    assert paths == {
        "workstation:productions:nightfall:apps:nuke",
        "workstation:productions:harbor:apps:houdini",
    }
    assert "quote it" in data["workstation-app-nuke-2025.1"]["comment"]
    assert (
        "workstation:productions:nightfall:apps:nuke"
        in data["workstation-app-nuke-2025.1"]["comment"]
    )
    assert "known: 20.0.751, 20.5.410" in data["workstation-pillar-validated"]["comment"]
    assert data["workstation-app-houdini-19.5.1"]["result"] is False
    assert data["workstation-app-blender-4.2.3"]["result"] is True
    assert workstation.version_dir("blender", "4.2.3").is_dir()
    assert not workstation.version_dir("nuke", "2025.1").exists()


def test_depot_down_fails_with_a_clear_message(workstation):
    workstation.set_pillar(workstation.pillar(depot="http://127.0.0.1:9"))

    data = by_id(workstation.apply())

    comment = data["workstation-app-blender-4.2.3"]["comment"]
    assert data["workstation-app-blender-4.2.3"]["result"] is False
    assert "http://127.0.0.1:9/blender/blender-4.2.3-linux-x64.tar.xz" in comment
    assert "is the depot up" in comment
    assert not workstation.version_dir("blender", "4.2.3").exists()


def test_extension_is_registered_and_documented(workstation):
    report = workstation.run("test.versions_report").stdout
    assert "salt-workstation" in report
    docs = workstation.run("sys.doc", "dcc").data
    assert "salt '*' dcc.install blender 4.2.3" in docs["dcc.install"]
    assert set(docs) >= {"dcc.install", "dcc.remove", "dcc.verify", "dcc.list_installed"}


def test_salt_depot_installs_through_the_master_and_keeps_no_cached_copy(
    workstation, file_roots, salt_minion
):
    shutil.copytree(
        workstation.depot.root / "blender", file_roots / "depot" / "blender", dirs_exist_ok=True
    )
    pillar = workstation.pillar(depot="salt://depot")
    pillar["productions"] = {"nightfall": {"apps": {"blender": "4.2.3"}}}
    workstation.set_pillar(pillar)

    data = by_id(workstation.apply())

    state = data["workstation-app-blender-4.2.3"]
    assert (
        state["result"] is True
        and state["changes"]["source"] == "salt://depot/blender/blender-4.2.3-linux-x64.tar.xz"
    )
    assert (workstation.version_dir("blender", "4.2.3") / "blender").is_file()
    cachedir = salt_minion.config["cachedir"]
    assert not list(Path(cachedir).glob("files/base/depot/blender/*.tar.xz")), (
        "the archive stayed in the minion cache"
    )
