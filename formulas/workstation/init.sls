# salt '*' state.apply workstation
{#- A machine cloned from a sealed image has this formula installed (the extension ships it) but an
    empty Salt cache: copy it there first, so that the files below are checked against the master's
    (one round trip each, as on every apply) rather than downloaded (docs/baking.md). -#}
{%- do salt['workstation.seed_formula_cache'](saltenv) %}
include:
  - workstation.check
  - workstation.repos
  - workstation.apps
  - workstation.gpu
  - workstation.licenses
  - workstation.display
  - workstation.launchers
  - workstation.image      # phase bake: what the image holds, for the workstation_image grain
