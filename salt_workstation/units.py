"""systemd units: enabled for the next boot without needing a running systemd.

`systemctl enable` works offline (in an image build or a chroot it only writes
the [Install] symlinks), which is what an image bake wants: units enabled,
nothing started.
"""

from __future__ import annotations

import re
import subprocess

from salt_workstation.errors import WorkstationError

UNIT_NAME = re.compile(r"^[A-Za-z0-9@:._-]+\.(service|socket|timer|path|target|mount)$")


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise WorkstationError(
            "systemctl is not installed: this machine does not run systemd"
        ) from None


def is_enabled(unit: str) -> bool:
    return _systemctl("is-enabled", unit).stdout.strip() in (
        "enabled",
        "enabled-runtime",
        "static",
        "alias",
    )


def enable(unit: str) -> None:
    done = _systemctl("enable", unit)
    if done.returncode != 0:
        raise WorkstationError(
            f"systemctl enable {unit} failed: {(done.stderr or done.stdout).strip()}"
        )


def package_plan(wanted: dict, have: dict) -> dict:
    """What installing `wanted` ({name: pin or None}) changes, given the installed versions ('' when absent).

    Unpinned packages are reported as "latest": the exact version is the repository's, which a dry
    run on a machine whose repository is not configured yet cannot know.
    """
    plan: dict = {}
    for name, pinned in wanted.items():
        current = have.get(name) or ""
        if not current:
            plan.setdefault("installed", {})[name] = pinned or "latest"
        elif pinned and current != pinned:
            plan.setdefault("changed", {})[name] = {"old": current, "new": pinned}
    return plan


def default_target() -> str:
    """The unit the machine boots into (`systemctl get-default`; works offline, in a chroot too)."""
    done = _systemctl("get-default")
    if done.returncode != 0:
        raise WorkstationError(
            f"systemctl get-default failed: {(done.stderr or done.stdout).strip()}"
        )
    return done.stdout.strip()


def set_default_target(target: str) -> None:
    """Boot into `target` from now on (`systemctl set-default`: a symlink, nothing started)."""
    if not UNIT_NAME.match(target) or not target.endswith(".target"):
        raise WorkstationError(f"{target!r} is not a systemd target such as graphical.target")
    done = _systemctl("set-default", target)
    if done.returncode != 0:
        raise WorkstationError(
            f"systemctl set-default {target} failed: {(done.stderr or done.stdout).strip()}"
        )
