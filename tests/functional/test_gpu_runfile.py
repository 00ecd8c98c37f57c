"""gpu.source: runfile through Salt's loaders: a stand-in runfile served by a loopback depot, installed
hash-checked and silent with DKMS, converged by version, replaced on a version change, refused beside
the OS's driver packages; and the low state gpu.sls writes for it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from salt_workstation import gpu_detect
from tests.support.depot import DepotServer
from tests.system.standins.gpu import runfile_script

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "gpu"
OLD, NEW = "580.95.05", "580.105.08"
OPTIONS = ["--silent", "--dkms", "--no-questions", "--ui=none", "--kernel-module-type=open"]
DEBIAN_12 = {
    "os_family": "Debian",
    "os": "Debian",
    "osmajorrelease": 12,
    "oscodename": "bookworm",
    "kernelrelease": "6.1.0-28-amd64",
}


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Where the stand-in runfile leaves its traces; its nvidia-installer comes first on the PATH."""
    paths = {
        "bin": tmp_path / "bin",
        "modules": tmp_path / "lib/modules",
        "log": tmp_path / "runfile.log",
        "cache": tmp_path / "cache",
        "depot": tmp_path / "depot",
    }
    for release in ("6.1.0-28-amd64", "6.1.0-29-amd64"):
        (paths["modules"] / release).mkdir(parents=True)
        (paths["modules"] / release / "modules.dep").write_text("")
    paths["depot"].mkdir()
    monkeypatch.setenv("PATH", f"{paths['bin']}{os.pathsep}{os.environ['PATH']}")
    return paths


def publish(machine, version) -> tuple[str, str]:
    """The stand-in runfile of version in the depot folder: its name and sha256 hash."""
    name = f"NVIDIA-Linux-x86_64-{version}.run"
    data = runfile_script(version, machine["bin"], machine["modules"], machine["log"])
    (machine["depot"] / name).write_bytes(data)
    return name, "sha256:" + hashlib.sha256(data).hexdigest()


def install(loaders, machine, url, version, hash_spec, conflicts=("nvidia-driver",), test=False):
    return loaders.states.gpu.runfile_installed(
        version,
        source=url,
        hash=hash_spec,
        options=OPTIONS,
        conflicts=list(conflicts),
        cache=str(machine["cache"]),
        test=test,
    )


def test_install_converge_version_change_and_a_bad_hash(make_loaders, machine):
    loaders = make_loaders(grains=DEBIAN_12, pillar={})
    old_name, old_hash = publish(machine, OLD)
    new_name, new_hash = publish(machine, NEW)
    with DepotServer(machine["depot"]) as depot:
        predicted = install(loaders, machine, f"{depot.url}/{old_name}", OLD, old_hash, test=True)
        assert depot.requests == 0 and not machine["log"].exists()  # a dry run downloads nothing
        first = install(loaders, machine, f"{depot.url}/{old_name}", OLD, old_hash)
        again = install(loaders, machine, f"{depot.url}/{old_name}", OLD, old_hash)
        requests = depot.requests
        bad = install(loaders, machine, f"{depot.url}/{new_name}", NEW, old_hash)
        changed = install(loaders, machine, f"{depot.url}/{new_name}", NEW, new_hash)

    assert predicted.result is None and predicted.changes == {"runfile": {"old": None, "new": OLD}}
    assert first.result is True and first.changes == predicted.changes, first.comment
    assert again.result is True and again.changes == {} and requests == 1  # converged: no download
    assert bad.result is False and bad.changes == {}
    assert "sha256" in bad.comment and "workstation:gpu:runfile" in bad.comment
    assert changed.result is True and changed.changes == {"runfile": {"old": OLD, "new": NEW}}
    assert "replacing 580.95.05" in changed.comment
    assert machine["log"].read_text().splitlines() == [
        f"install {OLD} {' '.join(OPTIONS)}",
        f"uninstall {OLD} --uninstall --silent",  # the old driver first, with its own installer
        f"install {NEW} {' '.join(OPTIONS)}",
    ]
    assert list(machine["cache"].iterdir()) == []  # the runfile is removed once it ran
    assert loaders.modules.gpu.runfile_version() == NEW
    assert loaders.modules.gpu.installed_version("nvidia-runfile") == NEW


def test_refused_beside_the_os_driver_packages_changing_nothing(make_loaders, machine):
    loaders = make_loaders(grains=DEBIAN_12, pillar={})
    name, hash_spec = publish(machine, OLD)
    # This machine has no NVIDIA package: one it surely has (dpkg) stands in for nvidia-driver here;
    # the system tier refuses beside the real name.
    with DepotServer(machine["depot"]) as depot:
        dry = install(
            loaders, machine, f"{depot.url}/{name}", OLD, hash_spec, ["nvidia-*", "dpkg"], test=True
        )
        real = install(
            loaders, machine, f"{depot.url}/{name}", OLD, hash_spec, ["nvidia-*", "dpkg"]
        )
        assert depot.requests == 0

    for ret in (dry, real):
        assert ret.result is False and ret.changes == {}
        assert "does not install beside the OS's NVIDIA driver packages (dpkg)" in ret.comment
        assert "workstation:gpu:source" in ret.comment
    assert not machine["log"].exists()


def test_gpu_sls_installs_dkms_then_the_runfile_and_signals_the_reboot_by_it(make_loaders):
    grains = {**DEBIAN_12, **gpu_detect.grains_of(FIXTURES / "h200-open-580")}
    pillar = {
        "depot": "http://127.0.0.1:9/depot",
        "gpu": {
            "source": "runfile",
            "runfile": {
                "source": f"nvidia/NVIDIA-Linux-x86_64-{NEW}.run",
                "hash": "sha256:" + "0" * 64,
            },
        },
    }
    low = make_loaders(grains=grains, pillar=pillar).modules.state.show_low_sls("workstation.gpu")
    assert isinstance(low, list), low
    chunks = {
        chunk["__id__"]: chunk for chunk in low if chunk["__id__"].startswith("workstation-gpu")
    }

    assert list(chunks) == [
        "workstation-gpu-kernel-headers-installed",
        "workstation-gpu-driver-installed",
        "workstation-gpu-runfile-installed",
        "workstation-gpu-nouveau-blacklisted",
        "workstation-gpu-initramfs-rebuilt",
        "workstation-gpu-reboot-signalled",
    ]
    assert chunks["workstation-gpu-driver-installed"]["pkgs"] == ["dkms"]
    runfile = chunks["workstation-gpu-runfile-installed"]
    assert runfile["name"] == NEW
    assert runfile["source"] == f"http://127.0.0.1:9/depot/nvidia/NVIDIA-Linux-x86_64-{NEW}.run"
    assert runfile["options"] == OPTIONS  # branch 580, Hopper: the open modules
    assert "nvidia-driver" in runfile["conflicts"] and "cuda-drivers" in runfile["conflicts"]
    reboot = chunks["workstation-gpu-reboot-signalled"]
    assert (reboot["name"], reboot["version"]) == ("nvidia-runfile", NEW)
    assert {"gpu": "workstation-gpu-runfile-installed"} in reboot["require"]
