{#- X on the GPU for remote desktops (workstation:display:xserver; docs/display.md):
    with an NVIDIA card and an agent that shows the console (DCV), an X drop-in
    for the card's BusID, headless at the pillar's resolution; the display
    manager, Wayland off in GDM, and graphical.target as the default. A bake
    installs, writes and enables; a boot writes the drop-in for the card it
    finds and starts the display manager, restarting it when the drop-in
    changed. Without an NVIDIA card a drop-in left from one is removed.
    display.xserver_plan decides the data; this file lays out the states.
    The IDs are permanent. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set x = salt['display.xserver_plan'](workstation) %}

include:
  - {{ tplroot }}.repos   {#- the display manager comes from the OS's repositories #}
{%- if not x.manage %}

workstation-xserver-not-managed:
  display.xserver_not_managed:
    - name: xserver
    - comment: {{ x.comment | tojson }}
    - errors: {{ x.errors | tojson }}
{%- endif %}
{%- if x.install %}

workstation-xserver-display-manager-installed:
  dcc.packages_installed:
    - name: {{ x.display_manager.name | tojson }}
    - packages: {{ x.display_manager.packages | tojson }}
{%- if x.display_manager.wayland %}

workstation-xserver-wayland-disabled:
  display.config_merged:
    - name: {{ x.display_manager.wayland.path | tojson }}
    - style: {{ x.display_manager.wayland.style | tojson }}
    - settings: {{ x.display_manager.wayland.settings | tojson }}
    - require:
      - dcc: workstation-xserver-display-manager-installed
{%- endif %}

workstation-xserver-graphical-target-default:
  workstation.default_target:
    - name: {{ x.default_target | tojson }}
{%- endif %}
{%- if x.xorg %}

{#- the drop-in for the NVIDIA card; content null (no NVIDIA card here) removes one left from it #}
workstation-xserver-nvidia-configured:
  display.xorg_configured:
    - name: {{ x.xorg.path | tojson }}
    - content: {{ x.xorg.content | tojson }}
{%- endif %}
{%- if x.start %}

workstation-xserver-display-manager-running:
  service.running:
    - name: {{ x.display_manager.unit | tojson }}
    - enable: true
{%- if x.install %}
    - require:
      - dcc: workstation-xserver-display-manager-installed
      - workstation: workstation-xserver-graphical-target-default
{%- if x.display_manager.wayland %}
      - display: workstation-xserver-wayland-disabled
{%- endif %}
{%- endif %}
    - watch:   {#- a changed drop-in (another card, BusID or resolution) restarts X; only then #}
      - display: workstation-xserver-nvidia-configured
{%- elif x.install %}

{#- an image bake enables the display manager for the next boot and starts nothing #}
workstation-xserver-display-manager-enabled:
  workstation.unit_enabled:
    - name: {{ x.display_manager.unit | tojson }}
    - require:
      - dcc: workstation-xserver-display-manager-installed
{%- endif %}
