"""What the NVIDIA driver on this machine is now: installed, loaded, blacklisted, waiting for a reboot.

Reading only. Salt's own functions come in as `salt` (the loader module's
__salt__): pkg.version for what a package installed, cmd.run_all for dnf's
read-only module listing. The loaded module is read from /proc and /sys by
gpu_detect, the same code the workstation_gpus grain runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from salt_workstation import gpu_detect, safefs, xprobe
from salt_workstation.errors import UnsafePath, WorkstationError
from salt_workstation.gpu import plan


def upstream_version(package_version: str | None) -> str | None:
    """3:580.95.05-1.el9 and 580.95.05-0ubuntu1 both give 580.95.05; '' or None give None."""
    if not package_version:
        return None
    return package_version.split(":", 1)[-1].split("-", 1)[0] or None


def loaded(root="/") -> dict:
    """The NVIDIA kernel module loaded now: {"version", "kernel_module": open|proprietary} (None when unknown)."""
    return gpu_detect.loaded_driver(root)


INSTALLER = "nvidia-installer"
# nvidia-installer:  version 580.95.05  (buildmeister@...)  Tue Sep 23 ...
_INSTALLER_VERSION = re.compile(r"version\s+(\d+\.\d+(?:\.\d+)?)")


def runfile_version(salt) -> str | None:
    """The driver version a runfile installed: its nvidia-installer (left on the PATH) says which; None
    when there is none."""
    if salt["cmd.which"](INSTALLER) is None:
        return None
    done = salt["cmd.run_all"]([INSTALLER, "--version"], python_shell=False)
    found = _INSTALLER_VERSION.search(done["stdout"] or "") if done["retcode"] == 0 else None
    return found.group(1) if found else None


def distro_drivers(salt, patterns) -> list[str]:
    """The installed OS packages of an NVIDIA driver (names matching patterns): a runfile must not mix with them."""
    installed = salt["pkg.list_pkgs"]()
    return sorted(name for name in installed if any(fnmatch.fnmatchcase(name, p) for p in patterns))


def installed_version(salt, package: str) -> str | None:
    """The driver version (580.95.05) the OS package installed (or, for plan.RUNFILE_PACKAGE, the
    runfile), or None."""
    if package == plan.RUNFILE_PACKAGE:
        return runfile_version(salt)
    return upstream_version(salt["pkg.version"](package))


def reboot_required(salt, package: str, flavor: str | None = None) -> bool:
    """The driver the package installed is not the loaded one (version, or flavour when given)."""
    installed = installed_version(salt, package)
    if not installed:
        return False
    now = loaded()
    if now["version"] != installed:
        return True
    return bool(flavor and now["kernel_module"] and now["kernel_module"] != flavor)


def blacklisted(path: str, content: str) -> bool:
    """path is a plain file holding exactly content; a link there is never read through (and does not count)."""
    try:
        return safefs.read_file(path) == content.encode()
    except UnsafePath:
        return False


def module_stream_installed(salt, stream: str) -> bool:
    """dnf module stream module:stream is enabled with a profile installed ([i] in dnf's listing).
    Without dnf there is no stream to ask about: WorkstationError."""
    module, _, wanted = stream.partition(":")
    if salt["cmd.which"]("dnf") is None:
        raise WorkstationError(
            f"dnf is not installed here: module stream {stream} is for RHEL and Rocky"
        )
    done = salt["cmd.run_all"](
        ["dnf", "-q", "module", "list", "--installed", module], python_shell=False
    )
    if done["retcode"] != 0:
        return False
    for line in done["stdout"].splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == module and fields[1] == wanted and "[i]" in line:
            return True
    return False


MODULES_DIR = "/lib/modules"
NVIDIA_MODULE = re.compile(r"^nvidia\.ko(\.(xz|zst|gz))?$")


def modules_dir(config) -> str:
    """Where the installed kernels' modules are (workstation:lookup:os:modules_dir)."""
    return ((config or {}).get("os") or {}).get("modules_dir") or MODULES_DIR


def kernel_order(release: str) -> list:
    """A sort key that orders kernel releases as versions: 6.1.0-9 before 6.1.0-28."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", release)
    ]


def installed_kernels(modules: str = MODULES_DIR) -> list[str]:
    """The kernel releases installed here, oldest first: each folder of modules holding a kernel's
    modules.dep or vmlinuz (a folder DKMS left behind for a removed kernel holds neither)."""
    try:
        names = os.listdir(modules)
    except OSError:
        return []
    found = [
        name
        for name in names
        if any(Path(modules, name, marker).is_file() for marker in ("modules.dep", "vmlinuz"))
    ]
    return sorted(found, key=kernel_order)


def nvidia_module(modules: str, release: str) -> str | None:
    """The NVIDIA kernel module built or installed for this kernel (DKMS's updates/dkms or extra,
    a precompiled package's folder, the runfile's kernel/drivers/video), or None."""
    for folder, _, files in os.walk(Path(modules, release)):
        for name in sorted(files):
            if NVIDIA_MODULE.match(name):
                return os.path.join(folder, name)
    return None


def next_boot(modules: str = MODULES_DIR) -> dict:
    """Whether the newest installed kernel (the one the next boot starts) has an NVIDIA module.

    {"kernel", "nvidia_module", "kernels": {release: module path or None}, "problem"}; problem is
    None when the next boot comes up with a driver (or no kernel is installed under modules)."""
    kernels = {release: nvidia_module(modules, release) for release in installed_kernels(modules)}
    if not kernels:
        return {"kernel": None, "nvidia_module": None, "kernels": {}, "problem": None}
    newest = list(kernels)[-1]
    problem = None
    if kernels[newest] is None:
        problem = (
            f"kernel {newest}, the newest installed (the next boot starts it), has no NVIDIA "
            f"module under {modules}/{newest}: the machine would boot without a driver. Install its "
            "headers and rebuild (state.apply workstation.gpu, or dkms autoinstall -k "
            f"{newest}), or remove that kernel"
        )
    return {
        "kernel": newest,
        "nvidia_module": kernels[newest],
        "kernels": kernels,
        "problem": problem,
    }


def report(salt, config, grains) -> dict:
    """The NVIDIA cards, the driver the pillar wants, the one installed and the one loaded, and whether a
    reboot is pending."""
    wanted = plan.decide(config, grains, kernels=installed_kernels(modules_dir(config)))
    found = {
        "cards": wanted["cards"],
        "managed": wanted["manage"],
        "comment": wanted["comment"],
        "errors": wanted["errors"],
        "secure_boot": grains.get("workstation_secure_boot"),
        "loaded": loaded(),
        "installed": None,
        "wanted": None,
        "reboot_required": False,
        "next_boot": None,
        "x_server": None,
        "gldiag": None,
    }
    if wanted["manage"]:
        found["wanted"] = {
            key: wanted[key] for key in ("branch", "version", "flavor", "source", "driver_packages")
        }
        found["installed"] = installed_version(salt, wanted["version_package"])
        found["reboot_required"] = reboot_required(
            salt, wanted["version_package"], wanted["flavor"]
        )
        found["next_boot"] = next_boot(modules_dir(config))
        # A GPU desktop: X on the NVIDIA card, and DCV's GL check where nice-dcv-gl is installed.
        found["x_server"] = xprobe.x_on_nvidia()
        found["gldiag"] = xprobe.gldiag(salt)
    return found
