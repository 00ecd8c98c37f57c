"""
Grains ``workstation_gpus`` (every display controller: ids, model, NVIDIA
architecture, bound kernel driver, loaded NVIDIA driver version and kernel
module flavour) and ``workstation_secure_boot``.

Read from sysfs, with ``lspci -nnk`` as the fallback, and no root-only tools.
Minion option ``workstation_gpus_root`` reads another root (a recorded tree)
instead of ``/``.
"""

from salt_workstation import gpu_detect


def workstation_gpus():
    """The ``workstation_gpus`` and ``workstation_secure_boot`` grains of this machine."""
    return gpu_detect.grains_of(__opts__.get("workstation_gpus_root") or "/")
