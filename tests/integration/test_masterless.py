"""`salt-call --local`: the example pillar as shipped, a masterless apply, and an install killed halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from tests.support import archives
from tests.support.catalog import EXAMPLES, build_depot, example_productions
from tests.support.depot import DepotServer
from tests.support.masterless import SALT_BIN, masterless_call, minion_config, system_paths_under


def local(config_dir, *args):
    result = masterless_call(config_dir, *args)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)["local"], result.returncode


@pytest.mark.parametrize(
    ("minion_id", "grains", "productions"),
    [
        ("ws-lead-1", {}, {"nightfall", "harbor", "lighthouse"}),
        ("ws-harbor-7", {}, {"harbor"}),
        ("ws-anim-3", {"production": "nightfall"}, {"nightfall"}),
    ],
)
def test_example_pillar_is_valid_and_targets_productions(tmp_path, minion_id, grains, productions):
    config = minion_config(tmp_path / "etc", minion_id, EXAMPLES, grains)

    report, code = local(config, "workstation.validate")
    plan, _ = local(config, "workstation.plan")

    assert code == 0
    assert report == {"valid": True, "errors": []}
    assert set(plan["productions"]) == productions
    assert all(
        app["action"] == "install" for apps in plan["productions"].values() for app in apps.values()
    )


def test_masterless_apply_converges_and_reapplies_with_no_changes(tmp_path):
    depot_root = tmp_path / "depot"
    catalog = build_depot(depot_root)
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    workstation = {
        "install_root": str(tmp_path / "studio"),
        "depot": f"file://{depot_root}",
        "catalog": catalog,
        "productions": example_productions(),
        "lookup": system_paths_under(tmp_path),
    }
    (pillar_root / "workstation.sls").write_text(yaml.safe_dump({"workstation": workstation}))
    config = minion_config(tmp_path / "etc", "ws-local", pillar_root)

    first, code = local(config, "state.apply", "workstation")
    second, second_code = local(config, "state.apply", "workstation")

    assert code == 0 and all(state["result"] for state in first.values())
    assert (
        sum(1 for state in first.values() if state["changes"]) == 5 + 3
    )  # apps, then two launchers + studio-launch
    assert second_code == 0
    assert [state["__id__"] for state in second.values() if state["changes"]] == []


def test_an_install_killed_halfway_leaves_no_half_version_and_the_next_run_converges(tmp_path):
    depot_root = tmp_path / "depot"
    source = depot_root / "big" / "big-1.0.tar.gz"
    payload = {f"data/blob{i}.bin": (os.urandom(256 * 1024), 0o644) for i in range(8)}
    payload["bin/big"] = (b"#!/bin/sh\necho big\n", 0o755)
    archives.write_tar(source, payload, top="big-1.0")
    catalog = {
        "big": {
            "versions": {
                "1.0": {
                    "source": "big/big-1.0.tar.gz",
                    "hash": archives.sha256_of(source),
                    "strip_components": 1,
                    "launchers": {"big": "bin/big"},
                }
            }
        }
    }
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    config = minion_config(tmp_path / "etc", "ws-interrupted", pillar_root)
    app_dir = tmp_path / "studio" / "apps" / "big"

    with DepotServer(depot_root, throttle=0.1) as depot:
        workstation = {
            "install_root": str(tmp_path / "studio"),
            "depot": depot.url,
            "catalog": catalog,
            "lookup": system_paths_under(tmp_path),
            "productions": {"nightfall": {"apps": {"big": "1.0"}}},
        }
        (pillar_root / "workstation.sls").write_text(yaml.safe_dump({"workstation": workstation}))
        apply = subprocess.Popen(
            [
                str(SALT_BIN / "salt-call"),
                "--local",
                "-c",
                str(config),
                "state.apply",
                "workstation",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (
            app_dir.is_dir() and any(p.name.startswith(".staging-") for p in app_dir.iterdir())
        ):
            assert time.monotonic() < deadline, "the install never started"
            assert apply.poll() is None, "the apply finished before it could be interrupted"
            time.sleep(0.05)
        os.killpg(apply.pid, signal.SIGKILL)  # a power cut, as far as the install can tell
        apply.wait()

        assert not (app_dir / "1.0").exists(), "a half version became visible"
        assert any(p.name.startswith(".staging-") for p in app_dir.iterdir())

        depot.throttle = 0
        result, code = local(config, "state.apply", "workstation")

    assert code == 0
    assert (
        result[next(k for k in result if "workstation-app-big-1.0" in k)]["changes"]["installed"]
        is True
    )
    assert (
        subprocess.run(
            [str(app_dir / "1.0" / "bin" / "big")], capture_output=True, text=True
        ).stdout
        == "big\n"
    )
    assert not [p.name for p in app_dir.iterdir() if p.name.startswith((".staging-", ".trash-"))]
