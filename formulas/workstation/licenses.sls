{#- License clients of the DCCs (docs/licenses.md). licenses.plan decides the data from
    workstation:licenses and workstation:os:licenses: the variables, which files go where
    with what, which Autodesk products register, and whether this phase registers at all.
    Secrets are never in it: the states get their pillar paths. This file lays out the states. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set licenses = salt['licenses.plan'](workstation) %}
{%- if licenses.requires_apps %}

include:
  - {{ tplroot }}.apps
{%- endif %}

{#- Every pillar error of this feature, each with its path and the fix; passes when there is none. #}

workstation-licenses-pillar-valid:
  licenses.pillar_valid:
    - name: workstation:licenses
    - errors: {{ licenses.errors | tojson }}

{#- Every license's variables, for login shells (profile.d) and desktop sessions (environment.d).
    They hold the whole section, so they wait for it to be valid. #}
{%- for file in licenses.environment_files %}

workstation-licenses-environment-{{ file.scope }}-managed:
  licenses.environment_file:
    - name: {{ file.path | tojson }}
    - style: {{ file.style | tojson }}
    - variables: {{ licenses.variables | tojson }}
    - require:
      - licenses: workstation-licenses-pillar-valid
{%- endfor %}

{#- The license clients' own files: hserver's preference file (sidefx), vrlclient.xml (chaos). #}
{%- for file in licenses.vendor_files %}

workstation-licenses-{{ file.name }}-file-managed:
  licenses.vendor_file:
    - name: {{ file.path | tojson }}
    - contents: {{ file.contents | tojson }}
    - license: {{ file.name | tojson }}
{%- endfor %}

{#- Node-locked license files: the content stays in the pillar, read where it is written. #}
{%- for file in licenses.license_files %}

workstation-licenses-{{ file.name }}-file-managed:
  licenses.license_file:
    - name: {{ file.path | tojson }}
    - content_pillar: {{ file.content_pillar | tojson }}
    - mode: {{ file.mode | tojson }}
    - owner: {{ file.owner | tojson }}
    - group: {{ file.group | tojson }}
{%- endfor %}

{#- Autodesk products registered for network licenses, after the installs that bring the helper.
    An image bake registers nothing: the first boot does. #}
{%- for product in licenses.registrations %}

workstation-licenses-{{ product.name }}-registered:
{%- if licenses.register_now %}
  licenses.autodesk_registered:
    - name: {{ product.name | tojson }}
    - product_version: {{ product.product_version | tojson }}
    - product_key_pillar: {{ product.product_key_pillar | tojson }}
    - servers: {{ product.servers | tojson }}
    - server_type: {{ product.server_type | tojson }}
    - config_file: {{ product.config_file | tojson }}
    - eula_locale: {{ product.eula_locale | tojson }}
    - helper: {{ product.helper | tojson }}
    - timeout: {{ product.timeout | tojson }}
{%- if product.installs %}
    - require:
{%- for install in product.installs %}
      - dcc: {{ install | tojson }}
{%- endfor %}
{%- endif %}
{%- else %}
  test.show_notification:
    - text: "Autodesk {{ product.product_version }} (workstation:licenses:{{ product.name }}) is registered at first boot: phase bake registers nothing"
{%- endif %}
{%- endfor %}
