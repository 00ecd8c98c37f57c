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
from salt_workstation import stateret

__virtualname__ = "display"


def __virtual__():
    return __virtualname__


def pillar_valid(name, errors):
    """
    Fail, changing nothing, for agent ``name`` whose pillar section has
    ``errors`` (each with its pillar path): the other agents still converge.
    """
    ret = stateret.new(name)
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
    ret = stateret.new(name)
    outcome = __salt__["display.merge_config"](name, settings, style, test=__opts__["test"])
    keys = [key for section in settings.values() for key in section]
    changed = ", ".join(outcome.get("changes") or {})
    return stateret.report(ret, outcome, __opts__["test"], same=f"{name} holds {', '.join(keys)} as the pillar says",
                           would=f"{name} would change: {changed}", done=f"{name} changed: {changed}")


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
    ret = stateret.new(name)
    outcome = __salt__["display.add_to_group"](name, group, test=__opts__["test"])
    return stateret.report(ret, outcome, __opts__["test"], same=f"{name} is a member of {group}",
                           would=f"{name} would join {group}", done=f"{name} joined {group}",
                           changes={"group": group, "added": name})


def anyware_registered(name, register_tool=display.REGISTER_TOOL, validate_tool=display.VALIDATE_TOOL):
    """
    Ensure this host is registered with HP's licensing service, registering
    it only when it is not yet. The registration code comes from pillar
    ``workstation:display:anyware:registration_code``, read by the execution
    module: it is no argument of this state and appears in no output.

    register_tool, validate_tool
        HP's ``pcoip-register-host`` and ``pcoip-validate-license``.
    """
    ret = stateret.new(name)
    outcome = __salt__["display.register"](register_tool=register_tool, validate_tool=validate_tool,
                                           test=__opts__["test"])
    if "error" in outcome:
        outcome = {"error": f"HP Anyware was not registered: {outcome['error']}"}
    return stateret.report(ret, outcome, __opts__["test"], same="HP Anyware is registered",
                           would="HP Anyware would be registered with the pillar's registration code",
                           done="HP Anyware was registered with the pillar's registration code",
                           changes={"registered": True})


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
    outcome = __salt__["display.open_ports"](ports, backend=backend, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    listed = ", ".join(outcome["ports"])
    if outcome["backend"] is None:
        why = "workstation:display:firewall is none" if backend == "none" else "neither firewalld nor ufw is installed"
        ret["comment"] = f"No firewall managed ({why}); the display agents listen on {listed}"
        return ret
    opened = ", ".join(outcome["opened"])
    return stateret.report(ret, {"changed": bool(outcome["opened"])}, __opts__["test"],
                           same=f"{listed} are open in {outcome['backend']}",
                           would=f"{opened} would be opened in {outcome['backend']}",
                           done=f"{opened} opened in {outcome['backend']}",
                           changes={"backend": outcome["backend"], "opened": outcome["opened"]})
