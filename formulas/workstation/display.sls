{#- Remote display agents (Amazon DCV, HP Anyware, TigerVNC) from
    workstation:display; docs/display.md. display.plan decides the data: which
    agents, their packages, config keys and units, the firewall ports, and which
    steps workstation:phase takes (bake: install, configure, enable; boot: owner,
    registration, start; all: everything). This file lays out the states.
    The HP Anyware registration code is never in this data: the registration
    state's execution module reads it from the pillar itself. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set display = salt['display.plan'](workstation) %}

include:
  - {{ tplroot }}.repos   {#- the agents' packages come from the studio's repositories #}
  - {{ tplroot }}.xserver   {#- X on the GPU for the agents that show the console #}

{#- An agent whose pillar section is wrong gets this one failing state, naming each
    pillar path; nothing of it is touched, and the other agents still converge. #}
{%- for agent in display.blocked %}

workstation-display-{{ agent.name }}-pillar-valid:
  display.pillar_valid:
    - name: {{ agent.name }}
    - errors: {{ agent.errors | tojson }}
{%- endfor %}

{%- if display.check_owner %}

workstation-display-owner-exists:
  display.owner_exists:
    - name: {{ display.owner | tojson }}
{%- endif %}

{%- for agent in display.agents %}
{%- if display.install %}

workstation-display-{{ agent.name }}-packages-installed:
  dcc.packages_installed:
    - name: {{ agent.title | tojson }}
    - packages: {{ agent.packages | tojson }}
{%- if display.after_repositories %}
    - require:
      - sls: {{ tplroot }}.repos
{%- endif %}
{%- endif %}

{%- if agent.video_group %}

{#- Ubuntu gives the GPU's render nodes to `video`; DCV's server runs as the `dcv` user #}
workstation-display-{{ agent.name }}-video-group-member:
  display.group_member:
    - name: dcv
    - group: video
    - require:
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- endif %}

{%- if agent.configured %}

workstation-display-{{ agent.name }}-config-merged:
  display.config_merged:
    - name: {{ agent.config.path | tojson }}
    - style: {{ agent.config.style | tojson }}
    - settings: {{ agent.config.settings | tojson }}
    - require:
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- if display.start_services %}
    - watch_in:   {#- a changed config restarts a running agent #}
      - service: workstation-display-{{ agent.name }}-service-running
{%- endif %}
{%- endif %}

{%- if agent.owned %}

workstation-display-{{ agent.name }}-owner-assigned:
  display.config_merged:
    - name: {{ agent.owner_file.path | tojson }}
    - style: {{ agent.owner_file.style | tojson }}
    - settings: {{ agent.owner_file.settings | tojson }}
    - require:
      - display: workstation-display-owner-exists
{%- if agent.configured %}
      - display: workstation-display-{{ agent.name }}-config-merged
{%- endif %}
{%- if display.install %}
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- endif %}
    - watch_in:   {#- a new owner restarts a running agent #}
      - service: workstation-display-{{ agent.name }}-service-running
{%- endif %}

{%- if agent.registers %}

workstation-display-{{ agent.name }}-registered:
  display.anyware_registered:
    - name: {{ agent.name }}
{%- if display.install %}
    - require:
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- endif %}
    - require_in:
      - service: workstation-display-{{ agent.name }}-service-running
{%- endif %}

{%- if display.start_services %}

workstation-display-{{ agent.name }}-service-running:
  service.running:
    - name: {{ agent.unit | tojson }}
    - enable: True
{%- if display.install or agent.after_display_manager %}
    - require:
{%- if display.install %}
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- endif %}
{%- if agent.after_display_manager %}
      - service: workstation-xserver-display-manager-running   {#- its sessions show that X server #}
{%- endif %}
{%- endif %}
{%- else %}

{#- an image bake enables the agent for the next boot and starts nothing #}
workstation-display-{{ agent.name }}-service-enabled:
  workstation.unit_enabled:
    - name: {{ agent.unit | tojson }}
    - require:
      - dcc: workstation-display-{{ agent.name }}-packages-installed
{%- endif %}
{%- endfor %}

{%- if display.firewall.open %}

workstation-display-firewall-ports-open:
  display.ports_open:
    - ports: {{ display.firewall.ports | tojson }}
    - backend: {{ display.firewall.backend | tojson }}
{%- endif %}
