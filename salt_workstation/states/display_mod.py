"""
Remote display agents: config keys, session owner, group membership, HP
Anyware registration and firewall ports. ``workstation.display`` writes these
out over ``display.plan``; each can also be used on its own:

.. code-block:: yaml

    dcv-web-port:
      display.config_merged:
        - name: /etc/dcv/dcv.conf
        - style: dcv
        - settings: {connectivity: {web-port: 8443}}

Every state reads what is there, returns early when nothing differs, answers
``test=True`` with result None and exactly the changes a real run makes, and
only then acts through the ``display`` execution module. A failure is result
False with a comment naming what failed and its pillar path.
"""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import stateret
from salt_workstation.display.contract import TITLES
from salt_workstation.display.plan import SOURCES
from salt_workstation.pillar import path_of

__virtualname__ = "display"

FAILURES = (CommandExecutionError, SaltInvocationError)


def __virtual__():
    return __virtualname__


def _failed(ret, what, err, pillar_path):
    """Result False, no changes, a comment naming what failed, why, and the pillar path behind it."""
    where = "" if not pillar_path or pillar_path in str(err) else f" (pillar {pillar_path})"
    ret.update(result=False, changes={}, comment=f"{what}: {err}{where}")
    return ret


def pillar_valid(name, errors):
    """
    Fail, changing nothing, for agent ``name`` whose pillar section has
    ``errors`` (each with its pillar path): the other agents still converge.
    """
    ret = stateret.new(name)
    ret["result"] = False
    ret["comment"] = (
        f"{TITLES.get(name, name)} was not configured; nothing was touched. Fix the pillar:\n"
        + "\n".join(f"- {error}" for error in errors)
    )
    return ret


def config_merged(name, settings, style):
    """
    Ensure the keys in ``settings`` hold these values in the agent file
    ``name``; every other line of the file stays as it is.

    settings
        ``{section: {key: value}}``; the section ``""`` holds keys outside any
        ``[section]``. A null value removes the key.
    style
        ``dcv`` (quoted text values), ``pcoip`` (``key = value``) or
        ``tigervnc`` (``key=value`` and bare flags).
    """
    keys = ", ".join(key for section in settings.values() for key in section)
    return stateret.converge(
        name,
        changes=lambda: __salt__["display.config_changes"](name, settings, style),
        act=lambda: __salt__["display.merge_config"](name, settings, style),
        test=__opts__["test"],
        same=f"{name} holds {keys} as the pillar says",
        would=lambda changes: f"{name} would change: {', '.join(changes)}",
        done=lambda changes: f"{name} changed: {', '.join(changes)}",
        errors=FAILURES,
        failed=lambda ret, err: _failed(
            ret, f"{name} was not merged", err, SOURCES.get(os.path.basename(name))
        ),
    )


def owner_exists(name):
    """
    Succeed when ``name`` (``workstation:display:owner``) is an account on
    this machine other than root; otherwise fail, naming the pillar path.
    Changes nothing.
    """
    ret = stateret.new(name)
    problem = __salt__["display.owner_problem"](name)
    if problem:
        ret.update(result=False, comment=problem)
    else:
        ret["comment"] = f"{name} exists and may own the remote sessions"
    return ret


def group_member(name, group):
    """
    Ensure user ``name`` is a member of ``group``; other members stay.
    """
    return stateret.converge(
        name,
        changes=lambda: (
            {} if __salt__["display.in_group"](name, group) else {"group": group, "added": name}
        ),
        act=lambda: __salt__["display.add_to_group"](name, group),
        test=__opts__["test"],
        same=f"{name} is a member of {group}",
        would=f"{name} would join {group}",
        done=f"{name} joined {group}",
        errors=FAILURES,
        failed=lambda ret, err: _failed(
            ret, f"{name} did not join {group}", err, path_of("display", "agents")
        ),
    )


def anyware_registered(name, register_tool=None, validate_tool=None):
    """
    Ensure this host is registered with HP's licensing service with the code
    the pillar holds now, registering it when it is not, or again when the
    code changed since it was (a rotation, told by a keyed digest). The code
    comes from pillar ``workstation:display:anyware:registration_code`` (or the
    sdb reference there), read by the execution module: it is no argument of
    this state and appears in no output.

    register_tool, validate_tool
        HP's ``pcoip-register-host`` and ``pcoip-validate-license``
        (default: under /usr/sbin).
    """
    code_path = path_of("display", "anyware", "registration_code")

    def how(changes):
        if "registration_code" in changes:
            return f"again: the registration code at {code_path} changed since it registered"
        return "with the pillar's registration code"

    return stateret.converge(
        name,
        changes=lambda: __salt__["display.registration_changes"](
            validate_tool=validate_tool, adopt=not __opts__["test"]
        ),
        act=lambda: __salt__["display.register"](
            register_tool=register_tool, validate_tool=validate_tool
        ),
        test=__opts__["test"],
        same="HP Anyware is registered",
        would=lambda changes: f"HP Anyware would be registered {how(changes)}",
        done=lambda changes: f"HP Anyware was registered {how(changes)}",
        errors=FAILURES,
        failed=lambda ret, err: _failed(ret, "HP Anyware was not registered", err, code_path),
    )


def ports_open(name, ports, backend="auto"):
    """
    Ensure the display agents' ports are open in firewalld or ufw (whichever
    is present, or the one ``backend`` names); with neither, change nothing
    and list the ports in the comment.

    ports
        ``[{port: 8443, protocol: tcp, agent: dcv}, ...]``
    backend
        ``auto`` (default), ``firewalld``, ``ufw`` or ``none``.
    """
    ret = stateret.new(name)
    try:
        found = __salt__["display.closed_ports"](ports, backend=backend)
        listed = ", ".join(found["ports"])
        if found["backend"] is None:
            why = (
                "workstation:display:firewall is none"
                if backend == "none"
                else "neither firewalld nor ufw is installed"
            )
            ret["comment"] = f"No firewall managed ({why}); the display agents listen on {listed}"
            return ret
        if not found["closed"]:
            ret["comment"] = f"{listed} are open in {found['backend']}"
            return ret
        ret["changes"] = {"backend": found["backend"], "opened": found["closed"]}
        if __opts__["test"]:
            ret.update(
                result=None,
                comment=f"{', '.join(found['closed'])} would be opened in {found['backend']}",
            )
            return ret
        done = __salt__["display.open_ports"](ports, backend=backend)
        ret["changes"] = {"backend": done["backend"], "opened": done["opened"]}
        ret["comment"] = f"{', '.join(done['opened'])} opened in {done['backend']}"
    except FAILURES as err:
        return _failed(
            ret, "The display agents' ports were not opened", err, path_of("display", "firewall")
        )
    return ret


def xserver_not_managed(name, comment, errors=None):
    """
    X for remote desktops is not managed here: succeeds and says why (no
    agent needs it, no card, an Intel or AMD card), or fails naming each
    pillar error of ``workstation:display:xserver``.
    """
    ret = stateret.new(name)
    ret["comment"] = comment
    if errors:
        ret["result"] = False
    return ret


def xorg_configured(name, content=None):
    """
    The X server drop-in ``name`` holds exactly ``content``: X on the NVIDIA
    card's BusID, headless; with ``content`` None (no NVIDIA card here) it is
    removed. A change takes effect when X next starts: workstation.xserver's
    running display manager watches this state and restarts on a change.
    """
    what = "written" if content is not None else "removed"
    why = "X on the NVIDIA card, headless" if content is not None else "no NVIDIA card here"
    return stateret.converge(
        name,
        changes=lambda: (
            {what: name}
            if __salt__["display.xorg_configured"](name, content, test=True)["changed"]
            else {}
        ),
        act=lambda: __salt__["display.xorg_configured"](name, content),
        test=__opts__["test"],
        same=f"{name} is as planned ({why})",
        would=f"{name} would be {what} ({why})",
        done=f"{name} {what} ({why}): X follows it from its next start",
        errors=FAILURES,
        failed=lambda ret, err: _failed(
            ret, f"{name} was not {what}", err, path_of("display", "xserver")
        ),
    )
