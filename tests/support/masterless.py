"""`salt-call --local`: a masterless minion config in a folder of its own, and running it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

SALT_BIN = Path(sys.executable).parent
TOP = "base:\n  '*':\n    - workstation\n"


def system_paths_under(root: Path) -> dict:
    """Launchers write studio-launch, desktop entries, menus and fstab, licenses their environment
    files, a bake its image identity: keep a test's in its own folder."""
    return {
        "os": {
            "bin_dir": str(root / "usr/bin"),
            "xdg_data_dir": str(root / "usr/share"),
            "xdg_config_dir": str(root / "etc/xdg"),
            "fstab": str(root / "etc/fstab"),
            "profile_dir": str(root / "etc/profile.d"),
            "environment_dir": str(root / "etc/environment.d"),
            "image_identity": str(root / "etc/salt-workstation/image.json"),
        }
    }


def minion_config(path: Path, minion_id: str, pillar_roots: Path, grains=None, extra=None) -> Path:
    """A masterless minion's config folder: its cache (root/) and log file stay inside it; `extra`
    adds config keys (sdb profiles, cache_jobs)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "id": minion_id,
        "file_client": "local",
        "root_dir": str(path / "root"),
        "fileserver_backend": ["roots", "workstation"],
        "file_roots": {"base": [str(path / "empty")]},
        "pillar_roots": {"base": [str(pillar_roots)]},
        "log_file": str(path / "minion.log"),
        "grains": grains or {},
        **(extra or {}),
    }
    (path / "empty").mkdir(exist_ok=True)
    (path / "minion").write_text(yaml.safe_dump(config))
    return path


def salt_call_argv(config_dir: Path, *args) -> list[str]:
    return [str(SALT_BIN / "salt-call"), "--local", "-c", str(config_dir), "--out", "json", *args]


def masterless_call(config_dir: Path, *args, timeout=300):
    return subprocess.run(
        salt_call_argv(config_dir, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
