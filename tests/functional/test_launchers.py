"""The launchers states and module through Salt's real loaders: the state contract, test=True,
idempotency, the rendered formula, and Salt's own mount states against a scratch fstab."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path

import pytest
import yaml
from salt.exceptions import CommandExecutionError

from salt_workstation.launchers import plan, status
from tests.support.catalog import EXAMPLES
from tests.unit.conftest import snapshot
from tests.unit.test_launchers import NFS, PRODUCTIONS, SMB, install_standins, launch, studio_config

CONTRACT = {"name", "result", "changes", "comment"}


def _pillar(tmp_path, **extra):
    """The workstation pillar of tests/unit/test_launchers, as a minion reads it."""
    cfg = studio_config(tmp_path)
    pillar = {key: cfg[key] for key in ("install_root", "depot", "catalog", "productions")}
    pillar["lookup"] = {
        "os": {
            key: cfg["os"][key] for key in ("bin_dir", "xdg_data_dir", "xdg_config_dir", "fstab")
        }
    }
    pillar.update(extra)
    install_standins(cfg)
    return pillar


def _contract(result):
    raw = result.full_return
    assert (
        set(raw) >= CONTRACT
        and isinstance(raw["changes"], dict)
        and isinstance(raw["comment"], str)
    )


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
    pillar["productions"]["harbor"]["plugins"]["redshift-houdini"] = (
        "3.6.05"  # built for Houdini 20.5
    )
    loaders = make_loaders(pillar=pillar)
    states = loaders.states.launchers

    harbor = states.managed("harbor")
    nightfall = states.managed("nightfall")

    assert harbor.result is False and harbor.changes == {}
    assert (
        "workstation:productions:harbor:plugins:redshift-houdini: redshift-houdini 3.6.05 supports houdini"
        in harbor.comment
    )
    assert not (tmp_path / "studio/productions/harbor").exists()
    assert nightfall.result is True and nightfall.changes["written"]
    for function in (
        loaders.modules.launchers.sync,
        loaders.modules.launchers.diff,
    ):  # salt-call exits non-zero
        with pytest.raises(
            CommandExecutionError, match="workstation:productions:harbor:plugins:redshift-houdini"
        ):
            function("harbor")


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
    written = [
        loaders.states.launchers.command(command, test=test) for test in (True, False, False)
    ]

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

    results = [
        loaders.states.launchers.credentials(
            path, production="nightfall", mount="projects", test=test
        )
        for test in (True, False, False)
    ]
    module = loaders.modules.launchers

    assert [r.changes for r in results] == [{"credentials": path}, {"credentials": path}, {}]
    assert [r.result for r in results] == [None, True, True]
    assert (
        stat.S_IMODE(
            (tmp_path / "studio/productions/nightfall/.secrets/projects.credentials").stat().st_mode
        )
        == 0o600
    )
    returns = [r.full_return for r in results] + [
        module.plan(),
        module.sync("nightfall", test=True),
        module.diff("nightfall"),
    ]
    assert SMB["credentials"]["password"] not in json.dumps(returns)
    refused = loaders.states.launchers.credentials(path, production="nightfall", mount="nope")
    assert (
        refused.result is False
        and "workstation:productions:nightfall:mounts:nope" in refused.comment
    )


def test_the_formula_renders_storage_then_launchers_and_salt_mounts_it_in_a_bake(
    make_loaders, tmp_path
):
    pillar = _pillar(tmp_path, phase="bake")
    pillar["productions"]["harbor"]["mounts"] = {
        "projects": {**NFS, "path": str(tmp_path / "mnt/harbor/projects")}
    }
    loaders = make_loaders(grains={"os_family": "Debian"}, pillar=pillar)

    low = {
        chunk["__id__"]: chunk
        for chunk in loaders.modules.state.show_low_sls("workstation.launchers")
    }
    mount = low["workstation-launchers-harbor-mount-projects-mounted"]
    ids = [chunk["__id__"] for chunk in loaders.modules.state.show_low_sls("workstation")]

    assert (mount["state"], mount["fun"], mount["fstype"], mount["mount"]) == (
        "mount",
        "mounted",
        "nfs",
        False,
    )
    assert mount["opts"] == ["_netdev", "nofail", "vers=4.2"]
    managed = low["workstation-launchers-harbor-launchers-managed"]
    assert {"dcc": "workstation-app-houdini-20.0.751"} in managed["require"]
    assert ids.index("workstation-app-houdini-20.0.751") < ids.index(
        "workstation-launchers-harbor-launchers-managed"
    )
    assert ids.index("workstation-launchers-harbor-mount-projects-mounted") < ids.index(
        "workstation-launchers-harbor-launchers-managed"
    )

    # Salt's own mount.mounted with the rendered arguments: phase bake writes fstab and the
    # mount point, and mounts nothing (the image has no network storage yet).
    args = {
        key: mount[key]
        for key in ("name", "device", "fstype", "opts", "mkmnt", "persist", "mount", "config")
    }
    fstab = tmp_path / "etc" / "fstab"
    fstab.parent.mkdir(parents=True, exist_ok=True)
    fstab.write_text("# scratch fstab\n")
    high = {
        "harbor-projects": {
            "mount": ["mounted", *({key: value} for key, value in args.items())],
            "__sls__": "test",
            "__env__": "base",
        }
    }
    dry = next(iter(loaders.modules.state.high(high, test=True)))
    assert not (tmp_path / "mnt").exists() and fstab.read_text() == "# scratch fstab\n", (
        "test=True wrote"
    )
    real, again = (next(iter(loaders.modules.state.high(high))) for _ in range(2))

    assert dry.result is None and real.result is True, real.comment
    line = [row for row in fstab.read_text().splitlines() if not row.startswith("#")]
    assert line == [
        f"nas02:/export/harbor\t\t{tmp_path}/mnt/harbor/projects\tnfs\t_netdev,nofail,vers=4.2\t0 0"
    ]
    assert (tmp_path / "mnt/harbor/projects").is_dir()
    assert again.changes == {}

    release = {
        "harbor-projects-released": {
            "mount": [
                "unmounted",
                {"name": mount["name"]},
                {"device": mount["device"]},
                {"persist": True},
                {"config": str(fstab)},
            ],
            "__sls__": "test",
            "__env__": "base",
        }
    }
    released = next(iter(loaders.modules.state.high(release)))
    assert released.result is True and fstab.read_text() == "# scratch fstab\n"


def test_the_module_shows_a_launchers_environment_and_text(make_loaders, tmp_path):
    module = make_loaders(pillar=_pillar(tmp_path)).modules.launchers

    env = module.environment("nightfall", "nuke")
    text = module.render("harbor", "houdini")

    assert env["SHOW"] == "nightfall" and env["NUKE_PATH"].endswith("/apps/cryptomatte/1.4.0")
    assert text.startswith("#!/bin/sh\n# studio-launch: houdini 20.0.751 for harbor\n")
    assert "export HARBOR_ONLY=1\n" in text
    with pytest.raises(
        CommandExecutionError,
        match=r"production nightfall has no launcher photoshop \(it has: "
        r"blender, houdini, hython, maya, nuke\)",
    ):
        module.environment("nightfall", "photoshop")
    assert set(PRODUCTIONS) == {"nightfall", "harbor"}
    assert module.installed() == {}
    assert status.read_manifest(plan.Settings.from_config(studio_config(tmp_path))) == {}


@pytest.mark.parametrize("command", ["..", "."])
def test_a_launcher_command_that_is_not_one_file_name_fails_its_production_and_touches_nothing(
    make_loaders, tmp_path, command
):
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
        assert (
            f"workstation:catalog:nuke:versions:15.1v3:launchers:{command}: command names are"
            in result.comment
        )
    assert snapshot(tmp_path) == before


def test_a_link_planted_at_a_production_folder_fails_its_state_naming_the_path(
    make_loaders, tmp_path
):
    pillar = _pillar(tmp_path)
    victim = tmp_path / "someone-elses"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    harbor_bin = tmp_path / "studio/productions/harbor/bin"
    harbor_bin.parent.mkdir(parents=True)
    harbor_bin.symlink_to(victim)
    loaders = make_loaders(pillar=pillar)
    states = loaders.states.launchers

    harbor = [states.managed("harbor", test=test) for test in (True, False)]
    nightfall = states.managed("nightfall")

    for result in harbor:
        assert result.result is False and result.changes == {}
        assert f"{harbor_bin} is a symlink" in result.comment and "Move it aside" in result.comment
        assert "workstation:productions:harbor" in result.comment
    with pytest.raises(CommandExecutionError, match=f"{harbor_bin} is a symlink"):
        loaders.modules.launchers.sync("harbor")
    assert nightfall.result is True  # one production's trouble stays its own
    assert harbor_bin.is_symlink() and [p.name for p in victim.iterdir()] == ["notes.txt"]
    assert (victim / "notes.txt").read_text() == "mine"


def test_validate_names_every_name_that_is_not_one_file_name_at_its_pillar_path(
    make_loaders, tmp_path
):
    pillar = _pillar(tmp_path)
    pillar["catalog"]["nuke"]["versions"]["15.1v3"]["launchers"] = {"..": "Nuke15.1"}
    pillar["productions"]["harbor"]["plugins"]["a/b"] = "1.0"
    pillar["licenses"] = {
        ".": {"type": "rlm", "servers": ["5053@rlm1"]},
        "katana": {"type": "nodelocked", "path": "/opt/studio/licenses/.", "content": "x"},
    }

    errors = {
        e["path"]: e["message"]
        for e in make_loaders(pillar=pillar).modules.workstation.validate()["errors"]
    }

    for path in (
        "workstation:catalog:nuke:versions:15.1v3:launchers:..",
        "workstation:productions:harbor:plugins:a/b",
        "workstation:licenses:.",
    ):
        assert "folder and file names" in errors.get(path, ""), (path, errors)
    assert "no '..', '.' or '//'" in errors["workstation:licenses:katana:path"]


# ---- the SLS as the state graph: IDs, functions and requisites as state.show_sls reads them ----------


def _merged(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = (
            _merged(base.get(key, {}), value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else copy.deepcopy(value)
        )
    return base


def _example_pillar(tmp_path) -> dict:
    """The example pillar (pillar_examples/) as a lead's workstation gets it, system folders in tmp_path."""
    top = yaml.safe_load((EXAMPLES / "top.sls").read_text())["base"]
    pillar: dict = {}
    for name in (
        entry for target in ("ws-*", "ws-lead-*") for entry in top[target] if isinstance(entry, str)
    ):
        _merged(
            pillar,
            yaml.safe_load((EXAMPLES / f"{name.replace('.', '/')}.sls").read_text())["workstation"],
        )
    return _merged(
        pillar, {"install_root": str(tmp_path / "studio"), "lookup": _pillar(tmp_path)["lookup"]}
    )


def _graph(loaders) -> dict:
    """workstation.launchers' own states as state.show_sls lists them: {ID: (function, requisites)}, in order."""
    shown = loaders.modules.state.show_sls("workstation.launchers")
    assert isinstance(shown, dict), shown  # a list is Salt's render or requisite errors
    graph = {}
    for state_id, body in sorted(
        shown.items(),
        key=lambda item: next(
            arg["order"]
            for key, args in item[1].items()
            if not key.startswith("__")
            for arg in args
            if isinstance(arg, dict) and "order" in arg
        ),
    ):
        module, args = next((key, args) for key, args in body.items() if not key.startswith("__"))
        if body["__sls__"] != "workstation.launchers":
            assert state_id.startswith("workstation-"), (
                state_id
            )  # what it includes: the apps SLS and theirs
            continue
        function = next(arg for arg in args if isinstance(arg, str))
        requisites = [
            ref for arg in args if isinstance(arg, dict) for ref in arg.get("require", [])
        ]
        graph[state_id] = (f"{module}.{function}", requisites)
    for _function, requisites in graph.values():
        for ref in requisites:
            assert next(iter(ref.values())) in shown, (
                f"{ref} requires a state workstation.launchers does not include"
            )
    return graph


def test_show_sls_lists_the_example_productions_states_with_their_ids_and_requisites(
    make_loaders, tmp_path
):
    pillar = _example_pillar(tmp_path)

    graph = _graph(make_loaders(grains={"os_family": "Debian"}, pillar=pillar))

    productions = pillar["productions"]
    assert {"nightfall", "harbor"} <= set(productions)
    expected = {
        f"workstation-launchers-{name}-launchers-managed": (
            "launchers.managed",
            [
                {"dcc": f"workstation-app-{app}-{version}"}
                for app, version in sorted({**entry["apps"], **entry.get("plugins", {})}.items())
            ],
        )
        for name, entry in sorted(productions.items())
    }
    expected["workstation-launchers-productions-pruned"] = ("launchers.pruned", [])
    expected["workstation-launchers-studio-launch-installed"] = ("launchers.command", [])
    assert graph == expected
    assert graph["workstation-launchers-harbor-launchers-managed"] == (
        "launchers.managed",
        [
            {"dcc": "workstation-app-blender-4.2.3"},
            {"dcc": "workstation-app-houdini-20.0.751"},
            {"dcc": "workstation-app-ocio-2.4.0"},
        ],
    )


def test_show_sls_lays_storage_out_before_the_launchers_that_use_it(make_loaders, tmp_path):
    pillar = _example_pillar(tmp_path)
    pillar["productions"]["nightfall"]["mounts"] = {"projects": copy.deepcopy(SMB)}
    pillar["productions"]["harbor"]["mounts"] = {"plates": copy.deepcopy(NFS)}
    manifest = tmp_path / "studio/productions/.launchers.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "productions": {  # what an earlier apply recorded
                    "harbor": {
                        "outside": [],
                        "mounts": [
                            {"name": "plates", "path": "/mnt/harbor/old", "device": "nas02:/old"}
                        ],
                    },
                    "oldshow": {
                        "outside": [],
                        "mounts": [
                            {"name": "projects", "path": "/mnt/oldshow/p", "device": "nas02:/x"}
                        ],
                    },
                }
            }
        )
    )

    graph = _graph(make_loaders(grains={"os_family": "Debian"}, pillar=pillar))

    clients = {"dcc": "workstation-launchers-mount-clients-installed"}
    credentials = "workstation-launchers-nightfall-mount-projects-credentials-managed"
    storage = {key: value for key, value in graph.items() if "-mount-" in key}
    assert storage == {
        "workstation-launchers-mount-clients-installed": ("dcc.packages_installed", []),
        "workstation-launchers-harbor-mount-plates-unmounted": ("mount.unmounted", []),
        "workstation-launchers-oldshow-mount-projects-unmounted": ("mount.unmounted", []),
        "workstation-launchers-harbor-mount-plates-mounted": ("mount.mounted", [clients]),
        credentials: ("launchers.credentials", []),
        "workstation-launchers-nightfall-mount-projects-mounted": (
            "mount.mounted",
            [clients, {"launchers": credentials}],
        ),
    }
    ids = list(graph)
    assert (
        ids.index("workstation-launchers-harbor-mount-plates-unmounted")
        < ids.index("workstation-launchers-harbor-mount-plates-mounted")
        < ids.index("workstation-launchers-harbor-launchers-managed")
    )
    assert graph["workstation-launchers-harbor-launchers-managed"][1][-1] == {
        "mount": "workstation-launchers-harbor-mount-plates-unmounted"
    }  # released before its launchers change
    assert graph["workstation-launchers-productions-pruned"] == (
        "launchers.pruned",
        [{"mount": "workstation-launchers-oldshow-mount-projects-unmounted"}],
    )
    assert ids[-2:] == [
        "workstation-launchers-productions-pruned",
        "workstation-launchers-studio-launch-installed",
    ]


def test_a_td_extends_the_launchers_of_one_production_by_id(make_loaders, tmp_path):
    """docs/launchers.md's example: a TD's own SLS includes the formula and makes Nightfall's launchers
    wait for the show's pipeline checkout as well; nothing else of the formula changes."""
    loaders = make_loaders(grains={"os_family": "Debian"}, pillar=_example_pillar(tmp_path))
    alone = _graph(loaders)
    td = Path(loaders.opts["file_roots"]["base"][0]) / "nightfall" / "workstation.sls"
    td.parent.mkdir(parents=True)
    td.write_text(
        "include:\n"
        "  - workstation.launchers\n"
        "\n"
        "nightfall-pipeline-config:\n"
        "  git.latest:\n"
        "    - name: https://git.studio.example/nightfall/pipeline-config.git\n"
        "    - target: /opt/studio/config/nightfall\n"
        "\n"
        "extend:\n"
        "  workstation-launchers-nightfall-launchers-managed:\n"
        "    launchers.managed:\n"
        "      - require:\n"
        "        - git: nightfall-pipeline-config\n"
    )

    (td.parent.parent / "top.sls").write_text("base:\n  '*':\n    - nightfall.workstation\n")

    low = (
        loaders.modules.state.show_lowstate()
    )  # the highstate's chunks, extends applied as a run applies them

    assert isinstance(low, list) and all(isinstance(chunk, dict) for chunk in low), low
    chunks = {
        chunk["__id__"]: chunk for chunk in low if chunk["__sls__"] == "workstation.launchers"
    }
    assert set(chunks) == set(alone)
    nightfall = "workstation-launchers-nightfall-launchers-managed"
    assert chunks[nightfall]["require"] == [
        *alone[nightfall][1],
        {"git": "nightfall-pipeline-config"},
    ]
    for state_id, (_function, requisites) in alone.items():
        if state_id != nightfall:
            assert chunks[state_id].get("require", []) == requisites, state_id
