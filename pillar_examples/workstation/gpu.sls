# The NVIDIA driver, chosen per card from the workstation_gpus grain
# (docs/gpu.md). Machines without an NVIDIA card get nothing and say so.
workstation:
  gpu:
    driver: auto
    flavor: auto
    source: auto
    persistenced: true
