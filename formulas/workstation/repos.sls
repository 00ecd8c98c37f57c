{#- Studio package repositories: each signing key is written only when its
    fingerprint is the pinned one, then Salt's pkgrepo.managed points the
    package manager at the repository through that key (apt: signed-by). -#}
{%- from tpldir ~ "/map.jinja" import workstation with context %}
{%- set data = salt['workstation.formula_data'](workstation) %}

{%- for repo in data.repositories %}

{{ repo.keyring_id }}:
  workstation.keyring:
    - name: {{ repo.keyring | tojson }}
    - repository: {{ repo.name | tojson }}
    - repo: {{ repo.repo | tojson }}
    - armor: {{ repo.armor | tojson }}
{%- if repo.pkgrepo %}

{{ repo.id }}:
  pkgrepo.managed: {{ repo.pkgrepo | tojson }}
{%- endif %}
{%- endfor %}
