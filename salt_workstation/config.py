"""The merged config: defaults.yaml, then the OS family's parameters, then pillar lookup, then pillar.

The formula's map.jinja and every execution module read the config through
here, so the CLI and `state.apply` always agree on what the pillar means.
"""

from __future__ import annotations

import copy
from functools import cache

import yaml

from salt_workstation import FORMULA_DIR


@cache
def _load_yaml(name: str) -> dict:
    with open(FORMULA_DIR / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def defaults() -> dict:
    return copy.deepcopy(_load_yaml("defaults.yaml"))


def os_parameters(os_family: str | None) -> dict:
    return copy.deepcopy(_load_yaml("osfamilymap.yaml").get(os_family or "", {}) or {})


# Mappings that a later layer replaces whole instead of merging into: each is a choice of what to
# install, so `{}` must mean none (`mount_packages: {}` turns the storage clients off), not "add none".
REPLACED = {("os", "mount_packages")}


def merge(base: dict, override: dict, _path: tuple = ()) -> dict:
    """Deep-merge override onto a copy of base (dicts merge, everything else replaces, and so do
    the mappings in REPLACED)."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        path = (*_path, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and path not in REPLACED:
            merged[key] = merge(merged[key], value, path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def system_file(config, folder_key: str, name: str) -> str:
    """`name` in the system folder `workstation:os:<folder_key>` (defaults.yaml's when the config
    has none): every system path a feature writes is movable through `workstation:lookup:os`."""
    os_params = config.get("os") if isinstance(config, dict) else None
    folder = (os_params if isinstance(os_params, dict) else {}).get(folder_key)
    if not isinstance(folder, str) or not folder:
        folder = _load_yaml("defaults.yaml")["os"][folder_key]
    return f"{folder.rstrip('/') or ''}/{name}"


GRAINS = ("oscodename", "workstation_gpus", "os_family")  # the grains the merge reads


def load(pillar_workstation, grains: dict | None = None) -> dict:
    """The workstation config a minion with this pillar and these grains works from."""
    grains = grains or {}
    pillar_workstation = pillar_workstation if isinstance(pillar_workstation, dict) else {}
    # The GPUs ride along so that workstation.validate checks workstation:gpu against the cards.
    config = merge(
        defaults(),
        {
            "os": {
                "codename": grains.get("oscodename") or "",
                "gpus": grains.get("workstation_gpus") or [],
            }
        },
    )
    config = merge(config, os_parameters(grains.get("os_family")))
    config = merge(config, pillar_workstation.get("lookup") or {})
    config = merge(
        config, {key: value for key, value in pillar_workstation.items() if key != "lookup"}
    )
    return config
