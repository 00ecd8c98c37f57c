{#- Seal a baked image before it is captured: salt-call --local state.apply workstation.seal
    as the bake's last step. The paths are workstation:os:seal; the state refuses to run
    unless workstation:phase is bake, so it never strips a live workstation. -#}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}

workstation-image-sealed:
  workstation.sealed:
    - name: {{ workstation.os.seal.root | tojson }}
