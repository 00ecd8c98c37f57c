"""Remote display agents: Amazon DCV, HP Anyware (PCoIP) and TigerVNC, from `workstation:display`.

The pillar names the agents a machine runs, the artist who owns its sessions,
and a few settings per agent. This module validates that section, lays out
the states `workstation.display` renders (by phase: an image bake installs
and enables, the first boot registers, sets the owner and starts), opens the
agents' ports, and reports what is in place. Plain Python: the Salt modules
in modules/display_mod.py and states/display_mod.py only wrap it.

The HP Anyware registration code is a secret: it never appears in an Issue,
a state argument, a change, a comment or a log line. Only
`register_anyware` sees it, to hand it to HP's tool.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from salt_workstation import gpu_detect, inifile, pillar, units
from salt_workstation.errors import WorkstationError
from salt_workstation.pillar import Issue, path_of

AGENTS = ("dcv", "anyware", "vnc")
DISPLAY_KEYS = ("agents", "owner", "firewall", *AGENTS)
FIREWALLS = ("auto", "firewalld", "ufw", "none")
DCV_KEYS = ("gl", "web_viewer", "versions", "license", "web_port", "quic", "authentication", "settings")
ANYWARE_KEYS = ("flavor", "versions", "registration_code", "license_server", "settings")
VNC_KEYS = ("display", "versions", "settings")
AGENT_KEYS = {"dcv": DCV_KEYS, "anyware": ANYWARE_KEYS, "vnc": VNC_KEYS}
DCV_AUTHENTICATION = ("system", "none")
ANYWARE_FLAVORS = ("auto", "graphics", "standard")
AGENT_NEEDS_OWNER = ("dcv", "vnc")  # DCV's console session and TigerVNC's display belong to one user

DCV_CONF = "/etc/dcv/dcv.conf"
DCV_DEFAULT_PORT = 8443
DCV_PACKAGES = ("nice-dcv-server", "nice-xdcv")
DCV_GL = "nice-dcv-gl"  # GPU sharing for virtual sessions; x86_64 only
DCV_WEB_VIEWER = "nice-dcv-web-viewer"
DCV_SHORTCUTS = {  # pillar key -> (dcv.conf section, key)
    "license": ("license", "license-file"),
    "web_port": ("connectivity", "web-port"),
    "quic": ("connectivity", "enable-quic-frontend"),
    "authentication": ("security", "authentication"),
}
DCV_OWNER_KEYS = (("session-management", "create-session"), ("session-management/automatic-console-session", "owner"))

PCOIP_CONF = "/etc/pcoip-agent/pcoip-agent.conf"
PCOIP_LICENSE_SERVER_KEY = "pcoip.license_server_path"
ANYWARE_PACKAGES = {"graphics": "pcoip-agent-graphics", "standard": "pcoip-agent-standard"}
ANYWARE_TCP = (443, 4172, 60443)
ANYWARE_UDP = (4172,)
REGISTER_TOOL = "/usr/sbin/pcoip-register-host"
VALIDATE_TOOL = "/usr/sbin/pcoip-validate-license"
REGISTRATION_TIMEOUT = 300

VNC_DEFAULTS = "/etc/tigervnc/vncserver-config-defaults"
VNC_USERS = "/etc/tigervnc/vncserver.users"
VNC_BASE_PORT = 5900
# TigerVNC's package and systemd template differ per OS family (Debian renamed both).
VNC_PLATFORM = {
    "Debian": {"package": "tigervnc-standalone-server", "template": "tigervncserver@.service"},
    "RedHat": {"package": "tigervnc-server", "template": "vncserver@.service"},
    "Suse": {"package": "tigervnc", "template": "vncserver@.service"},
}
SERVICES = {"dcv": "dcvserver.service", "anyware": "pcoip-agent.service"}
TITLES = {"dcv": "Amazon DCV", "anyware": "HP Anyware", "vnc": "TigerVNC"}

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_INI_NAME = re.compile(r"^[A-Za-z0-9_.:/@-]+$")  # section and key names we write: no '=', '[', '#' or spaces
_REDACTED = "********"


# ---- the pillar section ------------------------------------------------------------------------


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


def _unknown_keys(mapping, keys, where) -> list[Issue]:
    return [Issue(path_of(*where, key), f"unknown key{pillar.did_you_mean(key, list(keys))}")
            for key in mapping if key not in keys]


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
    return [Issue(path_of(*where), f"must be text, a number, true/false, or null to remove the key; "
                                   f"got a {type(value).__name__}")]


def _check_ini_name(name, where, what) -> list[Issue]:
    if not isinstance(name, str) or not _INI_NAME.match(name):
        return [Issue(path_of(*where), f"{what} names hold only letters, digits and . _ - : / @ (got {name!r})")]
    return []


def _check_flat_settings(settings, where, reserved=None) -> list[Issue]:
    """`settings: {key: value}` for sectionless files; `reserved` maps keys the pillar sets elsewhere."""
    if not isinstance(settings, dict):
        return [Issue(path_of(*where), "must map each key of the file to its value")]
    issues = []
    for key, value in settings.items():
        issues += _check_ini_name(key, (*where, key), "key")
        issues += _check_scalar(value, (*where, key))
        if reserved and key in reserved:
            issues.append(Issue(path_of(*where, key), f"is set by {reserved[key]}; set it there and remove it here"))
    return issues


def _check_versions(versions, agent, allowed) -> list[Issue]:
    where = ("display", agent, "versions")
    if not isinstance(versions, dict):
        return [Issue(path_of(*where), "must map package names to pinned versions (quoted)")]
    issues = []
    for name, pinned in versions.items():
        if name not in allowed:
            issues.append(Issue(path_of(*where, name), f"is not a package of {TITLES[agent]}; "
                                                       f"pin one of {', '.join(allowed)}"))
        elif not isinstance(pinned, str) or not pinned:
            issues.append(Issue(path_of(*where, name), f"pin an exact version as a quoted string, got {pinned!r}"))
    return issues


def _check_dcv(dcv) -> list[Issue]:
    where = ("display", "dcv")
    issues = _unknown_keys(dcv, DCV_KEYS, where)
    if "gl" in dcv:
        issues += _check_bool(dcv["gl"], (*where, "gl"), auto=True)
    if "web_viewer" in dcv:
        issues += _check_bool(dcv["web_viewer"], (*where, "web_viewer"))
    if "quic" in dcv:
        issues += _check_bool(dcv["quic"], (*where, "quic"))
    if "web_port" in dcv:
        issues += _check_port(dcv["web_port"], (*where, "web_port"))
    if "license" in dcv and (not isinstance(dcv["license"], str) or not dcv["license"].strip()
                             or "\n" in dcv["license"]):
        issues.append(Issue(path_of(*where, "license"),
                            "must be the license server as port@host (e.g. 5053@rlm.studio.example) or a license file path"))
    if "authentication" in dcv and dcv["authentication"] not in DCV_AUTHENTICATION:
        issues.append(Issue(path_of(*where, "authentication"),
                            f"must be one of {', '.join(DCV_AUTHENTICATION)}, got {dcv['authentication']!r}"))
    if "versions" in dcv:
        issues += _check_versions(dcv["versions"], "dcv", (*DCV_PACKAGES, DCV_GL, DCV_WEB_VIEWER))
    settings = dcv.get("settings", {})
    if not isinstance(settings, dict):
        return issues + [Issue(path_of(*where, "settings"), "must map dcv.conf sections to {key: value}")]
    managed = {place: f"{path_of(*where, shortcut)}" for shortcut, place in DCV_SHORTCUTS.items()}
    managed.update({place: path_of("display", "owner") for place in DCV_OWNER_KEYS})
    for name, keys in settings.items():
        issues += _check_ini_name(name, (*where, "settings", name), "section")
        if not isinstance(keys, dict):
            issues.append(Issue(path_of(*where, "settings", name), "must map keys of this dcv.conf section to values"))
            continue
        for key, value in keys.items():
            issues += _check_ini_name(key, (*where, "settings", name, key), "key")
            issues += _check_scalar(value, (*where, "settings", name, key))
            if (name, key) in managed:
                issues.append(Issue(path_of(*where, "settings", name, key),
                                    f"is set by {managed[(name, key)]}; set it there and remove it here"))
    return issues


def _check_anyware(anyware) -> list[Issue]:
    where = ("display", "anyware")
    issues = _unknown_keys(anyware, ANYWARE_KEYS, where)
    if anyware.get("flavor", "auto") not in ANYWARE_FLAVORS:
        issues.append(Issue(path_of(*where, "flavor"), f"must be one of {', '.join(ANYWARE_FLAVORS)} "
                                                       "(graphics needs an NVIDIA GPU), got "
                                                       f"{anyware.get('flavor')!r}"))
    if "versions" in anyware:
        issues += _check_versions(anyware["versions"], "anyware", tuple(ANYWARE_PACKAGES.values()))
    code, server = anyware.get("registration_code"), anyware.get("license_server")
    # Never echo the code: say what is wrong with it, not what it is.
    if code is not None and (not isinstance(code, str) or not code.strip() or any(c.isspace() for c in code)):
        issues.append(Issue(path_of(*where, "registration_code"),
                            "must be HP's registration code as one quoted word (no spaces); "
                            "keep it in an encrypted pillar (gpg renderer)"))
    if server is not None and (not isinstance(server, str) or not server.startswith(("http://", "https://"))):
        issues.append(Issue(path_of(*where, "license_server"),
                            f"must be the local license server's URL, e.g. https://lls.studio.example:7070/request, got {server!r}"))
    if code is not None and server is not None:
        issues.append(Issue(path_of(*where), "give either registration_code (HP's cloud licensing) or "
                                             "license_server (a local license server), not both"))
    elif code is None and server is None:
        issues.append(Issue(path_of(*where), "needs registration_code (HP's cloud licensing) or "
                                             "license_server (a local license server): the agent refuses sessions unlicensed"))
    if "settings" in anyware:
        issues += _check_flat_settings(anyware["settings"], (*where, "settings"),
                                       {PCOIP_LICENSE_SERVER_KEY: path_of(*where, "license_server")})
    return issues


def _check_vnc(vnc) -> list[Issue]:
    where = ("display", "vnc")
    issues = _unknown_keys(vnc, VNC_KEYS, where)
    number = vnc.get("display", 1)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 99:
        issues.append(Issue(path_of(*where, "display"), f"must be the X display number, 1 to 99 (port 5900+N), got {number!r}"))
    if "versions" in vnc:
        issues += _check_versions(vnc["versions"], "vnc", sorted({p["package"] for p in VNC_PLATFORM.values()}))
    if "settings" in vnc:
        issues += _check_flat_settings(vnc["settings"], (*where, "settings"))
    return issues


def check(config) -> list[Issue]:
    """Every problem in `workstation:display`, each with its pillar path and the fix."""
    raw = (config or {}).get("display", {})
    if raw is None or raw == {}:
        return []
    if not isinstance(raw, dict):
        return [Issue(path_of("display"), "must be a mapping: {agents: [dcv, anyware, vnc], owner: <user>, ...}")]
    issues = _unknown_keys(raw, DISPLAY_KEYS, ("display",))
    listed = raw.get("agents", [])
    if not isinstance(listed, list):
        issues.append(Issue(path_of("display", "agents"), f"must be a list of agents from {', '.join(AGENTS)}"))
        listed = []
    for name in listed:
        if name not in AGENTS:
            issues.append(Issue(path_of("display", "agents"),
                                f"unknown agent {name!r}{pillar.did_you_mean(name, list(AGENTS))}"))
    duplicates = sorted({str(name) for name in listed if listed.count(name) > 1})
    if duplicates:
        issues.append(Issue(path_of("display", "agents"), f"lists {', '.join(duplicates)} more than once"))
    owner = raw.get("owner")
    if owner is not None:
        if not isinstance(owner, str) or not _USER.match(owner):
            issues.append(Issue(path_of("display", "owner"), f"must be the artist's user name, got {owner!r}"))
        elif owner == "root":
            issues.append(Issue(path_of("display", "owner"), "must not be root: TigerVNC and HP Anyware refuse root "
                                                             "sessions; name the artist's own account"))
    elif (config or {}).get("phase", "all") != "bake" and any(name in AGENT_NEEDS_OWNER for name in listed):
        issues.append(Issue(path_of("display", "owner"),
                            "is required for dcv and vnc: the artist's user name, who owns the remote session"))
    firewall = raw.get("firewall", "auto")
    if firewall not in FIREWALLS:
        issues.append(Issue(path_of("display", "firewall"), f"must be one of {', '.join(FIREWALLS)}, got {firewall!r}"))
    checks = {"dcv": _check_dcv, "anyware": _check_anyware, "vnc": _check_vnc}
    for agent, check_agent in checks.items():
        settings = {} if raw.get(agent) is None else raw[agent]  # `dcv:` with nothing under it is empty
        if not isinstance(settings, dict):
            issues.append(Issue(path_of("display", agent), f"must be a mapping of {TITLES[agent]} settings"))
        elif agent in listed:  # settings kept for an agent not listed are not acted on, so not judged
            issues += check_agent(settings)
    return issues


def issues_by_agent(config) -> dict[str, list[Issue]]:
    """The issues that stop each listed agent: its own section's, and those of the shared keys."""
    issues = check(config) + [i for i in pillar.check_settings(config) if i.path == path_of("phase")]
    shared = [i for i in issues if not any(i.path.startswith(path_of("display", a)) for a in AGENTS)]
    return {agent: shared + [i for i in issues if i.path.startswith(path_of("display", agent))]
            for agent in agents(config)}


# ---- what each agent wants ---------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """What the minion is: OS family and name, CPU architecture, whether an NVIDIA GPU is present."""

    os_family: str = "Debian"
    os: str = "Debian"
    cpuarch: str = "x86_64"
    nvidia: bool = False


def platform_of(grains) -> Platform:
    """The Platform of a minion from its grains; NVIDIA GPUs from the gpu feature's `workstation_gpus` grain."""
    grains = grains or {}
    return Platform(
        os_family=grains.get("os_family") or "Debian",
        os=grains.get("os") or "",
        cpuarch=grains.get("cpuarch") or "",
        nvidia=bool(gpu_detect.nvidia_cards(grains.get("workstation_gpus"))),
    )


def _vnc_platform(platform: Platform) -> dict:
    return VNC_PLATFORM.get(platform.os_family, VNC_PLATFORM["RedHat"])


def vnc_display(config) -> int:
    number = agent_settings(config, "vnc").get("display", 1)
    return number if isinstance(number, int) and not isinstance(number, bool) else 1


def service_unit(agent, config, platform: Platform) -> str:
    if agent == "vnc":
        return _vnc_platform(platform)["template"].replace("@", f"@:{vnc_display(config)}")
    return SERVICES[agent]


def packages(agent, config, platform: Platform) -> dict:
    """{package: pinned version or None} the agent installs on this platform."""
    settings = agent_settings(config, agent)
    if agent == "dcv":
        names = list(DCV_PACKAGES)
        gl = settings.get("gl", "auto")
        if gl is True or (gl == "auto" and platform.nvidia and platform.cpuarch in ("x86_64", "amd64")):
            names.append(DCV_GL)
        if settings.get("web_viewer") is True:
            names.append(DCV_WEB_VIEWER)
    elif agent == "anyware":
        flavor = settings.get("flavor", "auto")
        if flavor == "auto":
            flavor = "graphics" if platform.nvidia else "standard"
        names = [ANYWARE_PACKAGES[flavor]]
    else:
        names = [_vnc_platform(platform)["package"]]
    pins = settings.get("versions") if isinstance(settings.get("versions"), dict) else {}
    return {name: (str(pins[name]) if name in pins else None) for name in names}


@dataclass(frozen=True)
class ConfigFile:
    """One set of keys merged into one agent file."""

    path: str
    style: str  # an inifile dialect name
    settings: dict  # {section: {key: value}}, "" for keys outside any section


def config_files(agent, config) -> list[ConfigFile]:
    """The agent's own settings (written at bake): the keys the pillar names, nothing else."""
    settings = agent_settings(config, agent)
    if agent == "dcv":
        wanted: dict = {}
        for shortcut, (name, key) in DCV_SHORTCUTS.items():
            if shortcut in settings:
                wanted.setdefault(name, {})[key] = settings[shortcut]
        for name, keys in (settings.get("settings") or {}).items():
            wanted.setdefault(name, {}).update(keys)
        return [ConfigFile(DCV_CONF, inifile.DCV.name, wanted)] if wanted else []
    if agent == "anyware":
        wanted = dict(settings.get("settings") or {})
        if settings.get("license_server"):
            wanted[PCOIP_LICENSE_SERVER_KEY] = settings["license_server"]
        return [ConfigFile(PCOIP_CONF, inifile.PCOIP.name, {inifile.TOP: wanted})] if wanted else []
    wanted = dict(settings.get("settings") or {})
    return [ConfigFile(VNC_DEFAULTS, inifile.TIGERVNC.name, {inifile.TOP: wanted})] if wanted else []


def owner_files(agent, config) -> list[ConfigFile]:
    """The keys that hand the agent's session to the artist (written at boot)."""
    owner = section(config).get("owner")
    if not owner:
        return []
    if agent == "dcv":
        return [ConfigFile(DCV_CONF, inifile.DCV.name, {
            "session-management": {"create-session": True},
            "session-management/automatic-console-session": {"owner": owner},
        })]
    if agent == "vnc":
        return [ConfigFile(VNC_USERS, inifile.TIGERVNC.name, {inifile.TOP: {f":{vnc_display(config)}": owner}})]
    return []


def ports(agent, config) -> list[dict]:
    """The ports an agent listens on, as firewall rules: {"port", "protocol", "agent"}."""
    if agent == "dcv":
        settings = agent_settings(config, "dcv")
        port = settings.get("web_port", DCV_DEFAULT_PORT)
        found = [(port, "tcp")] + ([(port, "udp")] if settings.get("quic") is True else [])
    elif agent == "anyware":
        found = [(port, "tcp") for port in ANYWARE_TCP] + [(port, "udp") for port in ANYWARE_UDP]
    else:
        found = [(VNC_BASE_PORT + vnc_display(config), "tcp")]
    return [{"port": port, "protocol": protocol, "agent": agent} for port, protocol in found]


def registration_wanted(config) -> bool:
    """Whether HP's cloud registration applies (the code's presence only: never its value)."""
    return bool(agent_settings(config, "anyware").get("registration_code"))


# ---- the formula's states ----------------------------------------------------------------------


def _agent_states(agent, config, platform: Platform, phase: str) -> list[dict]:
    prefix = f"workstation-display-{agent}"
    bake, boot = phase in ("bake", "all"), phase in ("boot", "all")
    states, requires, watches = [], [], []
    packages_id = f"{prefix}-packages"
    if bake:
        states.append(units.state(packages_id, "dcc.packages_installed", name=TITLES.get(agent, agent),
                             packages=packages(agent, config, platform)))
        requires.append({"dcc": packages_id})
        if agent == "dcv" and platform.os == "Ubuntu":
            # Ubuntu gives the GPU's render nodes to `video`; DCV's server runs as the `dcv` user
            states.append(units.state(f"{prefix}-video-group", "display.group_member", name="dcv", group="video",
                                 require=[{"dcc": packages_id}]))
        for index, item in enumerate(config_files(agent, config)):
            state_id = f"{prefix}-config" if index == 0 else f"{prefix}-config-{index + 1}"
            states.append(units.state(state_id, "display.config_merged", name=item.path, style=item.style,
                                 settings=item.settings, require=[{"dcc": packages_id}]))
            watches.append({"display": state_id})
    if boot:
        owner_needed = owner_files(agent, config)
        if owner_needed:
            requires.append({"display": "workstation-display-owner"})
        for index, item in enumerate(owner_needed):
            state_id = f"{prefix}-owner" if index == 0 else f"{prefix}-owner-{index + 1}"
            states.append(units.state(state_id, "display.config_merged", name=item.path, style=item.style,
                                 settings=item.settings,
                                 require=[{"display": "workstation-display-owner"}, *watches,
                                          *([{"dcc": packages_id}] if bake else [])]))
            watches.append({"display": state_id})
        if agent == "anyware" and registration_wanted(config):
            state_id = f"{prefix}-registration"
            states.append(units.state(state_id, "display.anyware_registered", name=agent,
                                 **({"require": [{"dcc": packages_id}]} if bake else {})))
            requires.append({"display": state_id})
    unit = service_unit(agent, config, platform)
    # watch: a changed config or owner restarts a running agent (and starts a stopped one)
    states.append(units.service_state(f"{prefix}-service", unit, phase == "bake", require=requires, watch=watches))
    return states


def formula_data(config, platform: Platform) -> dict:
    """The states `workstation.display` renders, in order; a listed agent with pillar errors gets one
    failing state naming them, and the others still converge."""
    phase = config.get("phase", "all")
    blocked = issues_by_agent(config)
    listed = agents(config)
    states: list[dict] = []
    ready = [agent for agent in listed if not blocked[agent]]
    for agent in listed:
        if blocked[agent]:
            states.append(units.state(f"workstation-display-{agent}", "display.pillar_valid", name=agent,
                                 errors=[str(issue) for issue in blocked[agent]]))
    if not ready:
        return {"states": states}
    owner = section(config).get("owner")
    if phase in ("boot", "all") and any(owner_files(agent, config) for agent in ready):
        states.append(units.state("workstation-display-owner", "display.owner_exists", name=owner))
    for agent in ready:
        states.extend(_agent_states(agent, config, platform, phase))
    if phase in ("bake", "all"):
        rules = [rule for agent in ready for rule in ports(agent, config)]
        states.append(units.state("workstation-display-firewall", "display.ports_open", name="workstation-display",
                             ports=rules, backend=section(config).get("firewall", "auto")))
    return {"states": states}


# ---- acting: packages, users, registration, firewall -------------------------------------------


def owner_problem(owner: str) -> str | None:
    """Why `owner` cannot own a remote session here, or None."""
    where = path_of("display", "owner")
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return (f"user {owner!r} ({where}) does not exist on this machine: create the artist's account "
                "(or join the machine to the directory) before the display agents start, or fix the name")
    if entry.pw_uid == 0:
        return f"user {owner!r} ({where}) is root: remote sessions must belong to the artist's own account"
    return None


def _redact(text: str, secret: str) -> str:
    """The text with the secret, and each longer piece of it, masked."""
    pieces = {secret, *(part for part in re.split(r"[@\-:]", secret) if len(part) >= 4)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, _REDACTED)
    return text


def anyware_registered(validate_tool: str = VALIDATE_TOOL) -> bool:
    """Whether the PCoIP agent holds a valid license (HP's pcoip-validate-license exits 0)."""
    if not os.path.exists(validate_tool):
        raise WorkstationError(f"{validate_tool} is missing: is the HP Anyware agent installed?")
    try:
        done = subprocess.run([validate_tool], capture_output=True, stdin=subprocess.DEVNULL,  # noqa: S603
                              timeout=REGISTRATION_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise WorkstationError(f"{validate_tool} did not answer in {REGISTRATION_TIMEOUT} s") from None
    return done.returncode == 0


def register_anyware(code: str, register_tool: str = REGISTER_TOOL) -> None:
    """Register this host with HP's licensing service.

    pcoip-register-host takes the code only as --registration-code=... (it reads no file and no
    stdin), so the code is on its command line for the seconds it runs; it is never logged, and
    any echo of it in the tool's output is masked before it reaches an error message.
    """
    if not os.path.exists(register_tool):
        raise WorkstationError(f"{register_tool} is missing: is the HP Anyware agent installed?")
    try:
        done = subprocess.run([register_tool, f"--registration-code={code}"],  # noqa: S603
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=REGISTRATION_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        # the exception's own text holds the command line, code included: never pass it on
        raise WorkstationError(f"{register_tool} did not finish in {REGISTRATION_TIMEOUT} s") from None
    except OSError as exc:
        raise WorkstationError(f"{register_tool} could not run: {exc.strerror}") from None
    if done.returncode != 0:
        output = _redact((done.stderr or done.stdout or "").strip(), code)
        raise WorkstationError(f"{register_tool} failed (exit {done.returncode}): {output or 'no output'}; "
                               f"check {path_of('display', 'anyware', 'registration_code')}")


def _run(argv, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,  # noqa: S603
                          timeout=timeout, check=False)


class Firewall:
    """firewalld (running: firewall-cmd, permanent and runtime; stopped: firewall-offline-cmd) or ufw."""

    def __init__(self, backend: str, tool: str, offline: bool = False):
        self.backend, self.tool, self.offline = backend, tool, offline

    def is_open(self, rule: str) -> bool:
        if self.backend == "ufw":
            added = _run([self.tool, "show", "added"]).stdout
            return f"ufw allow {rule}" in added.splitlines()
        query = [self.tool, f"--query-port={rule}"] if self.offline else [self.tool, "--permanent", f"--query-port={rule}"]
        return _run(query).returncode == 0

    def open(self, rule: str) -> None:
        if self.backend == "ufw":
            commands = [[self.tool, "allow", rule]]
        elif self.offline:
            commands = [[self.tool, f"--add-port={rule}"]]
        else:  # permanent for the next boot, runtime for now: no reload that would drop live rules
            commands = [[self.tool, "--permanent", f"--add-port={rule}"], [self.tool, f"--add-port={rule}"]]
        for argv in commands:
            done = _run(argv)
            if done.returncode != 0:
                raise WorkstationError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")


def find_firewall(preference: str, path: str | None = None) -> Firewall | None:
    """The firewall to open ports in: the preferred one, or with `auto` firewalld then ufw; None when none is here."""
    if preference == "none":
        return None
    if preference in ("auto", "firewalld"):
        online = shutil.which("firewall-cmd", path=path)
        if online and _run([online, "--state"]).returncode == 0:
            return Firewall("firewalld", online)
        offline = shutil.which("firewall-offline-cmd", path=path)
        if offline:
            return Firewall("firewalld", offline, offline=True)
        if preference == "firewalld":
            raise WorkstationError(f"{path_of('display', 'firewall')} is firewalld, but neither firewall-cmd "
                                   "(running) nor firewall-offline-cmd is here; install firewalld or choose auto")
    if preference in ("auto", "ufw"):
        tool = shutil.which("ufw", path=path)
        if tool:
            return Firewall("ufw", tool)
        if preference == "ufw":
            raise WorkstationError(f"{path_of('display', 'firewall')} is ufw, but ufw is not installed; "
                                   "install it or choose auto")
    return None


def rule_text(rule: dict) -> str:
    return f"{rule['port']}/{rule['protocol']}"


def open_ports(rules: list[dict], preference: str = "auto", test: bool = False, path: str | None = None) -> dict:
    """{"backend": name or None, "opened": [rules opened or to open], "ports": [every rule]}."""
    wanted = sorted({rule_text(rule) for rule in rules}, key=lambda r: (int(r.split("/")[0]), r))
    firewall = find_firewall(preference, path)
    if firewall is None:
        return {"backend": None, "opened": [], "ports": wanted}
    missing = [rule for rule in wanted if not firewall.is_open(rule)]
    if not test:
        for rule in missing:
            firewall.open(rule)
    return {"backend": firewall.backend, "opened": missing, "ports": wanted}


# ---- reporting ---------------------------------------------------------------------------------


def listening(proc_root: str = "/proc") -> set[tuple[int, str]]:
    """(port, protocol) of every listening TCP socket and bound UDP socket, from /proc/net."""
    found = set()
    for protocol in ("tcp", "udp"):
        for name in (protocol, f"{protocol}6"):
            try:
                lines = (Path(proc_root) / "net" / name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) < 4:
                    continue
                if protocol == "tcp" and fields[3] != "0A":  # 0A: LISTEN
                    continue
                found.add((int(fields[1].rsplit(":", 1)[1], 16), protocol))
    return found


def unit_state(unit: str) -> dict:
    """{"enabled": bool, "active": systemd's word} for a unit; "unknown" where systemd does not run."""
    try:
        enabled = units.is_enabled(unit)
        active = _run(["systemctl", "is-active", unit]).stdout.strip() or "unknown"
    except (WorkstationError, FileNotFoundError):
        return {"enabled": False, "active": "unknown"}
    return {"enabled": enabled, "active": active}


def config_drift(files: list[ConfigFile]) -> dict:
    """{path: {key label: {"want": ..., "have": ...}}} for each wanted key that the file does not hold."""
    drift: dict = {}
    for item in files:
        try:
            text = inifile.read(item.path) or ""
        except WorkstationError:  # a link or folder where the config belongs: every key drifted
            text = ""
        for key, (have, want) in inifile.values(text, item.settings, inifile.DIALECTS[item.style]).items():
            if have != want:
                drift.setdefault(item.path, {})[key] = {"want": want, "have": have}
    return drift


def status(config, platform: Platform, installed_versions, registered=None, proc_root: str = "/proc") -> dict:
    """Per listed agent: installed versions, config drift, service state, listening ports.

    installed_versions: callable([names]) -> {name: version or ''}; registered: callable() -> bool
    (HP Anyware's license check), called only for anyware with a registration code.
    """
    bound = listening(proc_root)
    report = {}
    for agent in agents(config):
        wanted = packages(agent, config, platform)
        unit = service_unit(agent, config, platform)
        entry = {
            "packages": installed_versions(list(wanted)),
            "config_drift": config_drift(config_files(agent, config) + owner_files(agent, config)),
            "service": {"unit": unit, **unit_state(unit)},
            "ports": {rule_text(rule): (rule["port"], rule["protocol"]) in bound for rule in ports(agent, config)},
        }
        if agent == "anyware" and registration_wanted(config) and registered is not None:
            try:
                entry["registered"] = registered()
            except WorkstationError as exc:
                entry["registered"] = False
                entry["registration_error"] = str(exc)
        report[agent] = entry
    return report
