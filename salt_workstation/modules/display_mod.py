"""
Remote display agents (Amazon DCV, HP Anyware, TigerVNC) from the
``workstation:display`` pillar: what the formula renders, what is in place,
and the actions its states take.

The HP Anyware registration code is read here from its pillar path and
handed only to HP's ``pcoip-register-host``; no function takes it as an
argument or returns it.
"""

import grp
import pwd

import salt.utils.data

from salt_workstation import display, inifile
from salt_workstation.errors import WorkstationError

__virtualname__ = "display"

REGISTRATION_CODE = "workstation:display:anyware:registration_code"


def __virtual__():
    return __virtualname__


def _config():
    return __salt__["workstation.config"](unmask=True)


def _platform():
    return display.platform_of(__grains__)


def formula_data(config=None):
    """
    The states ``workstation.display`` renders for the agents in
    ``workstation:display:agents``, laid out for ``workstation:phase``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.formula_data
    """
    return display.formula_data(config if config is not None else _config(), _platform())


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
    return display.status(_config(), _platform(), __salt__["dcc.package_versions"], registered=display.anyware_registered)


def merge_config(path, settings, style, test=False):
    """
    Merge ``settings`` (``{section: {key: value}}``; ``""`` for keys outside
    any section; a null value removes the key) into the agent file ``path``,
    keeping every other line. Returns ``{"changes": {key: {old, new}}}`` or
    ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.merge_config /etc/dcv/dcv.conf '{connectivity: {web-port: 8443}}' dcv test=True
    """
    if style not in inifile.DIALECTS:
        return {"error": f"unknown config style {style!r}; use one of {', '.join(inifile.DIALECTS)}"}
    try:
        return {"changes": inifile.merge_file(path, settings, inifile.DIALECTS[style], test=test)}
    except (WorkstationError, OSError) as exc:
        return {"error": f"{path}: {exc}"}


def owner_problem(name):
    """
    Why ``name`` cannot own the remote sessions here (missing, or root), or
    None.

    CLI Example:

    .. code-block:: bash

        salt '*' display.owner_problem alice
    """
    return display.owner_problem(name)


def add_to_group(user, group, test=False):
    """
    Make ``user`` a member of ``group`` (other members stay). Returns
    ``{"changed": bool}`` or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.add_to_group dcv video
    """
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        return {"error": f"group {group} does not exist"}
    if user in members:
        return {"changed": False}
    try:
        pwd.getpwnam(user)
    except KeyError:
        if not test:  # a dry run before the agent's package exists: the package creates its user
            return {"error": f"user {user} does not exist: its package should have created it"}
    if not test and not __salt__["group.adduser"](group, user):
        return {"error": f"could not add {user} to {group}"}
    return {"changed": True}


def registered(validate_tool=display.VALIDATE_TOOL):
    """
    Whether the HP Anyware agent holds a valid license.

    CLI Example:

    .. code-block:: bash

        salt '*' display.registered
    """
    try:
        return display.anyware_registered(validate_tool)
    except WorkstationError as exc:
        return {"error": str(exc)}


def register(register_tool=display.REGISTER_TOOL, validate_tool=display.VALIDATE_TOOL, test=False):
    """
    Register this host with HP's licensing service, only when it is not
    registered yet, with the code at pillar
    ``workstation:display:anyware:registration_code``. Returns
    ``{"changed": bool}`` or ``{"error": ...}``; never the code.

    CLI Example:

    .. code-block:: bash

        salt '*' display.register
    """
    try:
        if display.anyware_registered(validate_tool):
            return {"changed": False}
        # straight from the pillar: pillar.get would hand back Salt's output mask, not the code
        code = salt.utils.data.traverse_dict_and_list(__pillar__, REGISTRATION_CODE, None, delimiter=":")
        if not isinstance(code, str) or not code.strip():
            return {"error": f"the host is not registered and {REGISTRATION_CODE} is empty: "
                             "put HP's registration code there (in an encrypted pillar)"}
        if not test:
            display.register_anyware(code, register_tool)
            if not display.anyware_registered(validate_tool):
                return {"error": f"{register_tool} succeeded but {validate_tool} still finds no valid license"}
    except WorkstationError as exc:
        return {"error": str(exc)}
    return {"changed": True}


def open_ports(ports, backend="auto", test=False):
    """
    Open the display agents' ports (``[{port, protocol, agent}]``) in
    firewalld or ufw; with neither present, open nothing and list them.
    Returns ``{"backend", "opened", "ports"}`` or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' display.open_ports '[{port: 8443, protocol: tcp, agent: dcv}]' test=True
    """
    try:
        return display.open_ports(ports, backend, test=test)
    except WorkstationError as exc:
        return {"error": str(exc)}
