"""
Whole-workstation checks. ``workstation.validated`` lists every pillar error
with its path in one place, so a TD sees them all at once; the app states
still fail one by one with their own errors while the valid apps converge.
"""

from salt.exceptions import CommandExecutionError

from salt_workstation import pillar, stateret

__virtualname__ = "workstation"


def __virtual__():
    return __virtualname__


def validated(name, config=None):
    """
    Succeed when the workstation pillar follows the contract (docs/pillar.md);
    otherwise fail with every error and its pillar path. Changes nothing.
    """
    report = __salt__["workstation.validate"](config=config)
    ret = {**stateret.new(name), "result": report["valid"]}
    if report["valid"]:
        ret["comment"] = "The workstation pillar is valid"
    else:
        ret["comment"] = (
            f"The workstation pillar has {len(report['errors'])} error(s):\n"
            + "\n".join(f"- {error['path']}: {error['message']}" for error in report["errors"])
        )
    return ret


def keyring(name, repository, repo, armor=False):
    """
    Install repository ``repository``'s signing key at ``name`` (the keyring
    path), refusing any key whose fingerprint is not the one pinned in
    ``workstation:repositories:<repository>:fingerprint``.

    repo
        The pillar entry: url, dist, components, key, fingerprint.
    """
    ret = stateret.new(name)
    problems = pillar.check_repositories({repository: repo})
    if problems:
        ret["result"] = False
        ret["comment"] = "The repository was not configured. Fix the pillar:\n" + "\n".join(
            f"- {p}" for p in problems
        )
        return ret

    def write(test=False):
        return __salt__["workstation.keyring"](
            name, repo["key"], repo["fingerprint"], armor=armor, test=test
        )

    def failed(ret, error):
        # A key that is not the pinned one is fixed at the pin; a disk or folder problem is the repository's.
        where = (
            ("repositories", repository, "fingerprint")
            if "fingerprint" in str(error)
            else ("repositories", repository)
        )
        ret.update(
            result=False, comment=f"Repository {repository}: {error} ({pillar.path_of(*where)})"
        )
        return ret

    return stateret.converge(
        name,
        changes=lambda: (
            {"keyring": name, "fingerprint": repo["fingerprint"]}
            if write(test=True)["changed"]
            else {}
        ),
        act=write,
        test=__opts__["test"],
        same=f"The pinned key of repository {repository} is in place at {name}",
        would=f"The pinned key of repository {repository} would be written to {name}",
        done=f"The pinned key of repository {repository} was written to {name}",
        errors=(CommandExecutionError,),
        failed=failed,
    )


def unit_enabled(name):
    """
    Ensure systemd unit ``name`` is enabled for the next boot, without starting
    it: what ``workstation:phase: bake`` uses while an image is built.
    """

    return stateret.converge(
        name,
        changes=lambda: (
            {"enabled": name}
            if __salt__["workstation.unit_enabled"](name, test=True)["changed"]
            else {}
        ),
        act=lambda: __salt__["workstation.unit_enabled"](name),
        test=__opts__["test"],
        same=f"{name} is enabled",
        would=f"{name} would be enabled (not started now)",
        done=f"{name} was enabled (not started now)",
        errors=(CommandExecutionError,),
        failed=f"{name} was not enabled",
    )


def default_target(name):
    """
    Ensure systemd boots into target ``name`` (``graphical.target``: the
    display manager starts at boot). Starts nothing, so an image bake can use it.
    """

    def changes():
        found = __salt__["workstation.default_target"](name, test=True)
        return {"default_target": {"old": found["old"], "new": name}} if found["changed"] else {}

    return stateret.converge(
        name,
        changes=changes,
        act=lambda: __salt__["workstation.default_target"](name),
        test=__opts__["test"],
        same=f"The machine boots into {name}",
        would=f"The machine would boot into {name} (nothing started now)",
        done=f"The machine boots into {name} from the next boot (nothing started now)",
        errors=(CommandExecutionError,),
        failed=f"The default target was not set to {name}",
    )


def sealed(name):
    """
    Make the baked image at root ``name`` safe to clone: no minion id or minion
    keys, an empty /etc/machine-id, no SSH host keys, no Salt cache or logs, no
    temporary files (the paths are ``workstation:os:seal``). Fails, changing
    nothing, unless ``workstation:phase`` is ``bake``.
    """

    return stateret.converge(
        name,
        changes=lambda: __salt__["workstation.seal"](root=name, test=True)["changes"],
        act=lambda: __salt__["workstation.seal"](root=name),
        test=__opts__["test"],
        same=f"The image at {name} is sealed",
        would=lambda changes: f"The image at {name} would be sealed: {_listed(changes)}",
        done=lambda changes: f"The image at {name} was sealed: {_listed(changes)}",
        errors=(CommandExecutionError,),
        failed=f"The image at {name} was not sealed",
    )


def image_recorded(name):
    """
    Record at ``name`` what this image is baked with (extension version,
    productions, app versions, a digest of their catalog entries, the bake
    time): the ``workstation_image`` grain of every machine cloned from it.
    """

    return stateret.converge(
        name,
        changes=lambda: __salt__["workstation.image_identity"](path=name, test=True)["changes"],
        act=lambda: __salt__["workstation.image_identity"](path=name),
        test=__opts__["test"],
        same=f"{name} records what this image is baked with",
        would=f"{name} would record what this image is baked with",
        done=f"{name} records what this image is baked with",
        errors=(CommandExecutionError,),
        failed="The image identity was not recorded",
    )


def _listed(changes) -> str:
    return ", ".join(f"{what} ({len(paths)})" for what, paths in sorted(changes.items()))
