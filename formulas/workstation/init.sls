# salt '*' state.apply workstation
include:
  - workstation.check
  - workstation.repos
  - workstation.apps
  - workstation.gpu
  - workstation.licenses
  - workstation.display
  - workstation.launchers
  - workstation.image      # phase bake: what the image holds, for the workstation_image grain
