"""Run a vendor installer so that it dies with the Salt process that started it.

    python reaper.py PARENT_PID -- INSTALLER ARGV...

The engine starts this in a session and process group of its own. It asks the
kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG), runs the installer
in its group, and when that signal comes (salt-call killed, the minion's job
process gone) it kills the whole group: the installer and whatever it started.
It imports nothing of salt_workstation, so it starts in milliseconds.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _kill_group(*_args):
    os.killpg(0, signal.SIGKILL)  # this process included: nothing of the install outlives it


def main(argv: list) -> int:
    parent, command = int(argv[0]), argv[2:]
    signal.signal(signal.SIGTERM, _kill_group)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took hold
        _kill_group()
    try:
        installer = subprocess.Popen(command)
    except OSError as exc:
        print(f"the installer could not start: {exc}", file=sys.stderr)
        return 127
    returncode = installer.wait()
    return (
        128 - returncode if returncode < 0 else returncode
    )  # killed by signal N: 128 + N, as a shell says


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
