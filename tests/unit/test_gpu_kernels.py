"""Drivers that survive kernel updates: headers for every installed kernel, and the next boot's NVIDIA
module checked in trees laid out as /lib/modules/<release>/... under a root."""

from __future__ import annotations

from pathlib import Path

import pytest

from salt_workstation import gpu_detect, report
from salt_workstation.config import load
from salt_workstation.gpu import plan as gpu_plan
from salt_workstation.gpu import status

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
DEBIAN_12 = {
    "os_family": "Debian",
    "os": "Debian",
    "osmajorrelease": 12,
    "kernelrelease": "6.1.0-28-amd64",
}
ROCKY_9 = {
    "os_family": "RedHat",
    "os": "Rocky",
    "osmajorrelease": 9,
    "kernelrelease": "5.14.0-427.13.1.el9_4.x86_64",
}


def kernel(modules: Path, release: str, module: str | None = None) -> None:
    """An installed kernel's folder (its modules.dep), and the NVIDIA module at `module` when given."""
    (modules / release).mkdir(parents=True)
    (modules / release / "modules.dep").write_text("")
    if module:
        (modules / release / module).parent.mkdir(parents=True, exist_ok=True)
        (modules / release / module).write_bytes(b"\x7fELF")


def test_kernels_sort_as_versions_and_leftover_folders_do_not_count(tmp_path):
    modules = tmp_path / "lib/modules"
    for release in ("6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-10-amd64"):
        kernel(modules, release)
    (modules / "6.1.0-7-amd64/updates/dkms").mkdir(
        parents=True
    )  # DKMS leftovers of a removed kernel
    rhel = tmp_path / "rhel"
    (rhel / "5.14.0-70.el9.x86_64").mkdir(parents=True)
    (rhel / "5.14.0-70.el9.x86_64/vmlinuz").write_bytes(
        b""
    )  # RHEL keeps vmlinuz beside the modules

    assert status.installed_kernels(str(modules)) == [
        "6.1.0-9-amd64",
        "6.1.0-10-amd64",
        "6.1.0-28-amd64",
    ]
    assert status.installed_kernels(str(rhel)) == ["5.14.0-70.el9.x86_64"]
    assert status.installed_kernels(str(tmp_path / "absent")) == []


@pytest.mark.parametrize(
    "module",
    [
        "updates/dkms/nvidia.ko",  # Debian and Ubuntu DKMS
        "extra/nvidia.ko.xz",  # RHEL DKMS, compressed
        "kernel/nvidia-580-open/nvidia.ko.zst",  # Ubuntu's precompiled package
        "kernel/drivers/video/nvidia.ko",  # NVIDIA's runfile
    ],
)
def test_the_next_boot_has_a_driver_wherever_the_module_was_put(tmp_path, module):
    kernel(tmp_path, "6.1.0-28-amd64", "updates/dkms/nvidia.ko")
    kernel(tmp_path, "6.1.0-29-amd64", module)

    found = status.next_boot(str(tmp_path))

    assert found["kernel"] == "6.1.0-29-amd64" and found["problem"] is None
    assert found["nvidia_module"] == str(tmp_path / "6.1.0-29-amd64" / module)


def test_a_newer_kernel_without_the_module_is_flagged_with_what_to_do(tmp_path):
    kernel(tmp_path, "6.1.0-28-amd64", "updates/dkms/nvidia.ko")
    kernel(tmp_path, "6.1.0-29-amd64", "kernel/drivers/gpu/drm/nouveau/nouveau.ko")

    found = status.next_boot(str(tmp_path))

    assert found["kernel"] == "6.1.0-29-amd64" and found["nvidia_module"] is None
    assert found["kernels"]["6.1.0-28-amd64"].endswith("updates/dkms/nvidia.ko")
    assert "kernel 6.1.0-29-amd64, the newest installed" in found["problem"]
    assert "boot without a driver" in found["problem"]
    assert "dkms autoinstall -k 6.1.0-29-amd64" in found["problem"]


def test_headers_for_every_installed_kernel_and_the_running_one():
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "p4000-nouveau")}

    plan = gpu_plan.decide(
        load({"gpu": {"driver": "535"}}, grains),
        grains,
        kernels=["6.1.0-27-amd64", "6.1.0-29-amd64"],
    )

    assert plan["headers"] == [
        "linux-headers-6.1.0-27-amd64",
        "linux-headers-6.1.0-29-amd64",
        "linux-headers-6.1.0-28-amd64",  # running: always, even when /lib/modules is not readable
    ]


def test_rhel_family_installs_kernel_devel_per_kernel_and_its_userspace_headers_once():
    grains = {**ROCKY_9, **gpu_detect.grains_of(FIXTURES / "a6000-proprietary-550")}
    merged = load(
        {
            "gpu": {"repository": "nvidia-cuda"},
            "repositories": {
                "nvidia-cuda": {"url": "https://repo.test/", "key": "k", "fingerprint": "A" * 40}
            },
        },
        grains,
    )

    plan = gpu_plan.decide(merged, grains, kernels=["5.14.0-503.el9.x86_64"])

    assert plan["headers"] == [
        "kernel-devel-5.14.0-503.el9.x86_64",
        "kernel-headers",
        "kernel-devel-5.14.0-427.13.1.el9_4.x86_64",
    ]


def test_the_fleet_report_flags_a_minion_whose_next_boot_has_no_driver():
    problem = "kernel 6.1.0-29-amd64, the newest installed ..."
    flagged = report.minion_summary(
        {}, [], {"gpu": {"reboot_required": False, "next_boot": {"problem": problem}}}
    )
    fine = report.minion_summary(
        {}, [], {"gpu": {"reboot_required": False, "next_boot": {"problem": None}}}
    )
    no_gpu = report.minion_summary({}, [], {})

    assert flagged["next_boot_without_driver"] == problem
    assert fine["next_boot_without_driver"] is None and no_gpu["next_boot_without_driver"] is None
    table = report.render_table(
        report.fleet({"ws-1": flagged, "ws-2": fine}, ["ws-1", "ws-2"], "*", 1.0)
    )
    assert f"ws-1: NO NVIDIA DRIVER AT NEXT BOOT: {problem}" in table
    assert "ws-2: NO NVIDIA" not in table
