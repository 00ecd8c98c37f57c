{#- The image identity, recorded by an image bake once its app versions are in:
    the workstation_image grain of every machine cloned from the image.
    workstation.image_plan says whether this phase records it, and where. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set image = salt['workstation.image_plan'](workstation) %}
{%- set apps = salt['workstation.formula_data'](workstation) %}

include:
  - {{ tplroot }}.apps
{%- if image.record %}

workstation-image-identity-recorded:
  workstation.image_recorded:
    - name: {{ image.path | tojson }}
{%- if apps.installs %}
    - require:
{%- for install in apps.installs %}
      - dcc: {{ install.id }}
{%- endfor %}
{%- endif %}
{%- endif %}
