"""What the display agents are on this machine now: reading only.

Installed package versions, the keys each agent file holds against the plan,
the units, the listening ports, the session owner's account, group
memberships. Anything that takes a command to learn (systemd, HP's license
check, the package manager) is handed in by the execution module, so that
commands run in one place (effects).
"""

from __future__ import annotations

import grp
import pwd
from pathlib import Path

from salt_workstation import inifile, safefs
from salt_workstation.display import contract, plan
from salt_workstation.errors import UnsafePath, WorkstationError
from salt_workstation.pillar import path_of


def owner_problem(owner: str) -> str | None:
    """Why `owner` cannot own a remote session here, or None."""
    where = path_of("display", "owner")
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return (
            f"user {owner!r} ({where}) does not exist on this machine: create the artist's account "
            "(or join the machine to the directory) before the display agents start, or fix the name"
        )
    if entry.pw_uid == 0:
        return f"user {owner!r} ({where}) is root: remote sessions must belong to the artist's own account"
    return None


def in_group(user: str, group: str) -> bool:
    """Whether `user` is listed as a member of `group`."""
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        raise WorkstationError(f"group {group} does not exist") from None


def config_changes(path: str, settings: dict, style: str) -> dict:
    """The changes {key: {old, new}} merging these keys into the agent file would make (nothing written)."""
    return inifile.merge(inifile.read(path) or "", settings, inifile.DIALECTS[style])[1]


def _sockets(protocol: str, proc_root: str):
    """(local port, state) of each IPv4 and IPv6 socket of `protocol`, from /proc/net."""
    for name in (protocol, f"{protocol}6"):
        try:
            lines = (Path(proc_root) / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 4:
                yield int(fields[1].rsplit(":", 1)[1], 16), fields[3]


def listening(proc_root: str = "/proc") -> set[tuple[int, str]]:
    """(port, protocol) of every listening TCP socket and bound UDP socket, from /proc/net."""
    found = {(port, "tcp") for port, state in _sockets("tcp", proc_root) if state == "0A"}  # LISTEN
    return found | {(port, "udp") for port, _ in _sockets("udp", proc_root)}


def connected(ports: set[int], proc_root: str = "/proc") -> int:
    """How many established TCP connections reach one of these local ports: remote sessions in use."""
    established = (port for port, state in _sockets("tcp", proc_root) if state == "01")
    return sum(port in ports for port in established)


def config_drift(files: list[plan.ConfigFile]) -> dict:
    """{path: {key label: {"want": ..., "have": ...}}} for each wanted key that the file does not hold."""
    drift: dict = {}
    for item in files:
        try:
            text = inifile.read(item.path) or ""
        except WorkstationError:  # a link or folder where the config belongs: every key drifted
            text = ""
        for key, (have, want) in inifile.values(
            text, item.settings, inifile.DIALECTS[item.style]
        ).items():
            if have != want:
                drift.setdefault(item.path, {})[key] = {"want": want, "have": have}
    return drift


def report(
    config,
    platform: plan.Platform,
    installed_versions,
    unit_state,
    registered=None,
    proc_root: str = "/proc",
) -> dict:
    """Per listed agent: installed versions, config drift, service state, listening ports.

    "sessions" counts the established connections to the agent's TCP ports: an artist at work.
    installed_versions: callable([names]) -> {name: version or ''}; unit_state: callable(unit) ->
    {"enabled", "active"}; registered: callable() -> bool (HP Anyware's license check), called only
    for anyware with a registration code.
    """
    bound = listening(proc_root)
    found = {}
    for agent in contract.agents(config):
        unit = plan.service_unit(agent, config, platform)
        entry = {
            "packages": installed_versions(list(plan.packages(agent, config, platform))),
            "config_drift": config_drift(plan.files(agent, config)),
            "service": {"unit": unit, **unit_state(unit)},
            "ports": {
                plan.rule_text(rule): (rule["port"], rule["protocol"]) in bound
                for rule in plan.ports(agent, config)
            },
            "sessions": connected(
                {rule["port"] for rule in plan.ports(agent, config) if rule["protocol"] == "tcp"},
                proc_root,
            ),
        }
        if agent == "anyware" and plan.registration_wanted(config) and registered is not None:
            try:
                entry["registered"] = registered()
            except WorkstationError as exc:
                entry["registered"] = False
                entry["registration_error"] = str(exc)
        found[agent] = entry
    return found


def xorg_config_holds(path: str, content: str | None) -> bool:
    """The X drop-in at path is a plain file holding exactly content, or with content None is absent
    (a link there never counts as either)."""
    try:
        return safefs.read_file(path) == (None if content is None else content.encode())
    except UnsafePath:
        return False


def xserver_report(wanted: dict, unit_state, x: dict, gldiag: dict | None) -> dict:
    """X against display.xserver's plan: the drop-in, the display manager, and X on the NVIDIA card
    (x: xprobe.x_on_nvidia) with DCV's GL check (gldiag: xprobe.gldiag, None without an NVIDIA card)."""
    manager = wanted["display_manager"]
    drop_in = wanted["xorg"]
    return {
        "managed": True,
        "comment": wanted["comment"],
        "card": (wanted["card"] or {}).get("slot"),
        "config": {
            "path": drop_in["path"],
            "current": xorg_config_holds(drop_in["path"], drop_in["content"]),
        },
        "display_manager": {
            "name": manager["name"],
            "unit": manager["unit"],
            **unit_state(manager["unit"]),
        },
        "x": x,
        "gldiag": gldiag,
    }
