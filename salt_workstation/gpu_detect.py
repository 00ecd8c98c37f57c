"""What GPUs a machine has, read from sysfs (lspci as the fallback) without root-only tools.

Everything is read under a root folder, so a recorded tree (tests/fixtures/gpu/)
reads the same as the live `/`. Run it on any machine, without Salt:

    python -m salt_workstation.gpu_detect          # the workstation_gpus grain as JSON
    python -m salt_workstation.gpu_detect ROOT     # the same for a recorded tree
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import yaml

from salt_workstation import FORMULA_DIR

# The EFI global variable GUID; the variable's data is 4 attribute bytes then 1 value byte.
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
PCI_IDS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids")
CLASSES = {"0300": "vga", "0301": "xga", "0302": "3d", "0380": "display"}

# NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ...
# NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023
_NVRM = re.compile(r"NVRM version:.*?Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s")
# 01:00.0 VGA compatible controller [0300]: NVIDIA Corporation GA102GL [RTX A6000] [10de:2230] (rev a1)
_LSPCI = re.compile(
    r"^(?P<slot>[0-9a-fA-F:.]+) .+? \[(?P<cls>03[0-9a-fA-F]{2})\]: (?P<name>.*) "
    r"\[(?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4})\]"
)


@cache
def table() -> dict:
    """gpu.yaml: vendors, architectures, model names, per-OS packages."""
    with open(FORMULA_DIR / "gpu.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def architecture(vendor_id: str, device_id: str) -> dict | None:
    """The gpu.yaml architecture entry whose device-id range holds this NVIDIA card, or None."""
    if vendor_id != "10de":
        return None
    device = int(device_id, 16)
    for entry in table()["architectures"]:
        for span in entry["ranges"]:
            first, last = (int(part, 16) for part in span.split("-"))
            if first <= device <= last:
                return entry
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _hex_id(path: Path) -> str | None:
    raw = _read(path)
    return raw[2:].lower() if raw and raw.startswith("0x") else None


def loaded_driver(root="/") -> dict:
    """The NVIDIA kernel module loaded now: {"version", "kernel_module": open|proprietary} (None when unknown)."""
    root = Path(root)
    text = _read(root / "proc/driver/nvidia/version")
    if text:
        found = _NVRM.search(text)
        return {
            "version": found.group(1) if found else None,
            "kernel_module": "open" if "Open Kernel Module" in text else "proprietary",
        }
    # /proc/driver/nvidia may be hidden (containers); the module's version does not say its flavour.
    return {"version": _read(root / "sys/module/nvidia/version") or None, "kernel_module": None}


def secure_boot(root="/") -> bool | None:
    """Secure Boot on (True), off or a legacy BIOS boot (False), or unreadable (None)."""
    efi = Path(root) / "sys/firmware/efi"
    if not efi.is_dir():
        return False
    variable = efi / "efivars" / SECURE_BOOT_VAR
    try:
        data = variable.read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    return len(data) >= 5 and data[4] == 1


def _pci_ids_name(root: Path, vendor_id: str, device_id: str) -> str | None:
    """The device's name in the system's pci.ids ('GA102GL [RTX A6000]' gives 'RTX A6000')."""
    for relative in PCI_IDS:
        try:
            handle = open(root / relative, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by the with below; open alone may fail)
        except OSError:
            continue
        with handle:
            in_vendor = False
            for line in handle:
                if not line.startswith("\t"):
                    in_vendor = line.startswith(vendor_id + "  ")
                elif in_vendor and line.startswith(f"\t{device_id}  "):
                    name = line.split("  ", 1)[1].strip()
                    bracket = re.search(r"\[(.+)\]$", name)
                    return bracket.group(1) if bracket else name
        return None
    return None


def _model(root: Path, vendor_id: str, device_id: str, fallback: str | None = None) -> str:
    known = table()["models"].get(f"{vendor_id}:{device_id}")
    if known:
        return known
    return (
        _pci_ids_name(root, vendor_id, device_id)
        or fallback
        or f"{table()['vendors'].get(vendor_id, 'unknown')} device {vendor_id}:{device_id}"
    )


def _card(
    root: Path, loaded: dict, *, slot, class_id, vendor_id, device_id, driver, name=None, **extra
) -> dict:
    arch = architecture(vendor_id, device_id)
    bound_nvidia = driver == "nvidia"
    return {
        "slot": slot,
        "vendor": table()["vendors"].get(vendor_id, "other"),
        "vendor_id": vendor_id,
        "device_id": device_id,
        "class": CLASSES.get(class_id, class_id),
        "model": _model(root, vendor_id, device_id, name),
        "architecture": arch["name"] if arch else None,
        "open_supported": arch["open"] if arch else None,
        "kernel_driver": driver,
        "driver_version": loaded["version"] if bound_nvidia else None,
        "kernel_module": loaded["kernel_module"] if bound_nvidia else None,
        "subsystem": None,  # sysfs knows these; lspci -nn does not
        "boot_vga": None,
        **extra,
    }


def _from_sysfs(root: Path, loaded: dict) -> list[dict] | None:
    devices = root / "sys/bus/pci/devices"
    if not devices.is_dir():
        return None
    cards = []
    for entry in sorted(devices.iterdir()):
        raw_class = _read(entry / "class") or ""
        if not raw_class.startswith("0x03"):
            continue
        driver_link = entry / "driver"
        # The link's last part names the driver; it is relative, so a recorded copy dangles.
        driver = os.path.basename(os.readlink(driver_link)) if driver_link.is_symlink() else None
        boot_vga = _read(entry / "boot_vga")
        cards.append(
            _card(
                root,
                loaded,
                slot=entry.name,
                class_id=raw_class[2:6],
                vendor_id=_hex_id(entry / "vendor") or "",
                device_id=_hex_id(entry / "device") or "",
                driver=driver,
                subsystem=f"{_hex_id(entry / 'subsystem_vendor')}:{_hex_id(entry / 'subsystem_device')}",
                boot_vga=None if boot_vga is None else boot_vga == "1",
            )
        )
    return cards


def parse_lspci(text: str, root: Path, loaded: dict) -> list[dict]:
    """Display controllers in `lspci -nn` (or `-nnk`, which adds the bound driver) output."""
    found_cards: list[dict] = []
    for line in text.splitlines():
        bound = re.match(r"\s+Kernel driver in use:\s*(\S+)", line)
        if bound:
            if found_cards and found_cards[-1]["driver"] is None:
                found_cards[-1]["driver"] = bound.group(1)
            continue
        found = _LSPCI.match(line)
        if not found:
            if not line.startswith(("\t", " ")):
                found_cards.append(
                    {"ignored": True, "driver": "-"}
                )  # another device's driver lines follow
            continue
        slot = found["slot"] if found["slot"].count(":") == 2 else "0000:" + found["slot"]
        found_cards.append(
            {
                "slot": slot.lower(),
                "class_id": found["cls"].lower(),
                "vendor_id": found["vendor"].lower(),
                "device_id": found["device"].lower(),
                "driver": None,
                "name": found["name"],
            }
        )
    return [_card(root, loaded, **fields) for fields in found_cards if "ignored" not in fields]


def run_lspci() -> str | None:
    """`lspci -nnk` from the PATH (no root needed), or None when lspci is not installed."""
    lspci = shutil.which("lspci")
    if lspci is None:
        return None
    try:
        done = subprocess.run(
            [lspci, "-nnk"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def detect(root="/", lspci: Callable[[], str | None] = run_lspci) -> list[dict]:
    """Every display controller (VGA 0x0300, 3D 0x0302, ...), sysfs first, lspci when sysfs has no PCI tree."""
    root = Path(root)
    loaded = loaded_driver(root)
    cards = _from_sysfs(root, loaded)
    if cards is None:
        text = lspci()
        cards = parse_lspci(text, root, loaded) if text else []
    return cards


def grains(root="/", lspci: Callable[[], str | None] = run_lspci) -> dict:
    """The grains: workstation_gpus (a list) and workstation_secure_boot."""
    return {"workstation_gpus": detect(root, lspci), "workstation_secure_boot": secure_boot(root)}


def grains_of(root="/") -> dict:
    """The grains of the live machine (`/`), or of a recorded tree (record.sh), whose lspci output stands in for lspci."""
    if str(root) == "/":
        return grains("/")
    recorded = Path(root) / "commands" / "lspci-nn.txt"
    return grains(
        root, lambda: recorded.read_text(encoding="utf-8") if recorded.is_file() else None
    )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    json.dump(grains_of(argv[0] if argv else "/"), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def nvidia_cards(cards) -> list[dict]:
    """The NVIDIA cards among the workstation_gpus grain's entries."""
    return [
        card for card in cards or [] if isinstance(card, dict) and card.get("vendor") == "nvidia"
    ]
