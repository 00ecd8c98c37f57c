"""Where things live under install_root, and the one containment check everything uses."""

from __future__ import annotations

import os
from pathlib import Path

# An install_root equal to one of these would let retention or removal touch the OS.
_SYSTEM_DIRS = {
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
}

MANIFEST = ".workstation-manifest.json"
FILE_LIST = ".workstation-files.json"
RESERVED_NAMES = (MANIFEST, FILE_LIST)
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
HISTORY = ".history.json"
LOCK = ".lock"
INSTALL_SLOTS = ".install-slots"  # in apps/: one lock file per install that may run at once


def is_system_dir(path: str) -> bool:
    return os.path.normpath(path) in _SYSTEM_DIRS


def is_inside(root: Path, candidate: Path) -> bool:
    """True when candidate, with every link resolved, lies in root (never a string-prefix test)."""
    return Path(os.path.realpath(candidate)).is_relative_to(os.path.realpath(root))


class Layout:
    """{install_root}/apps/{app}/{version}, with bookkeeping beside each app's versions."""

    def __init__(self, install_root):
        self.root = Path(install_root)
        self.apps = self.root / "apps"
        self.logs = self.root / "logs"

    def app_dir(self, app: str) -> Path:
        return self.apps / app

    def version_dir(self, app: str, version: str) -> Path:
        return self.apps / app / version

    def manifest(self, app: str, version: str) -> Path:
        return self.version_dir(app, version) / MANIFEST

    def file_list(self, app: str, version: str) -> Path:
        return self.version_dir(app, version) / FILE_LIST

    def history(self, app: str) -> Path:
        return self.app_dir(app) / HISTORY

    def lock(self, app: str) -> Path:
        return self.app_dir(app) / LOCK

    def install_log(self, app: str, version: str) -> Path:
        return self.logs / f"{app}-{version}-install.log"
