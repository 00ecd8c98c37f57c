"""Per-production launchers through a real master and minion: the example productions with env, a
Houdini plugin and studio-launch, a dry run that predicts the real one, and a production leaving."""

from __future__ import annotations

import json
import subprocess

from tests.support import archives
from tests.support.catalog import build_source
from tests.support.states import by_id, changed, failed

PLUGIN = ("redshift-houdini", "3.6.05")


def _pillar(workstation, tmp_path):
    """The example pillar, every system folder in tmp_path, env per production and a Houdini plugin."""
    name, version = PLUGIN
    source = f"plugins/{name}-{version}.tar.gz"
    spec = {
        "source": source,
        "strip_components": 1,
        "host": "houdini",
        "host_versions": ["20.5.*"],
        "env": {"REDSHIFT_COREDATAPATH": "{dest}"},
    }
    target = workstation.depot.root / source
    if not target.exists():
        build_source(target, name, version, {})
    spec["hash"] = archives.sha256_of(target)
    pillar = workstation.pillar(
        lookup={
            "os": {
                "bin_dir": str(tmp_path / "usr/bin"),
                "xdg_data_dir": str(tmp_path / "usr/share"),
                "xdg_config_dir": str(tmp_path / "etc/xdg"),
                "fstab": str(tmp_path / "etc/fstab"),
            }
        }
    )
    pillar["catalog"][name] = {"versions": {version: spec}}
    nightfall, harbor = pillar["productions"]["nightfall"], pillar["productions"]["harbor"]
    nightfall["env"] = {"SHOW": "nightfall", "JOB": "/mnt/nightfall/projects"}
    nightfall["plugins"] = {name: version}
    nightfall["apps"][name] = (
        version  # installed by the apps states until they install plugins themselves
    )
    harbor["env"] = {"SHOW": "harbor"}
    return pillar


def _launcher_states(data):
    return {
        key: state for key, state in by_id(data).items() if key.startswith("workstation-launchers-")
    }


def test_launchers_predicted_written_started_and_removed_with_their_production(
    workstation, tmp_path
):
    pillar = _pillar(workstation, tmp_path)
    workstation.set_pillar(pillar)
    studio_launch = tmp_path / "usr/bin/studio-launch"

    predicted = workstation.apply("test=True")
    assert not studio_launch.exists() and not (tmp_path / "usr/share").exists(), (
        "test=True wrote something"
    )
    real = workstation.apply()
    again = workstation.apply()

    assert failed(real) == {}
    assert {key: state["changes"] for key, state in _launcher_states(predicted).items()} == {
        key: state["changes"] for key, state in _launcher_states(real).items()
    }
    assert set(changed(_launcher_states(real))) == {
        "workstation-launchers-nightfall-launchers-managed",
        "workstation-launchers-harbor-launchers-managed",
        "workstation-launchers-studio-launch-installed",
    }
    assert changed(again) == {}

    out = subprocess.run(
        [str(studio_launch), "nightfall", "houdini", "--", "shot 010.hip", 'it\'s "x"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    # the example depot's Houdini prints its command, version and arguments
    assert out.stdout.strip() == 'houdini 20.5.410 shot 010.hip it\'s "x"'
    env = dict(
        line.split("=", 1)
        for line in subprocess.run(
            [str(studio_launch), "--env", "nightfall", "houdini"],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        ).stdout.splitlines()
    )
    production = workstation.install_root / "productions" / "nightfall"
    assert env["SHOW"] == "nightfall"
    assert env["HOUDINI_PACKAGE_DIR"] == str(production / "plugins/houdini/packages")
    assert env["REDSHIFT_COREDATAPATH"] == str(workstation.version_dir(*PLUGIN))
    package = json.loads(
        (production / "plugins/houdini/packages/redshift-houdini.json").read_text()
    )
    assert package["hpath"] == str(workstation.version_dir(*PLUGIN))

    del pillar["productions"]["harbor"]
    workstation.set_pillar(pillar)
    gone = by_id(workstation.apply())

    removed = gone["workstation-launchers-productions-pruned"]["changes"]["removed"]
    assert str(workstation.install_root / "productions/harbor") in removed
    assert str(tmp_path / "usr/share/applications/workstation-harbor-houdini.desktop") in removed
    assert not (workstation.install_root / "productions/harbor").exists()
    assert gone["workstation-launchers-nightfall-launchers-managed"]["changes"] == {}
    listing = subprocess.run(
        [str(studio_launch)], capture_output=True, text=True, check=True
    ).stdout
    assert listing.startswith("nightfall\n") and "harbor" not in listing
