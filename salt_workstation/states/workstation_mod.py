"""
Whole-workstation checks. ``workstation.validated`` lists every pillar error
with its path in one place, so a TD sees them all at once; the app states
still fail one by one with their own errors while the valid apps converge.
"""

__virtualname__ = "workstation"


def __virtual__():
    return __virtualname__


def validated(name, config=None):
    """
    Succeed when the workstation pillar follows the contract (docs/pillar.md);
    otherwise fail with every error and its pillar path. Changes nothing.
    """
    report = __salt__["workstation.validate"](config=config)
    ret = {"name": name, "result": report["valid"], "changes": {}, "comment": ""}
    if report["valid"]:
        ret["comment"] = "The workstation pillar is valid"
    else:
        ret["comment"] = f"The workstation pillar has {len(report['errors'])} error(s):\n" + "\n".join(
            f"- {error['path']}: {error['message']}" for error in report["errors"]
        )
    return ret
