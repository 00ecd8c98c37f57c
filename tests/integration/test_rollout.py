"""`salt-run workstation.rollout` against six real minions: a broken build halts after the canary
with every later minion untouched; the fixed build rolls out in growing waves; a machine with a
connected remote session is deferred; test=True plans and applies nothing."""

from __future__ import annotations

import copy
import json
import socket

import pytest
import yaml

from tests.integration.conftest import system_paths_under
from tests.support.catalog import build_depot
from tests.support.daemons import stop_together
from tests.support.depot import DepotServer

MINIONS = [f"ws-roll-{n:02d}" for n in range(1, 7)]
BUSY = MINIONS[-1]
BROKEN = "4.2.4"  # the catalog's hash is not the archive's: every install of it fails
BROKEN_HASH = "sha256:" + "0" * 64
APP_STATE = "workstation-app-blender-{}"


@pytest.fixture(scope="module")
def rollout_depot(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout-depot")
    catalog = build_depot(root)
    blender = catalog["blender"]
    blender["versions"] = {"4.2.3": blender["versions"]["4.2.3"]}
    blender["versions"][BROKEN] = {**blender["versions"]["4.2.3"], "hash": BROKEN_HASH}
    with DepotServer(root) as server:
        server.catalog = {"blender": blender}
        yield server


@pytest.fixture(scope="module")
def session_port():
    """A listening socket standing in for the busy minion's DCV server, and an artist connected to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as artist:
            session, _ = server.accept()
            with session:
                yield server.getsockname()[1]
                assert artist.fileno() >= 0


class Pillar:
    """The master's pillar_roots: every minion's workstation pillar, one version of blender for all."""

    def __init__(self, root, studio, depot, port):
        self.root, self.studio, self.depot = root, studio, depot
        (root / "top.sls").write_text(
            yaml.safe_dump(
                {"base": {"ws-roll-*": ["workstation"], BUSY: ["busy"]}}, default_flow_style=False
            )
        )
        # The busy minion runs a DCV server on `port` (display.status counts its sessions).
        (root / "busy.sls").write_text(
            yaml.safe_dump(
                {
                    "workstation": {
                        "display": {"agents": ["dcv"], "owner": "nobody", "dcv": {"web_port": port}}
                    }
                }
            )
        )

    def install_root(self, minion):
        return self.studio / minion / "studio"

    def set_blender(self, version):
        minion_root = self.studio / "{{ grains.id }}"
        workstation = {
            "install_root": str(minion_root / "studio"),
            "lookup": system_paths_under(minion_root),
            "depot": self.depot.url,
            "catalog": copy.deepcopy(self.depot.catalog),
            "productions": {"nightfall": {"apps": {"blender": version}}},
        }
        (self.root / "workstation.sls").write_text(yaml.safe_dump({"workstation": workstation}))


@pytest.fixture(scope="module")
def rollout_master(salt_factories, tmp_path_factory, rollout_depot, session_port):
    pillar = Pillar(
        tmp_path_factory.mktemp("rollout-pillar"),
        tmp_path_factory.mktemp("rollout-studios"),
        rollout_depot,
        session_port,
    )
    pillar.set_blender(BROKEN)
    overrides = {
        "fileserver_backend": ["roots", "workstation"],
        "pillar_roots": {"base": [str(pillar.root)]},
        "file_roots": {"base": [str(tmp_path_factory.mktemp("rollout-roots"))]},
        "open_mode": True,
    }
    # Without MASTER_WAKEUP: on Salt 3007.16 the runner's waits then meet the event client that
    # holds a return back (a wave stalled until its 1800 s timeout), and must not need the wake-up.
    factory = salt_factories.salt_master_daemon("rollout-master", overrides=overrides)
    with factory.started(start_timeout=120):
        factory.pillar = pillar
        yield factory


@pytest.fixture(scope="module")
def minions(rollout_master):
    factories = [rollout_master.salt_minion_daemon(minion_id) for minion_id in MINIONS]
    try:
        for factory in factories:  # started one after the other: the CI machine has two cores
            factory.start(start_timeout=180)
        yield factories
    finally:
        stop_together(factories)


def rollout(master, *args):
    """The runner as an operator runs it; its stdout is the summary alone (the table or JSON)."""
    result = master.salt_run_cli(timeout=600).run("workstation.rollout", "ws-roll-*", *args)
    assert result.returncode == 0, result
    return result


def test_a_broken_build_halts_after_the_canary_and_later_minions_stay_untouched(
    rollout_master, minions
):
    result = rollout(rollout_master, "production=nightfall", "canary=1", "format=json")

    summary = json.loads(result.stdout)
    canary, *later = MINIONS
    assert summary["halted"] == {
        "wave": 1,
        "reason": "1 of 1 minions failed in wave 1; max_failure=0 allows 0",
    }
    assert [len(wave["minions"]) for wave in summary["waves"]] == [1, 2, 3]
    assert [wave["status"] for wave in summary["waves"]] == ["halted", "pending", "pending"]
    assert summary["minions"][canary]["status"] == "failed"
    (problem,) = [
        p for p in summary["minions"][canary]["failed"] if p["id"] == APP_STATE.format(BROKEN)
    ]
    assert (
        problem["comment"].startswith(
            f"blender {BROKEN} was not installed (catalog entry: workstation:catalog:blender:versions:{BROKEN})"
        )
        and "fix the hash in the catalog or restore the depot file" in problem["comment"]
    ), problem
    for minion in later:
        assert summary["minions"][minion]["status"] == "pending"
        assert "failed" not in summary["minions"][minion]  # never applied
        assert not rollout_master.pillar.install_root(minion).exists(), minion
    assert "HALTED: 1 of 1 minions failed in wave 1" in result.stderr


def test_test_true_plans_every_wave_and_applies_nothing(rollout_master, minions):
    rollout_master.pillar.set_blender("4.2.3")
    # 30 s: a return that 3007.16's event client holds back is seen when the command asks again.
    rollout_master.salt_cli(timeout=30).run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")

    table = rollout(rollout_master, "canary=2", "skip_busy=True", "test=True").stdout

    lines = table.splitlines()
    assert lines[0].startswith("rollout of ws-roll-*: plan only (test=True), nothing applied;")
    assert "wave 1 (2 minions) pending" in lines and "wave 2 (4 minions) pending" in lines
    for minion in MINIONS[:-1]:
        assert any(
            line.split()[:3] == [minion, "planned", f"{APP_STATE.format('4.2.3')},"]
            for line in lines
        ), table
    assert any(line.split()[:2] == [BUSY, "deferred"] for line in lines), table
    for minion in MINIONS[1:]:
        assert not rollout_master.pillar.install_root(minion).exists()
    page = rollout(rollout_master, "canary=2", "test=True", "format=html").stdout
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.index("<section id=rollout>") < page.index("<table id=minions>")  # joined
    for minion in MINIONS:
        assert f'data-minion="{minion}"><td>{1 if minion in MINIONS[:2] else 2}<td>' in page
    nobody = rollout(rollout_master, "production=harbor", "test=True", "format=json")
    assert json.loads(nobody.stdout)["minions"] == {}


def test_the_fixed_build_rolls_out_in_growing_waves_and_defers_the_busy_minion(
    rollout_master, minions
):
    result = rollout(rollout_master, "canary=1", "skip_busy=True", "format=json")

    summary = json.loads(result.stdout)
    assert summary["halted"] is None, summary
    assert summary["counts"] == {"converged": 5, "deferred": 1}
    assert [(w["applied"], w["failed"]) for w in summary["waves"]] == [(1, 0), (2, 0), (2, 0)]
    assert summary["minions"][BUSY]["reason"] == "an artist has a remote session (display.status)"
    for minion in MINIONS[:-1]:
        assert (rollout_master.pillar.install_root(minion) / "apps/blender/4.2.3").is_dir()
    assert not rollout_master.pillar.install_root(BUSY).exists()

    again = rollout(rollout_master, "canary=50%", "skip_busy=True", "format=json")
    summary = json.loads(again.stdout)
    assert [len(w["minions"]) for w in summary["waves"]] == [3, 3]
    assert all(not summary["minions"][m]["changes"] for m in MINIONS[:-1])  # converged: 0 changes
