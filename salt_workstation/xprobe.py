"""Is X running on the NVIDIA card, and does DCV's GL check pass? Reading only.

An X server drives the NVIDIA card when its process has the NVIDIA X driver
(nvidia_drv.so) mapped, or an NVIDIA device (/dev/nvidia0...) open; both are
read from /proc (root reads any process), under a root folder so that a
recorded or built tree reads the same as the live one. `dcvgldiag` (DCV's GL
diagnostics, from nice-dcv-gl) is run by the execution module; its output is
judged here. Both display.status and gpu.status report these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

X_NAMES = ("Xorg", "X", "Xwayland")
GLDIAG = "dcvgldiag"
_NVIDIA_DEVICE = re.compile(r"^/dev/nvidia\d+$")
_DISPLAY = re.compile(r"^:\d+$")


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _uses_nvidia(process: Path) -> bool:
    maps = _read(process / "maps") or ""
    if "nvidia_drv.so" in maps:
        return True
    try:
        fds = os.listdir(process / "fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if _NVIDIA_DEVICE.match(os.readlink(process / "fd" / fd)):
                return True
        except OSError:
            continue
    return False


def x_servers(proc_root: str = "/proc") -> list[dict]:
    """Every X server process: {"pid", "name", "display", "nvidia": bool}, by pid."""
    found = []
    try:
        entries = sorted((name for name in os.listdir(proc_root) if name.isdigit()), key=int)
    except OSError:
        return []
    for pid in entries:
        process = Path(proc_root, pid)
        name = (_read(process / "comm") or "").strip()
        if name not in X_NAMES:
            continue
        argv = (_read(process / "cmdline") or "").split("\0")
        display = next((arg for arg in argv[1:] if _DISPLAY.match(arg)), None)
        found.append(
            {"pid": int(pid), "name": name, "display": display, "nvidia": _uses_nvidia(process)}
        )
    return found


def x_on_nvidia(proc_root: str = "/proc", expected: bool = True) -> dict:
    """{"running", "on_nvidia", "servers", "reason"}: reason says why X is not on the NVIDIA card
    (None when it is, or when nothing expects it to be)."""
    servers = x_servers(proc_root)
    on_nvidia = any(server["nvidia"] for server in servers)
    reason = None
    if expected and not servers:
        reason = (
            "no X server is running: the display manager starts it (systemctl status "
            "display-manager), and it may have failed on the X configuration (its Xorg log says why)"
        )
    elif expected and not on_nvidia:
        shown = ", ".join(
            f"{s['name']} {s['display'] or ''} (pid {s['pid']})".strip() for s in servers
        )
        reason = (
            f"X runs ({shown}) but not on the NVIDIA card: the NVIDIA X driver is not loaded; check the "
            "BusID in the X configuration and that the NVIDIA kernel module is loaded"
        )
    return {"running": bool(servers), "on_nvidia": on_nvidia, "servers": servers, "reason": reason}


def judge_gldiag(returncode: int, output: str) -> dict:
    """dcvgldiag's verdict: {"passed", "reason"}. It lists ERROR, WARNING and INFO findings; an
    ERROR (or a failed run) fails the check, and the first error's text is the reason."""
    lines = [line.rstrip() for line in (output or "").splitlines()]
    errors = [index for index, line in enumerate(lines) if re.match(r"^\s*ERROR\b", line)]
    if returncode == 0 and not errors:
        return {"passed": True, "reason": None}
    if errors:
        start = errors[0]
        detail = " ".join(line.strip() for line in lines[start + 1 : start + 6] if line.strip())
        return {"passed": False, "reason": f"dcvgldiag: {lines[start].strip()}: {detail}"[:500]}
    tail = " ".join(line.strip() for line in lines[-3:] if line.strip())
    return {"passed": False, "reason": f"dcvgldiag exited with {returncode}: {tail}"[:500]}


def gldiag(salt) -> dict:
    """Run dcvgldiag where nice-dcv-gl installed it: {"installed", "passed", "reason"}. `salt` is the
    loader's __salt__ (cmd.which, cmd.run_all: an argv list, no shell)."""
    if salt["cmd.which"](GLDIAG) is None:
        return {
            "installed": False,
            "passed": None,
            "reason": f"{GLDIAG} is not installed (nice-dcv-gl)",
        }
    done = salt["cmd.run_all"]([GLDIAG], python_shell=False, timeout=300)
    output = "\n".join(part for part in (done.get("stdout"), done.get("stderr")) if part)
    return {"installed": True, **judge_gldiag(done["retcode"], output)}
