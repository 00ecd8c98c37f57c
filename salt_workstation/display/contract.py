"""`workstation:display`: its part of the pillar contract, and validation with exact pillar paths.

The pillar names the agents a machine runs, the artist who owns its sessions,
and a few settings per agent. Every Issue here carries its pillar path and the
fix. The HP Anyware registration code is a secret: an Issue says what is wrong
with it, never what it is.
"""

from __future__ import annotations

import re

from salt_workstation import pillar
from salt_workstation.pillar import Issue, path_of

AGENTS = ("dcv", "anyware", "vnc")
TITLES = {"dcv": "Amazon DCV", "anyware": "HP Anyware", "vnc": "TigerVNC"}
DISPLAY_KEYS = ("agents", "owner", "firewall", "xserver", *AGENTS)  # xserver: display/xserver.py
FIREWALLS = ("auto", "firewalld", "ufw", "none")
DCV_KEYS = (
    "gl",
    "web_viewer",
    "versions",
    "license",
    "web_port",
    "quic",
    "authentication",
    "settings",
)
ANYWARE_KEYS = ("flavor", "versions", "registration_code", "license_server", "settings")
VNC_KEYS = ("display", "versions", "settings")
DCV_AUTHENTICATION = ("system", "none")
ANYWARE_FLAVORS = ("auto", "graphics", "standard")
AGENT_NEEDS_OWNER = (
    "dcv",
    "vnc",
)  # DCV's console session and TigerVNC's display belong to one user

# The packages an agent may pin in `<agent>:versions`.
DCV_PACKAGES = ("nice-dcv-server", "nice-xdcv")
DCV_GL = "nice-dcv-gl"  # GPU sharing for virtual sessions; x86_64 only
DCV_WEB_VIEWER = "nice-dcv-web-viewer"
ANYWARE_PACKAGES = {"graphics": "pcoip-agent-graphics", "standard": "pcoip-agent-standard"}
# TigerVNC's package differs per OS family (Debian renamed it).
VNC_PACKAGES = {
    "Debian": "tigervnc-standalone-server",
    "RedHat": "tigervnc-server",
    "Suse": "tigervnc",
}

# Config keys the pillar sets through its own keys: `dcv:settings` and `anyware:settings` may not set them again.
DCV_SHORTCUTS = {  # pillar key -> (dcv.conf section, key)
    "license": ("license", "license-file"),
    "web_port": ("connectivity", "web-port"),
    "quic": ("connectivity", "enable-quic-frontend"),
    "authentication": ("security", "authentication"),
}
DCV_OWNER_KEYS = (
    ("session-management", "create-session"),
    ("session-management/automatic-console-session", "owner"),
)
PCOIP_LICENSE_SERVER_KEY = "pcoip.license_server_path"

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_INI_NAME = re.compile(
    r"^[A-Za-z0-9_.:/@-]+$"
)  # section and key names we write: no '=', '[', '#' or spaces


# ---- reading the section ---------------------------------------------------------------------------


def section(config) -> dict:
    raw = (config or {}).get("display")
    return raw if isinstance(raw, dict) else {}


def agents(config) -> list[str]:
    """The agents the pillar asks for, known names only, in the pillar's order."""
    listed = section(config).get("agents")
    if not isinstance(listed, list):
        return []
    seen = []
    for name in listed:
        if name in AGENTS and name not in seen:
            seen.append(name)
    return seen


def agent_settings(config, agent) -> dict:
    raw = section(config).get(agent)
    return raw if isinstance(raw, dict) else {}


# ---- value checks ----------------------------------------------------------------------------------


def _unknown_keys(mapping, keys, where) -> list[Issue]:
    return [
        Issue(path_of(*where, key), f"unknown key{pillar.did_you_mean(key, list(keys))}")
        for key in mapping
        if key not in keys
    ]


def _check_port(value, where) -> list[Issue]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [Issue(path_of(*where), f"must be a TCP port number (1-65535), got {value!r}")]
    return []


def _check_bool(value, where, auto=False) -> list[Issue]:
    if isinstance(value, bool) or (auto and value == "auto"):
        return []
    allowed = "true, false or auto" if auto else "true or false"
    return [Issue(path_of(*where), f"must be {allowed}, got {value!r}")]


def _check_scalar(value, where) -> list[Issue]:
    if value is None or isinstance(value, (bool, int, float)):
        return []
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            return [Issue(path_of(*where), "must be one line of text (no line breaks)")]
        return []
    return [
        Issue(
            path_of(*where),
            f"must be text, a number, true/false, or null to remove the key; "
            f"got a {type(value).__name__}",
        )
    ]


def _check_ini_name(name, where, what) -> list[Issue]:
    if not isinstance(name, str) or not _INI_NAME.match(name):
        return [
            Issue(
                path_of(*where),
                f"{what} names hold only letters, digits and . _ - : / @ (got {name!r})",
            )
        ]
    return []


def _check_key(key, value, where, set_by=None) -> list[Issue]:
    """One `key: value` of an agent file; `set_by` names the pillar path that owns this key, if any."""
    issues = _check_ini_name(key, where, "key") + _check_scalar(value, where)
    if set_by:
        issues.append(
            Issue(path_of(*where), f"is set by {set_by}; set it there and remove it here")
        )
    return issues


def _check_flat_settings(settings, where, reserved=None) -> list[Issue]:
    """`settings: {key: value}` for sectionless files; `reserved` maps keys the pillar sets elsewhere."""
    if not isinstance(settings, dict):
        return [Issue(path_of(*where), "must map each key of the file to its value")]
    return [
        issue
        for key, value in settings.items()
        for issue in _check_key(key, value, (*where, key), (reserved or {}).get(key))
    ]


def _check_versions(versions, agent, allowed) -> list[Issue]:
    where = ("display", agent, "versions")
    if not isinstance(versions, dict):
        return [Issue(path_of(*where), "must map package names to pinned versions (quoted)")]
    issues = []
    for name, pinned in versions.items():
        if name not in allowed:
            issues.append(
                Issue(
                    path_of(*where, name),
                    f"is not a package of {TITLES[agent]}; pin one of {', '.join(allowed)}",
                )
            )
        elif not isinstance(pinned, str) or not pinned:
            issues.append(
                Issue(
                    path_of(*where, name),
                    f"pin an exact version as a quoted string, got {pinned!r}",
                )
            )
    return issues


# ---- each agent ------------------------------------------------------------------------------------


def _check_dcv(dcv) -> list[Issue]:
    where = ("display", "dcv")
    issues = _unknown_keys(dcv, DCV_KEYS, where)
    if "gl" in dcv:
        issues += _check_bool(dcv["gl"], (*where, "gl"), auto=True)
    for flag in ("web_viewer", "quic"):
        if flag in dcv:
            issues += _check_bool(dcv[flag], (*where, flag))
    if "web_port" in dcv:
        issues += _check_port(dcv["web_port"], (*where, "web_port"))
    if "license" in dcv and (
        not isinstance(dcv["license"], str) or not dcv["license"].strip() or "\n" in dcv["license"]
    ):
        issues.append(
            Issue(
                path_of(*where, "license"),
                "must be the license server as port@host (e.g. 5053@rlm.studio.example) or a license file path",
            )
        )
    if "authentication" in dcv and dcv["authentication"] not in DCV_AUTHENTICATION:
        issues.append(
            Issue(
                path_of(*where, "authentication"),
                f"must be one of {', '.join(DCV_AUTHENTICATION)}, got {dcv['authentication']!r}",
            )
        )
    if "versions" in dcv:
        issues += _check_versions(dcv["versions"], "dcv", (*DCV_PACKAGES, DCV_GL, DCV_WEB_VIEWER))
    settings = dcv.get("settings", {})
    if not isinstance(settings, dict):
        return [
            *issues,
            Issue(path_of(*where, "settings"), "must map dcv.conf sections to {key: value}"),
        ]
    managed = {place: path_of(*where, shortcut) for shortcut, place in DCV_SHORTCUTS.items()}
    managed.update({place: path_of("display", "owner") for place in DCV_OWNER_KEYS})
    for name, keys in settings.items():
        issues += _check_ini_name(name, (*where, "settings", name), "section")
        if not isinstance(keys, dict):
            issues.append(
                Issue(
                    path_of(*where, "settings", name),
                    "must map keys of this dcv.conf section to values",
                )
            )
            continue
        for key, value in keys.items():
            issues += _check_key(
                key, value, (*where, "settings", name, key), managed.get((name, key))
            )
    return issues


def _check_anyware(anyware) -> list[Issue]:
    where = ("display", "anyware")
    issues = _unknown_keys(anyware, ANYWARE_KEYS, where)
    if anyware.get("flavor", "auto") not in ANYWARE_FLAVORS:
        issues.append(
            Issue(
                path_of(*where, "flavor"),
                f"must be one of {', '.join(ANYWARE_FLAVORS)} "
                "(graphics needs an NVIDIA GPU), got "
                f"{anyware.get('flavor')!r}",
            )
        )
    if "versions" in anyware:
        issues += _check_versions(anyware["versions"], "anyware", tuple(ANYWARE_PACKAGES.values()))
    code, server = anyware.get("registration_code"), anyware.get("license_server")
    # Never echo the code: say what is wrong with it, not what it is.
    if code is not None and (
        not isinstance(code, str) or not code.strip() or any(c.isspace() for c in code)
    ):
        issues.append(
            Issue(
                path_of(*where, "registration_code"),
                "must be HP's registration code as one quoted word (no spaces), or an "
                "sdb://<profile>/<key> reference to it (docs/secrets.md)",
            )
        )
    if server is not None and (
        not isinstance(server, str) or not server.startswith(("http://", "https://"))
    ):
        issues.append(
            Issue(
                path_of(*where, "license_server"),
                f"must be the local license server's URL, e.g. https://lls.studio.example:7070/request, got {server!r}",
            )
        )
    if code is not None and server is not None:
        issues.append(
            Issue(
                path_of(*where),
                "give either registration_code (HP's cloud licensing) or "
                "license_server (a local license server), not both",
            )
        )
    elif code is None and server is None:
        issues.append(
            Issue(
                path_of(*where),
                "needs registration_code (HP's cloud licensing) or "
                "license_server (a local license server): the agent refuses sessions unlicensed",
            )
        )
    if "settings" in anyware:
        issues += _check_flat_settings(
            anyware["settings"],
            (*where, "settings"),
            {PCOIP_LICENSE_SERVER_KEY: path_of(*where, "license_server")},
        )
    return issues


def _check_vnc(vnc) -> list[Issue]:
    where = ("display", "vnc")
    issues = _unknown_keys(vnc, VNC_KEYS, where)
    number = vnc.get("display", 1)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 99:
        issues.append(
            Issue(
                path_of(*where, "display"),
                f"must be the X display number, 1 to 99 (port 5900+N), got {number!r}",
            )
        )
    if "versions" in vnc:
        issues += _check_versions(vnc["versions"], "vnc", sorted(set(VNC_PACKAGES.values())))
    if "settings" in vnc:
        issues += _check_flat_settings(vnc["settings"], (*where, "settings"))
    return issues


_AGENT_CHECKS = {"dcv": _check_dcv, "anyware": _check_anyware, "vnc": _check_vnc}


# ---- the section -----------------------------------------------------------------------------------


def _check_agents(listed) -> list[Issue]:
    issues = [
        Issue(
            path_of("display", "agents"),
            f"unknown agent {name!r}{pillar.did_you_mean(name, list(AGENTS))}",
        )
        for name in listed
        if name not in AGENTS
    ]
    duplicates = sorted({str(name) for name in listed if listed.count(name) > 1})
    if duplicates:
        issues.append(
            Issue(path_of("display", "agents"), f"lists {', '.join(duplicates)} more than once")
        )
    return issues


def _check_owner(owner, listed, phase) -> list[Issue]:
    where = path_of("display", "owner")
    if owner is None:
        if phase != "bake" and any(name in AGENT_NEEDS_OWNER for name in listed):
            return [
                Issue(
                    where,
                    "is required for dcv and vnc: the artist's user name, who owns the remote session",
                )
            ]
        return []
    if not isinstance(owner, str) or not _USER.match(owner):
        return [Issue(where, f"must be the artist's user name, got {owner!r}")]
    if owner == "root":
        return [
            Issue(
                where,
                "must not be root: TigerVNC and HP Anyware refuse root sessions; "
                "name the artist's own account",
            )
        ]
    return []


def check(config) -> list[Issue]:
    """Every problem in `workstation:display`, each with its pillar path and the fix."""
    raw = (config or {}).get("display", {})
    if raw is None or raw == {}:
        return []
    if not isinstance(raw, dict):
        return [
            Issue(
                path_of("display"),
                "must be a mapping: {agents: [dcv, anyware, vnc], owner: <user>, ...}",
            )
        ]
    issues = _unknown_keys(raw, DISPLAY_KEYS, ("display",))
    listed = raw.get("agents", [])
    if not isinstance(listed, list):
        issues.append(
            Issue(
                path_of("display", "agents"), f"must be a list of agents from {', '.join(AGENTS)}"
            )
        )
        listed = []
    issues += _check_agents(listed)
    issues += _check_owner(raw.get("owner"), listed, (config or {}).get("phase", "all"))
    firewall = raw.get("firewall", "auto")
    if firewall not in FIREWALLS:
        issues.append(
            Issue(
                path_of("display", "firewall"),
                f"must be one of {', '.join(FIREWALLS)}, got {firewall!r}",
            )
        )
    for agent, check_agent in _AGENT_CHECKS.items():
        settings = (
            {} if raw.get(agent) is None else raw[agent]
        )  # `dcv:` with nothing under it is empty
        if not isinstance(settings, dict):
            issues.append(
                Issue(path_of("display", agent), f"must be a mapping of {TITLES[agent]} settings")
            )
        elif (
            agent in listed
        ):  # settings kept for an agent not listed are not acted on, so not judged
            issues += check_agent(settings)
    return issues


def issues_by_agent(config) -> dict[str, list[Issue]]:
    """The issues that stop each listed agent: its own section's, and those of the shared keys."""
    issues = check(config) + [
        i for i in pillar.check_settings(config) if i.path == path_of("phase")
    ]
    shared = [
        i for i in issues if not any(i.path.startswith(path_of("display", a)) for a in AGENTS)
    ]
    return {
        agent: shared + [i for i in issues if i.path.startswith(path_of("display", agent))]
        for agent in agents(config)
    }
