"""The NVIDIA driver capability: pillar `workstation:gpu`, formula `workstation.gpu`.

- contract: the pillar section, its defaults and checks, every Issue at its path;
- plan: what the driver on this machine should be, as the data gpu.sls loops over;
- status: what is installed, loaded and blacklisted now (reading only);
- effects: the only code that changes the machine (the blacklist file, commands, Salt calls).

Which GPUs a machine has is core hardware detection: salt_workstation.gpu_detect.
"""

from salt_workstation.gpu.contract import check

__all__ = ["check"]
