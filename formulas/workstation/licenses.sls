{#- License clients of the DCCs (docs/licenses.md): the environment files that
    login shells (/etc/profile.d) and desktop sessions (systemd environment.d)
    read, then one state per workstation:licenses entry (vendor files, the
    node-locked license files, Autodesk registrations). licenses.formula_data
    lays the data out, without secrets (states get their pillar paths); this
    file only writes it down. -#}
{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set licenses = salt['licenses.formula_data'](workstation) %}

{%- for state in licenses.states %}

{{ state.id | tojson }}:
  {{ state.function }}: {{ state.args | tojson }}
{%- endfor %}
