"""workstation.gpu in a fresh Debian 12 root: the stand-in NVIDIA driver from the signed repository.

The chroot has no GPU and runs the host's kernel, so the test declares the
hardware the way Salt declares static grains: a minion.d file with `grains:`
(the card from the recorded-by-hand p4000-nouveau fixture, Secure Boot off, and
the kernel release its headers are for). Everything else is real: the master
renders workstation.gpu from those grains, apt installs from the signed
repository, dpkg holds the branch, systemctl enables the daemon.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from salt_workstation import gpu_detect
from tests.support.states import by_id, changed, failed
from tests.system.conftest import workstation_pillar
from tests.system.sandbox import path_in
from tests.system.standins.gpu import DRIVER_VERSION, INITRAMFS_LOG, KERNEL_RELEASE, NEXT_KERNEL

pytestmark = pytest.mark.system

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
BLACKLIST = "/etc/modprobe.d/workstation-nouveau.conf"
GPU_STATES = {
    "workstation-gpu-kernel-headers-installed",
    "workstation-gpu-driver-installed",
    "workstation-gpu-nouveau-blacklisted",
    "workstation-gpu-initramfs-rebuilt",
    "workstation-gpu-persistenced-service-enabled",
}


def install_initramfs_tools(station, studio_server) -> None:
    """A real machine has initramfs-tools with its kernel; the bare root gets the stand-in with dpkg."""
    deb = next(Path(studio_server.server.root).glob("debian/pool/main/i/initramfs-tools/*.deb"))
    inside = path_in(station.minion.root, f"/tmp/{deb.name}")
    inside.write_bytes(deb.read_bytes())
    station.minion.run("dpkg", "-i", f"/tmp/{deb.name}", check=True)


def declare_hardware(station, salt_cli, fixture: str = "p4000-nouveau") -> None:
    found = gpu_detect.grains_of(FIXTURES / fixture)
    grains = {"kernelrelease": KERNEL_RELEASE, **found}
    target = path_in(station.minion.root, "/etc/salt/minion.d/workstation-gpu-hardware.conf")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({"grains": grains}), encoding="utf-8")
    ret = salt_cli.run("saltutil.refresh_grains", minion_tgt=station.minion.id, _timeout=60)
    assert ret.returncode == 0, ret
    seen = salt_cli.run("grains.get", "workstation_gpus", minion_tgt=station.minion.id, _timeout=60)
    assert seen.data and seen.data[0]["model"] == found["workstation_gpus"][0]["model"], seen


def install_kernels(station, *releases) -> None:
    """Installed kernels as /lib/modules shows them (the bare root has none: the chroot runs the host's)."""
    for release in releases:
        folder = path_in(station.minion.root, f"/lib/modules/{release}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "modules.dep").write_text("")


def test_driver_branch_installs_held_with_nouveau_blacklisted_then_converges(
    station_factory, studio_server, salt_cli, system_master, event_listener
):
    pillar = {
        **workstation_pillar(studio_server),
        "catalog": {},
        "productions": {},
        "gpu": {"driver": "535"},
    }
    station = station_factory(pillar)
    minion = station.minion
    declare_hardware(station, salt_cli)
    install_initramfs_tools(station, studio_server)
    install_kernels(
        station, KERNEL_RELEASE, NEXT_KERNEL
    )  # a kernel update is installed, not booted

    dry = station.apply("test=True")
    assert failed(dry) == {}
    assert not minion.exists(BLACKLIST) and minion.package("nvidia-driver") is None
    started = time.time()
    data = station.apply()

    assert failed(data) == {}
    assert set(changed(data)) >= GPU_STATES, by_id(data)
    for state_id in ("workstation-gpu-nouveau-blacklisted", "workstation-gpu-initramfs-rebuilt"):
        assert changed(dry)[state_id] == changed(data)[state_id]
    for name in ("nvidia-driver", "nvidia-kernel-dkms"):
        assert minion.package(name) == DRIVER_VERSION, minion.dpkg_status(name)
        assert minion.run("dpkg-query", "-W", "-f", "${db:Status-Want}", name).stdout == "hold"
    assert minion.package("nvidia-open-kernel-dkms") is None  # Pascal: the proprietary module
    assert minion.package(f"linux-headers-{KERNEL_RELEASE}")
    assert minion.package(f"linux-headers-{NEXT_KERNEL}")  # DKMS can build for the next boot too
    assert "blacklist nouveau" in minion.read(BLACKLIST)
    assert minion.read(INITRAMFS_LOG) == "update-initramfs -u -k all\n"
    assert (
        minion.run("systemctl", "is-enabled", "nvidia-persistenced.service").stdout.strip()
        == "enabled"
    )
    reboot = by_id(data)["workstation-gpu-reboot-signalled"]
    assert (
        reboot["changes"] == {}
        and "REBOOT REQUIRED: NVIDIA driver 535.247.01 (proprietary)" in reboot["comment"]
    )
    assert event_listener.wait_for_events(
        [(system_master.id, "workstation/gpu/reboot-required")], after_time=started, timeout=30
    ).found_all_events

    again = station.apply()

    assert failed(again) == {}
    assert changed(again) == {}
    assert (
        minion.read(INITRAMFS_LOG) == "update-initramfs -u -k all\n"
    )  # not rebuilt: the blacklist did not change

    # The stand-in DKMS packages build no module: the next boot (the newest kernel) would have no driver.
    status = salt_cli.run("gpu.status", minion_tgt=minion.id, _timeout=120).data
    assert status["next_boot"]["kernel"] == NEXT_KERNEL
    assert f"kernel {NEXT_KERNEL}, the newest installed" in status["next_boot"]["problem"]
    summary = salt_cli.run("workstation.report", minion_tgt=minion.id, _timeout=300).data
    assert summary["next_boot_without_driver"] == status["next_boot"]["problem"]
    built = path_in(minion.root, f"/lib/modules/{NEXT_KERNEL}/updates/dkms/nvidia.ko")
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")  # what DKMS builds once the headers are there
    status = salt_cli.run("gpu.status", minion_tgt=minion.id, _timeout=120).data
    assert status["next_boot"]["problem"] is None
    assert (
        status["next_boot"]["nvidia_module"] == f"/lib/modules/{NEXT_KERNEL}/updates/dkms/nvidia.ko"
    )
