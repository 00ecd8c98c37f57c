"""Where the workstation pillar holds secrets, and a copy of a config with them masked.

Execution modules that return the config (`workstation.config`) mask it here,
so a job return, the job cache or a TD's terminal never shows a license key,
a registration code or a mount password. The states never take these values
as arguments; they read them from the pillar where they use them.
"""

from __future__ import annotations

import copy
import fnmatch

MASK = "**********"
# Pillar paths under `workstation:`, `*` standing for one name.
SECRET_PATHS = (
    "licenses:*:content",
    "licenses:*:product_key",
    "display:anyware:registration_code",
    "productions:*:mounts:*:credentials",
)


def is_secret(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in SECRET_PATHS)


def redact(config):
    """A deep copy of config with every value at a secret path replaced by MASK."""

    def walk(node, path):
        if not isinstance(node, dict):
            return node
        return {
            key: MASK
            if is_secret(f"{path}{key}") and value is not None
            else walk(value, f"{path}{key}:")
            for key, value in node.items()
        }

    return walk(copy.deepcopy(config), "")
