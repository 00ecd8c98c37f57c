"""Launchers, plugin wiring, desktop entries and storage, against real files and real sh launchers.

The apps are stand-ins laid out where the install engine puts them: each launcher
target is a small program that prints its arguments and environment as JSON, so
the tests assert on exactly what an app would receive.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from salt_workstation import config, contract, launchers, paths, pillar
from salt_workstation.errors import UnsafePath, WorkstationError
from salt_workstation.launchers import contract as launchers_contract
from salt_workstation.launchers import effects, plan, render, status
from tests.unit.conftest import snapshot

GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}
FAKE_HASH = "sha256:" + "0" * 64
# A stand-in app: prints what it was started with (less PWD, which sh adds, and LC_CTYPE,
# which Python's locale coercion adds).
STANDIN = f"""#!{sys.executable}
import json, os, sys
env = {{k: v for k, v in os.environ.items() if k not in ("PWD", "LC_CTYPE")}}
print(json.dumps({{"argv": sys.argv[1:], "env": env}}))
"""
TRICKY_ARGUMENTS = [
    "shot 010 v2.hip",
    'it\'s "quoted"',
    "$HOME `id` $(id)",
    "*",
    "",
    "--",
    "a\nb",
    "\\",
]


def _version(launchers_=None, env=None, **extra):
    spec = {"source": "x.tar.gz", "hash": FAKE_HASH, **extra}
    if launchers_:
        spec["launchers"] = launchers_
    if env:
        spec["env"] = env
    return spec


def _plugin(host, host_versions, env=None):
    return _version(env=env, host=host, host_versions=host_versions)


CATALOG = {
    "houdini": {
        "name": "Houdini",
        "versions": {
            "20.5.410": _version(
                {"houdini": "bin/houdini", "hython": "bin/hython"}, {"HFS": "{dest}"}
            ),
            "20.0.751": _version(
                {"houdini": "bin/houdini", "hython": "bin/hython"}, {"HFS": "{dest}"}
            ),
        },
    },
    "maya": {
        "name": "Maya",
        "versions": {
            "2025.3": _version({"maya": "bin/maya"}, {"MAYA_MODULE_PATH": "{dest}/modules"}),
        },
    },
    "nuke": {"name": "Nuke", "versions": {"15.1v3": _version({"nuke": "Nuke15.1"})}},
    "blender": {"name": "Blender", "versions": {"4.2.3": _version({"blender": "blender"})}},
    "ocio": {"versions": {"2.4.0": _version(env={"OCIO": "{dest}/config.ocio"})}},
    "redshift-houdini": {
        "versions": {
            "3.6.05": _plugin("houdini", ["20.5.*"], {"REDSHIFT_COREDATAPATH": "{dest}"}),
            "3.5.22": _plugin("houdini", ["20.0.751"], {"REDSHIFT_COREDATAPATH": "{dest}"}),
        }
    },
    "mtoa": {"versions": {"5.4.5": _plugin("maya", ["2025.*"])}},
    "cryptomatte": {"versions": {"1.4.0": _plugin("nuke", ["15.*"])}},
    "studio-tools": {"versions": {"2.1": _plugin("blender", ["4.2.*"])}},
}

PRODUCTIONS = {
    "nightfall": {
        "apps": {
            "houdini": "20.5.410",
            "maya": "2025.3",
            "nuke": "15.1v3",
            "blender": "4.2.3",
            "ocio": "2.4.0",
        },
        "plugins": {
            "redshift-houdini": "3.6.05",
            "mtoa": "5.4.5",
            "cryptomatte": "1.4.0",
            "studio-tools": "2.1",
        },
        "env": {"SHOW": "nightfall", "JOB": "/mnt/nightfall/projects"},
    },
    "harbor": {
        "apps": {"houdini": "20.0.751", "blender": "4.2.3"},
        "plugins": {"redshift-houdini": "3.5.22"},
        "env": {"SHOW": "harbor", "HARBOR_ONLY": "1"},
    },
}


def studio_config(tmp_path, productions=None, catalog=None, **extra):
    """The merged config of a workstation whose system folders all live in tmp_path."""
    workstation = {
        "install_root": str(tmp_path / "studio"),
        "depot": "/depot",
        "catalog": copy.deepcopy(CATALOG if catalog is None else catalog),
        "productions": copy.deepcopy(PRODUCTIONS if productions is None else productions),
        "lookup": {
            "os": {
                "bin_dir": str(tmp_path / "usr" / "bin"),
                "xdg_data_dir": str(tmp_path / "usr" / "share"),
                "xdg_config_dir": str(tmp_path / "etc" / "xdg"),
                "fstab": str(tmp_path / "etc" / "fstab"),
            }
        },
        **extra,
    }
    return config.load(workstation, GRAINS)


def install_standins(cfg):
    """Lay out every app and plugin version the productions use, each launcher a stand-in."""
    layout = paths.Layout(cfg["install_root"])
    for entry in cfg["productions"].values():
        for section in ("apps", "plugins"):
            for app, version in entry.get(section, {}).items():
                dest = layout.version_dir(app, version)
                dest.mkdir(parents=True, exist_ok=True)
                for target in (
                    cfg["catalog"][app]["versions"][version].get("launchers", {}).values()
                ):
                    (dest / target).parent.mkdir(parents=True, exist_ok=True)
                    (dest / target).write_text(STANDIN)
                    (dest / target).chmod(0o755)


def desired_files(cfg, production, licenses=None):
    return plan.desired_files(cfg, production, licenses, icon=status.find_icon)


def sync(cfg, production, files, test=False):
    """What `launchers.sync` does: compare everything (status), then change what differs (effects)."""
    found = status.pending(cfg, production, files, test=test)
    if not test:
        effects.apply(plan.Settings.from_config(cfg), found, production)
    return found.report()


def prune(cfg, keep, test=False):
    """What `launchers.prune` does: the productions not in `keep` and what they left."""
    found = status.leftovers(cfg, keep, test=test)
    if not test:
        effects.apply(plan.Settings.from_config(cfg), found)
    return found.report().get("removed", [])


def apply(cfg, test=False, licenses=None):
    """What `state.apply workstation.launchers` does: every production, then the removals."""
    changes = {}
    for production in cfg["productions"]:
        found = sync(cfg, production, desired_files(cfg, production, licenses), test=test)
        if found:
            changes[production] = found
    removed = prune(cfg, list(cfg["productions"]), test=test)
    if removed:
        changes["pruned"] = removed
    return changes


def launch(cfg, production, command, *args, env=None):
    """Run the launcher as an artist would, with a plain environment; the stand-in's report."""
    wrapper = plan.Settings.from_config(cfg).production_bin(production) / command
    base = {"PATH": "/usr/bin:/bin", "HOME": "/home/artist"} if env is None else env
    out = subprocess.run(
        [str(wrapper), *args], capture_output=True, text=True, env=base, check=True, timeout=30
    )
    return json.loads(out.stdout)


@pytest.fixture
def studio(tmp_path):
    cfg = studio_config(tmp_path)
    install_standins(cfg)
    apply(cfg)
    return cfg


def test_a_launcher_passes_every_argument_verbatim_and_sets_exactly_the_production_environment(
    studio, tmp_path
):
    report = launch(studio, "nightfall", "houdini", *TRICKY_ARGUMENTS)

    root = tmp_path / "studio"
    assert report["argv"] == TRICKY_ARGUMENTS
    assert report["env"] == {
        "HOME": "/home/artist",
        "PATH": f"{root}/productions/nightfall/bin:/usr/bin:/bin",
        "STUDIO_BASE_PATH": "/usr/bin:/bin",
        "HFS": f"{root}/apps/houdini/20.5.410",
        "OCIO": f"{root}/apps/ocio/2.4.0/config.ocio",
        "REDSHIFT_COREDATAPATH": f"{root}/apps/redshift-houdini/3.6.05",
        "HOUDINI_PACKAGE_DIR": f"{root}/productions/nightfall/plugins/houdini/packages",
        "SHOW": "nightfall",
        "JOB": "/mnt/nightfall/projects",
        "STUDIO_PRODUCTION": "nightfall",
        "STUDIO_APP": "houdini",
        "STUDIO_APP_VERSION": "20.5.410",
        "STUDIO_MANAGED_VARS": "HFS HOUDINI_PACKAGE_DIR JOB OCIO REDSHIFT_COREDATAPATH SHOW STUDIO_APP "
        "STUDIO_APP_VERSION STUDIO_PRODUCTION",
    }
    # hython is the same app: same environment, its own binary
    assert launch(studio, "nightfall", "hython", "-c", "pass")["argv"] == ["-c", "pass"]


def test_env_values_that_look_like_shell_are_kept_literally(tmp_path):
    productions = {
        "nightfall": {
            "apps": {"nuke": "15.1v3"},
            "env": {"NOTE": 'it\'s $HOME `id` "x"\n;*', "EMPTY": ""},
        }
    }
    cfg = studio_config(tmp_path, productions)
    install_standins(cfg)
    apply(cfg)

    env = launch(cfg, "nightfall", "nuke")["env"]

    assert env["NOTE"] == 'it\'s $HOME `id` "x"\n;*'
    assert env["EMPTY"] == ""


def test_two_productions_never_see_each_others_environment_or_plugins(studio, tmp_path):
    harbor = launch(studio, "harbor", "houdini")
    # An artist opens a shell from harbor's Houdini and starts nightfall's Houdini from it.
    nightfall = launch(studio, "nightfall", "houdini", env=harbor["env"])

    root = tmp_path / "studio"
    assert harbor["env"]["HARBOR_ONLY"] == "1"
    assert harbor["env"]["REDSHIFT_COREDATAPATH"] == f"{root}/apps/redshift-houdini/3.5.22"
    assert nightfall["env"] == launch(studio, "nightfall", "houdini")["env"]
    assert "HARBOR_ONLY" not in nightfall["env"]
    assert "harbor" not in json.dumps(nightfall["env"])
    # Blender in harbor has no plugins: nightfall's add-on folder never reaches it.
    assert "BLENDER_SYSTEM_SCRIPTS" not in launch(studio, "harbor", "blender")["env"]
    assert (
        launch(studio, "nightfall", "blender")["env"]["BLENDER_SYSTEM_SCRIPTS"]
        == f"{root}/productions/nightfall/plugins/blender/scripts"
    )


def test_plugins_are_wired_into_each_host_its_own_way(studio, tmp_path):
    root = tmp_path / "studio"
    production = root / "productions" / "nightfall"

    module = (production / "plugins" / "maya" / "modules" / "mtoa.mod").read_text()
    assert module.splitlines()[-1] == f"+ PLATFORM:linux mtoa 5.4.5 {root}/apps/mtoa/5.4.5"
    package = json.loads(
        (production / "plugins" / "houdini" / "packages" / "redshift-houdini.json").read_text()
    )
    assert package == {"hpath": f"{root}/apps/redshift-houdini/3.6.05", "load_package_once": True}
    addon = production / "plugins" / "blender" / "scripts" / "addons" / "studio_tools"
    assert addon.is_symlink() and os.readlink(addon) == f"{root}/apps/studio-tools/2.1"
    # The production's wiring folder first; a path list the app itself sets stays after it.
    assert (
        launch(studio, "nightfall", "maya")["env"]["MAYA_MODULE_PATH"]
        == f"{production}/plugins/maya/modules:{root}/apps/maya/2025.3/modules"
    )
    assert (
        launch(studio, "nightfall", "nuke")["env"]["NUKE_PATH"] == f"{root}/apps/cryptomatte/1.4.0"
    )
    assert not (root / "productions" / "harbor" / "plugins" / "maya").exists()


def test_license_servers_are_joined_and_the_production_env_has_the_last_word(tmp_path):
    productions = copy.deepcopy(PRODUCTIONS)
    productions["nightfall"]["env"]["foundry_LICENSE"] = "4101@show-pool"
    cfg = studio_config(tmp_path, productions)
    install_standins(cfg)
    served = {
        ("houdini", "20.5.410"): {"SESI_LMHOST": "lic01"},
        ("redshift-houdini", "3.6.05"): {"RLM_LICENSE": "5053@lic02"},
        ("nuke", "15.1v3"): {"foundry_LICENSE": "4101@lic03", "PATH": "/evil"},
    }
    apply(cfg, licenses=lambda app, version: served.get((app, version), {}))

    houdini = launch(cfg, "nightfall", "houdini")["env"]
    nuke = launch(cfg, "nightfall", "nuke")["env"]

    assert (houdini["SESI_LMHOST"], houdini["RLM_LICENSE"]) == ("lic01", "5053@lic02")
    assert nuke["foundry_LICENSE"] == "4101@show-pool"
    assert nuke["PATH"].endswith(":/usr/bin:/bin")  # a license module cannot take PATH over
    assert plan.merge_license_environments(
        [{"RLM_LICENSE": "5053@a"}, {"RLM_LICENSE": "5053@b"}, {"RLM_LICENSE": "5053@a"}]
    ) == {"RLM_LICENSE": "5053@a:5053@b"}


def test_a_dry_run_predicts_the_real_run_exactly_and_a_second_run_changes_nothing(tmp_path):
    cfg = studio_config(tmp_path)
    install_standins(cfg)
    before = sorted(str(p) for p in tmp_path.rglob("*"))

    predicted = apply(cfg, test=True)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before, "test=True wrote something"
    real = apply(cfg)
    again = apply(cfg)

    assert predicted == real
    assert again == {}
    written = real["nightfall"]["written"]
    assert str(tmp_path / "usr/share/applications/workstation-nightfall-houdini.desktop") in written
    assert str(tmp_path / "etc/xdg/menus/applications-merged/workstation-nightfall.menu") in written
    # one desktop entry per app (its main command), none for hython
    assert not any("hython.desktop" in path for path in written)
    wrapper = tmp_path / "studio/productions/nightfall/bin/houdini"
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755


def test_a_changed_or_damaged_file_is_rewritten_and_reported(studio, tmp_path):
    wrapper = tmp_path / "studio/productions/nightfall/bin/nuke"
    wrapper.write_text("#!/bin/sh\necho tampered\n")
    wrapper.chmod(0o777)
    stray = tmp_path / "studio/productions/nightfall/bin/old-tool"
    stray.write_text("#!/bin/sh\n")

    dry = apply(studio, test=True)
    real = apply(studio)

    assert dry == real == {"nightfall": {"written": [str(wrapper)], "removed": [str(stray)]}}
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755 and "tampered" not in wrapper.read_text()


def test_an_app_leaving_a_production_takes_its_launchers_desktop_entry_and_wiring(studio, tmp_path):
    smaller = copy.deepcopy(studio)
    del smaller["productions"]["nightfall"]["apps"]["maya"]
    del smaller["productions"]["nightfall"]["plugins"]["mtoa"]

    dry = apply(smaller, test=True)
    real = apply(smaller)

    production = tmp_path / "studio/productions/nightfall"
    assert dry == real
    assert set(real["nightfall"]["removed"]) == {
        str(production / "bin/maya"),
        str(production / "plugins/maya/modules/mtoa.mod"),
        str(tmp_path / "usr/share/applications/workstation-nightfall-maya.desktop"),
    }
    assert not (production / "plugins" / "maya").exists()  # emptied folders go too
    assert apply(smaller) == {}


def test_a_production_leaving_the_pillar_leaves_nothing_behind_and_the_other_keeps_everything(
    studio, tmp_path
):
    harbor_files = sorted(p for p in (tmp_path / "studio/productions/harbor").rglob("*"))
    only_harbor = copy.deepcopy(studio)
    del only_harbor["productions"]["nightfall"]

    dry = apply(only_harbor, test=True)
    real = apply(only_harbor)

    assert dry == real
    assert real["pruned"] == sorted(
        [
            str(tmp_path / "studio/productions/nightfall"),
            *(
                str(tmp_path / f"usr/share/applications/workstation-nightfall-{app}.desktop")
                for app in ("blender", "houdini", "maya", "nuke")
            ),
            str(tmp_path / "usr/share/desktop-directories/workstation-nightfall.directory"),
            str(tmp_path / "etc/xdg/menus/applications-merged/workstation-nightfall.menu"),
        ]
    )
    assert not any("nightfall" in p.name for p in (tmp_path / "usr").rglob("*"))
    assert sorted(p for p in (tmp_path / "studio/productions/harbor").rglob("*")) == harbor_files
    assert set(status.read_manifest(plan.Settings.from_config(only_harbor))) == {"harbor"}
    assert apply(only_harbor) == {}


def test_prune_never_touches_a_folder_it_did_not_write(studio, tmp_path):
    foreign = tmp_path / "studio/productions/handmade"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")

    apply(studio)

    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None,
    reason="desktop-file-validate is not installed (apt-get install desktop-file-utils)",
)
def test_desktop_entries_and_menu_folders_are_valid(tmp_path):
    cfg = studio_config(tmp_path, install_root=str(tmp_path / "my studio"))
    install_standins(cfg)
    (Path(cfg["install_root"]) / "apps/houdini/20.5.410/houdini.svg").write_text("<svg/>")
    apply(cfg)
    share = tmp_path / "usr/share"
    files = sorted((share / "applications").glob("*.desktop")) + sorted(
        (share / "desktop-directories").glob("*")
    )

    checked = subprocess.run(
        ["desktop-file-validate", *map(str, files)], capture_output=True, text=True
    )

    assert len(files) == 6 + 2
    assert checked.returncode == 0 and "error" not in checked.stdout, checked.stdout
    assert "hint" not in checked.stdout, checked.stdout  # e.g. no registered main category
    entry = (share / "applications/workstation-nightfall-houdini.desktop").read_text()
    assert "Name=Nightfall — Houdini 20.5.410\n" in entry
    assert f'Exec="{tmp_path}/my studio/productions/nightfall/bin/houdini" %F\n' in entry
    assert f"Icon={tmp_path}/my studio/apps/houdini/20.5.410/houdini.svg\n" in entry
    assert (
        "Icon=applications-graphics\n"
        in (share / "applications/workstation-harbor-houdini.desktop").read_text()
    )
    assert "Categories=Graphics;X-Workstation-nightfall;\n" in entry
    menu = (tmp_path / "etc/xdg/menus/applications-merged/workstation-nightfall.menu").read_text()
    assert "<Include><Category>X-Workstation-nightfall</Category></Include>" in menu


def test_studio_launch_lists_starts_and_prints_the_environment(studio, tmp_path):
    command = tmp_path / "usr/bin/studio-launch"
    entry = plan.Entry(render.studio_launch(str(tmp_path / "studio/productions")).encode(), 0o755)
    assert not status.matches(command, entry)
    effects.write_entry(command, entry)
    assert status.matches(command, entry)
    env = {"PATH": "/usr/bin:/bin"}

    def run(*args):
        return subprocess.run(
            [str(command), *args], capture_output=True, text=True, env=env, timeout=30
        )

    listing = run().stdout
    started = json.loads(run("nightfall", "houdini", "--", "shot 010.hip", "--").stdout)
    printed = run("--env", "harbor", "houdini").stdout
    missing = run("nightfall", "photoshop")
    escape = run("..", "houdini")

    assert listing.splitlines()[0] == "harbor"
    assert "  houdini        houdini 20.0.751 for harbor" in listing
    assert "  hython         houdini 20.5.410 for nightfall" in listing
    assert started["argv"] == ["shot 010.hip", "--"]
    assert started["env"]["STUDIO_PRODUCTION"] == "nightfall"
    assert "STUDIO_LAUNCH_PRINT_ENV" not in started["env"]
    assert "HARBOR_ONLY=1" in printed.splitlines() and "SHOW=harbor" in printed.splitlines()
    assert f"PATH={tmp_path}/studio/productions/harbor/bin:/usr/bin:/bin" in printed.splitlines()
    assert missing.returncode == 127 and "nightfall has no app photoshop" in missing.stderr
    assert escape.returncode == 2


def test_an_os_package_command_is_found_on_the_artists_path(tmp_path):
    catalog = {
        "dcv": {
            "versions": {
                "2024.0-1": {
                    "kind": "packages",
                    "packages": {"nice-dcv-viewer": "2024.0-1"},
                    "launchers": {"dcvviewer": "dcvviewer"},
                }
            }
        }
    }
    cfg = studio_config(tmp_path, {"remote": {"apps": {"dcv": "2024.0-1"}}}, catalog)
    apply(cfg)
    system_bin = tmp_path / "system-bin"
    system_bin.mkdir()
    (system_bin / "dcvviewer").write_text(STANDIN)
    (system_bin / "dcvviewer").chmod(0o755)

    report = launch(cfg, "remote", "dcvviewer", "a b", env={"PATH": f"{system_bin}:/usr/bin:/bin"})
    gone = subprocess.run(
        [str(tmp_path / "studio/productions/remote/bin/dcvviewer")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )

    assert report["argv"] == ["a b"] and report["env"]["STUDIO_APP"] == "dcv"
    assert gone.returncode == 127 and "dcvviewer is not installed" in gone.stderr


# ---- validation ---------------------------------------------------------------------


def _issues(cfg):
    return {issue.path: issue.message for issue in launchers.check(cfg)}


def test_a_plugin_built_for_another_host_version_names_both_versions_and_both_paths(tmp_path):
    productions = copy.deepcopy(PRODUCTIONS)
    productions["harbor"]["plugins"]["redshift-houdini"] = (
        "3.6.05"  # built for 20.5, harbor runs 20.0.751
    )

    issues = _issues(studio_config(tmp_path, productions))

    assert list(issues) == ["workstation:productions:harbor:plugins:redshift-houdini"]
    message = issues["workstation:productions:harbor:plugins:redshift-houdini"]
    assert "redshift-houdini 3.6.05 supports houdini 20.5.*" in message
    assert "workstation:catalog:redshift-houdini:versions:3.6.05:host_versions" in message
    assert "harbor uses houdini 20.0.751 (workstation:productions:harbor:apps:houdini)" in message


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda c: c["productions"]["nightfall"]["env"].update(PATH="/x"),
            "workstation:productions:nightfall:env:PATH",
            "set by the launcher",
        ),
        (
            lambda c: c["productions"]["nightfall"]["env"].update({"BAD-NAME": "x"}),
            "workstation:productions:nightfall:env:BAD-NAME",
            "not a valid environment variable name",
        ),
        (
            lambda c: c["productions"]["nightfall"]["env"].update(FRAMES=24),
            "workstation:productions:nightfall:env:FRAMES",
            "quote it",
        ),
        (
            lambda c: c["productions"]["harbor"].update(plugins={"mtoa": "5.4.5"}),
            "workstation:productions:harbor:plugins:mtoa",
            "harbor has no maya",
        ),
        (
            lambda c: c["productions"]["harbor"].update(plugins={"ocio": "2.4.0"}),
            "workstation:productions:harbor:plugins:ocio",
            "is not a plugin",
        ),
        (
            lambda c: c["productions"]["harbor"].update(plugins={"redshift-houdini": "9.9"}),
            "workstation:productions:harbor:plugins:redshift-houdini",
            "is not in workstation:catalog:redshift-houdini",
        ),
        (
            lambda c: c["productions"]["harbor"]["apps"].update({"mtoa": "5.4.5"}),
            "workstation:productions:harbor:apps:mtoa",
            "list it under workstation:productions:harbor:plugins",
        ),
        (
            lambda c: c["catalog"]["mtoa"]["versions"]["5.4.5"].update(host="3dsmax"),
            "workstation:catalog:mtoa:versions:5.4.5:host",
            "one of maya, houdini, nuke, blender",
        ),
        (
            lambda c: c["catalog"]["mtoa"]["versions"]["5.4.5"].update(host_versions="2025"),
            "workstation:catalog:mtoa:versions:5.4.5:host_versions",
            "globs",
        ),
        (
            lambda c: c["catalog"]["mtoa"]["versions"]["5.4.5"].update(launchers={"x": "x"}),
            "workstation:catalog:mtoa:versions:5.4.5:launchers",
            "not launched",
        ),
        (
            lambda c: c["catalog"]["nuke"]["versions"]["15.1v3"].update(env={"STUDIO_APP": "x"}),
            "workstation:catalog:nuke:versions:15.1v3:env:STUDIO_APP",
            "set by the launcher",
        ),
        (
            lambda c: c["productions"]["nightfall"]["env"].update(BLENDER_SYSTEM_SCRIPTS="/x"),
            "workstation:productions:nightfall:env:BLENDER_SYSTEM_SCRIPTS",
            "has Blender plugins",
        ),
        (
            lambda c: (
                c["catalog"].update(hou2={"versions": {"1": _version({"houdini": "h"})}}),
                c["productions"]["harbor"]["apps"].update(hou2="1"),
            ),
            "workstation:productions:harbor:apps:houdini",
            "command houdini comes from both hou2 and houdini",
        ),
    ],
)
def test_each_pillar_error_names_its_path_and_the_fix(tmp_path, change, path, words):
    cfg = studio_config(tmp_path)
    change(cfg)

    issues = _issues(cfg)

    assert path in issues, issues
    assert words in issues[path]
    assert launchers.check(studio_config(tmp_path)) == []


SMB = {
    "type": "smb",
    "device": "//nas01/nightfall",
    "path": "/mnt/nightfall/projects",
    "options": ["vers=3.0"],
    "credentials": {"username": "render", "password": "s3cr3t-Pa55", "domain": "STUDIO"},
}
NFS = {
    "type": "nfs",
    "device": "nas02:/export/harbor",
    "path": "/mnt/harbor/projects",
    "options": ["vers=4.2"],
}


def _with_mounts(tmp_path, nightfall=None, harbor=None, **extra):
    productions = copy.deepcopy(PRODUCTIONS)
    productions["nightfall"]["mounts"] = (
        nightfall if nightfall is not None else {"projects": copy.deepcopy(SMB)}
    )
    productions["harbor"]["mounts"] = (
        harbor if harbor is not None else {"projects": copy.deepcopy(NFS)}
    )
    return studio_config(tmp_path, productions, **extra)


@pytest.mark.parametrize(
    ("mount", "path", "words"),
    [
        ({**NFS, "type": "afp"}, "type", "one of nfs, smb"),
        ({**NFS, "device": "/dev/sdb1"}, "device", "server:/export/path"),
        ({**SMB, "device": "nas01:/x"}, "device", "//server/share"),
        ({**NFS, "path": "relative/x"}, "path", "absolute"),
        ({**NFS, "path": "/usr"}, "path", "system folder"),
        ({**NFS, "options": ["rw,hard"]}, "options", "without spaces or commas"),
        ({**SMB, "options": ["password=s3cr3t-Pa55"]}, "options", "must not hold credentials"),
        (
            {**NFS, "credentials": {"username": "u", "password": "s3cr3t-Pa55"}},
            "credentials",
            "only smb",
        ),
        (
            {**SMB, "credentials": {"username": "render", "password": ["s3cr3t-Pa55"]}},
            "credentials:password",
            "required",
        ),
        ({**SMB, "credentails": {}}, "credentails", "did you mean 'credentials'"),
    ],
)
def test_mount_errors_name_their_path_and_never_echo_a_secret(tmp_path, mount, path, words):
    cfg = _with_mounts(tmp_path, harbor={"projects": mount})

    issues = _issues(cfg)

    full = f"workstation:productions:harbor:mounts:projects:{path}"
    assert full in issues, issues
    assert words in issues[full]
    assert "s3cr3t-Pa55" not in json.dumps(issues)


def test_a_mount_point_shared_by_two_productions_fails_both(tmp_path):
    cfg = _with_mounts(
        tmp_path, harbor={"projects": {**NFS, "path": "/mnt/nightfall/projects/harbor"}}
    )

    issues = _issues(cfg)

    assert (
        "inside the mount point of workstation:productions:nightfall:mounts:projects:path"
        in issues["workstation:productions:harbor:mounts:projects:path"]
    )
    assert (
        "workstation:productions:nightfall:mounts:projects:path" not in issues
    )  # the outer one is fine
    valid, broken = plan.mounts(cfg, "harbor")
    assert valid == [] and broken == {"projects"}
    assert (
        launchers_contract.production_issues(cfg, "harbor") == []
    )  # a wrong mount does not stop the launchers


# ---- storage and the formula's data ----------------------------------------------------


def _data(cfg, manifest=None):
    return plan.formula(cfg, manifest or {})


def _production(data, name):
    return next(production for production in data["productions"] if production["name"] == name)


def test_an_empty_mount_packages_installs_no_storage_client_but_still_mounts(tmp_path):
    cfg = _with_mounts(tmp_path)
    workstation = {key: cfg[key] for key in ("install_root", "depot", "catalog", "productions")}
    workstation["lookup"] = {"os": {**cfg["os"], "mount_packages": {}}}
    cfg = config.load(workstation, GRAINS)

    data = _data(cfg)

    assert data["storage"] is True and data["mount_clients"] == {}
    assert [m["name"] for m in _production(data, "harbor")["mounts"]] == ["projects"]


def ensure_credentials(cfg, production, mount, test):
    """What `launchers.credentials` does; True when the file was (or would be) changed."""
    settings = plan.Settings.from_config(cfg)
    path = settings.credentials_file(production, mount)
    entry = plan.credentials_entry(cfg, production, mount)
    if status.credentials_current(settings, path, entry):
        return False
    if not test:
        effects.write_credentials(settings, path, entry)
    return True


def test_the_formula_data_mounts_each_production_storage_with_network_options(tmp_path):
    cfg = _with_mounts(tmp_path)

    data = _data(cfg)

    assert data["mount_clients"] == {"cifs-utils": None, "nfs-common": None}
    credentials = str(tmp_path / "studio/productions/nightfall/.secrets/projects.credentials")
    assert _production(data, "nightfall")["mounts"] == [
        {
            "name": "projects",
            "path": "/mnt/nightfall/projects",
            "device": "//nas01/nightfall",
            "fstype": "cifs",
            "options": ["_netdev", "nofail", "vers=3.0", f"credentials={credentials}"],
            "credentials": True,
            "credentials_file": credentials,
            "fstab": "//nas01/nightfall /mnt/nightfall/projects cifs "
            f"_netdev,nofail,vers=3.0,credentials={credentials} 0 0",
        }
    ]
    assert SMB["credentials"]["password"] not in json.dumps(data)
    assert _production(data, "harbor")["mounts"][0]["credentials"] is False
    assert (data["mount_now"], data["fstab"]) == (True, str(tmp_path / "etc/fstab"))
    # its apps' and its plugin's installs, each a state of the apps SLS (workstation-app-<app>-<version>)
    installs = {(wanted.app, wanted.version) for wanted in pillar.wanted_versions(cfg)}
    uses = {(use["app"], use["version"]) for use in _production(data, "harbor")["uses"]}
    assert (
        uses
        == {("blender", "4.2.3"), ("houdini", "20.0.751"), ("redshift-houdini", "3.5.22")}
        <= installs
    )
    assert "s3cr3t-Pa55" not in json.dumps(data)
    assert _data(_with_mounts(tmp_path, phase="bake"))["mount_now"] is False


def test_released_mounts_are_unmounted_before_launchers_and_removal(tmp_path):
    previous = {
        "nightfall": {
            "outside": [],
            "mounts": [{"name": "projects", "path": "/mnt/nightfall/old", "device": "//a/b"}],
        },
        "gone": {
            "outside": [],
            "mounts": [{"name": "plates", "path": "/mnt/gone/plates", "device": "n:/p"}],
        },
    }
    data = _data(_with_mounts(tmp_path), previous)

    gone = {"production": "gone", "name": "plates", "path": "/mnt/gone/plates", "device": "n:/p"}
    assert data["released"] == [
        gone,
        {
            "production": "nightfall",
            "name": "projects",
            "path": "/mnt/nightfall/old",
            "device": "//a/b",
        },
    ]
    assert _production(data, "nightfall")["released"] == [
        "projects"
    ]  # its launchers wait for the unmount
    assert _production(data, "harbor")["released"] == []
    assert data["released_by_gone"] == [
        gone
    ]  # the removal of what `gone` left waits for its unmount
    assert (data["keep"], data["productions_dir"]) == (
        ["harbor", "nightfall"],
        str(tmp_path / "studio/productions"),
    )
    assert data["studio_launch"] is True and data["command"] == str(
        tmp_path / "usr/bin/studio-launch"
    )


def test_a_wrong_mount_entry_or_production_releases_nothing(tmp_path):
    previous = {
        "harbor": {
            "outside": [],
            "mounts": [
                {
                    "name": "projects",
                    "path": "/mnt/harbor/projects",
                    "device": "nas02:/export/harbor",
                }
            ],
        }
    }
    typo = _with_mounts(tmp_path, harbor={"projects": {**NFS, "optoins": []}})
    broken_production = _with_mounts(tmp_path)
    broken_production["productions"]["harbor"] = "oops"

    for cfg in (typo, broken_production):
        data = _data(cfg, previous)
        assert data["released"] == [] and data["usable"] is True
        assert "harbor" in data["keep"]
    assert plan.mount_records(typo, "harbor", previous["harbor"]) == previous["harbor"]["mounts"]
    broken_root = _data(studio_config(tmp_path, install_root="relative"), previous)
    assert broken_root["usable"] is False and not broken_root["studio_launch"]
    assert broken_root["productions"] == broken_root["released"] == []


def test_the_credentials_file_is_0600_in_a_0700_folder(tmp_path):
    cfg = _with_mounts(tmp_path)
    path = plan.Settings.from_config(cfg).credentials_file("nightfall", "projects")

    assert ensure_credentials(cfg, "nightfall", "projects", test=True) and not path.exists()
    assert ensure_credentials(cfg, "nightfall", "projects", test=False)
    assert not ensure_credentials(cfg, "nightfall", "projects", test=False)
    path.parent.chmod(0o755)
    assert ensure_credentials(
        cfg, "nightfall", "projects", test=False
    )  # an opened folder is closed again

    assert path.read_text() == "username=render\npassword=s3cr3t-Pa55\ndomain=STUDIO\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # the launchers keep it while the mount is wanted, and drop it once it is not
    install_standins(cfg)
    assert "removed" not in apply(cfg).get("nightfall", {})
    assert path.exists()
    del cfg["productions"]["nightfall"]["mounts"]
    assert apply(cfg)["nightfall"]["removed"] == [str(path)]
    assert not path.parent.exists()


def test_a_mount_is_remembered_even_when_the_launchers_could_not_be_written(tmp_path):
    cfg = _with_mounts(tmp_path)
    settings = plan.Settings.from_config(cfg)

    # Only the removal step ran (the launchers of both productions failed on an install).
    assert (
        status.leftovers(cfg, list(cfg["productions"])).manifest is not None
    )  # something to record
    prune(cfg, list(cfg["productions"]), test=False)
    remembered = status.read_manifest(settings)
    del cfg["productions"]["harbor"]
    released = _data(cfg, remembered)["released"]

    assert remembered["harbor"]["mounts"] == [
        {"name": "projects", "path": "/mnt/harbor/projects", "device": "nas02:/export/harbor"}
    ]
    assert [(r["production"], r["path"]) for r in released] == [("harbor", "/mnt/harbor/projects")]
    assert prune(cfg, list(cfg["productions"]), test=False) == []  # nothing of harbor was on disk
    assert set(status.read_manifest(settings)) == {"nightfall"}
    assert (
        status.leftovers(cfg, list(cfg["productions"])).manifest is None
    )  # and nothing more to record


def test_a_machine_without_productions_gets_no_studio_launch(tmp_path):
    assert _data(studio_config(tmp_path, productions={}))["studio_launch"] is False
    assert _data(
        studio_config(tmp_path, productions={}), {"harbor": {"outside": [], "mounts": []}}
    )["studio_launch"]


# ---- what it did not write: links and folders in the way, names that are not one file name (#11) ---


def _someone_elses(tmp_path) -> Path:
    """A folder the launchers must never write into or remove from, with a file in it."""
    victim = tmp_path / "someone-elses"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    return victim


@pytest.mark.parametrize(
    "planted", ["nightfall", "nightfall/bin", "nightfall/plugins", "nightfall/.secrets"]
)
def test_a_link_planted_at_a_production_folder_fails_the_run_and_is_never_followed(
    tmp_path, planted
):
    cfg = studio_config(tmp_path)
    install_standins(cfg)
    victim = _someone_elses(tmp_path)
    place = tmp_path / "studio/productions" / planted
    place.parent.mkdir(parents=True, exist_ok=True)
    place.symlink_to(victim)
    before = snapshot(victim)
    files = desired_files(cfg, "nightfall")

    for test in (True, False):
        with pytest.raises(UnsafePath, match=f"{place} is a symlink"):
            sync(cfg, "nightfall", files, test=test)

    assert snapshot(victim) == before
    assert place.is_symlink() and os.readlink(place) == str(victim)
    assert not (tmp_path / "usr").exists()  # nothing of the production was written anywhere


def test_a_link_planted_where_a_gone_production_folder_was_fails_the_prune_and_removes_nothing(
    studio, tmp_path
):
    production = tmp_path / "studio/productions/harbor"
    shutil.rmtree(production)
    victim = _someone_elses(tmp_path)
    (victim / "bin").mkdir()
    production.symlink_to(victim)
    before = snapshot(victim)
    desktop = tmp_path / "usr/share/applications/workstation-harbor-houdini.desktop"
    only_nightfall = copy.deepcopy(studio)
    del only_nightfall["productions"]["harbor"]

    for test in (True, False):
        with pytest.raises(UnsafePath, match=f"{production} is a symlink"):
            prune(only_nightfall, ["nightfall"], test=test)

    assert snapshot(victim) == before and production.is_symlink()
    assert desktop.exists()  # every folder is checked before anything is removed
    assert "harbor" in status.read_manifest(plan.Settings.from_config(studio))


def test_a_link_planted_at_a_desktop_entry_is_replaced_and_what_it_points_to_survives(tmp_path):
    cfg = studio_config(tmp_path)
    install_standins(cfg)
    entry = tmp_path / "usr/share/applications/workstation-nightfall-houdini.desktop"
    entry.parent.mkdir(parents=True)
    victim = _someone_elses(tmp_path) / "notes.txt"
    entry.symlink_to(victim)

    apply(cfg)

    assert not entry.is_symlink() and "Exec=" in entry.read_text()
    assert victim.read_text() == "mine"


def test_a_folder_where_a_launcher_belongs_is_refused_and_nothing_is_changed(studio, tmp_path):
    wrapper = tmp_path / "studio/productions/nightfall/bin/nuke"
    wrapper.unlink()
    wrapper.mkdir()
    (wrapper / "notes.txt").write_text("mine")
    stray = wrapper.parent / "old-tool"
    stray.write_text("#!/bin/sh\n")

    for test in (True, False):
        with pytest.raises(
            WorkstationError, match=f"{wrapper} is a folder; .*Move the folder aside"
        ):
            sync(studio, "nightfall", desired_files(studio, "nightfall"), test=test)

    assert (wrapper / "notes.txt").read_text() == "mine"
    assert stray.exists()  # the run stopped before it removed anything


@pytest.mark.parametrize("command", ["..", ".", "a/b"])
def test_a_launcher_command_that_is_not_one_file_name_stops_its_production(
    studio, tmp_path, command
):
    """Before: a catalog command '..' passed the launchers' checks, and bin/.. (the production's
    folder) was removed with the files put there by hand; '.' turned bin into a file."""
    cfg = copy.deepcopy(studio)
    cfg["catalog"]["nuke"]["versions"]["15.1v3"]["launchers"] = {command: "Nuke15.1"}
    path = f"workstation:catalog:nuke:versions:15.1v3:launchers:{command}"

    stopping = {
        issue.path: issue.message
        for issue in launchers_contract.production_issues(cfg, "nightfall")
    }

    assert list(stopping) == [path] and "they become folder and file names" in stopping[path]
    assert path in {issue.path for issue in contract.validate(cfg)}
    assert launchers_contract.production_issues(cfg, "harbor") == []  # harbor has no nuke
    with pytest.raises(UnsafePath, match="launcher command"):  # and the file layer's own check
        desired_files(cfg, "nightfall")


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_a_plugin_name_that_is_not_one_file_name_is_reported_at_its_path(tmp_path, name):
    productions = copy.deepcopy(PRODUCTIONS)
    productions["harbor"]["plugins"][name] = "1.0"
    path = f"workstation:productions:harbor:plugins:{name}"

    issues = {
        issue.path: issue.message
        for issue in contract.validate(studio_config(tmp_path, productions))
    }

    assert path in issues, issues
    assert (
        issues[path].startswith("plugin names are lower case letters")
        and "folder and file names" in issues[path]
    )
