{#- Remote display agents (Amazon DCV, HP Anyware, TigerVNC) from
    workstation:display. display.formula_data lays out the states for
    workstation:phase (bake: install, configure, enable; boot: owner,
    registration, start; all: everything); this file only writes them down.
    The HP Anyware registration code is never in this data: the registration
    state reads it from the pillar itself. -#}
{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set display = salt['display.formula_data'](workstation) %}

{%- for state in display.states %}

{{ state.id }}:
  {{ state.function }}: {{ state.args | tojson }}
{%- endfor %}
