"""The only code of the gpu capability that changes the machine.

The nouveau blacklist is written through safefs (atomically, its mode from the
first byte, never through a link); commands are argv lists, never a shell, and
all go through `run`; the reboot event and the scheduled reboot are Salt's own
functions. `salt` is the loader module's __salt__. Failures raise
WorkstationError with what failed and why.
"""

from __future__ import annotations

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError

REBOOT_EVENT = "workstation/gpu/reboot-required"
BLACKLIST_MODE = 0o644
OUTPUT_TAIL = 2000  # characters of a command's output kept in a comment


def write_blacklist(path: str, content: str) -> None:
    """Write the modprobe file at path atomically, mode 0644 (a folder there, a full disk: WorkstationError)."""
    safefs.write_file(path, content.encode(), BLACKLIST_MODE)


def run(salt, argv: list[str], timeout: int) -> str:
    """Run argv (a list, never a shell) through Salt's cmd.run_all; the tail of its output, or WorkstationError."""
    done = salt["cmd.run_all"](list(argv), python_shell=False, timeout=timeout)
    if done["retcode"] != 0:
        output = (done["stderr"] or done["stdout"]).strip()[-OUTPUT_TAIL:]
        raise WorkstationError(
            f"{' '.join(argv)} failed ({done['retcode']})" + (f": {output}" if output else "")
        )
    return done["stdout"].strip()[-OUTPUT_TAIL:]


def rebuild_initramfs(salt, argv: list[str]) -> str | None:
    """Run the initramfs rebuild argv; None when its tool is not installed (then there is no initramfs)."""
    if salt["cmd.which"](argv[0]) is None:
        return None
    return run(salt, argv, timeout=900)


def install_module_stream(salt, stream: str) -> None:
    """`dnf module install -y <stream>`: enables the stream (which locks the driver branch), installs its profile."""
    run(salt, ["dnf", "-y", "module", "install", stream], timeout=3600)


def signal_reboot(
    salt, package: str, installed: str | None, loaded: dict, flavor: str | None, schedule: bool
) -> None:
    """Send the reboot-required event; with schedule, reboot the machine in one minute."""
    salt["event.send"](
        REBOOT_EVENT,
        {"package": package, "installed": installed, "loaded": loaded, "flavor": flavor},
    )
    if schedule:
        salt["system.reboot"](at_time=1)
