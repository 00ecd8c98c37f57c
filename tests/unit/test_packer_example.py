"""examples/packer: the template validates with Debian's Packer (1.6.6), and what it uploads is what
a bake needs: a masterless minion config, a phase-bake pillar the contract accepts, a bake script."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from salt_workstation import config, contract

PACKER = Path(__file__).resolve().parents[2] / "examples" / "packer"


def test_the_bake_pillar_is_a_valid_phase_bake_pillar():
    top = yaml.safe_load((PACKER / "pillar" / "top.sls").read_text())
    workstation = yaml.safe_load((PACKER / "pillar" / "workstation.sls").read_text())["workstation"]

    assert top == {"base": {"*": ["workstation"]}}
    assert workstation["phase"] == "bake"
    assert contract.validate(config.load(workstation)) == []


def test_the_bake_runs_masterless_from_the_uploaded_pillar_then_seals():
    minion = yaml.safe_load((PACKER / "salt" / "minion").read_text())
    script = (PACKER / "bake.sh").read_text()

    assert minion["file_client"] == "local" and "workstation" in minion["fileserver_backend"]
    assert minion["pillar_roots"] == {"base": ["/tmp/workstation-bake/pillar"]}
    assert subprocess.run(["bash", "-n", str(PACKER / "bake.sh")], check=False).returncode == 0
    calls = [line.split()[1:] for line in script.splitlines() if line.startswith("call state.")]
    assert calls == [
        ["state.apply", "workstation"],
        ["state.sls_id", "workstation-image-sealed", "workstation.seal"],
    ]


@pytest.mark.skipif(
    shutil.which("packer") is None,
    reason="packer is not installed (Debian: apt-get install packer); the template is not validated",
)
def test_packer_validates_the_template(tmp_path):
    wheel = tmp_path / "salt_workstation-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")  # validate checks that each uploaded file exists; no wheel is built here
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "HOME": str(tmp_path)}  # no version check call

    done = subprocess.run(
        ["packer", "validate", f"-var=extension_wheel={wheel}", str(PACKER / "workstation.json")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
