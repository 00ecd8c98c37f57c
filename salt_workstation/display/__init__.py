"""Remote display agents: Amazon DCV, HP Anyware (PCoIP) and TigerVNC, from `workstation:display`.

Four layers, as every capability has them: `contract` (the pillar section and
its validation, each issue at its pillar path), `plan` (what should be on
this machine, as the plain data `workstation.display` loops over), `effects`
(the only code that changes the machine or runs a command) and `status`
(what is there now). The Salt modules in modules/display_mod.py and
states/display_mod.py only wrap them.
"""

from salt_workstation.display import contract, xserver


def check(config) -> list:
    """Every problem in workstation:display: the agents' sections, and X for them (display:xserver)."""
    return contract.check(config) + xserver.check(config)


__all__ = ["check"]
