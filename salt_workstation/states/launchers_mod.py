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

__virtualname__ = "launchers"


def __virtual__():
    return __virtualname__


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _verb(done, would):
    return would if __opts__["test"] else done


def managed(name):
    """
    Ensure production ``name`` has exactly its launchers (``bin/<command>``),
    plugin wiring, desktop entries and menu, and none it no longer needs.
    Its pillar errors fail this state only; nothing of the production is touched then.
    """
    ret = _ret(name)
    outcome = __salt__["launchers.sync"](name, test=__opts__["test"])
    if "error" in outcome:
        ret["result"] = False
        ret["comment"] = (f"The launchers of {name} were not updated; nothing of it was touched. Fix the pillar:\n"
                          + "\n".join(f"- {problem}" for problem in outcome["error"]))
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
    ret = _ret(name)
    removed = __salt__["launchers.prune"](keep=list(keep or []), test=__opts__["test"])
    if not removed:
        ret["comment"] = "No production left anything behind"
        return ret
    ret["changes"] = {"removed": removed}
    ret["result"] = None if __opts__["test"] else True
    ret["comment"] = f"{len(removed)} path(s) of productions no longer in the pillar {_verb('removed', 'would be removed')}"
    return ret


def command(name):
    """Ensure ``studio-launch`` is at ``name``."""
    ret = _ret(name)
    outcome = __salt__["launchers.command"](path=name, test=__opts__["test"])
    if not outcome["changed"]:
        ret["comment"] = f"{name} is up to date"
        return ret
    ret["changes"] = {"written": name}
    ret["result"] = None if __opts__["test"] else True
    ret["comment"] = f"{name} {_verb('was written', 'would be written')}"
    return ret


def credentials(name, production, mount):
    """
    Ensure the SMB credentials file ``name`` of ``mount`` of ``production``
    holds the pillar's credentials, mode 0600. The secret never reaches the return.
    """
    ret = _ret(name)
    outcome = __salt__["launchers.credentials"](production, mount, path=name, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    if not outcome["changed"]:
        ret["comment"] = f"The credentials of {production} mount {mount} are in place"
        return ret
    ret["changes"] = {"credentials": name}
    ret["result"] = None if __opts__["test"] else True
    ret["comment"] = f"The credentials of {production} mount {mount} {_verb('were written', 'would be written')} (mode 0600)"
    return ret
