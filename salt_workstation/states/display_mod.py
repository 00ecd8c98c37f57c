"""
Remote display agents: packages, config keys, session owner, HP Anyware
registration and firewall ports. ``workstation.display`` lays these out from
the pillar (``display.formula_data``); each can also be used on its own:

.. code-block:: yaml

    dcv-web-port:
      display.config_merged:
        - name: /etc/dcv/dcv.conf
        - style: dcv
        - settings: {connectivity: {web-port: 8443}}

``test=True`` reads only: it installs, writes and registers nothing, and
reports exactly the changes a real run makes.
"""

from salt_workstation import display

__virtualname__ = "display"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _pending(ret, changes, would, did):
    """Report changes made, or under test=True to be made (result None), with the same changes either way."""
    ret["changes"] = changes
    if __opts__["test"]:
        ret.update(result=None, comment=would)
    else:
        ret["comment"] = did
    return ret


def pillar_valid(name, errors):
    """
    Fail, changing nothing, for agent ``name`` whose pillar section has
    ``errors`` (each with its pillar path): the other agents still converge.
    """
    ret = _ret(name)
    ret["result"] = False
    ret["comment"] = (f"{display.TITLES.get(name, name)} was not configured; nothing was touched. Fix the pillar:\n"
                      + "\n".join(f"- {error}" for error in errors))
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
    ret = _ret(name)
    outcome = __salt__["display.merge_config"](name, settings, style, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    keys = [key for section in settings.values() for key in section]
    if not outcome["changes"]:
        ret["comment"] = f"{name} holds {', '.join(keys)} as the pillar says"
        return ret
    changed = ", ".join(outcome["changes"])
    return _pending(ret, outcome["changes"], f"{name} would change: {changed}", f"{name} changed: {changed}")


def owner_exists(name):
    """
    Succeed when ``name`` (``workstation:display:owner``) is an account on
    this machine other than root; otherwise fail, naming the pillar path.
    Changes nothing.
    """
    ret = _ret(name)
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
    ret = _ret(name)
    outcome = __salt__["display.add_to_group"](name, group, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    if not outcome["changed"]:
        ret["comment"] = f"{name} is a member of {group}"
        return ret
    return _pending(ret, {"group": group, "added": name}, f"{name} would join {group}", f"{name} joined {group}")


def anyware_registered(name, register_tool=display.REGISTER_TOOL, validate_tool=display.VALIDATE_TOOL):
    """
    Ensure this host is registered with HP's licensing service, registering
    it only when it is not yet. The registration code comes from pillar
    ``workstation:display:anyware:registration_code``, read by the execution
    module: it is no argument of this state and appears in no output.

    register_tool, validate_tool
        HP's ``pcoip-register-host`` and ``pcoip-validate-license``.
    """
    ret = _ret(name)
    outcome = __salt__["display.register"](register_tool=register_tool, validate_tool=validate_tool,
                                           test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=f"HP Anyware was not registered: {outcome['error']}")
        return ret
    if not outcome["changed"]:
        ret["comment"] = "HP Anyware is registered"
        return ret
    return _pending(ret, {"registered": True}, "HP Anyware would be registered with the pillar's registration code",
                    "HP Anyware was registered with the pillar's registration code")


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
    ret = _ret(name)
    outcome = __salt__["display.open_ports"](ports, backend=backend, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    listed = ", ".join(outcome["ports"])
    if outcome["backend"] is None:
        why = "workstation:display:firewall is none" if backend == "none" else "neither firewalld nor ufw is installed"
        ret["comment"] = f"No firewall managed ({why}); the display agents listen on {listed}"
        return ret
    if not outcome["opened"]:
        ret["comment"] = f"{listed} are open in {outcome['backend']}"
        return ret
    opened = ", ".join(outcome["opened"])
    return _pending(ret, {"backend": outcome["backend"], "opened": outcome["opened"]},
                    f"{opened} would be opened in {outcome['backend']}", f"{opened} opened in {outcome['backend']}")
