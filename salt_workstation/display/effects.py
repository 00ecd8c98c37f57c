"""The only code of the display capability that changes this machine or runs a command.

Files go through `salt_workstation.safefs` (inifile's merge: descriptors, no
link followed, atomic checked writes that keep mode and owner); commands are
argv lists, never a shell, all run by `run`; Salt's own functions
(`group.adduser`) are passed in by the execution module.

The HP Anyware registration code reaches only `register_anyware`, which hands
it to HP's tool and masks any echo of it before an error message is made.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess

from salt_workstation import inifile, safefs, units
from salt_workstation.display import plan
from salt_workstation.errors import WorkstationError
from salt_workstation.pillar import path_of

REGISTER_TOOL = "/usr/sbin/pcoip-register-host"
VALIDATE_TOOL = "/usr/sbin/pcoip-validate-license"
REGISTRATION_TIMEOUT = 300
_REDACTED = "********"


def run(argv: list[str], timeout: int = 60, text: bool = True) -> subprocess.CompletedProcess:
    """Run one command: an argv list, no shell, no standard input, its output captured."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=text,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


# ---- agent files -----------------------------------------------------------------------------------


def merge_config(path: str, settings: dict, style: str, test: bool = False) -> dict:
    """Merge the keys into the agent file; the changes {key: {old, new}} (nothing written under test)."""
    try:
        return inifile.merge_file(path, settings, inifile.DIALECTS[style], test=test)
    except OSError as exc:  # inifile's own errors name the file; an OSError names it too
        raise WorkstationError(str(exc)) from exc


def write_xorg_config(path: str, content: str) -> None:
    """Write the X server drop-in whole, atomically, mode 0644, never through a link."""
    safefs.write_file(path, content.encode(), 0o644)


def remove_xorg_config(path: str) -> None:
    """Remove the X server drop-in (never through a link): left from an NVIDIA card no longer here."""
    safefs.remove_file(path)


# ---- users -----------------------------------------------------------------------------------------


def join_group(user: str, group: str, adduser) -> None:
    """Add `user` to `group` (other members stay) with Salt's `group.adduser`."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise WorkstationError(
            f"user {user} does not exist: its package should have created it"
        ) from None
    if not adduser(group, user):
        raise WorkstationError(f"could not add {user} to {group}")


# ---- HP Anyware registration -----------------------------------------------------------------------


def _redact(text: str, secret: str) -> str:
    """The text with the secret, and each longer piece of it, masked."""
    pieces = {secret, *(part for part in re.split(r"[@\-:]", secret) if len(part) >= 4)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, _REDACTED)
    return text


def _installed(tool: str) -> None:
    if not os.path.exists(tool):
        raise WorkstationError(f"{tool} is missing: is the HP Anyware agent installed?")


def anyware_registered(validate_tool: str = VALIDATE_TOOL) -> bool:
    """Whether the PCoIP agent holds a valid license (HP's pcoip-validate-license exits 0)."""
    _installed(validate_tool)
    try:
        return run([validate_tool], timeout=REGISTRATION_TIMEOUT, text=False).returncode == 0
    except subprocess.TimeoutExpired:
        raise WorkstationError(
            f"{validate_tool} did not answer in {REGISTRATION_TIMEOUT} s"
        ) from None


def register_anyware(code: str, register_tool: str = REGISTER_TOOL) -> None:
    """Register this host with HP's licensing service.

    pcoip-register-host takes the code only as --registration-code=... (it reads no file and no
    stdin), so the code is on its command line for the seconds it runs; it is never logged, and
    any echo of it in the tool's output is masked before it reaches an error message.
    """
    _installed(register_tool)
    try:
        done = run([register_tool, f"--registration-code={code}"], timeout=REGISTRATION_TIMEOUT)
    except subprocess.TimeoutExpired:
        # the exception's own text holds the command line, code included: never pass it on
        raise WorkstationError(
            f"{register_tool} did not finish in {REGISTRATION_TIMEOUT} s"
        ) from None
    except OSError as exc:
        raise WorkstationError(f"{register_tool} could not run: {exc.strerror}") from None
    if done.returncode != 0:
        output = _redact((done.stderr or done.stdout or "").strip(), code)
        raise WorkstationError(
            f"{register_tool} failed (exit {done.returncode}): {output or 'no output'}; "
            f"check {path_of('display', 'anyware', 'registration_code')}"
        )


# ---- firewall --------------------------------------------------------------------------------------


class Firewall:
    """firewalld (running: firewall-cmd, permanent and runtime; stopped: firewall-offline-cmd) or ufw."""

    def __init__(self, backend: str, tool: str, offline: bool = False):
        self.backend, self.tool, self.offline = backend, tool, offline

    def is_open(self, rule: str) -> bool:
        if self.backend == "ufw":
            added = run([self.tool, "show", "added"]).stdout
            return f"ufw allow {rule}" in added.splitlines()
        query = (
            [self.tool, f"--query-port={rule}"]
            if self.offline
            else [self.tool, "--permanent", f"--query-port={rule}"]
        )
        return run(query).returncode == 0

    def open(self, rule: str) -> None:
        if self.backend == "ufw":
            commands = [[self.tool, "allow", rule]]
        elif self.offline:
            commands = [[self.tool, f"--add-port={rule}"]]
        else:  # permanent for the next boot, runtime for now: no reload that would drop live rules
            commands = [
                [self.tool, "--permanent", f"--add-port={rule}"],
                [self.tool, f"--add-port={rule}"],
            ]
        for argv in commands:
            done = run(argv)
            if done.returncode != 0:
                raise WorkstationError(
                    f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}"
                )


def find_firewall(preference: str, path: str | None = None) -> Firewall | None:
    """The firewall to open ports in: the preferred one, or with `auto` firewalld then ufw; None when none is here."""
    if preference == "none":
        return None
    if preference in ("auto", "firewalld"):
        online = shutil.which("firewall-cmd", path=path)
        if online and run([online, "--state"]).returncode == 0:
            return Firewall("firewalld", online)
        offline = shutil.which("firewall-offline-cmd", path=path)
        if offline:
            return Firewall("firewalld", offline, offline=True)
        if preference == "firewalld":
            raise WorkstationError(
                f"{path_of('display', 'firewall')} is firewalld, but neither firewall-cmd "
                "(running) nor firewall-offline-cmd is here; install firewalld or choose auto"
            )
    if preference in ("auto", "ufw"):
        tool = shutil.which("ufw", path=path)
        if tool:
            return Firewall("ufw", tool)
        if preference == "ufw":
            raise WorkstationError(
                f"{path_of('display', 'firewall')} is ufw, but ufw is not installed; "
                "install it or choose auto"
            )
    return None


def _survey(rules: list[dict], preference: str, path: str | None):
    """The firewall here (or None), every rule as text, and those not open yet."""
    wanted = sorted(
        {plan.rule_text(rule) for rule in rules}, key=lambda r: (int(r.split("/")[0]), r)
    )
    firewall = find_firewall(preference, path)
    closed = [] if firewall is None else [rule for rule in wanted if not firewall.is_open(rule)]
    return firewall, wanted, closed


def closed_ports(rules: list[dict], preference: str = "auto", path: str | None = None) -> dict:
    """{"backend": name or None, "closed": [rules not open yet], "ports": [every rule]}; changes nothing."""
    firewall, wanted, closed = _survey(rules, preference, path)
    return {"backend": firewall.backend if firewall else None, "closed": closed, "ports": wanted}


def open_ports(
    rules: list[dict], preference: str = "auto", test: bool = False, path: str | None = None
) -> dict:
    """{"backend": name or None, "opened": [rules opened or to open], "ports": [every rule]}."""
    firewall, wanted, closed = _survey(rules, preference, path)
    if not test:
        for rule in closed:
            firewall.open(rule)
    return {"backend": firewall.backend if firewall else None, "opened": closed, "ports": wanted}


# ---- units -----------------------------------------------------------------------------------------


def unit_state(unit: str) -> dict:
    """{"enabled": bool, "active": systemd's word} for a unit; "unknown" where systemd does not run."""
    try:
        enabled = units.is_enabled(unit)
        active = run(["systemctl", "is-active", unit]).stdout.strip() or "unknown"
    except (WorkstationError, FileNotFoundError):
        return {"enabled": False, "active": "unknown"}
    return {"enabled": enabled, "active": active}
