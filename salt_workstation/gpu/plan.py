"""What the NVIDIA driver on this machine should be, as plain data.

`decide(config, grains)` is everything workstation.gpu needs: whether the driver
is managed at all (and why not), the branch, the kernel module flavour, the
packages with their pins (gpu.yaml's per-OS entries filled in), the kernel
headers or signed precompiled modules, the dnf module stream, the nouveau
blacklist, whether nvidia-persistenced may start now, and whether a reboot is
expected. gpu.sls loops over this data and writes the states out; gpu.status
compares the machine against it. Nothing here reads or changes the system.
"""

from __future__ import annotations

from salt_workstation import config as ws_config
from salt_workstation.gpu.contract import (
    EXACT,
    architectures,
    check_machine,
    describe,
    os_key,
    runfile_version,
    settings,
    source_for,
    wanted_branch,
)
from salt_workstation.gpu_detect import nvidia_cards, table
from salt_workstation.pillar import resolve_source

# What the reboot signal and gpu.status name as the "package" of a runfile install.
RUNFILE_PACKAGE = "nvidia-runfile"


def wanted_flavor(gpu, cards) -> str:
    """The flavour asked for, or for auto: open when every card supports it, proprietary otherwise."""
    if gpu["flavor"] != "auto":
        return gpu["flavor"]
    return "open" if all(arch and arch["open"] for arch in architectures(cards)) else "proprietary"


def loaded_matches(loaded: dict, branch: str, version: str | None, flavor: str) -> bool:
    """The loaded kernel module is the wanted driver: after installing it, no reboot is needed."""
    found = (loaded or {}).get("version")
    if not found:
        return False
    if (loaded.get("kernel_module") or flavor) != flavor:
        return False
    return found == version if version else found.startswith(branch + ".")


def _fill(templates, values) -> list[str]:
    return [template.format(**values) for template in templates or []]


def runfile_options(branch: str, flavor: str) -> list[str]:
    """nvidia-installer's options: non-interactive, DKMS, and the kernel module flavour."""
    data = table()["runfile"]
    options = list(data["options"])
    if int(branch) >= int(data["module_type_from"]):
        options.append(f"--kernel-module-type={flavor}")
    elif flavor == "open":
        options.append("--kernel-module-build-directory=kernel-open")
    return options


def _runfile(config, gpu, branch, flavor) -> dict:
    data = table()["runfile"]
    return {
        "source": resolve_source(gpu["runfile"]["source"], str(config.get("depot") or "")),
        "hash": gpu["runfile"]["hash"],
        "version": runfile_version(gpu),
        "options": runfile_options(branch, flavor),
        "conflicts": list(data["distro_packages"]),
        "cache": data["cache"],
    }


def _loaded_from(cards) -> dict:
    bound = [card for card in cards if card.get("kernel_driver") == "nvidia"]
    if not bound:
        return {"version": None, "kernel_module": None}
    return {
        "version": bound[0].get("driver_version"),
        "kernel_module": bound[0].get("kernel_module"),
    }


def kernel_releases(grains, kernels) -> list[str]:
    """The running kernel and every installed one (gpu.status.installed_kernels), each once, in order."""
    running = grains.get("kernelrelease") or ""
    return list(dict.fromkeys([*(kernels or []), *([running] if running else [])]))


def decide(config, grains, loaded=None, kernels=None) -> dict:
    """What workstation.gpu does on a minion with these grains: nothing (and why), errors, or the driver install.

    loaded: the NVIDIA module loaded now (gpu_detect.loaded_driver); defaults to the grain's, the
    driver as the minion saw it when it started (after the last reboot).
    kernels: the kernel releases installed (gpu.status.installed_kernels): DKMS needs the headers
    of each, or the next kernel boots without a driver. The running kernel is always among them.
    """
    cards = grains.get("workstation_gpus") or []
    nvidia = nvidia_cards(cards)
    gpu = settings(config)
    base = {"manage": False, "errors": [], "cards": nvidia, "settings": gpu}
    if not cards:
        return {
            **base,
            "comment": "No GPU was found (grain workstation_gpus is empty): no GPU driver to manage",
        }
    if not nvidia:
        found = ", ".join(
            f"{card.get('model')} ({card.get('kernel_driver') or 'no driver'})" for card in cards
        )
        return {
            **base,
            "comment": f"No NVIDIA GPU here (found: {found}): the NVIDIA driver is not managed",
        }
    issues = check_machine(config, grains, cards)
    if issues:
        return {
            **base,
            "errors": [str(issue) for issue in issues],
            "comment": "The NVIDIA driver was not managed. Fix the pillar:\n"
            + "\n".join(f"- {i}" for i in issues),
        }

    source = source_for(gpu, grains)
    entry = table()["os"][os_key(grains)]["sources"][source]
    branch = wanted_branch(gpu, nvidia)
    flavor = wanted_flavor(gpu, nvidia)
    runfile = _runfile(config, gpu, branch, flavor) if source == "runfile" else None
    if runfile:
        version = runfile["version"]
    else:
        version = gpu["driver"] if EXACT.match(gpu["driver"]) else None
    kernelrelease = grains.get("kernelrelease") or ""
    values = {
        "branch": branch,
        "version": version,
        "open": "-open" if flavor == "open" else "",
        "kernelrelease": kernelrelease,
        "kernel_flavour": kernelrelease.rsplit("-", 1)[-1],
    }
    secure_boot = grains.get("workstation_secure_boot") is True
    precompiled = secure_boot and bool(entry.get("precompiled"))
    # A runfile is NVIDIA's installer, not a package: only what it needs (DKMS) is installed as packages.
    driver_names = [] if runfile else _fill(entry["driver"][flavor], values)
    pin, hold = None, False
    if runfile:
        pass
    elif version:
        pin, hold = entry["pin"].format(**values), True
    elif entry.get("branch_pin"):
        pin, hold = entry["branch_pin"].format(**values), bool(entry.get("hold"))
    extra = (
        _fill(entry.get("requires"), values)
        + _fill(entry.get("extra"), values)
        + (_fill(entry.get("precompiled"), values) if precompiled else [])
    )
    if hold:
        extra += entry.get("hold_requires") or []
    headers = (
        []
        if precompiled
        else list(
            dict.fromkeys(
                name
                for release in kernel_releases(grains, kernels)
                for name in _fill(entry.get("headers"), {**values, "kernelrelease": release})
            )
        )
    )
    stream = entry["stream"][flavor].format(**values) if entry.get("stream") else None
    loaded = loaded if loaded is not None else _loaded_from(nvidia)
    reboot_expected = not loaded_matches(loaded, branch, version, flavor)
    repository = gpu.get("repository") if source == "nvidia-repo" else None
    notes = []
    if secure_boot and not precompiled:
        notes.append(
            "Secure Boot is on: DKMS-built modules load only when signed with a key enrolled in MOK"
        )
    persistenced = gpu["persistenced"] and not runfile
    if runfile and gpu["persistenced"]:
        notes.append(
            "the runfile installs no nvidia-persistenced unit: persistence mode is not managed"
        )
    return {
        **base,
        "manage": True,
        "branch": branch,
        "version": version,
        "flavor": flavor,
        "source": source,
        "repository": repository,
        "stream": stream,
        "driver_packages": driver_names,
        "pin": pin,
        "hold": hold,
        "extra_packages": extra,
        "headers": headers,
        "precompiled": precompiled,
        "version_package": RUNFILE_PACKAGE if runfile else driver_names[0],
        "runfile": runfile,
        "initramfs": list(table()["os"][os_key(grains)]["initramfs"]),
        "loaded": loaded,
        "reboot_expected": reboot_expected,
        "notes": notes,
        # What gpu.sls writes out: which optional states exist, and the pkg.installed list.
        "from_repository": repository is not None,
        "kernel_headers": bool(headers),
        "module_stream": stream is not None,
        "packages": [{name: pin} if pin else name for name in driver_names] + extra,
        "blacklist": {
            "path": ws_config.system_file(config, "modprobe_dir", table()["blacklist"]["file"]),
            "content": table()["blacklist"]["content"],
        },
        "persistenced": persistenced,
        "persistenced_unit": table()["persistenced_unit"],
        # Starting it needs the new module loaded: while a reboot is due (or an image bakes), only enable it.
        "start_persistenced": config.get("phase", "all") != "bake" and not reboot_expected,
        "reboot": gpu["reboot"],
        "comment": (
            f"NVIDIA driver branch {branch}{f' ({version})' if version else ''}, {flavor} kernel modules, "
            f"from {source}, for {', '.join(map(describe, nvidia))}"
        ),
    }
