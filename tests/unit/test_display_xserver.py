"""workstation:display:xserver: X on the GPU for remote desktops, decided and rendered per card fixture
and per OS family (Debian, Ubuntu, RHEL family), from the recorded H200 and the hand-made trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from salt_workstation import config, display, gpu_detect
from salt_workstation import contract as workstation_contract
from salt_workstation.display import plan as display_plan
from salt_workstation.display import xserver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
DEBIAN = {"os_family": "Debian", "os": "Debian", "oscodename": "bookworm"}
UBUNTU = {"os_family": "Debian", "os": "Ubuntu", "oscodename": "noble"}
ROCKY = {"os_family": "RedHat", "os": "Rocky", "oscodename": "Blue Onyx"}


def grains_of(fixture: str, os_grains: dict) -> dict:
    return {**os_grains, **gpu_detect.grains_of(FIXTURES / fixture)}


def decide(fixture, os_grains=DEBIAN, phase="all", agents=("dcv",), **xsection):
    grains = grains_of(fixture, os_grains)
    display_section = {"agents": list(agents), "owner": "alice"}
    if xsection:
        display_section["xserver"] = xsection
    return xserver.plan(config.load({"phase": phase, "display": display_section}, grains), grains)


@pytest.mark.parametrize(
    ("slot", "busid"),
    [
        ("0000:00:06.0", "PCI:0:6:0"),  # the recorded H200
        ("0000:41:00.0", "PCI:65:0:0"),  # hex bus 41 is decimal 65: X reads decimal
        ("0000:c1:00.1", "PCI:193:0:1"),
        ("0001:02:1f.3", "PCI:2@1:31:3"),  # a second PCI domain: bus@domain
    ],
)
def test_bus_id_is_decimal_as_xorg_reads_it(slot, busid):
    assert xserver.bus_id(slot) == busid


def test_recorded_h200_on_ubuntu_gets_a_headless_drop_in_for_its_bus_and_gdm_on_x():
    found = decide("h200-open-580", UBUNTU, resolution="2560x1440")

    assert found["manage"] is True and found["errors"] == []
    content = found["xorg"]["content"]
    assert found["xorg"]["path"] == "/etc/X11/xorg.conf.d/10-workstation-nvidia.conf"
    assert 'BusID "PCI:0:6:0"' in content
    assert 'Driver "nvidia"' in content
    assert content.count('Option "AllowEmptyInitialConfiguration" "true"') == 2
    assert 'Option "ConnectedMonitor" "DFP-0"' in content
    assert "Virtual 2560 1440" in content
    assert found["display_manager"] == {
        "name": "gdm3",
        "packages": {"gdm3": None},
        "unit": "gdm.service",
        "wayland": {
            "path": "/etc/gdm3/custom.conf",  # Ubuntu's GDM reads custom.conf
            "style": "keyfile",
            "settings": {"daemon": {"WaylandEnable": "false"}},
        },
    }
    assert found["default_target"] == "graphical.target"
    assert (found["install"], found["start"]) == (True, True)
    # H200 is a 3D controller: no outputs, the screen is virtual, and the plan says so
    assert any("3D controller without display outputs" in note for note in found["notes"])
    assert "PCI:0:6:0" in found["comment"] and "2560x1440" in found["comment"]


def test_debian_12_gdm3_reads_daemon_conf():
    found = decide("a6000-proprietary-550", DEBIAN)

    assert found["display_manager"]["wayland"]["path"] == "/etc/gdm3/daemon.conf"
    assert 'BusID "PCI:1:0:0"' in found["xorg"]["content"]
    assert "Virtual 1920 1080" in found["xorg"]["content"]  # the default resolution
    assert found["notes"] == []


def test_rhel_family_takes_gdm_and_its_custom_conf():
    found = decide("p4000-nouveau", ROCKY)

    assert found["display_manager"]["name"] == "gdm"
    assert found["display_manager"]["packages"] == {"gdm": None}
    assert found["display_manager"]["wayland"]["path"] == "/etc/gdm/custom.conf"
    assert 'BusID "PCI:1:0:0"' in found["xorg"]["content"]


def test_lightdm_has_no_wayland_to_turn_off():
    found = decide("p4000-nouveau", ROCKY, display_manager="lightdm")

    assert found["display_manager"] == {
        "name": "lightdm",
        "packages": {"lightdm": None},
        "unit": "lightdm.service",
        "wayland": None,
    }


def test_two_nvidia_cards_beside_the_boot_intel_gpu_pin_x_to_the_first_nvidia_card():
    found = decide("two-nvidia-intel", UBUNTU)

    assert found["card"]["model"] == "RTX A6000"
    content = found["xorg"]["content"]
    assert 'BusID "PCI:1:0:0"' in content and "PCI:65:0:0" not in content
    assert 'Option "AutoAddGPU" "false"' in content  # the Intel iGPU must not take the desktop


def test_intel_and_nvidia_from_lspci_only_still_find_the_nvidia_card():
    found = decide("lspci-only", DEBIAN)

    assert found["card"]["slot"] == "0000:01:00.0"
    assert 'BusID "PCI:1:0:0"' in found["xorg"]["content"]


def test_amd_card_gets_the_display_manager_and_target_but_no_x_config_and_says_why():
    found = decide("amd-w6800", DEBIAN)

    assert found["manage"] is True
    # a drop-in left from an NVIDIA card (an image baked on another machine) is removed
    assert found["xorg"] == {
        "path": "/etc/X11/xorg.conf.d/10-workstation-nvidia.conf",
        "content": None,
    }
    assert found["display_manager"]["name"] == "gdm3"
    assert "No NVIDIA card (found: Radeon PRO W6800 (amdgpu))" in found["comment"]
    assert "DCV virtual sessions" in found["notes"][0]


def test_no_gpu_manages_nothing_says_why_and_removes_a_drop_in_left_from_an_nvidia_card():
    found = decide("none", DEBIAN)

    assert found["manage"] is False and found["errors"] == []
    assert "No GPU was found" in found["comment"]
    # the machine lost its NVIDIA card: X would look for the BusID the drop-in names
    assert found["xorg"] == {
        "path": "/etc/X11/xorg.conf.d/10-workstation-nvidia.conf",
        "content": None,
    }
    assert (found["install"], found["start"]) == (False, False)


def test_vnc_alone_does_not_need_x_on_the_gpu_unless_asked():
    alone = decide("h200-open-580", UBUNTU, agents=("vnc",))
    asked = decide("h200-open-580", UBUNTU, agents=("vnc",), manage=True)
    off = decide("h200-open-580", UBUNTU, manage=False)

    assert alone["manage"] is False and "Xvnc renders off the GPU" in alone["comment"]
    assert asked["manage"] is True and asked["xorg"] is not None
    assert off["manage"] is False and "manage is false" in off["comment"]
    # X not managed by choice, with the card still here: its drop-in is left alone
    assert alone["xorg"] is None and off["xorg"] is None
    # manage: true says an agent shows the console: it starts after the display manager
    assert asked["agents_on_x"] == ["vnc"]


@pytest.mark.parametrize(
    ("phase", "install", "start"),
    [("bake", True, False), ("boot", False, True), ("all", True, True)],
)
def test_bake_writes_and_enables_boot_starts(phase, install, start):
    found = decide("h200-open-580", UBUNTU, phase=phase)

    assert (found["install"], found["start"]) == (install, start)
    assert found["xorg"] is not None  # every phase: the card at boot may not be the baked one
    # DCV's unit starts after the display manager wherever the display manager is started
    assert found["agents_on_x"] == (["dcv"] if start else [])
    grains = grains_of("h200-open-580", UBUNTU)
    pillar = {"phase": phase, "display": {"agents": ["dcv", "vnc"], "owner": "alice"}}
    agents = display_plan.plan(
        config.load(pillar, grains), display_plan.platform_of(grains), found
    )["agents"]
    assert [(a["name"], a["after_display_manager"]) for a in agents] == [
        ("dcv", start),
        ("vnc", False),  # TigerVNC's Xvnc renders off the GPU
    ]


def test_a_display_manager_unknown_to_the_os_family_is_an_error_with_the_fix():
    found = decide("h200-open-580", UBUNTU, display_manager="sddm")

    assert found["manage"] is False
    assert "workstation:display:xserver:display_manager" in found["errors"][0]
    assert "known: gdm3, lightdm" in found["errors"][0]


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ({"resolution": "1920*1080"}, "xserver:resolution", "WIDTHxHEIGHT"),
        ({"resolution": 1080}, "xserver:resolution", "WIDTHxHEIGHT"),
        ({"manage": "yes"}, "xserver:manage", "auto, true or false"),
        ({"display_manager": "gdm; rm"}, "xserver:display_manager", "gdm3"),
        ({"screen": 1}, "xserver:screen", "unknown key"),
    ],
)
def test_pillar_mistakes_name_their_path_and_block_only_x(section, path, words):
    pillar = {"display": {"agents": ["dcv"], "owner": "alice", "xserver": section}}
    issues = display.check(pillar)
    whole = workstation_contract.validate(config.load(pillar, DEBIAN))

    assert [str(i) for i in issues] == [str(i) for i in whole if "xserver" in i.path]
    assert len(issues) == 1 and issues[0].path.endswith(path) and words in str(issues[0])
    found = decide("h200-open-580", UBUNTU, **section)
    assert found["manage"] is False and found["errors"] == [str(issues[0])]


def test_a_valid_section_is_not_an_unknown_key_of_display():
    pillar = {"display": {"agents": ["dcv"], "owner": "alice", "xserver": {"manage": True}}}

    assert display.check(pillar) == []


def test_a_virtual_adapter_alone_is_not_a_desktop_gpu():
    grains = {
        **DEBIAN,
        "workstation_gpus": [
            {"slot": "0000:00:01.0", "vendor": "virtio", "class": "vga", "model": "Virtio GPU"}
        ],
    }
    pillar = {"display": {"agents": ["dcv"], "owner": "alice"}}

    found = xserver.plan(config.load(pillar, grains), grains)

    assert found["manage"] is False and "Virtio GPU (virtio)" in found["comment"]
    assert found["xorg"]["content"] is None  # a drop-in left from an NVIDIA card goes
