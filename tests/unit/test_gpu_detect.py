"""The workstation_gpus grain over recorded (h200-open-580) and hand-built sysfs/lspci trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salt_workstation import gpu_detect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"


def grains(name: str) -> dict:
    return gpu_detect.grains_of(FIXTURES / name)


def by_vendor(found: dict, vendor: str) -> list[dict]:
    return [card for card in found["workstation_gpus"] if card["vendor"] == vendor]


def test_recorded_h200_is_a_3d_controller_on_the_open_580_module_without_lspci():
    found = grains("h200-open-580")

    assert found == {
        "workstation_gpus": [
            {
                "slot": "0000:00:06.0",
                "vendor": "nvidia",
                "vendor_id": "10de",
                "device_id": "2335",
                "class": "3d",
                "model": "H200",
                "architecture": "Hopper",
                "open_supported": True,
                "kernel_driver": "nvidia",
                "driver_version": "580.159.04",
                "kernel_module": "open",
                "subsystem": "10de:18bf",
                "boot_vga": None,
            }
        ],
        "workstation_secure_boot": False,  # no /sys/firmware/efi recorded: not a UEFI boot
    }
    assert not (
        FIXTURES / "h200-open-580" / "commands" / "lspci-nn.txt"
    ).exists()  # really read without lspci


def test_the_recorded_tree_reads_exactly_as_the_live_h200_did():
    # grain-live.json: `python -m salt_workstation.gpu_detect` run on that H200's real / (see docs/gpu.md)
    live = json.loads((FIXTURES / "h200-open-580" / "grain-live.json").read_text())

    assert grains("h200-open-580") == live


def test_no_display_controller_gives_an_empty_list():
    found = grains("none")

    assert found == {"workstation_gpus": [], "workstation_secure_boot": False}


def test_one_ampere_card_on_the_proprietary_module_with_secure_boot_on():
    found = grains("a6000-proprietary-550")

    [card] = found["workstation_gpus"]  # its HDMI audio function (class 0x0403) is not a GPU
    assert (card["model"], card["architecture"], card["class"]) == ("RTX A6000", "Ampere", "vga")
    assert (card["kernel_driver"], card["driver_version"], card["kernel_module"]) == (
        "nvidia",
        "550.127.05",
        "proprietary",
    )
    assert card["open_supported"] is True and card["boot_vga"] is True
    assert found["workstation_secure_boot"] is True


def test_a_pascal_card_on_nouveau_has_no_loaded_nvidia_driver():
    [card] = grains("p4000-nouveau")["workstation_gpus"]

    assert (card["model"], card["architecture"], card["open_supported"]) == (
        "Quadro P4000",
        "Pascal",
        False,
    )
    assert (card["kernel_driver"], card["driver_version"], card["kernel_module"]) == (
        "nouveau",
        None,
        None,
    )


def test_two_nvidia_cards_beside_an_intel_igpu():
    found = grains("two-nvidia-intel")

    [intel] = by_vendor(found, "intel")
    assert (intel["kernel_driver"], intel["architecture"], intel["boot_vga"]) == (
        "i915",
        None,
        True,
    )
    nvidia = by_vendor(found, "nvidia")
    assert [card["model"] for card in nvidia] == ["RTX A6000", "RTX A4000"]
    assert {(card["driver_version"], card["kernel_module"]) for card in nvidia} == {
        ("580.95.05", "open")
    }


def test_amd_card_is_reported_with_amdgpu_and_no_nvidia_fields():
    found = grains("amd-w6800")

    [card] = found["workstation_gpus"]
    assert (card["vendor"], card["model"], card["kernel_driver"]) == (
        "amd",
        "Radeon PRO W6800",
        "amdgpu",
    )
    assert card["architecture"] is None and card["driver_version"] is None
    assert found["workstation_secure_boot"] is True


def test_without_a_pci_tree_in_sysfs_lspci_nnk_is_read_instead():
    found = grains("lspci-only")

    assert [
        (c["slot"], c["vendor"], c["kernel_driver"], c["architecture"])
        for c in found["workstation_gpus"]
    ] == [
        ("0000:00:02.0", "intel", "i915", None),
        ("0000:01:00.0", "nvidia", "nouveau", "Pascal"),
    ]


def test_without_sysfs_or_lspci_there_is_nothing_to_report(tmp_path):
    assert gpu_detect.detect(tmp_path, lspci=lambda: None) == []


def test_plain_lspci_nn_without_driver_lines_still_names_the_cards(tmp_path):
    text = (FIXTURES / "p4000-nouveau" / "commands" / "lspci-nn.txt").read_text()

    [card] = gpu_detect.detect(tmp_path, lspci=lambda: text)

    assert (card["device_id"], card["model"], card["kernel_driver"]) == (
        "1bb1",
        "Quadro P4000",
        None,
    )


def test_names_come_from_pci_ids_when_the_table_does_not_know_the_card(tmp_path):
    (tmp_path / "usr/share/misc").mkdir(parents=True)
    (tmp_path / "usr/share/misc/pci.ids").write_text(
        "10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n1002  Advanced Micro Devices\n"
    )
    text = "01:00.0 3D controller [0302]: NVIDIA Corporation Device [10de:1eb8] (rev a1)\n"

    [card] = gpu_detect.detect(tmp_path, lspci=lambda: text)

    assert (card["model"], card["architecture"], card["class"]) == ("Tesla T4", "Turing", "3d")


@pytest.mark.parametrize(
    ("device", "architecture"),
    [
        ("13c2", "Maxwell"),
        ("1bb1", "Pascal"),
        ("1db4", "Volta"),
        ("1eb8", "Turing"),
        ("2230", "Ampere"),
        ("2335", "Hopper"),
        ("26b1", "Ada Lovelace"),
        ("2bb1", "Blackwell"),
        ("0001", None),
    ],
)
def test_architecture_table_covers_maxwell_to_blackwell(device, architecture):
    entry = gpu_detect.architecture("10de", device)

    assert (entry["name"] if entry else None) == architecture


def test_proprietary_proc_text_and_module_only_versions(tmp_path):
    (tmp_path / "sys/module/nvidia").mkdir(parents=True)
    (tmp_path / "sys/module/nvidia/version").write_text("570.86.16\n")
    assert gpu_detect.loaded_driver(tmp_path) == {"version": "570.86.16", "kernel_module": None}

    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023\n"
    )
    assert gpu_detect.loaded_driver(tmp_path) == {
        "version": "535.129.03",
        "kernel_module": "proprietary",
    }
