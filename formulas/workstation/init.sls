# salt '*' state.apply workstation
include:
  - workstation.check
  - workstation.apps
