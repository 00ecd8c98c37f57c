# salt '*' state.apply workstation
include:
  - workstation.check
  - workstation.repos
  - workstation.apps
