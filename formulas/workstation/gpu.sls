{#- The NVIDIA driver for this machine's cards: kernel headers for DKMS, for every
    installed kernel (or, with Secure Boot, Canonical's signed precompiled modules),
    the dnf module stream on RHEL/Rocky, the driver packages pinned and held (or
    NVIDIA's runfile from the depot, source runfile), nouveau blacklisted (the
    initramfs rebuilt only when that file changed), nvidia-persistenced, and the
    reboot signal. Without an NVIDIA card, or with a pillar this machine cannot
    follow, it is one state that says why.

    gpu.plan (salt_workstation/gpu/plan.py) decides the data from the grains, the
    pillar and gpu.yaml: branch, flavour, packages and pins, which optional
    states exist, whether nvidia-persistenced starts now. This file lays out the
    states, their order and their requisites. The IDs are permanent: extend them
    by ID in your own SLS (docs/gpu.md). -#}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import workstation with context %}
{%- set gpu = salt['gpu.plan'](workstation) %}

include:
  - {{ tplroot }}.repos
{%- if not gpu.manage %}

workstation-gpu-driver-not-managed:
  gpu.not_managed:
    - name: nvidia-driver
    - comment: {{ gpu.comment | tojson }}
    - errors: {{ gpu.errors | tojson }}
{%- else %}
{%- if gpu.kernel_headers %}

workstation-gpu-kernel-headers-installed:
  pkg.installed:
    - pkgs: {{ gpu.headers | tojson }}
    - require_in:
      - pkg: workstation-gpu-driver-installed
{%- if gpu.module_stream %}
      - gpu: workstation-gpu-module-stream-installed
{%- endif %}
{%- endif %}
{%- if gpu.module_stream %}

workstation-gpu-module-stream-installed:
  gpu.module_stream_installed:
    - name: {{ gpu.stream | tojson }}
{%- if gpu.from_repository %}
    - require:
      - pkgrepo: workstation-repo-{{ gpu.repository }}
{%- endif %}
    - require_in:
      - pkg: workstation-gpu-driver-installed
{%- endif %}

workstation-gpu-driver-installed:
  pkg.installed:
    - pkgs: {{ gpu.packages | tojson }}
{%- if gpu.hold %}
    - hold: true
    - update_holds: true
{%- endif %}
{%- if gpu.from_repository %}
    - require:
      - pkgrepo: workstation-repo-{{ gpu.repository }}
{%- endif %}
{%- if gpu.runfile %}

{#- NVIDIA's own installer from the depot, hash-checked, silent, with DKMS; refused beside
    the OS's driver packages; the runfile driver of another version uninstalled first. #}
workstation-gpu-runfile-installed:
  gpu.runfile_installed:
    - name: {{ gpu.runfile.version | tojson }}
    - source: {{ gpu.runfile.source | tojson }}
    - hash: {{ gpu.runfile.hash | tojson }}
    - options: {{ gpu.runfile.options | tojson }}
    - conflicts: {{ gpu.runfile.conflicts | tojson }}
    - cache: {{ gpu.runfile.cache | tojson }}
    - require:
      - pkg: workstation-gpu-driver-installed
{%- endif %}

workstation-gpu-nouveau-blacklisted:
  gpu.nouveau_blacklisted:
    - name: {{ gpu.blacklist.path | tojson }}
    - content: {{ gpu.blacklist.content | tojson }}

workstation-gpu-initramfs-rebuilt:
  gpu.initramfs_rebuilt:
    - name: {{ gpu.initramfs[0] | tojson }}
    - argv: {{ gpu.initramfs | tojson }}
    - onchanges:
      - gpu: workstation-gpu-nouveau-blacklisted
{#- nvidia-persistenced needs the new module loaded: while an image bakes or a
    reboot is due it is only enabled, otherwise enabled and running. #}
{%- if gpu.persistenced %}
{%- if gpu.start_persistenced %}

workstation-gpu-persistenced-service-running:
  service.running:
    - name: {{ gpu.persistenced_unit | tojson }}
    - enable: true
{%- else %}

workstation-gpu-persistenced-service-enabled:
  workstation.unit_enabled:
    - name: {{ gpu.persistenced_unit | tojson }}
{%- endif %}
    - require:
      - pkg: workstation-gpu-driver-installed
{%- endif %}

workstation-gpu-reboot-signalled:
  gpu.reboot_signalled:
    - name: {{ gpu.version_package | tojson }}
    - branch: {{ gpu.branch | tojson }}
    - version: {{ gpu.version | tojson }}
    - flavor: {{ gpu.flavor | tojson }}
    - reboot: {{ gpu.reboot | tojson }}
    - notes: {{ gpu.notes | tojson }}
    - require:
      - pkg: workstation-gpu-driver-installed
{%- if gpu.runfile %}
      - gpu: workstation-gpu-runfile-installed
{%- endif %}
{%- endif %}
