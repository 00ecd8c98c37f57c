"""docs/install.md, followed: build the wheel, install it into a fresh virtualenv, see Salt list the
extension, and apply the formula masterless from it.

Offline by design: the fresh venv installs our wheel with --no-index, and finds Salt and the
other dependencies through a .pth file pointing at this venv's site-packages (what a studio's
Salt already has). The extension it runs is the wheel's copy, which the test checks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from salt_workstation import __version__
from tests.support import archives
from tests.support.masterless import minion_config, system_paths_under
from tests.system.rootfs import REPO, extension_sources

SALT_CALL = "import sys; from salt.scripts import salt_call; sys.argv[0] = 'salt-call'; salt_call()"


def build_wheel(out):
    """pip wheel --no-deps of a clean copy of the files the extension is built from."""
    source = out / "source"
    for relative in extension_sources():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, source / relative)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--wheel-dir",
            str(out / "dist"),
            str(source),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    (wheel,) = (out / "dist").glob("salt_workstation-*.whl")
    return wheel


def fresh_venv(path, wheel):
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Salt and the other dependencies: this venv's, as a studio's Salt already has them.
    (Path(fresh_site) / "studio-salt.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_installs_into_a_fresh_venv_is_listed_and_applies_masterless(tmp_path):
    wheel = build_wheel(tmp_path / "build")
    python = fresh_venv(tmp_path / "fresh", wheel)

    # From the test's folder: `python -c` puts the working folder first on sys.path, and the
    # checkout's own package must not stand in for the wheel's.
    where = subprocess.run(
        [str(python), "-c", "import salt_workstation; print(salt_workstation.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert str(tmp_path / "fresh") in where  # the wheel's copy, not this checkout

    archive = archives.write_tar(
        tmp_path / "depot" / "tool" / "tool-1.0.tar.gz",
        archives.app_files("tool", "1.0"),
        top="tool-1.0",
    )
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    (pillar_root / "workstation.sls").write_text(
        yaml.safe_dump(
            {
                "workstation": {
                    "install_root": str(tmp_path / "studio"),
                    "depot": str(tmp_path / "depot"),
                    "catalog": {
                        "tool": {
                            "versions": {
                                "1.0": {
                                    "source": "tool/tool-1.0.tar.gz",
                                    "hash": archives.sha256_of(archive),
                                    "strip_components": 1,
                                    "launchers": {"tool": "bin/tool"},
                                }
                            }
                        }
                    },
                    "productions": {"demo": {"apps": {"tool": "1.0"}}},
                    "lookup": system_paths_under(tmp_path / "system"),
                }
            }
        )
    )
    config = minion_config(tmp_path / "etc", "ws-fresh-1", pillar_root)

    def salt_call(*args):
        return subprocess.run(
            [str(python), "-c", SALT_CALL, "--local", "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )

    report = salt_call("--versions-report")
    applied = salt_call("--out=json", "state.apply", "workstation")

    assert f"salt-workstation: {__version__}" in report.stdout, report.stdout + report.stderr
    assert applied.returncode == 0, applied.stdout + applied.stderr
    states = json.loads(applied.stdout)["local"]
    assert all(state["result"] is True for state in states.values())
    assert (tmp_path / "studio" / "apps" / "tool" / "1.0" / "bin" / "tool").is_file()
