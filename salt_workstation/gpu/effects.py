"""The only code of the gpu capability that changes the machine.

The nouveau blacklist is written through safefs (atomically, its mode from the
first byte, never through a link); commands are argv lists, never a shell, and
all go through `run`; the reboot event and the scheduled reboot are Salt's own
functions. `salt` is the loader module's __salt__. Failures raise
WorkstationError with what failed and why.
"""

from __future__ import annotations

import contextlib
import urllib.parse

from salt_workstation import depot, safefs
from salt_workstation.errors import HashMismatch, WorkstationError

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


def fetch_runfile(
    url: str, hash_spec: str, cache: str, fetch_salt, idle: float, deadline: float
) -> str:
    """Download the runfile from the depot into cache (mode 0700), hash-checked as an app's source
    is; its path. A mismatch leaves nothing behind and raises HashMismatch."""
    algorithm, digest = hash_spec.split(":", 1)
    shown = depot.redact_url(url)
    name = safefs.component(
        urllib.parse.unquote(urllib.parse.urlsplit(url).path).rsplit("/", 1)[-1], "runfile name"
    )
    stream, size = depot.open_source(url, fetch_salt, timeout=idle)
    reader = depot.HashingReader(stream, algorithm, size, idle=idle, deadline=deadline, shown=shown)

    def chunks():
        while chunk := reader.read(1 << 20):
            yield chunk

    def check():
        if reader.hexdigest() != digest.lower():
            raise HashMismatch(
                f"{shown} has {algorithm} {reader.hexdigest()}, the pillar says {digest.lower()} "
                "(workstation:gpu:runfile:hash); nothing was installed"
            )

    with contextlib.closing(reader), safefs.Dir.root(cache, create=True, mode=0o700) as folder:
        folder.write_stream(name, chunks(), 0o700, check)
        return folder.join(name)


def install_runfile(salt, path: str, options: list[str]) -> str:
    """Run NVIDIA's installer non-interactively (sh <runfile> <options>); the tail of its output."""
    return run(salt, ["sh", path, *options], timeout=3600)


def uninstall_runfile(salt, installer: str) -> str:
    """Remove the driver a runfile installed, with the nvidia-installer it left."""
    return run(salt, [installer, "--uninstall", "--silent"], timeout=1800)


def remove_runfile(path: str) -> None:
    """Remove the downloaded runfile once it ran (hundreds of MiB)."""
    safefs.remove_file(path)
