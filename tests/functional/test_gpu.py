"""workstation.gpu through Salt's loaders: rendered low state per OS family, and the gpu states' contract."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import pytest
import salt.loader
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import gpu_detect
from salt_workstation.config import merge

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
CONTRACT = {"name", "result", "changes", "comment"}
DEBIAN_12 = {
    "os_family": "Debian",
    "os": "Debian",
    "osmajorrelease": 12,
    "oscodename": "bookworm",
    "kernelrelease": "6.1.0-28-amd64",
}
UBUNTU_2204 = {
    "os_family": "Debian",
    "os": "Ubuntu",
    "osrelease": "22.04",
    "osmajorrelease": 22,
    "oscodename": "jammy",
    "kernelrelease": "6.5.0-1024-lowlatency",
}
ROCKY_8 = {
    "os_family": "RedHat",
    "os": "Rocky",
    "osmajorrelease": 8,
    "kernelrelease": "4.18.0-553.el8_10.x86_64",
}
NVIDIA_REPO = {
    "url": "https://developer.download.nvidia.com/compute/cuda/repos/rhel8/x86_64",
    "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n-----END PGP PUBLIC KEY BLOCK-----\n",
    "fingerprint": "EB693B3035CD5710E231E123A4B469963BF863CC",
}


def gpu_low(make_loaders, fixture, os_grains, **pillar):
    grains = {**os_grains, **gpu_detect.grains_of(FIXTURES / fixture)}
    low = make_loaders(grains=grains, pillar=pillar).modules.state.show_low_sls("workstation.gpu")
    assert isinstance(low, list), low
    return {
        chunk["__id__"]: chunk for chunk in low if chunk["__id__"].startswith("workstation-gpu")
    }


def test_debian_12_pascal_on_nouveau_renders_the_whole_install(make_loaders):
    chunks = gpu_low(make_loaders, "p4000-nouveau", DEBIAN_12, phase="bake", gpu={"driver": "535"})

    assert list(chunks) == [
        "workstation-gpu-kernel-headers-installed",
        "workstation-gpu-driver-installed",
        "workstation-gpu-nouveau-blacklisted",
        "workstation-gpu-initramfs-rebuilt",
        "workstation-gpu-persistenced-service-enabled",
        "workstation-gpu-reboot-signalled",
    ]
    driver = chunks["workstation-gpu-driver-installed"]
    assert (driver["state"], driver["fun"]) == ("pkg", "installed")
    assert driver["pkgs"] == [
        {"nvidia-driver": "535.*"},
        {"nvidia-kernel-dkms": "535.*"},
        "nvidia-persistenced",
    ]
    assert driver["hold"] is True and driver["update_holds"] is True
    assert "require" not in driver  # the distro's own repositories: nothing from workstation.repos
    headers = chunks["workstation-gpu-kernel-headers-installed"]
    assert headers["pkgs"] == ["linux-headers-6.1.0-28-amd64"]
    assert headers["require_in"] == [{"pkg": "workstation-gpu-driver-installed"}]
    initramfs = chunks["workstation-gpu-initramfs-rebuilt"]
    assert initramfs["argv"] == ["update-initramfs", "-u", "-k", "all"]
    assert initramfs["onchanges"] == [{"gpu": "workstation-gpu-nouveau-blacklisted"}]
    persistenced = chunks["workstation-gpu-persistenced-service-enabled"]
    assert (persistenced["state"], persistenced["fun"], persistenced["name"]) == (
        "workstation",
        "unit_enabled",
        "nvidia-persistenced.service",
    )
    assert persistenced["require"] == [{"pkg": "workstation-gpu-driver-installed"}]
    reboot = chunks["workstation-gpu-reboot-signalled"]
    assert (reboot["fun"], reboot["name"], reboot["flavor"], reboot["reboot"]) == (
        "reboot_signalled",
        "nvidia-driver",
        "proprietary",
        False,
    )
    assert reboot["require"] == [{"pkg": "workstation-gpu-driver-installed"}]


def test_ubuntu_22_04_with_secure_boot_takes_signed_precompiled_modules(make_loaders):
    chunks = gpu_low(make_loaders, "a6000-proprietary-550", UBUNTU_2204)

    assert "workstation-gpu-kernel-headers-installed" not in chunks
    assert chunks["workstation-gpu-driver-installed"]["pkgs"] == [
        "nvidia-driver-580-open",
        "linux-modules-nvidia-580-open-lowlatency",
    ]
    assert "require" not in chunks["workstation-gpu-driver-installed"]
    # 550 proprietary is loaded, 580 open is wanted: enable the daemon, start it after the reboot
    assert chunks["workstation-gpu-persistenced-service-enabled"]["fun"] == "unit_enabled"


def test_rocky_8_installs_the_dnf_module_stream_from_the_pinned_nvidia_repository(make_loaders):
    chunks = gpu_low(
        make_loaders,
        "two-nvidia-intel",
        ROCKY_8,
        repositories={"nvidia-cuda": NVIDIA_REPO},
        gpu={"source": "nvidia-repo", "repository": "nvidia-cuda", "driver": "580.95.05"},
    )

    stream = chunks["workstation-gpu-module-stream-installed"]
    assert (stream["fun"], stream["name"]) == ("module_stream_installed", "nvidia-driver:580-open")
    # headers, then the stream (its profile builds the module), then the driver, both from the pinned repository
    assert chunks["workstation-gpu-kernel-headers-installed"]["require_in"] == [
        {"pkg": "workstation-gpu-driver-installed"},
        {"gpu": "workstation-gpu-module-stream-installed"},
    ]
    assert stream["require"] == [{"pkgrepo": "workstation-repo-nvidia-cuda"}]
    assert stream["require_in"] == [{"pkg": "workstation-gpu-driver-installed"}]
    driver = chunks["workstation-gpu-driver-installed"]
    assert driver["pkgs"] == [
        {"nvidia-driver": "3:580.95.05-*"},
        {"kmod-nvidia-open-dkms": "3:580.95.05-*"},
        "nvidia-persistenced",
        "python3-dnf-plugin-versionlock",
    ]
    assert driver["require"] == [{"pkgrepo": "workstation-repo-nvidia-cuda"}]
    assert chunks["workstation-gpu-initramfs-rebuilt"]["argv"] == [
        "dracut",
        "--force",
        "--regenerate-all",
    ]
    # 580.95.05 open is loaded already: the daemon runs now
    running = chunks["workstation-gpu-persistenced-service-running"]
    assert (running["state"], running["fun"], running["enable"]) == ("service", "running", True)


def test_amd_only_renders_one_state_that_says_why(make_loaders):
    chunks = gpu_low(make_loaders, "amd-w6800", DEBIAN_12)

    assert list(chunks) == ["workstation-gpu-driver-not-managed"]
    assert "No NVIDIA GPU here" in chunks["workstation-gpu-driver-not-managed"]["comment"]


def example_pillar(minion_id: str = "ws-lead-1") -> dict:
    """pillar_examples/ as its top file gives it to this minion (a lead gets every production)."""
    examples = REPO / "pillar_examples"
    top = yaml.safe_load((examples / "top.sls").read_text(encoding="utf-8"))["base"]
    merged: dict = {}
    for target, entries in top.items():
        if not fnmatch.fnmatch(minion_id, target) or any(
            isinstance(entry, dict) for entry in entries
        ):
            continue  # grain matches and other minions
        for entry in entries:
            text = (examples / (entry.replace(".", "/") + ".sls")).read_text(encoding="utf-8")
            merged = merge(merged, yaml.safe_load(text)["workstation"])
    return merged


def declared(high, state_id):
    """One state of show_sls's high data as {"function": "pkg.installed", **its arguments}."""
    body = high[state_id]
    [module] = [key for key in body if not key.startswith("__")]
    args = {
        key: value for arg in body[module] if isinstance(arg, dict) for key, value in arg.items()
    }
    [function] = [arg for arg in body[module] if isinstance(arg, str)]
    return {"function": f"{module}.{function}", "sls": body["__sls__"], **args}


def test_show_sls_of_the_example_pillar_is_the_state_graph_gpu_sls_writes(make_loaders):
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "p4000-nouveau")}
    loaders = make_loaders(grains=grains, pillar=example_pillar())

    high = loaders.modules.state.show_sls("workstation.gpu")

    assert isinstance(high, dict), high  # a render error comes back as a list of messages
    gpu = {
        state_id: declared(high, state_id)
        for state_id in high
        if state_id.startswith("workstation-gpu")
    }
    assert {state_id: state["function"] for state_id, state in gpu.items()} == {
        "workstation-gpu-kernel-headers-installed": "pkg.installed",
        "workstation-gpu-driver-installed": "pkg.installed",
        "workstation-gpu-nouveau-blacklisted": "gpu.nouveau_blacklisted",
        "workstation-gpu-initramfs-rebuilt": "gpu.initramfs_rebuilt",
        "workstation-gpu-persistenced-service-enabled": "workstation.unit_enabled",
        "workstation-gpu-reboot-signalled": "gpu.reboot_signalled",
    }
    assert {state["sls"] for state in gpu.values()} == {"workstation.gpu"}
    requisites = {
        state_id: {
            key: state[key] for key in ("require", "require_in", "onchanges") if key in state
        }
        for state_id, state in gpu.items()
    }
    assert requisites == {
        "workstation-gpu-kernel-headers-installed": {
            "require_in": [{"pkg": "workstation-gpu-driver-installed"}]
        },
        "workstation-gpu-driver-installed": {},
        "workstation-gpu-nouveau-blacklisted": {},
        "workstation-gpu-initramfs-rebuilt": {
            "onchanges": [{"gpu": "workstation-gpu-nouveau-blacklisted"}]
        },
        "workstation-gpu-persistenced-service-enabled": {
            "require": [{"pkg": "workstation-gpu-driver-installed"}]
        },
        "workstation-gpu-reboot-signalled": {
            "require": [{"pkg": "workstation-gpu-driver-installed"}]
        },
    }
    # auto on a Pascal card: branch 580, the proprietary module, from Debian's archive, pinned to the branch
    assert gpu["workstation-gpu-driver-installed"]["pkgs"] == [
        {"nvidia-driver": "580.*"},
        {"nvidia-kernel-dkms": "580.*"},
        "nvidia-persistenced",
    ]
    assert (
        gpu["workstation-gpu-reboot-signalled"]["branch"],
        gpu["workstation-gpu-reboot-signalled"]["flavor"],
    ) == ("580", "proprietary")


def test_a_td_extends_states_by_their_ids_in_their_own_sls(make_loaders, tmp_path):
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "p4000-nouveau")}
    loaders = make_loaders(grains=grains, pillar=example_pillar())
    own = Path(loaders.opts["file_roots"]["base"][0]) / "studio"
    own.mkdir()
    blacklist, proxy = tmp_path / "studio-nouveau.conf", tmp_path / "01proxy"
    (own / "gpu.sls").write_text(f"""\
include:
  - workstation.gpu

studio-apt-proxy:
  file.managed:
    - name: {proxy}
    - contents: 'Acquire::http::Proxy "http://apt-cache.studio.example:3142";'

extend:
  workstation-gpu-driver-installed:
    pkg:
      - require:
        - file: studio-apt-proxy
  workstation-gpu-nouveau-blacklisted:
    gpu:
      - name: {blacklist}
  workstation-gpu-initramfs-rebuilt:
    gpu:
      - name: "true"
      - argv: ["true", "--studio"]
""")

    ret = loaders.modules.state.sls("studio.gpu", test=True)

    states = {state["__id__"]: state for state in ret.raw.values()}
    assert (
        states["workstation-gpu-nouveau-blacklisted"]["comment"]
        == f"nouveau would be blacklisted in {blacklist}"
    )
    assert states["workstation-gpu-initramfs-rebuilt"]["changes"] == {"rebuilt": "true --studio"}
    # included first, yet the driver now waits for the TD's proxy
    assert (
        states["studio-apt-proxy"]["__run_num__"]
        < states["workstation-gpu-driver-installed"]["__run_num__"]
    )
    assert not blacklist.exists() and not proxy.exists()


@pytest.mark.skipif(shutil.which("dnf") is not None, reason="this machine has dnf")
def test_execution_functions_raise_the_salt_way_and_states_name_what_failed(loaders):
    with pytest.raises(CommandExecutionError, match=r"false failed \(1\)"):
        loaders.modules.gpu.rebuild_initramfs(["false"])
    with pytest.raises(SaltInvocationError, match="never a shell line"):
        loaders.modules.gpu.rebuild_initramfs("update-initramfs -u -k all")
    with pytest.raises(SaltInvocationError, match="module:stream"):
        loaders.modules.gpu.module_stream_installed("nvidia-driver")

    failed = loaders.states.gpu.initramfs_rebuilt("false", argv=["false"])
    no_dnf = loaders.states.gpu.module_stream_installed("nvidia-driver:580-open", test=True)

    for result in (failed, no_dnf):
        _contract(result)
        assert result.result is False and result.changes == {}
    assert failed.comment == "The initramfs was not rebuilt: false failed (1) (workstation:gpu)"
    assert no_dnf.comment == (
        "dnf module stream nvidia-driver:580-open was not installed: dnf is not installed here: "
        "module stream nvidia-driver:580-open is for RHEL and Rocky (workstation:gpu)"
    )


def _contract(result):
    assert set(result.full_return) >= CONTRACT


def test_pre_turing_open_fails_its_own_state_and_status_says_why(make_loaders):
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "p4000-nouveau")}
    loaders = make_loaders(grains=grains, pillar={"gpu": {"flavor": "open"}})

    ret = loaders.modules.state.sls("workstation.gpu")
    status = loaders.modules.gpu.status()

    [state] = ret.raw.values()
    assert set(state) >= CONTRACT
    assert state["result"] is False and state["changes"] == {}
    assert (
        "workstation:gpu:flavor: open kernel modules need a Turing or newer GPU" in state["comment"]
    )
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
    assert (
        dry.result is None
        and real.result is True
        and dry.changes == real.changes == {"blacklist": str(target)}
    )
    assert again.result is True and again.changes == {}
    assert target.read_text() == content and target.stat().st_mode & 0o777 == 0o644


def test_a_folder_where_the_blacklist_belongs_fails_the_state_with_what_to_do(loaders, tmp_path):
    target = tmp_path / "modprobe.d" / "workstation-nouveau.conf"
    (target / "kept").mkdir(parents=True)

    result = loaders.states.gpu.nouveau_blacklisted(str(target), content="blacklist nouveau\n")

    _contract(result)
    assert result.result is False and result.changes == {}
    assert result.comment == (
        f"nouveau could not be blacklisted: {target} is a folder; remove it so the file can "
        "be written (workstation:gpu)"
    )
    assert (target / "kept").is_dir()


def test_initramfs_rebuild_runs_the_argv_and_test_predicts_it(loaders):
    dry = loaders.states.gpu.initramfs_rebuilt("true", argv=["true", "--rebuild"], test=True)
    real = loaders.states.gpu.initramfs_rebuilt("true", argv=["true", "--rebuild"])
    missing = loaders.states.gpu.initramfs_rebuilt(
        "no-such-mkinitrd", argv=["no-such-mkinitrd", "-u"]
    )

    assert (
        dry.result is None
        and real.result is True
        and dry.changes == real.changes == {"rebuilt": "true --rebuild"}
    )
    assert missing.result is True and missing.changes == {} and "not installed" in missing.comment


def test_reboot_signal_with_no_driver_installed_changes_nothing(loaders):
    dry = loaders.states.gpu.reboot_signalled(
        "no-such-nvidia-driver", branch="580", flavor="open", test=True
    )
    real = loaders.states.gpu.reboot_signalled("no-such-nvidia-driver", branch="580", flavor="open")

    _contract(real)
    assert dry.changes == real.changes == {}
    assert (
        "A reboot will be needed to load NVIDIA driver branch 580 (open)" in dry.comment
    )  # nothing loaded here
    assert real.result is True and "no reboot needed" in real.comment


def test_the_grain_module_reads_a_recorded_tree(minion_opts):
    opts = {**minion_opts, "workstation_gpus_root": str(FIXTURES / "h200-open-580")}

    grains = salt.loader.grains(opts, force_refresh=True)

    assert [card["model"] for card in grains["workstation_gpus"]] == ["H200"]
    assert grains["workstation_secure_boot"] is False
