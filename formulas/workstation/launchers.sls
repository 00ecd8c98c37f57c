{#- Per production: storage (SMB credentials, then the mounts), then its launchers,
    plugin wiring and desktop entries; mounts no longer wanted are released first,
    productions that left the pillar are removed, and studio-launch goes on PATH.
    launchers.formula_data lays the states out in order; this file only writes them down. -#}
include:
  - workstation.apps   {#- the launchers require the installs of their apps #}

{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set launchers = salt['launchers.formula_data'](workstation) %}

{%- for state in launchers.states %}

{{ state.id }}:
  {{ state.function }}: {{ state.args | tojson }}
{%- endfor %}
