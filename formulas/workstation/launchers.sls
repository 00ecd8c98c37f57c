{#- Per-production launchers, plugin wiring, desktop entries and storage.
    launchers.plan decides the data (which client packages, which mounts to release, each
    production's mounts and the app versions it uses, which productions to keep); this file
    lays out the states. In order: storage clients, released mounts, then per production its
    SMB credentials, mounts and launchers, then what productions that left the pillar had,
    then studio-launch. The plan holds no secret: the credentials state reads the pillar itself. -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set launchers = salt['launchers.plan'](workstation) %}

include:
  - {{ tplroot }}.apps   {#- the launchers require the installs of their apps #}
{%- if launchers.storage %}

workstation-launchers-mount-clients-installed:
  dcc.packages_installed:
    - name: production storage clients
    - packages: {{ launchers.mount_clients | tojson }}
{%- endif %}

{#- Mounts an earlier apply recorded that the pillar no longer wants there. #}
{%- for release in launchers.released %}

workstation-launchers-{{ release.production }}-mount-{{ release.name }}-unmounted:
  mount.unmounted:
    - name: {{ release.path | tojson }}
    - device: {{ release.device | tojson }}
    - persist: True
    - config: {{ launchers.fstab | tojson }}
{%- endfor %}

{%- for production in launchers.productions %}
{%- for mount in production.mounts %}
{%- if mount.credentials %}

workstation-launchers-{{ production.name }}-mount-{{ mount.name }}-credentials-managed:
  launchers.credentials:
    - name: {{ mount.credentials_file | tojson }}
    - production: {{ production.name | tojson }}
    - mount: {{ mount.name | tojson }}
{%- endif %}

workstation-launchers-{{ production.name }}-mount-{{ mount.name }}-mounted:
  mount.mounted:
    - name: {{ mount.path | tojson }}
    - device: {{ mount.device | tojson }}
    - fstype: {{ mount.fstype | tojson }}
    - opts: {{ mount.options | tojson }}
    - mkmnt: True
    - persist: True
    - mount: {{ launchers.mount_now | tojson }}   {#- false while an image bakes: fstab and the mount point only #}
    - config: {{ launchers.fstab | tojson }}
    - require:
      - dcc: workstation-launchers-mount-clients-installed
{%- if mount.credentials %}
      - launchers: workstation-launchers-{{ production.name }}-mount-{{ mount.name }}-credentials-managed
{%- endif %}
{%- endfor %}

workstation-launchers-{{ production.name }}-launchers-managed:
  launchers.managed:
    - name: {{ production.name | tojson }}
{%- if production.waits %}
    - require:
{%- for use in production.uses %}
      - dcc: workstation-app-{{ use.app }}-{{ use.version }}
{%- endfor %}
{%- for mount in production.released %}
      - mount: workstation-launchers-{{ production.name }}-mount-{{ mount }}-unmounted
{%- endfor %}
{%- endif %}
{%- endfor %}
{%- if launchers.usable %}

workstation-launchers-productions-pruned:
  launchers.pruned:
    - name: {{ launchers.productions_dir | tojson }}
    - keep: {{ launchers.keep | tojson }}
{%- if launchers.released_by_gone %}
    - require:
{%- for release in launchers.released_by_gone %}
      - mount: workstation-launchers-{{ release.production }}-mount-{{ release.name }}-unmounted
{%- endfor %}
{%- endif %}
{%- endif %}
{%- if launchers.studio_launch %}

workstation-launchers-studio-launch-installed:
  launchers.command:
    - name: {{ launchers.command | tojson }}
{%- endif %}
