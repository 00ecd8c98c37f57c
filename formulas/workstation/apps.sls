{#- Each app version the productions want (a version shared by productions is
    installed once), then one retention state per app, which runs only after
    that app's installs succeed. workstation.formula_data lays the data out;
    this file only writes it down. -#}
{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set apps = salt['workstation.formula_data'](workstation) %}

{%- for install in apps.installs %}

{{ install.id }}:
  dcc.installed:
    - name: {{ install.app | tojson }}
    - version: {{ install.version | tojson }}
    - spec: {{ install.spec | tojson }}
    - install_root: {{ workstation.install_root | tojson }}
    - depot: {{ workstation.depot | tojson }}
    - used_by: {{ install.used_by | tojson }}
    - verify: {{ workstation.verify | tojson }}
{%- if install.parallel %}
    - parallel: True   {#- one of several to install now: the engine's slots bound how many at once #}
{%- endif %}
{%- endfor %}

{%- for retention in apps.retention %}

{{ retention.id }}:
  dcc.pruned:
    - name: {{ retention.app | tojson }}
    - keep: {{ retention.keep | tojson }}
    - retain: {{ workstation.retain | tojson }}
    - install_root: {{ workstation.install_root | tojson }}
    - require: {{ retention.require | tojson }}
{%- endfor %}

{#- Units the packages apps bring: with phase bake only enabled (an image build
    starts nothing), otherwise enabled and running. -#}
{%- for service in apps.services %}

{{ service.id }}:
{%- if apps.start_services %}
  service.running:
    - name: {{ service.unit | tojson }}
    - enable: True
{%- else %}
  workstation.unit_enabled:
    - name: {{ service.unit | tojson }}
{%- endif %}
    - require:
      - dcc: {{ service.install_id }}
{%- endfor %}
