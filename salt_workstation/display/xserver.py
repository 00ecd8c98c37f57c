"""X on the GPU for remote desktops: `workstation:display:xserver`, its checks and its plan.

A DCV console session (and DCV's GL sharing for virtual sessions) shows the
desktop of an X server running on the NVIDIA card. A headless machine needs
that X server told which card to use (its BusID, from the `workstation_gpus`
grain) and that no monitor is attached (`AllowEmptyInitialConfiguration`, a
connected monitor declared, a virtual screen at the pillar's resolution); it
also needs a display manager to start X, and `graphical.target` as the default
so that it starts at boot. With an Intel or AMD card the X server's own
autoconfiguration drives the card and nothing is written for it; with no card
at all there is no console to show. Each case says so in the plan's comment.
Without an NVIDIA card (Intel, AMD, none) a drop-in left from one is removed:
X would otherwise look for a BusID that is gone.

Plain data, nothing read from or written to the machine: `display.xserver_plan`
hands this to xserver.sls, which lays the states out.
"""

from __future__ import annotations

import re

from salt_workstation import config as workstation_config
from salt_workstation import gpu_detect
from salt_workstation.pillar import Issue, path_of

KEYS = ("manage", "resolution", "display_manager")
DEFAULTS = {"manage": "auto", "resolution": "1920x1080", "display_manager": "auto"}
RESOLUTION = re.compile(r"^([1-9]\d{2,4})x([1-9]\d{2,4})$")
XORG_DROPIN = "10-workstation-nvidia.conf"  # in workstation:os:xorg_conf_dir
DEFAULT_TARGET = "graphical.target"
# Agents whose sessions show an X server on the GPU: DCV console sessions, and dcv-gl's GL sharing.
NEEDS_X = ("dcv",)
# Without an NVIDIA card, the cards whose X server autoconfigures a desktop (not a VM's or a BMC's adapter).
DESKTOP_VENDORS = ("intel", "amd")
_SLOT = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


def settings(config) -> dict:
    """workstation:display:xserver with its defaults (a malformed section reads as the defaults)."""
    display = (config or {}).get("display")
    raw = display.get("xserver") if isinstance(display, dict) else None
    return {**DEFAULTS, **(raw if isinstance(raw, dict) else {})}


def check(config) -> list[Issue]:
    """Every problem in workstation:display:xserver, each at its pillar path with the fix."""
    display = (config or {}).get("display")
    raw = display.get("xserver") if isinstance(display, dict) else None
    if raw is None:
        return []
    where = ("display", "xserver")
    if not isinstance(raw, dict):
        return [
            Issue(
                path_of(*where),
                "must be a mapping such as {manage: auto, resolution: 1920x1080, display_manager: auto}",
            )
        ]
    issues = [
        Issue(path_of(*where, key), f"unknown key; known: {', '.join(KEYS)}")
        for key in raw
        if key not in KEYS
    ]
    wanted = {**DEFAULTS, **raw}
    if wanted["manage"] not in ("auto", True, False):
        issues.append(
            Issue(
                path_of(*where, "manage"), f"must be auto, true or false, got {wanted['manage']!r}"
            )
        )
    if not isinstance(wanted["resolution"], str) or not RESOLUTION.match(wanted["resolution"]):
        issues.append(
            Issue(
                path_of(*where, "resolution"),
                f'must be WIDTHxHEIGHT in pixels, quoted, such as "2560x1440"; got {wanted["resolution"]!r}',
            )
        )
    if not isinstance(wanted["display_manager"], str) or not re.match(
        r"^[a-z0-9-]+$", wanted["display_manager"]
    ):
        issues.append(
            Issue(
                path_of(*where, "display_manager"),
                f"must be auto or a display manager such as gdm3, gdm or lightdm; got {wanted['display_manager']!r}",
            )
        )
    return issues


def bus_id(slot: str) -> str:
    """The X server's BusID for a sysfs PCI slot, in decimal: 0000:41:00.0 gives PCI:65:0:0
    (a non-zero PCI domain is written bus@domain, as Xorg reads it)."""
    found = _SLOT.match(slot or "")
    if not found:
        raise ValueError(f"{slot!r} is not a PCI slot such as 0000:01:00.0")
    domain, bus, device, function = (int(part, 16) for part in found.groups())
    return f"PCI:{bus}{f'@{domain}' if domain else ''}:{device}:{function}"


def x_card(cards) -> dict | None:
    """The NVIDIA card X runs on: the first VGA controller by slot, else the first 3D controller."""
    nvidia = sorted(gpu_detect.nvidia_cards(cards), key=lambda card: card.get("slot") or "")
    with_display = [card for card in nvidia if card.get("class") == "vga"]
    return (with_display or nvidia or [None])[0]


def render_xorg(card: dict, resolution: str) -> str:
    """The xorg.conf.d drop-in: X on this card only, headless, a virtual screen at resolution."""
    width, height = RESOLUTION.match(resolution).groups()
    return f"""\
# Managed by salt-workstation (workstation.display, display:xserver): edits are overwritten.
# X runs on {card.get("model")} at {card.get("slot")} only, headless: no monitor needs to be
# attached, and the screen is {width}x{height} for remote sessions (Amazon DCV).
Section "ServerFlags"
    # The screen below only: an integrated GPU is not added beside the NVIDIA card.
    Option "AutoAddGPU" "false"
EndSection

Section "ServerLayout"
    Identifier "workstation"
    Screen 0 "workstation-nvidia"
EndSection

Section "Device"
    Identifier "workstation-nvidia"
    Driver "nvidia"
    BusID "{bus_id(card["slot"])}"
    Option "AllowEmptyInitialConfiguration" "true"
    Option "ConnectedMonitor" "DFP-0"
EndSection

Section "Screen"
    Identifier "workstation-nvidia"
    Device "workstation-nvidia"
    DefaultDepth 24
    Option "AllowEmptyInitialConfiguration" "true"
    SubSection "Display"
        Depth 24
        Virtual {width} {height}
    EndSubSection
EndSection
"""


def _not_managed(comment: str, errors=None, xorg=None) -> dict:
    """X is not managed here: why, the pillar errors, and the drop-in to remove (None: leave it)."""
    return {
        "manage": False,
        "comment": comment,
        "errors": list(errors or []),
        "install": False,
        "start": False,
        "xorg": xorg,
    }


def _drop_in(config, content: str | None) -> dict:
    """The X drop-in's path and content; content None removes a drop-in left from an NVIDIA card."""
    return {
        "path": workstation_config.system_file(config, "xorg_conf_dir", XORG_DROPIN),
        "content": content,
    }


def agents_on_x(config) -> list[str]:
    """The listed agents whose sessions show the X server on the GPU, so they start after the display
    manager: DCV; with manage: true every listed agent (the pillar says one shows the console)."""
    display = (config or {}).get("display")
    agents = display.get("agents") if isinstance(display, dict) else None
    manage = settings(config)["manage"]
    return [agent for agent in agents or [] if manage is True or agent in NEEDS_X]


def _display_manager(config, grains, name: str) -> tuple[dict | None, str | None]:
    """The display manager's data from map.jinja (osfamilymap.yaml os:display_managers), or why not."""
    known = ((config or {}).get("os") or {}).get("display_managers") or {}
    if name == "auto":
        name = ((config or {}).get("os") or {}).get("display_manager")
    entry = known.get(name) if name else None
    if entry is None:
        family = (grains or {}).get("os_family")
        return None, (
            f"{path_of('display', 'xserver', 'display_manager')}: no display manager "
            f"{name!r} is known for os_family {family} (known: {', '.join(sorted(known)) or 'none'}); "
            "name one of those, or add it to workstation:lookup:os:display_managers"
        )
    wayland = entry.get("wayland_config") or {}
    path = wayland.get((grains or {}).get("os")) or wayland.get("default")
    return {
        "name": name,
        "packages": {package: None for package in entry.get("packages") or []},
        "unit": entry["unit"],
        # GDM must start Xorg, not Wayland: DCV console sessions and GL on the NVIDIA card need X.
        "wayland": (
            {"path": path, "style": "keyfile", "settings": {"daemon": {"WaylandEnable": "false"}}}
            if path
            else None
        ),
    }, None


def plan(config, grains) -> dict:
    """What workstation.display does for X on this machine: nothing (and why), or the X config,
    the display manager and the default target, with which steps this phase takes."""
    wanted = settings(config)
    issues = check(config)
    if issues:
        return _not_managed(
            "X for remote desktops was not managed. Fix the pillar:\n"
            + "\n".join(f"- {issue}" for issue in issues),
            [str(issue) for issue in issues],
        )
    if wanted["manage"] is False:
        return _not_managed(f"{path_of('display', 'xserver', 'manage')} is false: X is not managed")
    on_x = agents_on_x(config)
    if wanted["manage"] == "auto" and not on_x:
        return _not_managed(
            "No display agent here needs X on the GPU (TigerVNC's Xvnc renders off the GPU): "
            f"X is not managed; set {path_of('display', 'xserver', 'manage')}: true for VNC on the console"
        )
    cards = (grains or {}).get("workstation_gpus") or []
    # With no card for X (none, or only a VM's or a BMC's adapter) a drop-in left from an NVIDIA card
    # that is gone is removed: X would look for its BusID and not start.
    stale = _drop_in(config, None)
    if not cards:
        return _not_managed(
            "No GPU was found (grain workstation_gpus is empty): there is no console for X to show; "
            "remote desktops here use virtual sessions (DCV's Xdcv, TigerVNC's Xvnc)",
            xorg=stale,
        )
    manager, problem = _display_manager(config, grains, wanted["display_manager"])
    if problem:
        return _not_managed(f"X for remote desktops was not managed: {problem}", [problem])
    card = x_card(cards)
    if card is None and not any(c.get("vendor") in DESKTOP_VENDORS for c in cards):
        found = ", ".join(f"{c.get('model')} ({c.get('vendor')})" for c in cards)
        return _not_managed(
            f"No NVIDIA, Intel or AMD GPU here (found: {found}): a virtual or server console "
            "adapter shows no remote desktop; use DCV virtual sessions",
            xorg=stale,
        )
    phase = (config or {}).get("phase", "all")
    notes = []
    if card is None:
        found = ", ".join(
            f"{c.get('model')} ({c.get('kernel_driver') or 'no driver'})" for c in cards
        )
        notes.append(
            f"No NVIDIA card (found: {found}): no X configuration is written, the X server's own "
            "autoconfiguration drives the card; headless, without a monitor attached, it may show "
            "nothing: use DCV virtual sessions there"
        )
    elif card.get("class") != "vga":
        notes.append(
            f"{card.get('model')} is a 3D controller without display outputs: X runs on a virtual "
            "screen only"
        )
    start = phase != "bake"  # an image bake starts nothing
    return {
        "manage": True,
        "errors": [],
        "card": card,
        "install": phase in ("bake", "all"),  # packages, display manager enabled, default target
        "start": start,  # the display manager runs, restarted when the drop-in changed
        # The agents' units that start after the display manager (display.plan orders them).
        "agents_on_x": on_x if start else [],
        # Written in every phase: the card at boot may not be the one the image was baked on; without
        # an NVIDIA card (content None) a drop-in left from one is removed, or X would look for it.
        "xorg": _drop_in(config, render_xorg(card, wanted["resolution"]) if card else None),
        "display_manager": manager,
        "default_target": DEFAULT_TARGET,
        "resolution": wanted["resolution"],
        "notes": notes,
        "comment": (
            f"X on {card.get('model')} at {card.get('slot')} ({bus_id(card['slot'])}), headless at "
            f"{wanted['resolution']}, started by {manager['name']}"
            if card
            else f"X started by {manager['name']} on the machine's own card; " + notes[0]
        ),
    }
