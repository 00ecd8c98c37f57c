"""
Keep each production's launchers, desktop entries and plugin wiring as the
``workstation`` pillar says, and remove what productions that left it had.

.. code-block:: yaml

    workstation-launchers-nightfall:
      launchers.managed:
        - name: nightfall

    workstation-launchers-pruned:
      launchers.pruned:
        - name: /opt/studio/productions
        - keep: [nightfall]

    workstation-launchers-studio-launch:
      launchers.command:
        - name: /usr/local/bin/studio-launch

``test=True`` writes nothing and reports exactly the paths a real run writes
and removes. Credentials never appear in changes or comments.
"""

from salt_workstation import stateret

__virtualname__ = "launchers"


def __virtual__():
    return __virtualname__


def _verb(done, would):
    return would if __opts__["test"] else done


def managed(name):
    """
    Ensure production ``name`` has exactly its launchers (``bin/<command>``),
    plugin wiring, desktop entries and menu, and none it no longer needs.
    Its pillar errors fail this state only; nothing of the production is touched then.
    """
    ret = stateret.new(name)
    outcome = __salt__["launchers.sync"](name, test=__opts__["test"])
    if "error" in outcome:
        ret["result"] = False
        ret["comment"] = (f"The launchers of {name} were not updated; nothing of it was touched. Fix the pillar:\n"
                          + "\n".join(f"- {problem}" for problem in outcome["error"]))
        return ret
    if "failed" in outcome:
        ret["result"] = False
        ret["comment"] = f"The launchers of {name} could not be updated: {outcome['failed']}"
        return ret
    if not outcome:
        ret["comment"] = f"The launchers of {name} are up to date"
        return ret
    ret["changes"] = outcome
    ret["result"] = None if __opts__["test"] else True
    counts = ", ".join(f"{len(paths)} {_verb(key, 'to be ' + key)}" for key, paths in outcome.items())
    ret["comment"] = f"The launchers of {name} {_verb('were updated', 'would be updated')}: {counts}"
    return ret


def pruned(name, keep=()):
    """
    Remove what the productions not in ``keep`` left behind (``name`` is the
    productions folder): their folder, desktop entries, menu and emptied mount points.
    """
    ret = stateret.new(name)
    removed = __salt__["launchers.prune"](keep=list(keep or []), test=__opts__["test"])
    if isinstance(removed, dict):
        ret.update(result=False, comment=f"Nothing of the productions no longer in the pillar was removed: "
                                         f"{removed['error']}")
        return ret
    if not removed:
        ret["comment"] = "No production left anything behind"
        return ret
    ret["changes"] = {"removed": removed}
    ret["result"] = None if __opts__["test"] else True
    ret["comment"] = f"{len(removed)} path(s) of productions no longer in the pillar {_verb('removed', 'would be removed')}"
    return ret


def command(name):
    """Ensure ``studio-launch`` is at ``name``."""
    ret = stateret.new(name)
    outcome = __salt__["launchers.command"](path=name, test=__opts__["test"])
    return stateret.report(ret, outcome, __opts__["test"], same=f"{name} is up to date",
                           would=f"{name} would be written", done=f"{name} was written", changes={"written": name})


def credentials(name, production, mount):
    """
    Ensure the SMB credentials file ``name`` of ``mount`` of ``production``
    holds the pillar's credentials, mode 0600. The secret never reaches the return.
    """
    ret = stateret.new(name)
    outcome = __salt__["launchers.credentials"](production, mount, path=name, test=__opts__["test"])
    what = f"The credentials of {production} mount {mount}"
    return stateret.report(ret, outcome, __opts__["test"], same=f"{what} are in place",
                           would=f"{what} would be written (mode 0600)", done=f"{what} were written (mode 0600)",
                           changes={"credentials": name})
