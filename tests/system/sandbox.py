"""A throwaway copy of a cached root filesystem, with /proc, /sys and /dev mounted, that always comes apart.

Every mount lives under the sandbox's own folder, so teardown finds them all
in /proc/mounts (deepest first, a lazy unmount as the last resort) whatever
the test did, and nothing is deleted while anything under it is still mounted:
a recursive delete through a bind mount of /dev would reach the host.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

# What commands inside the root see: nothing of the host's environment (no PIP_*, no proxies).
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "PYTHONDONTWRITEBYTECODE": "",
}
CHROOT_ENV = {key: value for key, value in CHROOT_ENV.items() if value}

_COUNTER = itertools.count(1)


class SandboxError(RuntimeError):
    """A mount could not be made or taken down."""


# ---- /proc/mounts ------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as \\ooo octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mount_table() -> list[tuple[str, str, str]]:
    """(target, fstype, options) for every mount this process can see."""
    with open("/proc/mounts", encoding="utf-8") as handle:
        rows = []
        for line in handle:
            fields = line.split()
            if len(fields) >= 4:
                rows.append((_unescape(fields[1]), fields[2], _unescape(fields[3])))
        return rows


def mounts_under(path, include_self: bool = True) -> list[str]:
    """Mount points at or below path, deepest first (a path mounted twice is listed twice)."""
    base = os.path.realpath(path).rstrip("/") or "/"
    found = [
        target
        for target, _, _ in mount_table()
        if (include_self and target == base) or target.startswith(base + "/")
    ]
    return sorted(found, key=lambda target: target.count("/"), reverse=True)


def referenced_by_mounts(path) -> bool:
    """True when a mount sits under path or uses it (an overlay's lowerdir, say)."""
    base = os.path.realpath(path)
    return any(target.startswith(base) or base in options for target, _, options in mount_table())


def mount(*args: str) -> None:
    completed = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SandboxError(f"mount {' '.join(args)} failed: {completed.stderr.strip()}")


def unmount_all(path, rounds: int = 3, include_self: bool = True) -> list[str]:
    """Unmount everything at or under path; returns what is still mounted (normally nothing).

    Plain unmounts first (deepest first, since a parent is busy while a child is
    mounted); what stays busy gets the processes in it killed and, on the last
    round, a lazy unmount, which detaches it from the tree at once.
    include_self=False leaves a mount on path itself (an overlay root) in place.
    """
    for round_number in range(rounds):
        targets = mounts_under(path, include_self)
        if not targets:
            return []
        last = round_number == rounds - 1
        for target in targets:
            completed = subprocess.run(["umount", target], capture_output=True, check=False)
            if completed.returncode != 0 and last:
                subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        if mounts_under(path, include_self):
            kill_processes_in(path, grace=2.0)
    return mounts_under(path, include_self)


# ---- processes -------------------------------------------------------------------------------------


def processes_in(root) -> list[int]:
    """Processes whose root directory (chroot) is root or lies below it."""
    base = os.path.realpath(root).rstrip("/")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            proc_root = os.readlink(f"/proc/{entry}/root")
        except OSError:
            continue  # gone, a zombie, or a kernel thread
        if proc_root == base or proc_root.startswith(base + "/"):
            pids.append(int(entry))
    return pids


def _signal_all(pids, signum) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise


def kill_processes_in(root, grace: float = 10.0) -> list[int]:
    """SIGTERM every process chrooted into root (all started by this harness), SIGKILL what lingers."""
    pids = processes_in(root)
    if not pids:
        return []
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and processes_in(root):
        time.sleep(0.1)
    left = processes_in(root)
    _signal_all(left, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes_in(root):
        time.sleep(0.1)
    return pids


# ---- deleting safely ---------------------------------------------------------------------------


def remove_tree(path) -> None:
    """shutil.rmtree, but never while anything under path is mounted."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    still = mounts_under(path)
    if still:
        raise SandboxError(f"refusing to delete {path}: still mounted there: {', '.join(still)}")
    shutil.rmtree(path)


def mount_system_dirs(root: Path) -> None:
    """/proc and /sys of their own, the host's /dev bound in, a private /dev/shm."""
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))
    mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(root / "sys"))
    mount("--bind", "/dev", str(root / "dev"))
    # Not the host's /dev/shm: multiprocessing's semaphores inside stay inside.
    mount(
        "-t", "tmpfs", "-o", "nosuid,nodev,mode=1777,size=64m", "tmpfs", str(root / "dev" / "shm")
    )


def path_in(root: Path, inner: str) -> Path:
    """The host path of `inner` in root, refusing any that a symlink would lead out of root."""
    candidate = Path(root) / inner.lstrip("/")
    resolved = os.path.realpath(candidate)
    if not (
        resolved == os.path.realpath(root) or resolved.startswith(os.path.realpath(root) + "/")
    ):
        raise SandboxError(
            f"{inner} leads out of {root} (to {resolved}); not writing there from the host"
        )
    return candidate


def chroot_run(root, argv, *, check=True, timeout=300, input=None, stdout=None, stderr=None):
    """Run argv inside root (chroot) with a clean environment; output captured as text by default."""
    capture = stdout is None and stderr is None
    completed = subprocess.run(
        ["chroot", str(root), *argv],
        env=CHROOT_ENV,
        input=input,
        capture_output=capture,
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and completed.returncode != 0:
        detail = (
            (completed.stdout or "")[-2000:] + (completed.stderr or "")[-4000:] if capture else ""
        )
        raise SandboxError(f"in {root}: {' '.join(argv)} exited {completed.returncode}\n{detail}")
    return completed


# ---- the sandbox ---------------------------------------------------------------------------------


class Sandbox:
    """One fresh root made from the cache's layers (top layer first), under runs_dir.

    With overlayfs the layers are the read-only lower dirs and the test's writes
    land in its own upper dir; without it, the layers are copied. Use as a
    context manager (or call close()): closing kills what runs inside, unmounts
    everything and deletes the folder.
    """

    def __init__(self, layers: list[Path], runs_dir: Path, overlay: bool):
        self.layers = [Path(layer) for layer in layers]
        self.overlay = overlay
        self.dir = Path(runs_dir) / f"{os.getpid()}-{next(_COUNTER)}"
        self.root = self.dir / "root"
        self._open = False

    def open(self) -> Sandbox:
        self.dir.mkdir(parents=True)
        self._open = True
        try:
            self.root.mkdir()
            if self.overlay:
                for layer in self.layers:
                    if ":" in str(layer) or "," in str(layer):
                        raise SandboxError(
                            f"overlayfs cannot take a layer path with ':' or ',': {layer}"
                        )
                (self.dir / "upper").mkdir()
                (self.dir / "work").mkdir()
                lower = ":".join(str(layer) for layer in self.layers)
                mount(
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={lower},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
                    str(self.root),
                )
            else:
                for layer in reversed(self.layers):
                    subprocess.run(
                        ["cp", "-a", "--reflink=auto", f"{layer}/.", str(self.root)], check=True
                    )
            mount_system_dirs(self.root)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill, unmount, delete; raises only if something could not be unmounted (and then deletes nothing)."""
        if not self._open:
            return
        try:
            kill_processes_in(self.root)
        finally:
            left = unmount_all(self.dir)
            if left:
                raise SandboxError(f"could not unmount {', '.join(left)}; left {self.dir} in place")
            self._open = False
            remove_tree(self.dir)

    def __enter__(self) -> Sandbox:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, argv, **kwargs):
        return chroot_run(self.root, argv, **kwargs)


def sweep_stale(runs_dir: Path) -> list[str]:
    """Take down sandboxes a killed run left behind (their pid is gone); returns what was swept."""
    swept = []
    if not Path(runs_dir).is_dir():
        return swept
    for entry in sorted(Path(runs_dir).iterdir()):
        owner = entry.name.split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and Path(f"/proc/{owner}").exists():
            continue  # another live session's sandbox
        kill_processes_in(entry / "root", grace=2.0)
        if not unmount_all(entry):
            remove_tree(entry)
            swept.append(entry.name)
    return swept
