"""workstation.xserver through Salt's loaders: the low state per OS family and phase, and its X drop-in state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from salt_workstation import gpu_detect
from tests.support.states import by_id, changed, failed

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
UBUNTU_2404 = {"os_family": "Debian", "os": "Ubuntu", "osrelease": "24.04", "oscodename": "noble"}
ROCKY_9 = {"os_family": "RedHat", "os": "Rocky", "osmajorrelease": 9, "oscodename": "Blue Onyx"}
DROP_IN = "/etc/X11/xorg.conf.d/10-workstation-nvidia.conf"


def xserver_low(make_loaders, fixture, os_grains, phase, **display):
    grains = {**os_grains, **gpu_detect.grains_of(FIXTURES / fixture)}
    pillar = {"phase": phase, "display": {"agents": ["dcv"], "owner": "alice", **display}}
    low = make_loaders(grains=grains, pillar=pillar).modules.state.show_low_sls(
        "workstation.xserver"
    )
    assert isinstance(low, list), low
    return {
        chunk["__id__"]: chunk for chunk in low if chunk["__id__"].startswith("workstation-xserver")
    }


def test_ubuntu_h200_bake_installs_writes_and_enables_and_starts_nothing(make_loaders):
    chunks = xserver_low(
        make_loaders, "h200-open-580", UBUNTU_2404, "bake", xserver={"resolution": "2560x1440"}
    )

    assert list(chunks) == [
        "workstation-xserver-display-manager-installed",
        "workstation-xserver-wayland-disabled",
        "workstation-xserver-graphical-target-default",
        "workstation-xserver-nvidia-configured",
        "workstation-xserver-display-manager-enabled",
    ]
    assert chunks["workstation-xserver-display-manager-installed"]["packages"] == {"gdm3": None}
    wayland = chunks["workstation-xserver-wayland-disabled"]
    assert (wayland["name"], wayland["style"]) == ("/etc/gdm3/custom.conf", "keyfile")
    assert wayland["settings"] == {"daemon": {"WaylandEnable": "false"}}
    configured = chunks["workstation-xserver-nvidia-configured"]
    assert configured["name"] == DROP_IN
    assert 'BusID "PCI:0:6:0"' in configured["content"]
    assert "Virtual 2560 1440" in configured["content"]
    assert chunks["workstation-xserver-graphical-target-default"]["name"] == "graphical.target"
    enabled = chunks["workstation-xserver-display-manager-enabled"]
    assert (enabled["state"], enabled["fun"], enabled["name"]) == (
        "workstation",
        "unit_enabled",
        "gdm.service",
    )
    # a bake starts nothing, so a changed drop-in restarts nothing either
    assert enabled["require"] == [{"dcc": "workstation-xserver-display-manager-installed"}]
    assert "watch" not in enabled


def test_rocky_boot_writes_the_drop_in_and_starts_gdm(make_loaders):
    chunks = xserver_low(make_loaders, "two-nvidia-intel", ROCKY_9, "boot")

    assert list(chunks) == [
        "workstation-xserver-nvidia-configured",
        "workstation-xserver-display-manager-running",
    ]
    running = chunks["workstation-xserver-display-manager-running"]
    assert (running["state"], running["fun"], running["name"]) == (
        "service",
        "running",
        "gdm.service",
    )
    # a changed drop-in (another card, BusID or resolution) restarts the display manager, and only
    # then: Salt restarts a watching service.running only when the watched state changed something
    assert running["watch"] == [{"display": "workstation-xserver-nvidia-configured"}]
    assert "require" not in running  # boot installs nothing
    assert 'BusID "PCI:1:0:0"' in chunks["workstation-xserver-nvidia-configured"]["content"]


def test_a_machine_that_lost_its_nvidia_card_says_why_and_loses_its_drop_in(make_loaders, tmp_path):
    """The GPU grain lists no card now: one state says why, and the drop-in left from the NVIDIA card
    (X would look for its BusID and not start) is removed, predicted exactly, then 0 changes."""
    drop_in = tmp_path / "xorg.conf.d" / "10-workstation-nvidia.conf"
    drop_in.parent.mkdir()
    drop_in.write_text('Section "Device"\n    BusID "PCI:0:6:0"\nEndSection\n')
    grains = {**UBUNTU_2404, **gpu_detect.grains_of(FIXTURES / "none")}
    pillar = {
        "phase": "boot",
        "display": {"agents": ["dcv"], "owner": "alice"},
        "lookup": {"os": {"xorg_conf_dir": str(drop_in.parent)}},
    }
    state = make_loaders(grains=grains, pillar=pillar).modules.state

    dry = by_id(state.sls("workstation.xserver", test=True).raw)
    assert drop_in.exists()
    real = state.sls("workstation.xserver").raw
    again = state.sls("workstation.xserver").raw

    assert {key for key in dry if key.startswith("workstation-xserver")} == {
        "workstation-xserver-not-managed",
        "workstation-xserver-nvidia-configured",
    }
    assert "No GPU was found" in dry["workstation-xserver-not-managed"]["comment"]
    removal = dry["workstation-xserver-nvidia-configured"]
    assert removal["result"] is None and removal["changes"] == {"removed": str(drop_in)}
    assert failed(real) == {} and failed(again) == {}
    assert changed(real) == {"workstation-xserver-nvidia-configured": removal["changes"]}
    assert not drop_in.exists() and changed(again) == {}


# A stand-in init system for Salt's service states, loaded through the minion option
# `providers: {service: standin_init}`: Salt's service states, requisites and watch are the real ones;
# the units and their state are in a JSON file, and every action is appended to its log.
STANDIN_INIT = """
import json


def _units():
    with open(__opts__["standin_init"]) as found:
        return json.load(found)


def _act(name, key, value, what):
    data = _units()
    data["units"][name][key] = value
    data["log"].append(f"{what} {name}")
    with open(__opts__["standin_init"], "w") as out:
        json.dump(data, out)
    return True


def offline():
    return False


def available(name):
    return name in _units()["units"]


def get_all():
    return sorted(_units()["units"])


def status(name, sig=None):
    return bool(_units()["units"].get(name, {}).get("active"))


def enabled(name, **kwargs):
    return bool(_units()["units"].get(name, {}).get("enabled"))


def disabled(name):
    return not enabled(name)


def start(name, **kwargs):
    return _act(name, "active", True, "start")


def stop(name, **kwargs):
    return _act(name, "active", False, "stop")


def restart(name, **kwargs):
    return _act(name, "active", True, "restart")


def enable(name, **kwargs):
    return _act(name, "enabled", True, "enable")


def disable(name, **kwargs):
    return _act(name, "enabled", False, "disable")
"""


def test_at_boot_dcv_starts_after_the_display_manager_which_a_changed_drop_in_restarts(
    make_loaders, tmp_path
):
    """Real boot applies: the display manager starts before DCV, whose unit requires it; a converged
    apply changes and restarts nothing; a drop-in that differs from the plan (another BusID or
    resolution) is rewritten and restarts the display manager, and only it."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "standin_init.py").write_text(STANDIN_INIT)
    (tmp_path / "dcv").mkdir()  # as DCV's package leaves it
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"units": {"gdm.service": {}, "dcvserver.service": {}}, "log": []}))
    drop_in = tmp_path / "xorg.conf.d" / "10-workstation-nvidia.conf"
    grains = {**UBUNTU_2404, **gpu_detect.grains_of(FIXTURES / "h200-open-580")}
    pillar = {
        "phase": "boot",
        "display": {"agents": ["dcv"], "owner": "nobody"},
        "lookup": {"os": {"xorg_conf_dir": str(drop_in.parent), "dcv_dir": str(tmp_path / "dcv")}},
    }
    opts = {
        "module_dirs": [str(tmp_path / "modules")],
        "providers": {"service": "standin_init"},
        "standin_init": str(init),
    }
    state = make_loaders(grains=grains, pillar=pillar, opts=opts).modules.state
    manager, agent = (
        "workstation-xserver-display-manager-running",
        "workstation-display-dcv-service-running",
    )

    def log():
        return json.loads(init.read_text())["log"]

    requisites = {c["__id__"]: c for c in state.show_low_sls("workstation.display")}[agent]
    first = by_id(state.sls("workstation.display").raw)
    started = log()
    again = state.sls("workstation.display").raw
    converged = log()
    drop_in.write_text(drop_in.read_text().replace("PCI:0:6:0", "PCI:65:0:0"))  # another card
    moved = state.sls("workstation.display").raw

    assert requisites["require"] == [{"service": manager}]
    assert failed(first) == {}
    assert first[manager]["__run_num__"] < first[agent]["__run_num__"]
    assert started == [
        "start gdm.service",
        "enable gdm.service",
        "start dcvserver.service",
        "enable dcvserver.service",
    ]
    assert changed(again) == {} and converged == started  # nothing restarted
    assert failed(moved) == {}
    assert changed(moved) == {
        "workstation-xserver-nvidia-configured": {"written": str(drop_in)},
        manager: {"gdm.service": True},
    }
    assert log() == [*started, "restart gdm.service"]
    assert 'BusID "PCI:0:6:0"' in drop_in.read_text()


def test_the_drop_in_state_predicts_writes_once_and_converges(loaders, tmp_path):
    path = str(tmp_path / "xorg.conf.d" / "10-workstation-nvidia.conf")
    content = 'Section "Device"\n    BusID "PCI:0:6:0"\nEndSection\n'
    xorg_configured = loaders.states.display.xorg_configured

    predicted = xorg_configured(path, content=content, test=True)
    written = xorg_configured(path, content=content)
    again = xorg_configured(path, content=content)

    assert predicted.result is None and predicted.changes == {"written": path}
    assert written.result is True and written.changes == predicted.changes
    assert Path(path).read_text() == content and (Path(path).stat().st_mode & 0o777) == 0o644
    assert again.result is True and again.changes == {}
    # no NVIDIA card any more (an image booted on other hardware): the drop-in goes
    removal = xorg_configured(path, content=None, test=True)
    removed = xorg_configured(path, content=None)
    gone = xorg_configured(path, content=None)
    assert removal.result is None and removal.changes == {"removed": path}
    assert removed.result is True and removed.changes == removal.changes
    assert not Path(path).exists() and gone.changes == {} and gone.result is True


def test_status_says_whether_x_runs_on_the_card_and_why_dcvgldiag_fails(
    make_loaders, tmp_path, monkeypatch
):
    from salt_workstation import xprobe

    if xprobe.x_servers():
        pytest.skip("this machine runs an X server")
    tools = tmp_path / "bin"
    tools.mkdir()
    gldiag = tools / "dcvgldiag"  # a stand-in with the shape of dcvgldiag's findings
    gldiag.write_text(
        "#!/bin/sh\necho 'Running tests: ... DONE'\necho\necho 'ERROR (1/1)'\necho\n"
        "echo '  The X server is not running on the NVIDIA GPU.'\n"
    )
    gldiag.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    grains = {**UBUNTU_2404, "kernelrelease": "6.8.0-45-generic"}
    grains.update(gpu_detect.grains_of(FIXTURES / "h200-open-580"))
    pillar = {
        "display": {"agents": ["dcv"], "owner": "alice"},
        "lookup": {"os": {"modules_dir": str(tmp_path / "modules")}},
    }
    loaders = make_loaders(grains=grains, pillar=pillar)

    x = loaders.modules.display.xserver_status()
    gpu = loaders.modules.gpu.status()

    assert x["managed"] is True and x["card"] == "0000:00:06.0"
    assert x["config"] == {"path": DROP_IN, "current": False}  # nothing written on this machine
    assert x["display_manager"]["unit"] == "gdm.service"
    assert x["x"]["on_nvidia"] is False and "no X server is running" in x["x"]["reason"]
    assert x["gldiag"]["installed"] is True and x["gldiag"]["passed"] is False
    assert x["gldiag"]["reason"] == (
        "dcvgldiag: ERROR (1/1): The X server is not running on the NVIDIA GPU."
    )
    assert gpu["x_server"] == x["x"] and gpu["gldiag"] == x["gldiag"]
    assert gpu["next_boot"] == {
        "kernel": None,
        "nvidia_module": None,
        "kernels": {},
        "problem": None,
    }
    assert loaders.modules.display.status()["xserver"]["gldiag"] == x["gldiag"]
