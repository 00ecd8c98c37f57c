"""
Keep each production's launchers, desktop entries and plugin wiring as the
``workstation`` pillar says, and remove what productions that left it had.

.. code-block:: yaml

    workstation-launchers-nightfall-launchers-managed:
      launchers.managed:
        - name: nightfall

    workstation-launchers-productions-pruned:
      launchers.pruned:
        - name: /opt/studio/productions
        - keep: [nightfall]

    workstation-launchers-studio-launch-installed:
      launchers.command:
        - name: /usr/local/bin/studio-launch

Every state reads what is there, returns early when nothing differs, answers
``test=True`` with result None and exactly the changes a real run makes, then
acts through the ``launchers`` execution module. A failure is result False with
a comment naming what failed and its pillar path. Credentials never appear in
changes or comments.
"""

import functools

from salt.exceptions import CommandExecutionError

from salt_workstation import stateret

__virtualname__ = "launchers"


def __virtual__():
    return __virtualname__


def _nonempty(found):
    """The execution module answers both lists always; a state's changes name only what changed."""
    return {key: paths for key, paths in found.items() if paths}


def _failed(ret, err):
    ret.update(result=False, changes={}, comment=str(err))
    return ret


def managed(name):
    """
    Ensure production ``name`` has exactly its launchers (``bin/<command>``),
    plugin wiring, desktop entries and menu, and none it no longer needs.
    Its pillar errors fail this state only; nothing of the production is touched then.
    """
    ret = stateret.new(name)
    try:
        found = __salt__["launchers.diff"](name, test=__opts__["test"])
        changes = _nonempty(found["changes"])
        if not changes and (found["manifest_current"] or __opts__["test"]):
            ret["comment"] = f"The launchers of {name} are up to date"
            return ret
        ret["changes"] = changes
        if __opts__["test"]:
            counts = ", ".join(f"{len(paths)} to be {key}" for key, paths in ret["changes"].items())
            ret.update(result=None, comment=f"The launchers of {name} would be updated: {counts}")
            return ret
        ret["changes"] = _nonempty(__salt__["launchers.sync"](name))
    except CommandExecutionError as err:
        return _failed(ret, err)
    counts = ", ".join(f"{len(paths)} {key}" for key, paths in ret["changes"].items())
    ret["comment"] = (
        f"The launchers of {name} were updated: {counts}"
        if counts
        else f"The launchers of {name} are up to date (their record in the manifest was refreshed)"
    )
    return ret


def pruned(name, keep=()):
    """
    Remove what the productions not in ``keep`` left behind (``name`` is the
    productions folder): their folder, desktop entries, menu and emptied mount
    points. It also records the mounts the kept productions ask for, so that a
    mount is released once unwanted even when its production's launchers failed.
    """
    ret = stateret.new(name)
    keep = list(keep or [])
    try:
        found = __salt__["launchers.leftovers"](keep=keep, test=__opts__["test"])
        if not found["removed"] and (found["manifest_current"] or __opts__["test"]):
            ret["comment"] = "No production left anything behind"
            return ret
        ret["changes"] = {"removed": found["removed"]} if found["removed"] else {}
        if __opts__["test"]:
            ret.update(
                result=None,
                comment=f"{len(found['removed'])} path(s) of productions no longer in the "
                "pillar would be removed",
            )
            return ret
        removed = __salt__["launchers.prune"](keep=keep)
    except CommandExecutionError as err:
        return _failed(ret, err)
    ret["changes"] = {"removed": removed} if removed else {}
    ret["comment"] = (
        f"{len(removed)} path(s) of productions no longer in the pillar removed"
        if removed
        else "No production left anything behind (the mounts of the kept productions were recorded)"
    )
    return ret


def _one_file(ret, keep, changes, same, would, done):
    """stateret.converge for a state that keeps one file: keep(test=True) reads, keep() writes."""
    return stateret.converge(
        ret["name"],
        changes=lambda: changes if keep(test=True)["changed"] else {},
        act=keep,
        test=__opts__["test"],
        same=same,
        would=would,
        done=done,
        errors=(CommandExecutionError,),
        failed=_failed,
    )


def command(name):
    """Ensure ``studio-launch`` is at ``name``."""
    return _one_file(
        stateret.new(name),
        functools.partial(__salt__["launchers.command"], path=name),
        {"written": name},
        same=f"{name} is up to date",
        would=f"{name} would be written",
        done=f"{name} was written",
    )


def credentials(name, production, mount):
    """
    Ensure the SMB credentials file ``name`` of ``mount`` of ``production``
    holds the pillar's credentials, mode 0600. The secret never reaches the return.
    """
    what = f"The credentials of {production} mount {mount}"
    keep = functools.partial(__salt__["launchers.credentials"], production, mount, path=name)
    return _one_file(
        stateret.new(name),
        keep,
        {"credentials": name},
        same=f"{what} are in place",
        would=f"{what} would be written (mode 0600)",
        done=f"{what} were written (mode 0600)",
    )
