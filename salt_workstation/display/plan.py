"""What the display agents should be on this machine, as plain data.

From the pillar, the grains and `workstation:phase`: which agents, their
packages, the keys merged into each vendor file, their units and ports, and
which steps this phase takes (an image bake installs, configures and enables;
the first boot checks the owner, registers and starts; `all` does everything).
`workstation.display` loops over `plan()`; the states compare against it and
`display.status` reports against it. No secret is in this data: for HP
Anyware only whether a registration code is set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from salt_workstation import config as ws_config
from salt_workstation import gpu_detect, inifile
from salt_workstation.display import contract
from salt_workstation.display.contract import agent_settings, section
from salt_workstation.pillar import path_of

# The agents' own files: (the workstation:os folder key, the file name). The folders are where the
# vendors' packages read them; workstation:lookup:os moves them (a trial, an image root elsewhere).
DCV_CONF = ("dcv_dir", "dcv.conf")
DCV_DEFAULT_PORT = 8443
PCOIP_CONF = ("pcoip_dir", "pcoip-agent.conf")
ANYWARE_TCP = (443, 4172, 60443)
ANYWARE_UDP = (4172,)
VNC_DEFAULTS = ("tigervnc_dir", "vncserver-config-defaults")
VNC_USERS = ("tigervnc_dir", "vncserver.users")
VNC_BASE_PORT = 5900
SERVICES = {"dcv": "dcvserver.service", "anyware": "pcoip-agent.service"}
# TigerVNC's systemd template differs per OS family (Debian renamed it, as it did the package).
VNC_TEMPLATES = {
    "Debian": "tigervncserver@.service",
    "RedHat": "vncserver@.service",
    "Suse": "vncserver@.service",
}
# The pillar keys each agent file's keys come from, for error messages, by file name.
SOURCES = {
    DCV_CONF[1]: f"{path_of('display', 'dcv')} and {path_of('display', 'owner')}",
    PCOIP_CONF[1]: path_of("display", "anyware"),
    VNC_DEFAULTS[1]: path_of("display", "vnc", "settings"),
    VNC_USERS[1]: path_of("display", "owner"),
}


def agent_file(config, which: tuple) -> str:
    """The path of one agent file (DCV_CONF, ...) on this machine."""
    return ws_config.system_file(config, *which)


@dataclass(frozen=True)
class Platform:
    """What the minion is: OS family and name, CPU architecture, whether an NVIDIA GPU is present."""

    os_family: str = "Debian"
    os: str = "Debian"
    cpuarch: str = "x86_64"
    nvidia: bool = False


def platform_of(grains) -> Platform:
    """The Platform of a minion from its grains; NVIDIA GPUs from the `workstation_gpus` grain."""
    grains = grains or {}
    return Platform(
        os_family=grains.get("os_family") or "Debian",
        os=grains.get("os") or "",
        cpuarch=grains.get("cpuarch") or "",
        nvidia=bool(gpu_detect.nvidia_cards(grains.get("workstation_gpus"))),
    )


def _family(platform: Platform) -> str:
    return platform.os_family if platform.os_family in contract.VNC_PACKAGES else "RedHat"


def vnc_display(config) -> int:
    number = agent_settings(config, "vnc").get("display", 1)
    return number if isinstance(number, int) and not isinstance(number, bool) else 1


def service_unit(agent, config, platform: Platform) -> str:
    if agent == "vnc":
        return VNC_TEMPLATES[_family(platform)].replace("@", f"@:{vnc_display(config)}")
    return SERVICES[agent]


def packages(agent, config, platform: Platform) -> dict:
    """{package: pinned version or None} the agent installs on this platform."""
    settings = agent_settings(config, agent)
    if agent == "dcv":
        names = list(contract.DCV_PACKAGES)
        gl = settings.get("gl", "auto")
        if gl is True or (
            gl == "auto" and platform.nvidia and platform.cpuarch in ("x86_64", "amd64")
        ):
            names.append(contract.DCV_GL)
        if settings.get("web_viewer") is True:
            names.append(contract.DCV_WEB_VIEWER)
    elif agent == "anyware":
        flavor = settings.get("flavor", "auto")
        if flavor == "auto":
            flavor = "graphics" if platform.nvidia else "standard"
        names = [contract.ANYWARE_PACKAGES[flavor]]
    else:
        names = [contract.VNC_PACKAGES[_family(platform)]]
    pins = settings.get("versions") if isinstance(settings.get("versions"), dict) else {}
    return {name: (str(pins[name]) if name in pins else None) for name in names}


@dataclass(frozen=True)
class ConfigFile:
    """One set of keys merged into one agent file."""

    path: str
    style: str  # an inifile dialect name
    settings: dict  # {section: {key: value}}, "" for keys outside any section


def config_file(agent, config) -> ConfigFile | None:
    """The agent's own settings (written at bake): the keys the pillar names, nothing else."""
    settings = agent_settings(config, agent)
    if agent == "dcv":
        wanted: dict = {}
        for shortcut, (name, key) in contract.DCV_SHORTCUTS.items():
            if shortcut in settings:
                wanted.setdefault(name, {})[key] = settings[shortcut]
        for name, keys in (settings.get("settings") or {}).items():
            wanted.setdefault(name, {}).update(keys)
        return (
            ConfigFile(agent_file(config, DCV_CONF), inifile.DCV.name, wanted) if wanted else None
        )
    wanted = dict(settings.get("settings") or {})
    if agent == "anyware":
        if settings.get("license_server"):
            wanted[contract.PCOIP_LICENSE_SERVER_KEY] = settings["license_server"]
        return (
            ConfigFile(agent_file(config, PCOIP_CONF), inifile.PCOIP.name, {inifile.TOP: wanted})
            if wanted
            else None
        )
    return (
        ConfigFile(agent_file(config, VNC_DEFAULTS), inifile.TIGERVNC.name, {inifile.TOP: wanted})
        if wanted
        else None
    )


def owner_file(agent, config) -> ConfigFile | None:
    """The keys that hand the agent's session to the artist (written at boot)."""
    owner = section(config).get("owner")
    if not owner:
        return None
    if agent == "dcv":
        return ConfigFile(
            agent_file(config, DCV_CONF),
            inifile.DCV.name,
            {
                "session-management": {"create-session": True},
                "session-management/automatic-console-session": {"owner": owner},
            },
        )
    if agent == "vnc":
        return ConfigFile(
            agent_file(config, VNC_USERS),
            inifile.TIGERVNC.name,
            {inifile.TOP: {f":{vnc_display(config)}": owner}},
        )
    return None


def files(agent, config) -> list[ConfigFile]:
    """Every set of keys the agent's files should hold: its settings, then its owner's."""
    return [
        item for item in (config_file(agent, config), owner_file(agent, config)) if item is not None
    ]


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


def rule_text(rule: dict) -> str:
    """A firewall rule as firewalld and ufw write it: 8443/tcp."""
    return f"{rule['port']}/{rule['protocol']}"


def registration_wanted(config) -> bool:
    """Whether HP's cloud registration applies (the code's presence only: never its value)."""
    return bool(agent_settings(config, "anyware").get("registration_code"))


def _agent(agent, config, platform: Platform, install: bool, hand_over: bool, on_x: list) -> dict:
    """One ready agent: its data, and which of its states this phase writes (booleans)."""
    settings, owner = config_file(agent, config), owner_file(agent, config)
    return {
        "name": agent,
        "title": contract.TITLES[agent],
        "packages": packages(agent, config, platform),
        "unit": service_unit(agent, config, platform),
        # Ubuntu gives the GPU's render nodes to `video`; DCV's server runs as the `dcv` user
        "video_group": install and agent == "dcv" and platform.os == "Ubuntu",
        "configured": install and settings is not None,
        "config": asdict(settings) if settings else None,
        "owned": hand_over and owner is not None,
        "owner_file": asdict(owner) if owner else None,
        "registers": hand_over and agent == "anyware" and registration_wanted(config),
        # Its session shows the X server on the GPU: its unit starts after the display manager's.
        "after_display_manager": agent in on_x,
    }


def plan(config, platform: Platform, xserver_plan: dict | None = None) -> dict:
    """The data `workstation.display` lays out; a listed agent with pillar errors is `blocked` (one failing
    state naming them), and the others still converge. `xserver_plan` (display.xserver.plan, which
    workstation.xserver lays out) says which agents start after the display manager it starts."""
    phase = (config or {}).get("phase", "all")
    install, hand_over = phase in ("bake", "all"), phase in ("boot", "all")
    blocked = contract.issues_by_agent(config)
    ready = [agent for agent in contract.agents(config) if not blocked[agent]]
    on_x = (xserver_plan or {}).get("agents_on_x") or []
    agents = [_agent(agent, config, platform, install, hand_over, on_x) for agent in ready]
    repositories = (config or {}).get("repositories")
    return {
        "install": install,  # packages, config keys, firewall (bake, all)
        "hand_over": hand_over,  # owner, registration (boot, all)
        "start_services": phase != "bake",  # an image bake enables units and starts nothing
        # workstation.repos writes states for every repository in the pillar: the packages come after them
        "after_repositories": isinstance(repositories, dict) and bool(repositories),
        "owner": section(config).get("owner"),
        "check_owner": any(agent["owned"] for agent in agents),
        "blocked": [
            {
                "name": agent,
                "title": contract.TITLES[agent],
                "errors": [str(issue) for issue in issues],
            }
            for agent, issues in blocked.items()
            if issues
        ],
        "agents": agents,
        "firewall": {
            "open": install and bool(agents),
            "backend": section(config).get("firewall", "auto"),
            "ports": [rule for agent in ready for rule in ports(agent, config)],
        },
    }
