"""The `workstation:gpu` pillar section: validation, and what the NVIDIA driver install should be.

Plain data in (the merged config, the grains), plain data out: which branch,
which kernel module flavour, which packages per OS release (from gpu.yaml),
and the states `workstation.gpu` renders. The grain itself is gpu_detect.
"""

from __future__ import annotations

import re

from salt_workstation import pillar, safefs, units
from salt_workstation.errors import UnsafePath
from salt_workstation.gpu_detect import nvidia_cards, table
from salt_workstation.pillar import Issue, path_of

KEYS = ("driver", "flavor", "source", "repository", "runfile", "reboot", "persistenced")
DEFAULTS = {"driver": "auto", "flavor": "auto", "source": "auto", "reboot": False, "persistenced": True}
FLAVORS = ("auto", "open", "proprietary")
SOURCES = ("auto", "distro", "nvidia-repo", "runfile")
BRANCH = re.compile(r"^\d{3}$")
EXACT = re.compile(r"^(\d{3})\.\d+(?:\.\d+)?$")
REBOOT_EVENT = "workstation/gpu/reboot-required"


def settings(config) -> dict:
    """workstation:gpu with its defaults filled in (a malformed section reads as the defaults)."""
    section = config.get("gpu") if isinstance(config, dict) else None
    return {**DEFAULTS, **(section if isinstance(section, dict) else {})}


def _describe(card) -> str:
    return f"{card.get('model')} ({card.get('architecture') or 'unknown architecture'}) at {card.get('slot')}"


def _architectures(cards) -> list[dict]:
    by_name = {entry["name"]: entry for entry in table()["architectures"]}
    return [by_name.get(card.get("architecture")) for card in cards]


def check(config, cards=None) -> list[Issue]:
    """Every problem in workstation:gpu; with the cards (the workstation_gpus grain) also the card-dependent ones."""
    section = config.get("gpu", {}) if isinstance(config, dict) else {}
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return [Issue(path_of("gpu"), f"must be a mapping such as {{driver: auto, flavor: auto}}, got {type(section).__name__}")]
    issues = [Issue(path_of("gpu", key), f"unknown key{pillar.did_you_mean(key, list(KEYS))}")
              for key in section if key not in KEYS]
    gpu = settings(config)
    driver = gpu["driver"]
    if not isinstance(driver, str):
        issues += pillar.version_text(driver, path_of("gpu", "driver"))[1]
    elif driver != "auto" and not (BRANCH.match(driver) or EXACT.match(driver)):
        issues.append(Issue(path_of("gpu", "driver"),
                            f"must be auto, a driver branch such as \"580\", or an exact version such as \"580.95.05\"; got {driver!r}"))
    if gpu["flavor"] not in FLAVORS:
        issues.append(Issue(path_of("gpu", "flavor"), f"must be one of {', '.join(FLAVORS)}, got {gpu['flavor']!r}"))
    if gpu["source"] not in SOURCES:
        issues.append(Issue(path_of("gpu", "source"), f"must be one of {', '.join(SOURCES)}, got {gpu['source']!r}"))
    if gpu["source"] == "nvidia-repo":
        issues += _check_repository(config, gpu)
    if gpu["source"] == "runfile":
        runfile = gpu.get("runfile")
        if not isinstance(runfile, dict) or not isinstance(runfile.get("source"), str) or not runfile.get("source"):
            issues.append(Issue(path_of("gpu", "runfile", "source"),
                                "source runfile needs runfile: {source: <depot path of NVIDIA-Linux-x86_64-<version>.run>, hash: sha256:<64 hex>}"))
        else:
            issues += pillar.check_hash(runfile.get("hash"), path_of("gpu", "runfile", "hash"))
    for flag in ("reboot", "persistenced"):
        if not isinstance(gpu[flag], bool):
            issues.append(Issue(path_of("gpu", flag), f"must be true or false, got {gpu[flag]!r}"))
    if cards is None:
        cards = (config.get("os") or {}).get("gpus") if isinstance(config.get("os"), dict) else None
    if cards and not issues:
        issues += _check_cards(gpu, nvidia_cards(cards))
    return issues


def _check_repository(config, gpu) -> list[Issue]:
    repositories = config.get("repositories") if isinstance(config.get("repositories"), dict) else {}
    if gpu.get("repository") in repositories:
        return []
    return [Issue(path_of("gpu", "repository"),
                  "source nvidia-repo needs the name of NVIDIA's repository in workstation:repositories "
                  f"(its key pinned by fingerprint); got {gpu.get('repository')!r}"
                  + (f", known: {', '.join(sorted(map(str, repositories)))}" if repositories else ""))]


def _check_cards(gpu, cards) -> list[Issue]:
    """What this pillar asks of these NVIDIA cards that no driver can give them."""
    issues = []
    archs = _architectures(cards)
    unknown = [card for card, arch in zip(cards, archs) if arch is None]
    pre_turing = [card for card, arch in zip(cards, archs) if arch and not arch["open"]]
    open_only = [card for card, arch in zip(cards, archs) if arch and not arch["proprietary"]]
    flavor_path = path_of("gpu", "flavor")
    if gpu["flavor"] == "open" and pre_turing:
        issues.append(Issue(flavor_path, "open kernel modules need a Turing or newer GPU, and this machine has "
                            f"{', '.join(map(_describe, pre_turing))}; use flavor: proprietary (or auto)"))
    if gpu["flavor"] == "proprietary" and open_only:
        issues.append(Issue(flavor_path, f"{', '.join(map(_describe, open_only))} works only with the open kernel "
                            "modules; use flavor: open (or auto)"))
    if gpu["flavor"] == "auto":
        if unknown:
            issues.append(Issue(flavor_path, f"NVIDIA device {', '.join(c.get('device_id', '?') for c in unknown)} is "
                                "not in gpu.yaml's architecture table, so auto cannot choose; set flavor: open "
                                "(Turing and newer) or proprietary"))
        elif pre_turing and open_only:
            issues.append(Issue(flavor_path, f"no kernel module serves both {_describe(pre_turing[0])} (proprietary "
                                f"only) and {_describe(open_only[0])} (open only); take one of them out"))
    branch = wanted_branch(gpu, cards)
    for card, arch in zip(cards, archs):
        last = (arch or {}).get("last_branch")
        if branch and last and int(branch) > int(last):
            issues.append(Issue(path_of("gpu", "driver"), f"{_describe(card)} is supported up to driver branch "
                                f"{last}; set driver: \"{last}\" (or auto)"))
    return issues


def wanted_branch(gpu, cards) -> str | None:
    """The branch asked for, or for auto the default one capped by the oldest card's last branch."""
    driver = gpu["driver"]
    if isinstance(driver, str) and BRANCH.match(driver):
        return driver
    if isinstance(driver, str) and EXACT.match(driver):
        return EXACT.match(driver).group(1)
    lasts = [int(arch["last_branch"]) for arch in _architectures(cards) if arch and arch.get("last_branch")]
    return str(min([int(table()["default_branch"]), *lasts]))


def wanted_flavor(gpu, cards) -> str:
    if gpu["flavor"] != "auto":
        return gpu["flavor"]
    archs = _architectures(cards)
    return "open" if all(arch and arch["open"] for arch in archs) else "proprietary"


def os_key(grains) -> str:
    """The gpu.yaml `os` entry for these grains: Debian-12, Ubuntu-24.04, RedHat-9 (Rocky too)."""
    family = grains.get("os_family")
    if family == "Debian" and grains.get("os") == "Ubuntu":
        return f"Ubuntu-{grains.get('osrelease')}"
    return f"{family}-{grains.get('osmajorrelease')}"


def upstream_version(package_version: str | None) -> str | None:
    """3:580.95.05-1.el9 and 580.95.05-0ubuntu1 both give 580.95.05; '' or None give None."""
    if not package_version:
        return None
    return package_version.split(":", 1)[-1].split("-", 1)[0] or None


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


def decide(config, grains, loaded=None) -> dict:
    """What workstation.gpu does on a minion with these grains: a no-op, errors, or the install plan.

    loaded: the NVIDIA module loaded now (gpu_detect.loaded_driver); defaults to the grain's.
    """
    cards = grains.get("workstation_gpus") or []
    nvidia = nvidia_cards(cards)
    gpu = settings(config)
    base = {"manage": False, "errors": [], "cards": nvidia, "settings": gpu}
    if not cards:
        return {**base, "comment": "No GPU was found (grain workstation_gpus is empty): no GPU driver to manage"}
    if not nvidia:
        found = ", ".join(f"{card.get('model')} ({card.get('kernel_driver') or 'no driver'})" for card in cards)
        return {**base, "comment": f"No NVIDIA GPU here (found: {found}): the NVIDIA driver is not managed"}
    issues = check(config, cards)
    os_data = table()["os"].get(os_key(grains))
    if os_data is None:
        issues.append(Issue(path_of("gpu"), f"{os_key(grains)} is not supported for the NVIDIA driver yet "
                            f"(supported: {', '.join(table()['os'])}); remove workstation:gpu from this minion's "
                            "pillar or add the OS to gpu.yaml"))
    source = gpu["source"] if gpu["source"] != "auto" else table()["auto_source"].get(grains.get("os_family"), "distro")
    if not issues and source == "nvidia-repo":
        issues += _check_repository(config, gpu)
    if not issues and source == "runfile":
        issues.append(Issue(path_of("gpu", "source"), "runfile installs are validated but not implemented yet; "
                            "use distro or nvidia-repo"))
    if not issues and source not in os_data["sources"]:
        issues.append(Issue(path_of("gpu", "source"), f"{os_key(grains)} has no NVIDIA driver from '{source}'; use "
                            f"{' or '.join(os_data['sources'])}"))
    if issues:
        return {**base, "errors": [str(issue) for issue in issues],
                "comment": "The NVIDIA driver was not managed. Fix the pillar:\n" + "\n".join(f"- {i}" for i in issues)}

    branch = wanted_branch(gpu, nvidia)
    version = gpu["driver"] if EXACT.match(gpu["driver"]) else None
    flavor = wanted_flavor(gpu, nvidia)
    entry = os_data["sources"][source]
    kernelrelease = grains.get("kernelrelease") or ""
    values = {"branch": branch, "version": version, "open": "-open" if flavor == "open" else "",
              "kernelrelease": kernelrelease, "kernel_flavour": kernelrelease.rsplit("-", 1)[-1]}
    secure_boot = grains.get("workstation_secure_boot") is True
    precompiled = secure_boot and bool(entry.get("precompiled"))
    driver_names = _fill(entry["driver"][flavor], values)
    pin, hold = None, False
    if version:
        pin, hold = entry["pin"].format(**values), True
    elif entry.get("branch_pin"):
        pin, hold = entry["branch_pin"].format(**values), bool(entry.get("hold"))
    extra = _fill(entry.get("extra"), values) + (_fill(entry.get("precompiled"), values) if precompiled else [])
    if hold:
        extra += entry.get("hold_requires") or []
    headers = [] if precompiled else _fill(entry.get("headers"), values)
    stream = entry["stream"][flavor].format(**values) if entry.get("stream") else None
    loaded = loaded if loaded is not None else _loaded_from(nvidia)
    reboot_expected = not loaded_matches(loaded, branch, version, flavor)
    notes = []
    if secure_boot and not precompiled:
        notes.append("Secure Boot is on: DKMS-built modules load only when signed with a key enrolled in MOK")
    return {
        **base, "manage": True, "branch": branch, "version": version, "flavor": flavor, "source": source,
        "repository": gpu.get("repository") if source == "nvidia-repo" else None,
        "stream": stream, "driver_packages": driver_names, "pin": pin, "hold": hold, "extra_packages": extra,
        "headers": headers, "precompiled": precompiled, "version_package": driver_names[0],
        "initramfs": list(os_data["initramfs"]), "loaded": loaded, "reboot_expected": reboot_expected,
        "notes": notes,
        "comment": (f"NVIDIA driver branch {branch}{f' ({version})' if version else ''}, {flavor} kernel modules, "
                    f"from {source}, for {', '.join(map(_describe, nvidia))}"),
    }


def _loaded_from(cards) -> dict:
    bound = [card for card in cards if card.get("kernel_driver") == "nvidia"]
    if not bound:
        return {"version": None, "kernel_module": None}
    return {"version": bound[0].get("driver_version"), "kernel_module": bound[0].get("kernel_module")}


def formula_data(config, grains, loaded=None) -> dict:
    """The states workstation.gpu renders, in order, each {id, function, args}."""
    plan = decide(config, grains, loaded)
    if not plan["manage"]:
        return {"plan": plan, "states": [units.state("workstation-gpu", "gpu.not_managed", name="nvidia-driver",
                                                     comment=plan["comment"], errors=plan["errors"])]}
    states = []
    driver_require = []
    if plan["repository"]:
        driver_require.append({"pkgrepo": f"workstation-repo-{plan['repository']}"})
    if plan["headers"]:
        states.append(units.state("workstation-gpu-kernel-headers", "pkg.installed", pkgs=plan["headers"],
                                  require=list(driver_require)))
        driver_require.append({"pkg": "workstation-gpu-kernel-headers"})
    if plan["stream"]:
        states.append(units.state("workstation-gpu-module-stream", "gpu.module_stream_installed", name=plan["stream"],
                                  require=list(driver_require)))
        driver_require.append({"gpu": "workstation-gpu-module-stream"})
    pinned = [{name: plan["pin"]} if plan["pin"] else name for name in plan["driver_packages"]]
    holds = {"hold": True, "update_holds": True} if plan["hold"] else {}
    states.append(units.state("workstation-gpu-driver", "pkg.installed", pkgs=pinned + plan["extra_packages"],
                              **holds, require=driver_require))
    blacklist = table()["blacklist"]
    states.append(units.state("workstation-gpu-nouveau-blacklist", "gpu.nouveau_blacklisted", name=blacklist["path"],
                              content=blacklist["content"]))
    states.append(units.state("workstation-gpu-initramfs", "gpu.initramfs_rebuilt", name=plan["initramfs"][0],
                              argv=plan["initramfs"], onchanges=[{"gpu": "workstation-gpu-nouveau-blacklist"}]))
    if settings(config)["persistenced"]:
        unit = table()["persistenced_unit"]
        # Starting it needs the new module loaded: while a reboot is due (or an image bakes), only enable it.
        states.append(units.service_state("workstation-gpu-persistenced", unit,
                                          config.get("phase", "all") == "bake" or plan["reboot_expected"],
                                          require=[{"pkg": "workstation-gpu-driver"}]))
    states.append(units.state("workstation-gpu-reboot", "gpu.reboot_signalled", name=plan["version_package"],
                              branch=plan["branch"], version=plan["version"], flavor=plan["flavor"],
                              reboot=settings(config)["reboot"], notes=plan["notes"],
                              require=[{"pkg": "workstation-gpu-driver"}]))
    return {"plan": plan, "states": states}


def file_differs(path: str, content: str) -> bool:
    """True when path is missing, is no plain file (a link there is replaced, never read through)
    or holds something other than content."""
    try:
        return safefs.read_file(path) != content.encode()
    except UnsafePath:
        return True


def write_file(path: str, content: str, mode: int = 0o644) -> bool:
    """Write content to path atomically, with its mode from the first byte, only when it differs."""
    if not file_differs(path, content):
        return False
    safefs.write_file(path, content.encode(), mode)
    return True
