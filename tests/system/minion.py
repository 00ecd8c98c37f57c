"""A real salt-minion running inside a sandbox root (chroot), talking to a master on loopback.

The chroot shares the host's network namespace, so 127.0.0.1 inside is the
host's loopback: the master's ports and the test HTTP servers are reachable.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.system.rootfs import VENV
from tests.system.sandbox import CHROOT_ENV, Sandbox, kill_processes_in, path_in


class MinionError(RuntimeError):
    """The minion did not come up (the message carries the end of its log)."""


class PillarTree:
    """The master's pillar_roots: one pillar file per minion id, and a top file naming them all."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.assigned: dict[str, str] = {}
        self._write_top()

    @staticmethod
    def _sls(minion_id: str) -> str:
        return "minion_" + re.sub(r"[^A-Za-z0-9_]", "_", minion_id)

    def _write_top(self) -> None:
        top = (
            {"base": {minion_id: [sls] for minion_id, sls in sorted(self.assigned.items())}}
            if self.assigned
            else {"base": {}}
        )
        (self.dir / "top.sls").write_text(yaml.safe_dump(top, sort_keys=False), encoding="utf-8")

    def set(self, minion_id: str, workstation: dict) -> None:
        sls = self._sls(minion_id)
        (self.dir / f"{sls}.sls").write_text(
            yaml.safe_dump({"workstation": workstation}, sort_keys=False), encoding="utf-8"
        )
        self.assigned[minion_id] = sls
        self._write_top()

    def drop(self, minion_id: str) -> None:
        sls = self.assigned.pop(minion_id, None)
        if sls:
            (self.dir / f"{sls}.sls").unlink(missing_ok=True)
            self._write_top()


class ChrootMinion:
    """`chroot <root> /opt/salt/bin/salt-minion -c /etc/salt` with its config pointing at the master."""

    def __init__(self, sandbox: Sandbox, minion_id: str, master):
        self.sandbox = sandbox
        self.root = sandbox.root
        self.id = minion_id
        self.master = master
        self.process: subprocess.Popen | None = None
        self.console = sandbox.dir / "minion-console.log"

    def _write_config(self) -> None:
        config = {
            "id": self.id,
            "master": "127.0.0.1",
            "master_port": self.master.config["ret_port"],
            "publish_port": self.master.config["publish_port"],
            "transport": self.master.config.get("transport", "zeromq"),
            "user": "root",
            "file_client": "remote",
            "log_file": "/var/log/salt/minion",
            "log_level_logfile": "debug",
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 2,
            "random_reauth_delay": 0,
            "recon_default": 200,
            "recon_max": 1000,
            "auth_timeout": 15,
            "enable_fqdns_grains": False,
            "ipv6": False,
            "mine_enabled": False,
            "startup_states": "",
        }
        target = path_in(self.root, "/etc/salt/minion")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")

    def start(self, cli, timeout: float = 120) -> ChrootMinion:
        """Start the minion and wait until it answers test.ping through the master."""
        self._write_config()
        with open(self.console, "wb") as console:
            self.process = subprocess.Popen(
                [
                    "chroot",
                    str(self.root),
                    f"{VENV}/bin/salt-minion",
                    "-c",
                    "/etc/salt",
                    "-l",
                    "warning",
                ],
                env=CHROOT_ENV,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        accepted = Path(self.master.config["pki_dir"]) / "minions" / self.id
        authenticated = path_in(self.root, "/etc/salt/pki/minion/minion_master.pub")
        deadline = time.monotonic() + timeout
        while not (accepted.exists() and authenticated.exists()):
            self._check_alive()
            if time.monotonic() > deadline:
                raise MinionError(
                    f"minion {self.id} did not authenticate in {timeout:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.25)
        while True:
            ret = cli.run("test.ping", minion_tgt=self.id, _timeout=20)
            if ret.data is True:
                return self
            self._check_alive()
            if time.monotonic() > deadline:
                raise MinionError(
                    f"minion {self.id} did not answer test.ping in {timeout:.0f} s: "
                    f"{ret.stdout} {ret.stderr}\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise MinionError(
                f"salt-minion in {self.root} exited with {self.process.returncode}\n{self.log_tail()}"
            )

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the minion's process group, SIGKILL it after `grace` s, then anything else left in the root.

        The root is thrown away afterwards, so there is nothing to wait for: a
        clean salt-minion shutdown takes about 7 s, which would be most of a test.
        """
        if self.process is not None:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
            self.process = None
        kill_processes_in(self.root, grace=grace)

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for label, path in (
            ("console", self.console),
            ("minion log", self.root / "var/log/salt/minion"),
        ):
            try:
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {label} ({path}) ---\n" + "\n".join(text))
        return "\n".join(parts)

    # ---- looking inside ------------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = False, timeout: float = 120):
        return self.sandbox.run(list(argv), check=check, timeout=timeout)

    def is_file(self, path: str) -> bool:
        return self.run("test", "-f", path).returncode == 0

    def exists(self, path: str) -> bool:
        return self.run("test", "-e", path).returncode == 0

    def read(self, path: str) -> str:
        return self.run("cat", path, check=True).stdout

    def read_bytes(self, path: str) -> bytes:
        completed = subprocess.run(
            ["chroot", str(self.root), "cat", path],
            env=CHROOT_ENV,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return completed.stdout

    def package(self, name: str) -> str | None:
        """The installed version per dpkg inside the root, or None when dpkg says it is not installed."""
        status = self.run("dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", name)
        if status.returncode != 0:
            return None
        state, _, version = status.stdout.partition(" ")
        return version if state == "installed" else None

    def dpkg_status(self, name: str) -> str:
        completed = self.run("dpkg", "-s", name)
        return (completed.stdout + completed.stderr).strip()
