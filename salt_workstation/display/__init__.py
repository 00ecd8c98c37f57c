"""Remote display agents: Amazon DCV, HP Anyware (PCoIP) and TigerVNC, from `workstation:display`.

Four layers, as every capability has them: `contract` (the pillar section and
its validation, each issue at its pillar path), `plan` (what should be on
this machine, as the plain data `workstation.display` loops over), `effects`
(the only code that changes the machine or runs a command) and `status`
(what is there now). The Salt modules in modules/display_mod.py and
states/display_mod.py only wrap them.
"""

from salt_workstation.display.contract import check

__all__ = ["check"]
