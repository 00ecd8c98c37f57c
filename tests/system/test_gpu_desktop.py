"""A GPU desktop for remote sessions in a fresh Debian 12 root, with stand-in packages and runfiles.

- Amazon DCV on the recorded H200 (tests/fixtures/gpu/h200-open-580, declared as grains the way
  test_gpu_driver declares hardware): the X drop-in for its BusID, gdm3 installed with Wayland off
  and enabled, graphical.target the default, dcvserver enabled, all predicted by the dry run, and
  a second apply changes nothing.
- gpu.source runfile: a stand-in NVIDIA runfile from the loopback depot installs, converges,
  replaces the old version, and is refused beside the OS's driver package.

The root has no running systemd: phase bake, as for an image (enable, start nothing).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.states import by_id, changed, failed
from tests.system.conftest import workstation_pillar
from tests.system.sandbox import path_in
from tests.system.standins.gpu import KERNEL_RELEASE, NEXT_KERNEL, runfile_script
from tests.system.test_gpu_driver import declare_hardware, install_kernels

pytestmark = pytest.mark.system

DROP_IN = "/etc/X11/xorg.conf.d/10-workstation-nvidia.conf"
XSERVER_STATES = {
    "workstation-xserver-display-manager-installed",
    "workstation-xserver-wayland-disabled",
    "workstation-xserver-graphical-target-default",
    "workstation-xserver-nvidia-configured",
    "workstation-xserver-display-manager-enabled",
}
RUNFILE_LOG = "/var/log/nvidia-runfile-standin.log"
OLD, NEW = "535.247.01", "535.261.03"
OPTIONS = "--silent --dkms --no-questions --ui=none --kernel-module-build-directory=kernel-open"


def bake_pillar(server, **sections) -> dict:
    pillar = workstation_pillar(server)
    return {
        key: pillar[key] for key in ("phase", "install_root", "depot", "repositories")
    } | sections


def systemctl(minion, *args) -> str:
    return minion.run("systemctl", *args).stdout.strip()


def test_dcv_on_the_recorded_h200_comes_out_configured_end_to_end(
    station_factory, studio_server, salt_cli
):
    station = station_factory(
        bake_pillar(
            studio_server,
            gpu={"driver": "535"},
            display={"agents": ["dcv"], "xserver": {"resolution": "2560x1440"}},
        )
    )
    minion = station.minion
    declare_hardware(station, salt_cli, "h200-open-580")
    minion.run("systemctl", "set-default", "multi-user.target", check=True)  # a server image

    dry = station.apply("test=True")
    assert failed(dry) == {}
    assert not minion.exists(DROP_IN) and minion.package("gdm3") is None
    real = station.apply()

    assert failed(real) == {}, by_id(real)
    done = {key: value for key, value in changed(real).items() if key in XSERVER_STATES}
    assert set(done) == XSERVER_STATES
    assert {key: changed(dry)[key] for key in XSERVER_STATES} == done
    drop_in = minion.read(DROP_IN)
    assert 'BusID "PCI:0:6:0"' in drop_in and 'Driver "nvidia"' in drop_in
    assert 'Option "AllowEmptyInitialConfiguration" "true"' in drop_in
    assert "Virtual 2560 1440" in drop_in
    daemon = minion.read("/etc/gdm3/daemon.conf")
    assert "[daemon]\n# Uncomment" in daemon and "WaylandEnable=false\n" in daemon
    assert daemon.index("WaylandEnable=false") < daemon.index("[security]")  # in [daemon]
    assert "[debug]\nEnable=false" in daemon  # the package's own keys stay
    assert systemctl(minion, "is-enabled", "gdm.service") == "enabled"
    assert systemctl(minion, "get-default") == "graphical.target"
    assert systemctl(minion, "is-enabled", "dcvserver.service") == "enabled"
    assert minion.package("nice-dcv-gl")  # GL sharing: an NVIDIA card on x86_64
    assert minion.package("nvidia-open-kernel-dkms")  # Hopper: the open kernel modules

    again = station.apply()

    assert failed(again) == {}
    assert changed(again) == {}
    status = salt_cli.run("display.xserver_status", minion_tgt=minion.id, _timeout=120).data
    assert status["config"] == {"path": DROP_IN, "current": True}
    assert (
        status["display_manager"]["unit"] == "gdm.service" and status["display_manager"]["enabled"]
    )
    assert status["x"]["on_nvidia"] is False and status["x"]["reason"]  # the root runs no X
    assert status["gldiag"] == {  # the stand-in nice-dcv-gl's dcvgldiag
        "installed": True,
        "passed": False,
        "reason": "dcvgldiag: ERROR (1/1): The X server is not running on the NVIDIA GPU.",
    }


def test_the_image_applied_on_other_cards_gets_their_x_file(
    station_factory, studio_server, salt_cli
):
    """Baked on the H200, then applied on other hardware: the drop-in follows the card it finds (the
    boot-VGA Intel GPU beside two NVIDIA cards does not take X), and goes where there is no NVIDIA
    card; the display manager stays as baked."""
    pillar = bake_pillar(studio_server, gpu={"driver": "535"}, display={"agents": ["dcv"]})
    station = station_factory(pillar)
    minion = station.minion
    declare_hardware(station, salt_cli, "h200-open-580")
    assert failed(station.apply()) == {}
    assert 'BusID "PCI:0:6:0"' in minion.read(DROP_IN)

    declare_hardware(station, salt_cli, "two-nvidia-intel")
    moved = station.apply()
    moved_drop_in = minion.read(DROP_IN)
    declare_hardware(station, salt_cli, "amd-w6800")
    amd = station.apply()

    for data in (moved, amd):
        assert failed(data) == {}, by_id(data)
    assert {key: value for key, value in changed(moved).items() if key in XSERVER_STATES} == {
        "workstation-xserver-nvidia-configured": {"written": DROP_IN}
    }
    assert {key: value for key, value in changed(amd).items() if key in XSERVER_STATES} == {
        "workstation-xserver-nvidia-configured": {"removed": DROP_IN}
    }
    assert 'BusID "PCI:1:0:0"' in moved_drop_in and "PCI:65:0:0" not in moved_drop_in
    assert "no NVIDIA card here" in by_id(amd)["workstation-xserver-nvidia-configured"]["comment"]
    assert not minion.exists(DROP_IN)
    assert systemctl(minion, "is-enabled", "gdm.service") == "enabled"


def publish(server, version) -> dict:
    """The stand-in runfile of version in the depot; its pillar entry."""
    name = f"NVIDIA-Linux-x86_64-{version}.run"
    data = runfile_script(version, "/usr/local/bin", "/lib/modules", RUNFILE_LOG)
    target = Path(server.server.root) / "depot" / "nvidia" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"source": f"nvidia/{name}", "hash": "sha256:" + hashlib.sha256(data).hexdigest()}


def test_runfile_installs_converges_replaces_its_version_and_refuses_beside_os_packages(
    station_factory, studio_server, salt_cli, pillar_tree
):
    old, new = publish(studio_server, OLD), publish(studio_server, NEW)
    pillar = bake_pillar(studio_server, gpu={"source": "runfile", "runfile": old})
    station = station_factory(pillar)
    minion = station.minion
    declare_hardware(station, salt_cli, "a6000-proprietary-550")  # Ampere
    install_kernels(station, KERNEL_RELEASE, NEXT_KERNEL)

    first = station.apply()

    assert failed(first) == {}, by_id(first)
    assert changed(first)["workstation-gpu-runfile-installed"] == {
        "runfile": {"old": None, "new": OLD}
    }
    assert minion.package("dkms") and minion.package(f"linux-headers-{NEXT_KERNEL}")
    assert minion.read(RUNFILE_LOG) == f"install {OLD} {OPTIONS}\n"
    for release in (KERNEL_RELEASE, NEXT_KERNEL):  # DKMS built it for every installed kernel
        assert minion.exists(f"/lib/modules/{release}/updates/dkms/nvidia.ko")
    status = salt_cli.run("gpu.status", minion_tgt=minion.id, _timeout=120).data
    assert status["installed"] == OLD and status["next_boot"]["problem"] is None
    assert (
        "REBOOT REQUIRED: NVIDIA driver 535.247.01"
        in (by_id(first)["workstation-gpu-reboot-signalled"]["comment"])
    )
    assert changed(station.apply()) == {}

    pillar_tree.set(minion.id, {**pillar, "gpu": {"source": "runfile", "runfile": new}})
    replaced = station.apply()

    assert failed(replaced) == {}, by_id(replaced)
    assert changed(replaced)["workstation-gpu-runfile-installed"] == {
        "runfile": {"old": OLD, "new": NEW}
    }
    assert minion.read(RUNFILE_LOG).splitlines()[1:] == [
        f"uninstall {OLD} --uninstall --silent",
        f"install {NEW} {OPTIONS}",
    ]

    minion.run("apt-get", "install", "-y", "nvidia-kernel-dkms", check=True)  # the OS's driver
    pillar_tree.set(minion.id, pillar)
    refused = station.apply()

    state = by_id(refused)["workstation-gpu-runfile-installed"]
    assert state["result"] is False and state["changes"] == {}
    assert (
        "does not install beside the OS's NVIDIA driver packages (nvidia-kernel-dkms)"
        in (state["comment"])
    )
    assert len(minion.read(RUNFILE_LOG).splitlines()) == 3  # nothing ran
    assert path_in(minion.root, "/usr/local/bin/nvidia-installer").is_file()
