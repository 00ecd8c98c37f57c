"""
Remote display agents (Amazon DCV, HP Anyware, TigerVNC) from the
``workstation:display`` pillar: what the formula lays out, what is in place,
and the actions its states take. Each function parses its arguments, calls
the core (``salt_workstation.display``) and returns data; on failure it
raises ``CommandExecutionError``, so ``salt-call`` exits non-zero.

The HP Anyware registration code is read here from its pillar path (an
``sdb://<profile>/<key>`` reference there resolved with ``sdb.get`` at that
moment) and handed only to HP's ``pcoip-register-host``; no function takes it
as an argument or returns it. A keyed digest of it tells a rotated code.
"""

import os

import salt.utils.data
from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import inifile, secrets, xprobe
from salt_workstation.display import effects, xserver
from salt_workstation.display import plan as display_plan
from salt_workstation.display import status as display_status
from salt_workstation.errors import WorkstationError

__virtualname__ = "display"

REGISTRATION_CODE = "workstation:display:anyware:registration_code"
DIGEST = "display.anyware.registration_code"  # its keyed digest's name (rotation)


def __virtual__():
    return __virtualname__


def _config():
    return __salt__["workstation.config"](unmask=True)


def _platform():
    return display_plan.platform_of(__grains__)


def _style(style):
    if style not in inifile.DIALECTS:
        raise SaltInvocationError(
            f"unknown config style {style!r}; use one of {', '.join(inifile.DIALECTS)}"
        )
    return style


def plan(config=None):
    """
    What ``workstation.display`` lays out for the agents in
    ``workstation:display:agents`` and ``workstation:phase``: the agents with
    their packages, config keys and units, which steps this phase takes,
    the firewall ports, and each agent whose pillar section has errors;
    per agent ``after_display_manager``: its unit starts after the display
    manager ``workstation.xserver`` starts. Never the registration code.

    CLI Example:

    .. code-block:: bash

        salt '*' display.plan
    """
    config = config if config is not None else _config()
    return display_plan.plan(config, _platform(), xserver.plan(config, __grains__))


def status():
    """
    Per agent in ``workstation:display:agents``: installed package versions,
    config keys that differ from the pillar, the service's state, whether
    each of its ports is listening, and (HP Anyware) whether the host is
    registered.

    CLI Example:

    .. code-block:: bash

        salt '*' display.status
    """
    found = display_status.report(
        _config(),
        _platform(),
        __salt__["dcc.package_versions"],
        effects.unit_state,
        registered=effects.anyware_registered,
    )
    x = xserver_status()
    if x["managed"]:
        found["xserver"] = x
    return found


def config_changes(path, settings, style):
    """
    The changes (``{key: {old, new}}``) merging ``settings`` into the agent
    file ``path`` would make; writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' display.config_changes /etc/dcv/dcv.conf '{connectivity: {web-port: 8443}}' dcv
    """
    try:
        return display_status.config_changes(path, settings, _style(style))
    except (WorkstationError, OSError) as exc:
        raise CommandExecutionError(str(exc)) from exc


def merge_config(path, settings, style, test=False):
    """
    Merge ``settings`` (``{section: {key: value}}``; ``""`` for keys outside
    any section; a null value removes the key) into the agent file ``path``,
    keeping every other line. Returns the changes ``{key: {old, new}}``
    (with ``test=True`` nothing is written).

    CLI Example:

    .. code-block:: bash

        salt '*' display.merge_config /etc/dcv/dcv.conf '{connectivity: {web-port: 8443}}' dcv test=True
    """
    try:
        return effects.merge_config(path, settings, _style(style), test=test)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def owner_problem(name):
    """
    Why ``name`` cannot own the remote sessions here (missing, or root), or
    None.

    CLI Example:

    .. code-block:: bash

        salt '*' display.owner_problem alice
    """
    return display_status.owner_problem(name)


def in_group(user, group):
    """
    Whether ``user`` is a member of ``group``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.in_group dcv video
    """
    try:
        return display_status.in_group(user, group)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def add_to_group(user, group):
    """
    Make ``user`` a member of ``group`` (other members stay). Returns True
    when it was added, False when it already was a member.

    CLI Example:

    .. code-block:: bash

        salt '*' display.add_to_group dcv video
    """
    try:
        if display_status.in_group(user, group):
            return False
        effects.join_group(user, group, __salt__["group.adduser"])
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc
    return True


def registered(validate_tool=None):
    """
    Whether the HP Anyware agent holds a valid license.

    CLI Example:

    .. code-block:: bash

        salt '*' display.registered
    """
    try:
        return effects.anyware_registered(validate_tool or effects.VALIDATE_TOOL)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def _sdb_get(uri):
    return __salt__["sdb.get"](uri, strict=True)


def _digests():
    """Keyed digests of the codes this minion registered with (rotation), in its cache folder."""
    return secrets.Digests(os.path.join(__opts__["cachedir"], "workstation", "digests"))


def _code(registered):
    """HP's registration code from the pillar, an sdb reference there resolved now (never returned).
    Straight from the pillar: pillar.get would hand back Salt's output mask, not the code."""
    raw = salt.utils.data.traverse_dict_and_list(__pillar__, REGISTRATION_CODE, None, delimiter=":")
    if not isinstance(raw, str) or not raw.strip():
        state = (
            "the host is not registered and" if not registered else "the host is registered, but"
        )
        raise CommandExecutionError(
            f"{state} {REGISTRATION_CODE} is empty: put HP's registration code there, or an "
            "sdb://<profile>/<key> reference to it (docs/secrets.md)"
        )
    code = secrets.reveal(raw, REGISTRATION_CODE, _sdb_get)
    if not isinstance(code, str) or not code.strip() or any(c.isspace() for c in code):
        raise CommandExecutionError(
            f"{REGISTRATION_CODE} must be HP's registration code as one word (the value is not shown)"
        )
    return code


def _registration(validate_tool, adopt=False):
    """(changes, code): what registering would change ({} when the host is registered with the code
    the pillar holds now) and that code. A host registered before its code was recorded is taken as
    registered with it, and with `adopt` the code's keyed digest is recorded."""
    registered = effects.anyware_registered(validate_tool)
    code = _code(registered)
    if not registered:
        return {"registered": True}, code
    rotated = _digests().changed(DIGEST, code)
    if rotated:
        return {"registered": True, "registration_code": "changed"}, code
    if rotated is None and adopt:
        _digests().record(DIGEST, code)
    return {}, code


def registration_changes(validate_tool=None, adopt=False):
    """
    What ``display.register`` would change: ``{}`` when the host holds a
    valid license and was registered with the code the pillar holds now;
    ``{"registered": True}`` when it is not registered;
    ``{"registered": True, "registration_code": "changed"}`` when the code
    (at ``workstation:display:anyware:registration_code``, or behind the
    sdb reference there) changed since this minion registered: a rotation.
    The code is compared as a keyed digest and never returned. ``adopt``
    records the code of a host registered before this was kept.

    CLI Example:

    .. code-block:: bash

        salt '*' display.registration_changes
    """
    try:
        return _registration(validate_tool or effects.VALIDATE_TOOL, adopt)[0]
    except (WorkstationError, OSError) as exc:
        raise CommandExecutionError(str(exc)) from exc


def register(register_tool=None, validate_tool=None, test=False):
    """
    Register this host with HP's licensing service with the code at pillar
    ``workstation:display:anyware:registration_code`` (an ``sdb://`` reference
    there is resolved now), only when it is not registered yet or the code
    changed since it was (``display.registration_changes``). Returns True when
    it registered the host (with ``test=True``: would, checking only that the
    code can be read), False when nothing was to do; never the code.

    CLI Example:

    .. code-block:: bash

        salt '*' display.register
    """
    register_tool, validate_tool = (
        register_tool or effects.REGISTER_TOOL,
        validate_tool or effects.VALIDATE_TOOL,
    )
    try:
        changes, code = _registration(validate_tool, adopt=not test)
        if not changes:
            return False
        if not test:
            effects.register_anyware(code, register_tool)
            if not effects.anyware_registered(validate_tool):
                raise CommandExecutionError(
                    f"{register_tool} succeeded but {validate_tool} still finds no valid license"
                )
            _digests().record(DIGEST, code)
    except (WorkstationError, OSError) as exc:
        raise CommandExecutionError(str(exc)) from exc
    return True


def closed_ports(ports, backend="auto"):
    """
    Which of the display agents' ports (``[{port, protocol, agent}]``) are
    not open yet in firewalld or ufw (whichever is present, or the one
    ``backend`` names). Returns ``{"backend", "closed", "ports"}``;
    ``backend`` is None when no firewall is managed. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' display.closed_ports '[{port: 8443, protocol: tcp, agent: dcv}]'
    """
    try:
        return effects.closed_ports(ports, backend)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def open_ports(ports, backend="auto", test=False):
    """
    Open the display agents' ports (``[{port, protocol, agent}]``) in
    firewalld or ufw; with neither present, open nothing and list them.
    Returns ``{"backend", "opened", "ports"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.open_ports '[{port: 8443, protocol: tcp, agent: dcv}]' test=True
    """
    try:
        return effects.open_ports(ports, backend, test=test)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def xserver_plan(config=None):
    """
    What ``workstation.display`` does for X on this machine
    (``workstation:display:xserver``): nothing and why, or the X drop-in for
    the NVIDIA card's BusID (from the ``workstation_gpus`` grain), the display
    manager, ``graphical.target``, and which of these this phase takes.

    CLI Example:

    .. code-block:: bash

        salt '*' display.xserver_plan
    """
    return xserver.plan(config if config is not None else _config(), __grains__)


def xorg_configured(path, content=None, test=False):
    """
    Write the X server drop-in ``path`` holding exactly ``content`` (whole,
    atomically, mode 0644, never through a link) when it differs; with
    ``content`` None, remove it when it is there. Returns ``{"changed":
    bool}``; ``test=True`` writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' display.xorg_configured /etc/X11/xorg.conf.d/10-workstation-nvidia.conf "$(cat conf)"
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise SaltInvocationError(f"path must be absolute, got {path!r}")
    if content is not None and not isinstance(content, str):
        raise SaltInvocationError(f"content must be text, or None to remove {path}")
    if display_status.xorg_config_holds(path, content):
        return {"changed": False}
    if not test:
        try:
            if content is None:
                effects.remove_xorg_config(path)
            else:
                effects.write_xorg_config(path, content)
        except WorkstationError as exc:
            raise CommandExecutionError(str(exc)) from exc
    return {"changed": True}


def xserver_status():
    """
    X for remote desktops (``workstation:display:xserver``): whether the X
    drop-in holds what the plan says, the display manager's unit, the default
    target, whether X runs on the NVIDIA card and whether ``dcvgldiag``
    passes, each with the reason when it does not.

    CLI Example:

    .. code-block:: bash

        salt '*' display.xserver_status
    """
    wanted = xserver.plan(_config(), __grains__)
    if not wanted["manage"]:
        return {"managed": False, "comment": wanted["comment"]}
    return display_status.xserver_report(
        wanted,
        effects.unit_state,
        xprobe.x_on_nvidia(expected=wanted["card"] is not None),
        xprobe.gldiag(__salt__) if wanted["card"] else None,
    )
