"""workstation:gpu, the pillar's part for the NVIDIA driver: its keys, defaults and checks.

Every Issue carries its exact pillar path and the fix. `check(config, cards)` is
what workstation.validate runs; `check_machine` adds what only this minion's
OS release and cards can tell (an OS without the driver, a source it lacks).
The architecture table, default branch and per-OS packages are gpu.yaml's,
read through gpu_detect.table().
"""

from __future__ import annotations

import re

from salt_workstation import pillar
from salt_workstation.gpu_detect import nvidia_cards, table
from salt_workstation.pillar import Issue, path_of

KEYS = ("driver", "flavor", "source", "repository", "runfile", "reboot", "persistenced")
DEFAULTS = {
    "driver": "auto",
    "flavor": "auto",
    "source": "auto",
    "reboot": False,
    "persistenced": True,
}
FLAVORS = ("auto", "open", "proprietary")
SOURCES = ("auto", "distro", "nvidia-repo", "runfile")
BRANCH = re.compile(r"^\d{3}$")
EXACT = re.compile(r"^(\d{3})\.\d+(?:\.\d+)?$")
# NVIDIA-Linux-x86_64-580.95.05.run (aarch64 too; -grid and other suffixes kept): the version is in the name.
RUNFILE_NAME = re.compile(
    r"^NVIDIA-Linux-(?:x86_64|aarch64)-((\d{3})\.\d+(?:\.\d+)?)(?:-[A-Za-z0-9_.]+)?\.run$"
)


def settings(config) -> dict:
    """workstation:gpu with its defaults filled in (a malformed section reads as the defaults)."""
    section = config.get("gpu") if isinstance(config, dict) else None
    return {**DEFAULTS, **(section if isinstance(section, dict) else {})}


def describe(card) -> str:
    return f"{card.get('model')} ({card.get('architecture') or 'unknown architecture'}) at {card.get('slot')}"


def architectures(cards) -> list[dict | None]:
    """gpu.yaml's architecture entry of each card (None for a device id no range holds)."""
    by_name = {entry["name"]: entry for entry in table()["architectures"]}
    return [by_name.get(card.get("architecture")) for card in cards]


def check(config, cards=None) -> list[Issue]:
    """Every problem in workstation:gpu; with the cards (the workstation_gpus grain) also the card-dependent ones."""
    section = config.get("gpu", {}) if isinstance(config, dict) else {}
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return [
            Issue(
                path_of("gpu"),
                f"must be a mapping such as {{driver: auto, flavor: auto}}, got {type(section).__name__}",
            )
        ]
    issues = [
        Issue(path_of("gpu", key), f"unknown key{pillar.did_you_mean(key, list(KEYS))}")
        for key in section
        if key not in KEYS
    ]
    gpu = settings(config)
    driver = gpu["driver"]
    if not isinstance(driver, str):
        issues += pillar.version_text(driver, path_of("gpu", "driver"))[1]
    elif driver != "auto" and not (BRANCH.match(driver) or EXACT.match(driver)):
        issues.append(
            Issue(
                path_of("gpu", "driver"),
                f'must be auto, a driver branch such as "580", or an exact version such as "580.95.05"; got {driver!r}',
            )
        )
    if gpu["flavor"] not in FLAVORS:
        issues.append(
            Issue(
                path_of("gpu", "flavor"),
                f"must be one of {', '.join(FLAVORS)}, got {gpu['flavor']!r}",
            )
        )
    if gpu["source"] not in SOURCES:
        issues.append(
            Issue(
                path_of("gpu", "source"),
                f"must be one of {', '.join(SOURCES)}, got {gpu['source']!r}",
            )
        )
    if gpu["source"] == "nvidia-repo":
        issues += check_repository(config, gpu)
    if gpu["source"] == "runfile":
        runfile = gpu.get("runfile")
        if (
            not isinstance(runfile, dict)
            or not isinstance(runfile.get("source"), str)
            or not runfile.get("source")
        ):
            issues.append(
                Issue(
                    path_of("gpu", "runfile", "source"),
                    "source runfile needs runfile: {source: <depot path of NVIDIA-Linux-x86_64-<version>.run>, hash: sha256:<64 hex>}",
                )
            )
        else:
            issues += pillar.check_hash(runfile.get("hash"), path_of("gpu", "runfile", "hash"))
            issues += _check_runfile_version(gpu, runfile["source"])
    for flag in ("reboot", "persistenced"):
        if not isinstance(gpu[flag], bool):
            issues.append(Issue(path_of("gpu", flag), f"must be true or false, got {gpu[flag]!r}"))
    if cards is None:
        cards = (config.get("os") or {}).get("gpus") if isinstance(config.get("os"), dict) else None
    if cards and not issues:
        issues += _check_cards(gpu, nvidia_cards(cards))
    return issues


def runfile_version(gpu) -> str | None:
    """The driver version of workstation:gpu:runfile, read from its file name (None when it has none)."""
    runfile = gpu.get("runfile")
    source = runfile.get("source") if isinstance(runfile, dict) else None
    found = RUNFILE_NAME.match(source.rsplit("/", 1)[-1]) if isinstance(source, str) else None
    return found.group(1) if found else None


def _check_runfile_version(gpu, source) -> list[Issue]:
    version = runfile_version(gpu)
    if version is None:
        return [
            Issue(
                path_of("gpu", "runfile", "source"),
                f"must end in NVIDIA's file name, NVIDIA-Linux-x86_64-<version>.run, which says the "
                f"driver version; got {source!r}",
            )
        ]
    driver = gpu.get("driver")
    branch = version.split(".", 1)[0]
    if isinstance(driver, str) and driver != "auto" and driver not in (version, branch):
        return [
            Issue(
                path_of("gpu", "driver"),
                f"asks for {driver!r} but workstation:gpu:runfile installs {version}; "
                f'set driver: auto (or "{version}"), or name the runfile of {driver}',
            )
        ]
    return []


def check_repository(config, gpu) -> list[Issue]:
    """Source nvidia-repo names a workstation:repositories entry (its key pinned by fingerprint)."""
    repositories = (
        config.get("repositories") if isinstance(config.get("repositories"), dict) else {}
    )
    if gpu.get("repository") in repositories:
        return []
    return [
        Issue(
            path_of("gpu", "repository"),
            "source nvidia-repo needs the name of NVIDIA's repository in workstation:repositories "
            f"(its key pinned by fingerprint); got {gpu.get('repository')!r}"
            + (f", known: {', '.join(sorted(map(str, repositories)))}" if repositories else ""),
        )
    ]


def _check_cards(gpu, cards) -> list[Issue]:
    """What this pillar asks of these NVIDIA cards that no driver can give them."""
    issues = []
    archs = architectures(cards)
    unknown = [card for card, arch in zip(cards, archs, strict=False) if arch is None]
    pre_turing = [
        card for card, arch in zip(cards, archs, strict=False) if arch and not arch["open"]
    ]
    open_only = [
        card for card, arch in zip(cards, archs, strict=False) if arch and not arch["proprietary"]
    ]
    flavor_path = path_of("gpu", "flavor")
    if gpu["flavor"] == "open" and pre_turing:
        issues.append(
            Issue(
                flavor_path,
                "open kernel modules need a Turing or newer GPU, and this machine has "
                f"{', '.join(map(describe, pre_turing))}; use flavor: proprietary (or auto)",
            )
        )
    if gpu["flavor"] == "proprietary" and open_only:
        issues.append(
            Issue(
                flavor_path,
                f"{', '.join(map(describe, open_only))} works only with the open kernel "
                "modules; use flavor: open (or auto)",
            )
        )
    if gpu["flavor"] == "auto":
        if unknown:
            issues.append(
                Issue(
                    flavor_path,
                    f"NVIDIA device {', '.join(c.get('device_id', '?') for c in unknown)} is "
                    "not in gpu.yaml's architecture table, so auto cannot choose; set flavor: open "
                    "(Turing and newer) or proprietary",
                )
            )
        elif pre_turing and open_only:
            issues.append(
                Issue(
                    flavor_path,
                    f"no kernel module serves both {describe(pre_turing[0])} (proprietary "
                    f"only) and {describe(open_only[0])} (open only); take one of them out",
                )
            )
    branch = wanted_branch(gpu, cards)
    for card, arch in zip(cards, archs, strict=False):
        last = (arch or {}).get("last_branch")
        if branch and last and int(branch) > int(last):
            issues.append(
                Issue(
                    path_of("gpu", "driver"),
                    f"{describe(card)} is supported up to driver branch "
                    f'{last}; set driver: "{last}" (or auto)',
                )
            )
    return issues


def wanted_branch(gpu, cards) -> str | None:
    """The branch asked for, or for auto the default one capped by the oldest card's last branch."""
    driver = gpu["driver"]
    if gpu.get("source") == "runfile" and runfile_version(gpu):
        return runfile_version(gpu).split(".", 1)[0]
    if isinstance(driver, str) and BRANCH.match(driver):
        return driver
    if isinstance(driver, str) and EXACT.match(driver):
        return EXACT.match(driver).group(1)
    lasts = [
        int(arch["last_branch"])
        for arch in architectures(cards)
        if arch and arch.get("last_branch")
    ]
    return str(min([int(table()["default_branch"]), *lasts]))


def os_key(grains) -> str:
    """The gpu.yaml `os` entry for these grains: Debian-12, Ubuntu-24.04, RedHat-9 (Rocky too)."""
    family = grains.get("os_family")
    if family == "Debian" and grains.get("os") == "Ubuntu":
        return f"Ubuntu-{grains.get('osrelease')}"
    return f"{family}-{grains.get('osmajorrelease')}"


def source_for(gpu, grains) -> str:
    """`source: auto` resolved for this OS family (gpu.yaml's auto_source)."""
    if gpu["source"] != "auto":
        return gpu["source"]
    return table()["auto_source"].get(grains.get("os_family"), "distro")


def check_machine(config, grains, cards) -> list[Issue]:
    """Every reason this minion (its OS release and its NVIDIA cards) cannot follow workstation:gpu."""
    gpu = settings(config)
    issues = check(config, cards)
    os_data = table()["os"].get(os_key(grains))
    if os_data is None:
        issues.append(
            Issue(
                path_of("gpu"),
                f"{os_key(grains)} is not supported for the NVIDIA driver yet "
                f"(supported: {', '.join(table()['os'])}); remove workstation:gpu from this minion's "
                "pillar or add the OS to gpu.yaml",
            )
        )
    source = source_for(gpu, grains)
    if not issues and source == "nvidia-repo":
        issues += check_repository(config, gpu)
    if not issues and source not in os_data["sources"]:
        issues.append(
            Issue(
                path_of("gpu", "source"),
                f"{os_key(grains)} has no NVIDIA driver from '{source}'; use "
                f"{' or '.join(os_data['sources'])}",
            )
        )
    return issues
