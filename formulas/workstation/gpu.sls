{#- The NVIDIA driver for this machine's cards: kernel headers (DKMS) or signed
    precompiled modules (Secure Boot), the driver packages pinned and held,
    nouveau blacklisted (initramfs rebuilt only when that file changed),
    nvidia-persistenced, and the reboot signal. Without an NVIDIA card it is one
    state that says why nothing is done. gpu.formula_data decides all of it from
    the grains and the pillar; this file only writes it down. -#}
{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set gpu = salt['gpu.formula_data'](workstation) %}

{%- for state in gpu.states %}

{{ state.id }}:
  {{ state.function }}: {{ state.args | tojson }}
{%- endfor %}
