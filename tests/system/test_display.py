"""workstation.display in a fresh Debian 12 root: the agents' stand-in packages from the signed repository,
their vendor config files merged key by key, their units enabled for the next boot (phase bake)."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.states import by_id, changed, failed
from tests.system.conftest import workstation_pillar
from tests.system.standins.display import REGISTRATION_MARKER

pytestmark = pytest.mark.system

CODE = "CANARYSYSTEM77@1A2B-3C4D-5E6F-7A8B"
BAKE_CHANGES = {
    "workstation-repo-studio-keyring",
    "workstation-repo-studio",
    "workstation-display-dcv-packages-installed",
    "workstation-display-dcv-config-merged",
    "workstation-display-dcv-service-enabled",
    "workstation-display-vnc-packages-installed",
    "workstation-display-vnc-config-merged",
    "workstation-display-vnc-service-enabled",
}


def display_changes(data: dict) -> dict:
    """The changes of the display states and the repository they install from (other features have theirs)."""
    return {
        key: value
        for key, value in changed(data).items()
        if key.startswith(("workstation-display-", "workstation-repo-"))
    }


def display_pillar(server, display: dict, phase: str = "bake") -> dict:
    """Only the studio repository and the display section: no apps, so the apply is about the agents."""
    pillar = workstation_pillar(server)
    return {
        "phase": phase,
        "install_root": pillar["install_root"],
        "depot": pillar["depot"],
        "repositories": pillar["repositories"],
        "display": display,
    }


def test_bake_installs_configures_and_enables_dcv_and_vnc_exactly_as_the_dry_run_said(
    station_factory, studio_server, salt_cli
):
    station = station_factory(
        display_pillar(
            studio_server,
            {
                "agents": ["dcv", "vnc"],  # no owner: an image bake hands no session to anyone
                "dcv": {"license": "5053@rlm.studio.test", "web_port": 8443, "quic": True},
                "vnc": {"display": 1, "settings": {"geometry": "2560x1440", "localhost": True}},
            },
        )
    )
    minion = station.minion

    predicted = station.apply("test=True")

    assert failed(predicted) == {}
    assert minion.package("nice-dcv-server") is None and not minion.exists("/etc/dcv/dcv.conf")

    real = station.apply()

    assert failed(real) == {}
    assert set(display_changes(real)) == BAKE_CHANGES
    assert display_changes(predicted) == display_changes(real)
    assert display_changes(real)["workstation-display-dcv-packages-installed"] == {
        "installed": {"nice-dcv-server": "latest", "nice-xdcv": "latest"}
    }
    assert (
        minion.package("nice-dcv-server") == "2024.0-2"
        and minion.package("nice-xdcv") == "2024.0-1"
    )
    assert minion.package("tigervnc-standalone-server") == "1.12.0+dfsg-8"
    assert minion.package("nice-dcv-gl") is None  # no NVIDIA GPU in this root
    dcv_conf = minion.read("/etc/dcv/dcv.conf")
    assert '#license-file = ""\nlicense-file="5053@rlm.studio.test"\n' in dcv_conf
    assert (
        "#web-port = 8443\nweb-port=8443\n" in dcv_conf and "enable-quic-frontend=true" in dcv_conf
    )
    assert (
        "[display]\ntarget-fps = 30\n" in dcv_conf
    )  # the package's own key, which the pillar does not name
    assert "owner=" not in dcv_conf.replace("#owner", "")  # no owner while baking
    assert (
        minion.read("/etc/tigervnc/vncserver-config-defaults") == "geometry=2560x1440\nlocalhost\n"
    )
    assert ":1=" not in minion.read("/etc/tigervnc/vncserver.users")
    for unit in ("dcvserver.service", "tigervncserver@:1.service"):
        assert minion.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled", unit
    assert (
        "8443/tcp, 8443/udp, 5901/tcp"
        not in by_id(real)["workstation-display-firewall-ports-open"]["comment"]
    )
    assert (
        "5901/tcp, 8443/tcp, 8443/udp"
        in by_id(real)["workstation-display-firewall-ports-open"]["comment"]
    )

    again = station.apply()

    assert failed(again) == {}
    assert changed(again) == {}

    status = salt_cli.run("display.status", minion_tgt=minion.id).data
    assert status["dcv"]["packages"] == {"nice-dcv-server": "2024.0-2", "nice-xdcv": "2024.0-1"}
    assert status["dcv"]["config_drift"] == {} and status["vnc"]["config_drift"] == {}
    assert (
        status["vnc"]["service"]["unit"] == "tigervncserver@:1.service"
        and status["vnc"]["service"]["enabled"]
    )
    assert set(status["dcv"]["ports"]) == {"8443/tcp", "8443/udp"} and set(
        status["vnc"]["ports"]
    ) == {"5901/tcp"}


def test_anyware_baked_then_registered_at_boot_once_with_the_code_in_no_output(
    station_factory, studio_server, pillar_tree, salt_cli
):
    display = {
        "agents": ["anyware"],
        "anyware": {
            "flavor": "standard",
            "registration_code": CODE,
            "settings": {"pcoip.maximum_frame_rate": 24},
        },
    }
    station = station_factory(display_pillar(studio_server, display))
    minion = station.minion

    baked = station.apply()

    assert failed(baked) == {}
    assert minion.package("pcoip-agent-standard") == "24.10.0-1"
    conf = minion.read("/etc/pcoip-agent/pcoip-agent.conf")
    assert "# pcoip.maximum_frame_rate = 30\npcoip.maximum_frame_rate = 24\n" in conf
    assert "pcoip.event_filter_mode = 2" in conf
    assert not minion.exists(REGISTRATION_MARKER), "phase bake registered the host"

    pillar_tree.set(minion.id, display_pillar(studio_server, display, phase="boot"))
    assert (
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id).returncode == 0
    )
    booted = by_id(station.apply())
    again = by_id(station.apply())

    registration = booted["workstation-display-anyware-registered"]
    assert registration["result"] is True and registration["changes"] == {"registered": True}
    assert minion.read(REGISTRATION_MARKER).strip() == hashlib.sha256(CODE.encode()).hexdigest()
    assert again["workstation-display-anyware-registered"]["changes"] == {}
    # The root runs no systemd, so only starting the agent may fail here.
    assert {key for key, state in booted.items() if state["result"] is False} <= {
        "workstation-display-anyware-service-running"
    }
    minion_log = minion.read("/var/log/salt/minion")  # logged at debug level
    for piece in (CODE, "CANARYSYSTEM77", "7A8B"):
        assert piece not in repr(baked) + repr(booted) + repr(again) + minion_log
