"""The pillar sections beyond apps, each validated by its own feature module."""

from salt_workstation import display, gpu, launchers, licenses

CHECKS = (gpu.check, licenses.check, display.check, launchers.check)
