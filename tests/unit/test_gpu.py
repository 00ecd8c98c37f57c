"""workstation:gpu: validation with pillar paths (contract), the driver plan per card and OS release (plan),
and the blacklist read back (status) after it is written (effects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from salt_workstation import contract, gpu, gpu_detect
from salt_workstation.config import load
from salt_workstation.gpu import effects, status
from salt_workstation.gpu import plan as gpu_plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
DEBIAN_12 = {
    "os_family": "Debian",
    "os": "Debian",
    "osmajorrelease": 12,
    "kernelrelease": "6.1.0-28-amd64",
}
UBUNTU_2404 = {
    "os_family": "Debian",
    "os": "Ubuntu",
    "osrelease": "24.04",
    "osmajorrelease": 24,
    "kernelrelease": "6.8.0-45-generic",
}
ROCKY_9 = {
    "os_family": "RedHat",
    "os": "Rocky",
    "osmajorrelease": 9,
    "kernelrelease": "5.14.0-427.13.1.el9_4.x86_64",
}


def fixture_grains(name: str, os_grains: dict) -> dict:
    return {**os_grains, **gpu_detect.grains_of(FIXTURES / name)}


def config(**gpu_section) -> dict:
    return load({"gpu": gpu_section})


def messages(issues) -> list[str]:
    return [str(issue) for issue in issues]


def test_defaults_are_valid_and_a_typo_names_its_path():
    assert gpu.check(config()) == []
    assert messages(gpu.check(config(flavour="open"))) == [
        "workstation:gpu:flavour: unknown key; did you mean 'flavor'?"
    ]


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ({"driver": 580}, "workstation:gpu:driver", "quote it"),
        ({"driver": 580.95}, "workstation:gpu:driver", "is a number"),
        ({"driver": "latest"}, "workstation:gpu:driver", 'a driver branch such as "580"'),
        ({"flavor": "closed"}, "workstation:gpu:flavor", "auto, open, proprietary"),
        ({"source": "ppa"}, "workstation:gpu:source", "distro, nvidia-repo, runfile"),
        ({"source": "nvidia-repo"}, "workstation:gpu:repository", "workstation:repositories"),
        ({"source": "runfile"}, "workstation:gpu:runfile:source", "NVIDIA-Linux-x86_64"),
        (
            {
                "source": "runfile",
                "runfile": {"source": "nvidia/NVIDIA-Linux-x86_64-580.95.05.run", "hash": "md5:00"},
            },
            "workstation:gpu:runfile:hash",
            "not supported",
        ),
        ({"reboot": "yes"}, "workstation:gpu:reboot", "true or false"),
    ],
)
def test_each_bad_value_is_reported_at_its_path(section, path, words):
    [issue] = gpu.check(config(**section))

    assert issue.path == path and words in issue.message


def test_the_whole_pillar_validation_includes_the_gpu_section():
    issues = contract.validate(config(flavor="closed"))

    assert "workstation:gpu:flavor" in [issue.path for issue in issues]


def test_open_modules_asked_for_a_pascal_card_fail_with_the_card_named():
    cards = fixture_grains("p4000-nouveau", DEBIAN_12)["workstation_gpus"]

    [issue] = gpu.check(config(flavor="open"), cards)

    assert issue.path == "workstation:gpu:flavor"
    assert (
        "need a Turing or newer GPU" in issue.message
        and "Quadro P4000 (Pascal) at 0000:01:00.0" in issue.message
    )
    assert "use flavor: proprietary" in issue.message


def test_auto_on_pascal_is_proprietary_and_capped_at_its_last_branch():
    grains = fixture_grains("p4000-nouveau", DEBIAN_12)

    plan = gpu_plan.decide(config(), grains)
    assert (plan["flavor"], plan["branch"]) == ("proprietary", "580")
    [issue] = gpu.check(config(driver="590"), grains["workstation_gpus"])
    assert issue.path == "workstation:gpu:driver" and 'set driver: "580"' in issue.message


def test_blackwell_refuses_proprietary_and_no_module_serves_it_beside_pascal():
    blackwell = {
        "vendor": "nvidia",
        "device_id": "2bb1",
        "model": "RTX PRO 6000",
        "architecture": "Blackwell",
        "slot": "0000:02:00.0",
    }
    pascal = {
        "vendor": "nvidia",
        "device_id": "1bb1",
        "model": "Quadro P4000",
        "architecture": "Pascal",
        "slot": "0000:01:00.0",
    }

    assert (
        "works only with the open kernel modules"
        in messages(gpu.check(config(flavor="proprietary"), [blackwell]))[0]
    )
    assert "no kernel module serves both" in messages(gpu.check(config(), [blackwell, pascal]))[0]


def test_no_gpu_and_amd_only_are_a_clean_no_op_saying_why():
    none = gpu_plan.decide(config(), fixture_grains("none", DEBIAN_12))
    amd = gpu_plan.decide(config(), fixture_grains("amd-w6800", DEBIAN_12))

    assert none["manage"] is False and amd["manage"] is False
    assert "No GPU was found" in none["comment"]
    assert "No NVIDIA GPU here (found: Radeon PRO W6800 (amdgpu))" in amd["comment"]
    assert none["errors"] == [] and amd["errors"] == []


def test_debian_12_distro_pins_and_holds_the_branch_and_builds_with_headers():
    plan = gpu_plan.decide(config(driver="535"), fixture_grains("p4000-nouveau", DEBIAN_12))

    assert plan["driver_packages"] == ["nvidia-driver", "nvidia-kernel-dkms"]
    assert (plan["pin"], plan["hold"]) == ("535.*", True)
    assert plan["headers"] == ["linux-headers-6.1.0-28-amd64"]
    assert plan["reboot_expected"] is True  # nouveau drives the card now
    # what gpu.sls writes out: headers first, the pinned packages held, the daemon only enabled until the reboot
    assert plan["packages"] == [
        {"nvidia-driver": "535.*"},
        {"nvidia-kernel-dkms": "535.*"},
        "nvidia-persistenced",
    ]
    assert (plan["kernel_headers"], plan["module_stream"], plan["from_repository"]) == (
        True,
        False,
        False,
    )
    assert (plan["persistenced"], plan["start_persistenced"]) == (True, False)


def test_ubuntu_secure_boot_takes_canonical_signed_precompiled_modules_and_no_headers():
    grains = {**fixture_grains("a6000-proprietary-550", UBUNTU_2404)}
    assert grains["workstation_secure_boot"] is True

    plan = gpu_plan.decide(config(), grains)

    assert plan["driver_packages"] == ["nvidia-driver-580-open"]
    assert plan["extra_packages"] == ["linux-modules-nvidia-580-open-generic"]
    assert plan["headers"] == [] and plan["precompiled"] is True and plan["kernel_headers"] is False
    assert (plan["pin"], plan["hold"]) == (None, False)  # the package name carries the branch


def test_ubuntu_exact_version_without_secure_boot_is_pinned_held_and_built_by_dkms():
    grains = {
        **fixture_grains("a6000-proprietary-550", UBUNTU_2404),
        "workstation_secure_boot": False,
    }

    plan = gpu_plan.decide(config(driver="580.95.05", flavor="proprietary"), grains)

    assert plan["driver_packages"] == ["nvidia-driver-580"]
    assert (plan["pin"], plan["hold"]) == ("580.95.05-*", True)
    assert plan["headers"] == ["linux-headers-6.8.0-45-generic"]


def test_rocky_9_uses_the_nvidia_repository_through_a_dnf_module_stream():
    grains = fixture_grains("two-nvidia-intel", ROCKY_9)
    pinned = {
        "url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64",
        "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
        "fingerprint": "A" * 40,
    }
    merged = load({"gpu": {}, "repositories": {"nvidia-cuda": pinned}}, grains)

    plan = gpu_plan.decide({**merged, "gpu": {"repository": "nvidia-cuda"}}, grains)

    assert (plan["source"], plan["stream"]) == ("nvidia-repo", "nvidia-driver:580-open")
    assert plan["headers"] == [
        "kernel-devel-5.14.0-427.13.1.el9_4.x86_64",
        "kernel-headers",  # userspace headers: one package, not one per kernel
    ]
    assert plan["reboot_expected"] is False  # 580.95.05 open is loaded already
    assert (plan["kernel_headers"], plan["module_stream"], plan["from_repository"]) == (
        True,
        True,
        True,
    )
    assert plan["repository"] == "nvidia-cuda" and plan["start_persistenced"] is True
    baking = gpu_plan.decide(
        {**merged, "phase": "bake", "gpu": {"repository": "nvidia-cuda", "persistenced": False}},
        grains,
    )
    assert (baking["persistenced"], baking["start_persistenced"]) == (False, False)


def test_rocky_9_auto_source_without_a_repository_is_an_error_with_the_path():
    plan = gpu_plan.decide(config(), fixture_grains("two-nvidia-intel", ROCKY_9))

    assert plan["manage"] is False
    assert plan["errors"][0].startswith("workstation:gpu:repository:")


def test_loaded_driver_decides_whether_a_reboot_is_expected():
    loaded = {"version": "580.159.04", "kernel_module": "open"}

    assert gpu_plan.loaded_matches(loaded, "580", None, "open") is True
    assert gpu_plan.loaded_matches(loaded, "580", "580.95.05", "open") is False
    assert gpu_plan.loaded_matches(loaded, "580", None, "proprietary") is False
    assert gpu_plan.loaded_matches({"version": None}, "580", None, "open") is False
    assert status.upstream_version("3:580.95.05-1.el9") == "580.95.05"
    assert status.upstream_version("580.95.05-0ubuntu0.24.04.2") == "580.95.05"


def test_the_blacklist_is_written_atomically_with_its_mode_and_read_back_without_following_a_link(
    tmp_path,
):
    target = tmp_path / "modprobe.d" / "workstation-nouveau.conf"
    planted = tmp_path / "elsewhere.conf"
    planted.write_text("blacklist nouveau\n")

    assert status.blacklisted(str(target), "blacklist nouveau\n") is False
    effects.write_blacklist(str(target), "blacklist nouveau\n")

    assert status.blacklisted(str(target), "blacklist nouveau\n") is True
    assert (
        status.blacklisted(str(target), "blacklist nouveau\noptions nouveau modeset=0\n") is False
    )
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    target.unlink()
    target.symlink_to(planted)
    assert (
        status.blacklisted(str(target), "blacklist nouveau\n") is False
    )  # a link is never read through
