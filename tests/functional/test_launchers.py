"""The launchers states and module through Salt's real loaders: the state contract, test=True,
idempotency, the rendered formula, and Salt's own mount states against a scratch fstab."""

from __future__ import annotations

import copy
import json
import stat

import pytest

from salt_workstation import launchers
from tests.unit.conftest import snapshot
from tests.unit.test_launchers import NFS, PRODUCTIONS, SMB, install_standins, launch, studio_config

CONTRACT = {"name", "result", "changes", "comment"}


def _pillar(tmp_path, **extra):
    """The workstation pillar of tests/unit/test_launchers, as a minion reads it."""
    cfg = studio_config(tmp_path)
    pillar = {key: cfg[key] for key in ("install_root", "depot", "catalog", "productions")}
    pillar["lookup"] = {"os": {key: cfg["os"][key] for key in ("bin_dir", "xdg_data_dir", "xdg_config_dir", "fstab")}}
    pillar.update(extra)
    install_standins(cfg)
    return pillar


def _contract(result):
    raw = result.full_return
    assert CONTRACT <= set(raw) and isinstance(raw["changes"], dict) and isinstance(raw["comment"], str)


def test_managed_answers_test_then_acts_then_converges(make_loaders, tmp_path):
    states = make_loaders(pillar=_pillar(tmp_path)).states.launchers

    dry = states.managed("nightfall", test=True)
    assert not (tmp_path / "studio" / "productions").exists(), "test=True wrote something"
    real = states.managed("nightfall")
    again = states.managed("nightfall")

    for result in (dry, real, again):
        _contract(result)
    assert dry.result is None and real.result is True and again.result is True
    assert dry.changes == real.changes
    assert str(tmp_path / "studio/productions/nightfall/bin/houdini") in real.changes["written"]
    assert again.changes == {} and "up to date" in again.comment
    assert launch(studio_config(tmp_path), "nightfall", "houdini", "a b")["argv"] == ["a b"]


def test_a_production_with_a_pillar_error_fails_alone_and_touches_nothing(make_loaders, tmp_path):
    pillar = _pillar(tmp_path)
    pillar["productions"]["harbor"]["plugins"]["redshift-houdini"] = "3.6.05"  # built for Houdini 20.5
    states = make_loaders(pillar=pillar).states.launchers

    harbor = states.managed("harbor")
    nightfall = states.managed("nightfall")

    assert harbor.result is False and harbor.changes == {}
    assert "workstation:productions:harbor:plugins:redshift-houdini: redshift-houdini 3.6.05 supports houdini" \
        in harbor.comment
    assert not (tmp_path / "studio/productions/harbor").exists()
    assert nightfall.result is True and nightfall.changes["written"]


def test_pruned_and_command_follow_the_contract(make_loaders, tmp_path):
    pillar = _pillar(tmp_path)
    both = make_loaders(pillar=pillar)
    for production in pillar["productions"]:
        both.states.launchers.managed(production)
    del pillar["productions"]["harbor"]
    loaders = make_loaders(pillar=pillar)
    command = str(tmp_path / "usr/bin/studio-launch")
    productions = str(tmp_path / "studio/productions")

    dry = loaders.states.launchers.pruned(productions, keep=["nightfall"], test=True)
    real = loaders.states.launchers.pruned(productions, keep=["nightfall"])
    again = loaders.states.launchers.pruned(productions, keep=["nightfall"])
    written = [loaders.states.launchers.command(command, test=test) for test in (True, False, False)]

    assert dry.result is None and real.result is True and dry.changes == real.changes
    assert str(tmp_path / "studio/productions/harbor") in real.changes["removed"]
    assert again.changes == {}
    assert [r.changes for r in written] == [{"written": command}, {"written": command}, {}]
    assert [r.result for r in written] == [None, True, True]
    assert stat.S_IMODE((tmp_path / "usr/bin/studio-launch").stat().st_mode) == 0o755


def test_credentials_are_written_0600_and_never_reach_the_return(make_loaders, tmp_path):
    pillar = _pillar(tmp_path)
    pillar["productions"]["nightfall"]["mounts"] = {"projects": copy.deepcopy(SMB)}
    loaders = make_loaders(pillar=pillar)
    path = str(tmp_path / "studio/productions/nightfall/.secrets/projects.credentials")

    results = [loaders.states.launchers.credentials(path, production="nightfall", mount="projects", test=test)
               for test in (True, False, False)]
    module = loaders.modules.launchers

    assert [r.changes for r in results] == [{"credentials": path}, {"credentials": path}, {}]
    assert [r.result for r in results] == [None, True, True]
    assert stat.S_IMODE((tmp_path / "studio/productions/nightfall/.secrets/projects.credentials").stat().st_mode) \
        == 0o600
    returns = [r.full_return for r in results] + [module.formula_data(), module.sync("nightfall", test=True)]
    assert SMB["credentials"]["password"] not in json.dumps(returns)
    refused = loaders.states.launchers.credentials(path, production="nightfall", mount="nope")
    assert refused.result is False and "workstation:productions:nightfall:mounts:nope" in refused.comment


def test_the_formula_renders_storage_then_launchers_and_salt_mounts_it_in_a_bake(make_loaders, tmp_path):
    pillar = _pillar(tmp_path, phase="bake")
    pillar["productions"]["harbor"]["mounts"] = {"projects": {**NFS, "path": str(tmp_path / "mnt/harbor/projects")}}
    loaders = make_loaders(grains={"os_family": "Debian"}, pillar=pillar)

    low = {chunk["__id__"]: chunk for chunk in loaders.modules.state.show_low_sls("workstation.launchers")}
    mount = low["workstation-launchers-harbor-mount-projects"]
    ids = [chunk["__id__"] for chunk in loaders.modules.state.show_low_sls("workstation")]

    assert (mount["state"], mount["fun"], mount["fstype"], mount["mount"]) == ("mount", "mounted", "nfs", False)
    assert mount["opts"] == ["_netdev", "nofail", "vers=4.2"]
    assert {"dcc": "workstation-app-houdini-20.0.751"} in low["workstation-launchers-harbor"]["require"]
    assert ids.index("workstation-app-houdini-20.0.751") < ids.index("workstation-launchers-harbor")
    assert ids.index("workstation-launchers-harbor-mount-projects") < ids.index("workstation-launchers-harbor")

    # Salt's own mount.mounted with the rendered arguments: phase bake writes fstab and the
    # mount point, and mounts nothing (the image has no network storage yet).
    args = {key: mount[key] for key in ("name", "device", "fstype", "opts", "mkmnt", "persist", "mount", "config")}
    fstab = tmp_path / "etc" / "fstab"
    fstab.parent.mkdir(parents=True, exist_ok=True)
    fstab.write_text("# scratch fstab\n")
    high = {"harbor-projects": {"mount": ["mounted", *({key: value} for key, value in args.items())],
                                "__sls__": "test", "__env__": "base"}}
    dry = next(iter(loaders.modules.state.high(high, test=True)))
    assert not (tmp_path / "mnt").exists() and fstab.read_text() == "# scratch fstab\n", "test=True wrote"
    real, again = (next(iter(loaders.modules.state.high(high))) for _ in range(2))

    assert dry.result is None and real.result is True, real.comment
    line = [row for row in fstab.read_text().splitlines() if not row.startswith("#")]
    assert line == [f"nas02:/export/harbor\t\t{tmp_path}/mnt/harbor/projects\tnfs\t_netdev,nofail,vers=4.2\t0 0"]
    assert (tmp_path / "mnt/harbor/projects").is_dir()
    assert again.changes == {}

    release = {"harbor-projects-released": {"mount": [
        "unmounted", {"name": mount["name"]}, {"device": mount["device"]}, {"persist": True}, {"config": str(fstab)}],
        "__sls__": "test", "__env__": "base"}}
    released = next(iter(loaders.modules.state.high(release)))
    assert released.result is True and fstab.read_text() == "# scratch fstab\n"


def test_the_module_shows_a_launchers_environment_and_text(make_loaders, tmp_path):
    module = make_loaders(pillar=_pillar(tmp_path)).modules.launchers

    env = module.environment("nightfall", "nuke")
    text = module.render("harbor", "houdini")
    unknown = module.environment("nightfall", "photoshop")

    assert env["SHOW"] == "nightfall" and env["NUKE_PATH"].endswith("/apps/cryptomatte/1.4.0")
    assert text.startswith("#!/bin/sh\n# studio-launch: houdini 20.0.751 for harbor\n")
    assert "export HARBOR_ONLY=1\n" in text
    assert unknown == {"error": ["production nightfall has no launcher photoshop (it has: blender, houdini, hython, "
                                 "maya, nuke)"]}
    assert set(PRODUCTIONS) == {"nightfall", "harbor"}
    assert module.installed() == {}
    assert launchers.read_manifest(launchers.Settings.from_config(studio_config(tmp_path))) == {}


@pytest.mark.parametrize("command", ["..", "."])
def test_a_launcher_command_that_is_not_one_file_name_fails_its_production_and_touches_nothing(
        make_loaders, tmp_path, command):
    """Before: the state reported success after removing the production's folder ('..', files put
    there by hand included) or turning its bin folder into a file ('.')."""
    pillar = _pillar(tmp_path)
    make_loaders(pillar=pillar).states.launchers.managed("nightfall")
    (tmp_path / "studio/productions/nightfall/handmade.txt").write_text("mine")
    pillar["catalog"]["nuke"]["versions"]["15.1v3"]["launchers"] = {command: "Nuke15.1"}
    states = make_loaders(pillar=pillar).states.launchers
    before = snapshot(tmp_path)

    results = [states.managed("nightfall", test=test) for test in (True, False)]

    for result in results:
        assert result.result is False and result.changes == {}
        assert f"workstation:catalog:nuke:versions:15.1v3:launchers:{command}: command names are" in result.comment
    assert snapshot(tmp_path) == before


def test_a_link_planted_at_a_production_folder_fails_its_state_naming_the_path(make_loaders, tmp_path):
    pillar = _pillar(tmp_path)
    victim = tmp_path / "someone-elses"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    harbor_bin = tmp_path / "studio/productions/harbor/bin"
    harbor_bin.parent.mkdir(parents=True)
    harbor_bin.symlink_to(victim)
    states = make_loaders(pillar=pillar).states.launchers

    harbor = [states.managed("harbor", test=test) for test in (True, False)]
    nightfall = states.managed("nightfall")

    for result in harbor:
        assert result.result is False and result.changes == {}
        assert f"{harbor_bin} is a symlink" in result.comment and "Move it aside" in result.comment
    assert nightfall.result is True  # one production's trouble stays its own
    assert harbor_bin.is_symlink() and [p.name for p in victim.iterdir()] == ["notes.txt"]
    assert (victim / "notes.txt").read_text() == "mine"


def test_validate_names_every_name_that_is_not_one_file_name_at_its_pillar_path(make_loaders, tmp_path):
    pillar = _pillar(tmp_path)
    pillar["catalog"]["nuke"]["versions"]["15.1v3"]["launchers"] = {"..": "Nuke15.1"}
    pillar["productions"]["harbor"]["plugins"]["a/b"] = "1.0"
    pillar["licenses"] = {".": {"type": "rlm", "servers": ["5053@rlm1"]},
                          "katana": {"type": "nodelocked", "path": "/opt/studio/licenses/.", "content": "x"}}

    errors = {e["path"]: e["message"] for e in make_loaders(pillar=pillar).modules.workstation.validate()["errors"]}

    for path in ("workstation:catalog:nuke:versions:15.1v3:launchers:..", "workstation:productions:harbor:plugins:a/b",
                 "workstation:licenses:."):
        assert "folder and file names" in errors.get(path, ""), (path, errors)
    assert "no '..', '.' or '//'" in errors["workstation:licenses:katana:path"]
