"""workstation.gpu through Salt's loaders: rendered low state per OS family, and the gpu states' contract."""

from __future__ import annotations

from pathlib import Path

import salt.loader

from salt_workstation import gpu_detect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
CONTRACT = {"name", "result", "changes", "comment"}
DEBIAN_12 = {"os_family": "Debian", "os": "Debian", "osmajorrelease": 12, "oscodename": "bookworm",
             "kernelrelease": "6.1.0-28-amd64"}
UBUNTU_2204 = {"os_family": "Debian", "os": "Ubuntu", "osrelease": "22.04", "osmajorrelease": 22,
               "oscodename": "jammy", "kernelrelease": "6.5.0-1024-lowlatency"}
ROCKY_8 = {"os_family": "RedHat", "os": "Rocky", "osmajorrelease": 8, "kernelrelease": "4.18.0-553.el8_10.x86_64"}
NVIDIA_REPO = {"url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel8/x86_64",
               "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n-----END PGP PUBLIC KEY BLOCK-----\n",
               "fingerprint": "EB693B3035CD5710E231E123A4B469963BF863CC"}


def gpu_low(make_loaders, fixture, os_grains, **pillar):
    grains = {**os_grains, **gpu_detect.grains_of(FIXTURES / fixture)}
    low = make_loaders(grains=grains, pillar=pillar).modules.state.show_low_sls("workstation")
    assert isinstance(low, list), low
    return {chunk["__id__"]: chunk for chunk in low if chunk["__id__"].startswith("workstation-gpu")}


def test_debian_12_pascal_on_nouveau_renders_the_whole_install(make_loaders):
    chunks = gpu_low(make_loaders, "p4000-nouveau", DEBIAN_12, phase="bake", gpu={"driver": "535"})

    assert list(chunks) == ["workstation-gpu-kernel-headers", "workstation-gpu-driver",
                            "workstation-gpu-nouveau-blacklist", "workstation-gpu-initramfs",
                            "workstation-gpu-persistenced", "workstation-gpu-reboot"]
    driver = chunks["workstation-gpu-driver"]
    assert (driver["state"], driver["fun"]) == ("pkg", "installed")
    assert driver["pkgs"] == [{"nvidia-driver": "535.*"}, {"nvidia-kernel-dkms": "535.*"}, "nvidia-persistenced"]
    assert driver["hold"] is True and driver["update_holds"] is True
    assert driver["require"] == [{"pkg": "workstation-gpu-kernel-headers"}]
    assert chunks["workstation-gpu-kernel-headers"]["pkgs"] == ["linux-headers-6.1.0-28-amd64"]
    initramfs = chunks["workstation-gpu-initramfs"]
    assert initramfs["argv"] == ["update-initramfs", "-u", "-k", "all"]
    assert initramfs["onchanges"] == [{"gpu": "workstation-gpu-nouveau-blacklist"}]
    persistenced = chunks["workstation-gpu-persistenced"]
    assert (persistenced["state"], persistenced["fun"], persistenced["name"]) == \
        ("workstation", "unit_enabled", "nvidia-persistenced.service")
    reboot = chunks["workstation-gpu-reboot"]
    assert (reboot["fun"], reboot["name"], reboot["flavor"], reboot["reboot"]) == \
        ("reboot_signalled", "nvidia-driver", "proprietary", False)


def test_ubuntu_22_04_with_secure_boot_takes_signed_precompiled_modules(make_loaders):
    chunks = gpu_low(make_loaders, "a6000-proprietary-550", UBUNTU_2204)

    assert "workstation-gpu-kernel-headers" not in chunks
    assert chunks["workstation-gpu-driver"]["pkgs"] == [
        "nvidia-driver-580-open", "linux-modules-nvidia-580-open-lowlatency"]
    # 550 proprietary is loaded, 580 open is wanted: enable the daemon, start it after the reboot
    assert chunks["workstation-gpu-persistenced"]["fun"] == "unit_enabled"


def test_rocky_8_installs_the_dnf_module_stream_from_the_pinned_nvidia_repository(make_loaders):
    chunks = gpu_low(make_loaders, "two-nvidia-intel", ROCKY_8, repositories={"nvidia-cuda": NVIDIA_REPO},
                     gpu={"source": "nvidia-repo", "repository": "nvidia-cuda", "driver": "580.95.05"})

    stream = chunks["workstation-gpu-module-stream"]
    assert (stream["fun"], stream["name"]) == ("module_stream_installed", "nvidia-driver:580-open")
    driver = chunks["workstation-gpu-driver"]
    assert driver["pkgs"] == [{"nvidia-driver": "3:580.95.05-*"}, {"kmod-nvidia-open-dkms": "3:580.95.05-*"},
                              "nvidia-persistenced", "python3-dnf-plugin-versionlock"]
    assert driver["require"] == [{"pkgrepo": "workstation-repo-nvidia-cuda"}, {"pkg": "workstation-gpu-kernel-headers"},
                                 {"gpu": "workstation-gpu-module-stream"}]
    assert chunks["workstation-gpu-initramfs"]["argv"] == ["dracut", "--force", "--regenerate-all"]
    # 580.95.05 open is loaded already: the daemon runs now
    assert (chunks["workstation-gpu-persistenced"]["fun"], chunks["workstation-gpu-persistenced"]["enable"]) == \
        ("running", True)


def test_amd_only_renders_one_state_that_says_why(make_loaders):
    chunks = gpu_low(make_loaders, "amd-w6800", DEBIAN_12)

    assert list(chunks) == ["workstation-gpu"]
    assert "No NVIDIA GPU here" in chunks["workstation-gpu"]["comment"]


def _contract(result):
    assert CONTRACT <= set(result.full_return)


def test_pre_turing_open_fails_its_own_state_and_status_says_why(make_loaders):
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "p4000-nouveau")}
    loaders = make_loaders(grains=grains, pillar={"gpu": {"flavor": "open"}})

    ret = loaders.modules.state.sls("workstation.gpu")
    status = loaders.modules.gpu.status()

    [state] = ret.raw.values()
    assert CONTRACT <= set(state)
    assert state["result"] is False and state["changes"] == {}
    assert "workstation:gpu:flavor: open kernel modules need a Turing or newer GPU" in state["comment"]
    assert status["managed"] is False and status["reboot_required"] is False
    assert status["cards"][0]["model"] == "Quadro P4000"


def test_nouveau_blacklist_answers_test_then_writes_once_and_converges(loaders, tmp_path):
    target = tmp_path / "modprobe.d" / "workstation-nouveau.conf"
    content = "blacklist nouveau\noptions nouveau modeset=0\n"

    dry = loaders.states.gpu.nouveau_blacklisted(str(target), content=content, test=True)
    assert not target.exists()
    real = loaders.states.gpu.nouveau_blacklisted(str(target), content=content)
    again = loaders.states.gpu.nouveau_blacklisted(str(target), content=content)

    for result in (dry, real, again):
        _contract(result)
    assert dry.result is None and real.result is True and dry.changes == real.changes == {"blacklist": str(target)}
    assert again.result is True and again.changes == {}
    assert target.read_text() == content and target.stat().st_mode & 0o777 == 0o644


def test_a_folder_where_the_blacklist_belongs_fails_the_state_with_what_to_do(loaders, tmp_path):
    target = tmp_path / "modprobe.d" / "workstation-nouveau.conf"
    (target / "kept").mkdir(parents=True)

    result = loaders.states.gpu.nouveau_blacklisted(str(target), content="blacklist nouveau\n")

    _contract(result)
    assert result.result is False and result.changes == {}
    assert result.comment == f"nouveau could not be blacklisted: {target} is a folder; remove it so the file can be written"
    assert (target / "kept").is_dir()


def test_initramfs_rebuild_runs_the_argv_and_test_predicts_it(loaders):
    dry = loaders.states.gpu.initramfs_rebuilt("true", argv=["true", "--rebuild"], test=True)
    real = loaders.states.gpu.initramfs_rebuilt("true", argv=["true", "--rebuild"])
    missing = loaders.states.gpu.initramfs_rebuilt("no-such-mkinitrd", argv=["no-such-mkinitrd", "-u"])

    assert dry.result is None and real.result is True and dry.changes == real.changes == {"rebuilt": "true --rebuild"}
    assert missing.result is True and missing.changes == {} and "not installed" in missing.comment


def test_reboot_signal_with_no_driver_installed_changes_nothing(loaders):
    dry = loaders.states.gpu.reboot_signalled("no-such-nvidia-driver", branch="580", flavor="open", test=True)
    real = loaders.states.gpu.reboot_signalled("no-such-nvidia-driver", branch="580", flavor="open")

    _contract(real)
    assert dry.changes == real.changes == {}
    assert "A reboot will be needed to load NVIDIA driver branch 580 (open)" in dry.comment  # nothing loaded here
    assert real.result is True and "no reboot needed" in real.comment


def test_the_grain_module_reads_a_recorded_tree(minion_opts):
    opts = {**minion_opts, "workstation_gpus_root": str(FIXTURES / "h200-open-580")}

    grains = salt.loader.grains(opts, force_refresh=True)

    assert [card["model"] for card in grains["workstation_gpus"]] == ["H200"]
    assert grains["workstation_secure_boot"] is False
