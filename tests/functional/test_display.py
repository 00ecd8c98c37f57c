"""The display states through Salt's loaders: the state graph workstation.display writes (show_sls, per
phase, a TD's extend:), the state contract, test=True, idempotency, failures that name their pillar path,
and the registration code kept out of every output."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation.config import merge
from tests.support.catalog import EXAMPLES
from tests.system.standins.display import DCV_CONF, register_host_script, validate_license_script
from tests.unit.test_display import UFW

CONTRACT = {"name", "result", "changes", "comment"}
CODE = "CANARYFUNC4242@ABCD-EF01-2345-6789"
GRAINS = {"os_family": "Debian", "os": "Debian", "oscodename": "bookworm", "cpuarch": "x86_64"}


def _contract(result):
    raw = result.full_return
    assert set(raw) >= CONTRACT
    assert isinstance(raw["changes"], dict) and isinstance(raw["comment"], str)
    assert raw["result"] in (True, False, None)
    return raw


def high(shown) -> dict:
    """state.show_sls's return as {state ID: (function, {argument: value})}, Salt's own `order` left out."""
    assert isinstance(shown, dict), shown  # a list is Salt's list of render or requisite errors
    found = {}
    for state_id, body in shown.items():
        if state_id.startswith("__"):  # __extend__ and the like
            continue
        if state_id.startswith(
            "workstation-xserver-"
        ):  # included; tests/functional/test_xserver.py
            continue
        module = next(key for key in body if not key.startswith("__"))
        args = {
            key: value
            for arg in body[module]
            if isinstance(arg, dict)
            for key, value in arg.items()
        }
        function = next(arg for arg in body[module] if isinstance(arg, str))
        args.pop("order", None)
        found[state_id] = (f"{module}.{function}", args)
    return found


def display_states(make_loaders, pillar, grains=GRAINS) -> dict:
    return high(
        make_loaders(grains=grains, pillar=pillar).modules.state.show_sls("workstation.display")
    )


def example_pillar() -> dict:
    """The workstation pillar a lead's machine gets from pillar_examples/ (every file its top assigns)."""
    top = yaml.safe_load((EXAMPLES / "top.sls").read_text())["base"]
    merged: dict = {}
    for target in ("ws-*", "ws-lead-*"):
        for name in top[target]:
            path = EXAMPLES / (name.replace(".", "/") + ".sls")
            merged = merge(merged, yaml.safe_load(path.read_text())["workstation"])
    return merged


PACKAGES = "workstation-display-dcv-packages-installed"
RUNNING = "workstation-display-dcv-service-running"


def test_the_example_pillar_shows_the_state_graph_the_sls_writes(make_loaders):
    """state.show_sls reads like the file: each state by its ID, its function and its requisites."""
    states = display_states(make_loaders, example_pillar())

    assert states == {
        "workstation-display-owner-exists": ("display.owner_exists", {"name": "artist"}),
        PACKAGES: (
            "dcc.packages_installed",
            {"name": "Amazon DCV", "packages": {"nice-dcv-server": None, "nice-xdcv": None}},
        ),
        "workstation-display-dcv-config-merged": (
            "display.config_merged",
            {
                "name": "/etc/dcv/dcv.conf",
                "style": "dcv",
                "settings": {
                    "connectivity": {"web-port": 8443, "enable-quic-frontend": True},
                    "security": {"authentication": "system"},
                },
                "require": [{"dcc": PACKAGES}],
                "watch_in": [{"service": RUNNING}],
            },
        ),
        "workstation-display-dcv-owner-assigned": (
            "display.config_merged",
            {
                "name": "/etc/dcv/dcv.conf",
                "style": "dcv",
                "settings": {
                    "session-management": {"create-session": True},
                    "session-management/automatic-console-session": {"owner": "artist"},
                },
                "require": [
                    {"display": "workstation-display-owner-exists"},
                    {"display": "workstation-display-dcv-config-merged"},
                    {"dcc": PACKAGES},
                ],
                "watch_in": [{"service": RUNNING}],
            },
        ),
        RUNNING: (
            "service.running",
            {"name": "dcvserver.service", "enable": True, "require": [{"dcc": PACKAGES}]},
        ),
        "workstation-display-firewall-ports-open": (
            "display.ports_open",
            {
                "ports": [
                    {"port": 8443, "protocol": "tcp", "agent": "dcv"},
                    {"port": 8443, "protocol": "udp", "agent": "dcv"},
                ],
                "backend": "auto",
            },
        ),
    }


def test_phase_all_orders_every_agent_and_ties_registration_owner_and_config_to_the_service(
    make_loaders,
):
    pillar = {
        "display": {
            "agents": ["dcv", "anyware", "vnc"],
            "owner": "alice",
            "dcv": {"web_port": 8443, "quic": True},
            "anyware": {"registration_code": CODE},
            "vnc": {"display": 2, "settings": {"geometry": "2560x1440"}},
        },
        "repositories": {
            "studio": {
                "url": "https://repo.studio.test/apt",
                "fingerprint": "A" * 40,
                "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n",
            }
        },
    }
    shown = make_loaders(grains=GRAINS, pillar=pillar).modules.state.show_sls("workstation.display")
    states = high(shown)
    ids = [key for key in states if key.startswith("workstation-display-")]

    assert ids == [
        "workstation-display-owner-exists",
        PACKAGES,
        "workstation-display-dcv-config-merged",
        "workstation-display-dcv-owner-assigned",
        RUNNING,
        "workstation-display-anyware-packages-installed",
        "workstation-display-anyware-registered",
        "workstation-display-anyware-service-running",
        "workstation-display-vnc-packages-installed",
        "workstation-display-vnc-config-merged",
        "workstation-display-vnc-owner-assigned",
        "workstation-display-vnc-service-running",
        "workstation-display-firewall-ports-open",
    ]
    assert "workstation-repo-studio" in states  # included, so workstation.display applies alone
    assert states[PACKAGES][1]["require"] == [{"sls": "workstation.repos"}]
    assert states["workstation-display-vnc-owner-assigned"][1] == {
        "name": "/etc/tigervnc/vncserver.users",
        "style": "tigervnc",
        "settings": {"": {":2": "alice"}},
        "require": [
            {"display": "workstation-display-owner-exists"},
            {"display": "workstation-display-vnc-config-merged"},
            {"dcc": "workstation-display-vnc-packages-installed"},
        ],
        "watch_in": [{"service": "workstation-display-vnc-service-running"}],
    }
    assert states["workstation-display-vnc-config-merged"][1]["watch_in"] == [
        {"service": "workstation-display-vnc-service-running"}
    ]
    assert states["workstation-display-vnc-service-running"] == (
        "service.running",
        {
            "name": "tigervncserver@:2.service",
            "enable": True,
            "require": [{"dcc": "workstation-display-vnc-packages-installed"}],
        },
    )
    assert states["workstation-display-anyware-registered"][1] == {
        "name": "anyware",
        "require": [{"dcc": "workstation-display-anyware-packages-installed"}],
        "require_in": [{"service": "workstation-display-anyware-service-running"}],
    }
    assert (
        "workstation-display-anyware-config-merged" not in states
    )  # no anyware keys in the pillar
    assert CODE not in repr(shown)


def test_bake_installs_configures_and_enables_without_owner_registration_or_start(make_loaders):
    pillar = {
        "phase": "bake",
        "display": {
            "agents": ["dcv", "anyware", "vnc"],
            "dcv": {"web_port": 8443},
            "anyware": {"registration_code": CODE},
            "vnc": {"display": 2},
        },
    }
    states = display_states(make_loaders, pillar)

    assert list(states) == [
        PACKAGES,
        "workstation-display-dcv-config-merged",
        "workstation-display-dcv-service-enabled",
        "workstation-display-anyware-packages-installed",
        "workstation-display-anyware-service-enabled",
        "workstation-display-vnc-packages-installed",
        "workstation-display-vnc-service-enabled",
        "workstation-display-firewall-ports-open",
    ]
    assert states["workstation-display-dcv-config-merged"][1]["require"] == [{"dcc": PACKAGES}]
    assert (
        "watch_in" not in states["workstation-display-dcv-config-merged"][1]
    )  # nothing runs to restart
    for agent, unit in (
        ("dcv", "dcvserver.service"),
        ("anyware", "pcoip-agent.service"),
        ("vnc", "tigervncserver@:2.service"),
    ):
        assert states[f"workstation-display-{agent}-service-enabled"] == (
            "workstation.unit_enabled",
            {"name": unit, "require": [{"dcc": f"workstation-display-{agent}-packages-installed"}]},
        )


def test_boot_only_checks_the_owner_registers_and_starts(make_loaders):
    pillar = {
        "phase": "boot",
        "display": {
            "agents": ["dcv", "anyware"],
            "owner": "alice",
            "dcv": {"web_port": 8443},
            "anyware": {"registration_code": CODE},
        },
    }
    states = display_states(make_loaders, pillar)

    assert list(states) == [
        "workstation-display-owner-exists",
        "workstation-display-dcv-owner-assigned",
        RUNNING,
        "workstation-display-anyware-registered",
        "workstation-display-anyware-service-running",
    ]
    assert states["workstation-display-dcv-owner-assigned"][1]["require"] == [
        {"display": "workstation-display-owner-exists"}
    ]
    assert states["workstation-display-dcv-owner-assigned"][1]["watch_in"] == [{"service": RUNNING}]
    assert states["workstation-display-anyware-registered"][1] == {
        "name": "anyware",
        "require_in": [{"service": "workstation-display-anyware-service-running"}],
    }
    assert states[RUNNING] == ("service.running", {"name": "dcvserver.service", "enable": True})


def test_ubuntu_puts_the_dcv_user_in_the_video_group_after_its_package(make_loaders):
    grains = {**GRAINS, "os": "Ubuntu", "oscodename": "jammy"}
    states = display_states(
        make_loaders, {"display": {"agents": ["dcv"], "owner": "alice"}}, grains
    )

    assert states["workstation-display-dcv-video-group-member"] == (
        "display.group_member",
        {"name": "dcv", "group": "video", "require": [{"dcc": PACKAGES}]},
    )


def test_a_td_overrides_one_state_by_id_with_extend(make_loaders):
    """The docs' example: a TD's own SLS includes workstation.display and changes one state's settings."""
    loaders = make_loaders(grains=GRAINS, pillar=example_pillar())
    roots = Path(loaders.opts["file_roots"]["base"][0])
    (roots / "td_display.sls").write_text(
        "include:\n"
        "  - workstation.display\n"
        "\n"
        "extend:\n"
        "  workstation-display-dcv-config-merged:\n"
        "    display.config_merged:\n"
        "      - settings: {connectivity: {web-port: 9443}, display: {target-fps: 60}}\n"
    )
    ran = loaders.modules.state.sls(
        "td_display", test=True
    )  # Salt applies extend: when it runs the states
    merged = next(
        state
        for key, state in ran.raw.items()
        if "_|-workstation-display-dcv-config-merged_|-" in key
    )

    assert merged["result"] is None
    assert merged["changes"] == {
        "[connectivity] web-port": {"old": None, "new": "9443"},
        "[display] target-fps": {"old": None, "new": "60"},
    }


def test_config_merged_answers_test_then_writes_then_converges(loaders, tmp_path):
    conf = tmp_path / "dcv.conf"
    conf.write_bytes(DCV_CONF)
    settings = {"connectivity": {"web-port": 9443}, "license": {"license-file": "5053@rlm"}}

    dry = loaders.states.display.config_merged(str(conf), settings=settings, style="dcv", test=True)
    assert conf.read_bytes() == DCV_CONF
    real = loaders.states.display.config_merged(str(conf), settings=settings, style="dcv")
    again = loaders.states.display.config_merged(str(conf), settings=settings, style="dcv")

    for result in (dry, real, again):
        _contract(result)
    assert dry.result is None and real.result is True and again.result is True
    assert (
        dry.changes
        == real.changes
        == {
            "[connectivity] web-port": {"old": None, "new": "9443"},
            "[license] license-file": {"old": None, "new": '"5053@rlm"'},
        }
    )
    assert again.changes == {}
    assert "target-fps = 30" in conf.read_text()


def test_a_missing_owner_fails_naming_the_pillar_path(loaders):
    result = loaders.states.display.owner_exists("no-such-artist")

    _contract(result)
    assert result.result is False and result.changes == {}
    assert "workstation:display:owner" in result.comment and "does not exist" in result.comment


def test_packages_dry_run_predicts_installs_without_touching_the_package_manager(loaders):
    missing = loaders.states.dcc.packages_installed(
        "dcv", packages={"nice-dcv-server": None}, test=True
    )
    present = loaders.states.dcc.packages_installed("dcv", packages={"dpkg": None})

    assert missing.result is None and missing.changes == {
        "installed": {"nice-dcv-server": "latest"}
    }
    assert present.result is True and present.changes == {}


def test_registration_runs_once_and_the_code_stays_out_of_results_and_logs(
    make_loaders, tmp_path, caplog
):
    marker = tmp_path / "registered"
    register, validate = tmp_path / "pcoip-register-host", tmp_path / "pcoip-validate-license"
    register.write_bytes(register_host_script(str(marker)))
    validate.write_bytes(validate_license_script(str(marker)))
    register.chmod(0o755)
    validate.chmod(0o755)
    loaders = make_loaders(
        grains=GRAINS,
        pillar={"display": {"agents": ["anyware"], "anyware": {"registration_code": CODE}}},
    )
    tools = {"register_tool": str(register), "validate_tool": str(validate)}

    with caplog.at_level(logging.DEBUG):
        dry = loaders.states.display.anyware_registered("anyware", test=True, **tools)
        assert not marker.exists()
        real = loaders.states.display.anyware_registered("anyware", **tools)
        again = loaders.states.display.anyware_registered("anyware", **tools)
        status = loaders.modules.display.status()

    assert dry.result is None and dry.changes == real.changes == {"registered": True}
    assert real.result is True and again.result is True and again.changes == {}
    assert marker.read_text().strip() == hashlib.sha256(CODE.encode()).hexdigest()
    outputs = repr([_contract(r) for r in (dry, real, again)]) + repr(status) + caplog.text
    for piece in (CODE, "CANARYFUNC4242", "6789"):
        assert piece not in outputs


def test_a_refused_code_fails_with_the_code_masked(make_loaders, tmp_path):
    register, validate = tmp_path / "pcoip-register-host", tmp_path / "pcoip-validate-license"
    register.write_bytes(register_host_script(str(tmp_path / "registered")))
    validate.write_bytes(validate_license_script(str(tmp_path / "registered")))
    register.chmod(0o755)
    validate.chmod(0o755)
    refused = "REJECTFUNC4242@ABCD-EF01-2345-6789"
    loaders = make_loaders(
        grains=GRAINS,
        pillar={"display": {"agents": ["anyware"], "anyware": {"registration_code": refused}}},
    )

    result = loaders.states.display.anyware_registered(
        "anyware", register_tool=str(register), validate_tool=str(validate)
    )

    assert result.result is False and result.changes == {}
    assert "refused code ********" in result.comment
    assert "workstation:display:anyware:registration_code" in result.comment
    assert "REJECTFUNC4242" not in result.comment and "6789" not in result.comment


def test_without_a_code_the_dry_run_already_fails_naming_the_pillar_path(make_loaders, tmp_path):
    validate = tmp_path / "pcoip-validate-license"
    validate.write_bytes(validate_license_script(str(tmp_path / "registered")))
    validate.chmod(0o755)
    loaders = make_loaders(
        grains=GRAINS, pillar={"display": {"agents": ["anyware"], "anyware": {}}}
    )

    dry = loaders.states.display.anyware_registered(
        "anyware", validate_tool=str(validate), test=True
    )

    _contract(dry)
    assert dry.result is False and dry.changes == {}
    assert "workstation:display:anyware:registration_code is empty" in dry.comment


def test_execution_functions_raise_so_salt_call_fails(loaders, tmp_path):
    link = tmp_path / "dcv.conf"
    link.symlink_to(tmp_path / "elsewhere")

    with pytest.raises(CommandExecutionError, match=f"{link} is not a regular file"):
        loaders.modules.display.merge_config(str(link), {"connectivity": {"web-port": 1}}, "dcv")
    with pytest.raises(CommandExecutionError, match=f"{link} is not a regular file"):
        loaders.modules.display.config_changes(str(link), {"connectivity": {"web-port": 1}}, "dcv")
    with pytest.raises(SaltInvocationError, match="unknown config style 'ini'"):
        loaders.modules.display.merge_config(str(tmp_path / "a.conf"), {"": {"a": 1}}, "ini")
    with pytest.raises(CommandExecutionError, match="is the HP Anyware agent installed"):
        loaders.modules.display.registered(validate_tool=str(tmp_path / "pcoip-validate-license"))
    with pytest.raises(CommandExecutionError, match="group no-such-group-here does not exist"):
        loaders.modules.display.add_to_group("dcv", "no-such-group-here")
    with pytest.raises(CommandExecutionError, match="workstation:display:firewall is ufw"):
        loaders.modules.display.open_ports(
            [{"port": 1, "protocol": "tcp"}], backend="ufw", test=True
        )


def test_failed_states_name_what_failed_and_the_pillar_path(loaders, monkeypatch, tmp_path):
    link = tmp_path / "dcv.conf"
    link.symlink_to(tmp_path / "elsewhere")
    # a dcv.conf in a folder moved by workstation:lookup:os:dcv_dir still names its pillar keys
    monkeypatch.setenv("PATH", str(tmp_path))

    merged = loaders.states.display.config_merged(
        str(link), settings={"connectivity": {"web-port": 1}}, style="dcv"
    )
    joined = loaders.states.display.group_member("dcv", group="no-such-group-here")
    ports = loaders.states.display.ports_open(
        "ports", ports=[{"port": 1, "protocol": "tcp"}], backend="ufw"
    )

    for result, words in (
        (merged, [f"{link} was not merged", "is not a regular file", "workstation:display:dcv"]),
        (
            joined,
            ["dcv did not join no-such-group-here", "does not exist", "workstation:display:agents"],
        ),
        (ports, ["ports were not opened", "workstation:display:firewall is ufw"]),
    ):
        _contract(result)
        assert result.result is False and result.changes == {}
        assert all(word in result.comment for word in words), result.comment


def test_ports_open_lists_the_ports_when_no_firewall_is_installed(loaders, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with neither firewall-cmd nor ufw
    rules = [
        {"port": 8443, "protocol": "tcp", "agent": "dcv"},
        {"port": 5901, "protocol": "tcp", "agent": "vnc"},
    ]

    result = loaders.states.display.ports_open("workstation-display", ports=rules)

    _contract(result)
    assert result.result is True and result.changes == {}
    assert "neither firewalld nor ufw is installed" in result.comment
    assert "5901/tcp, 8443/tcp" in result.comment


def test_ports_open_answers_test_then_opens_then_converges(loaders, monkeypatch, tmp_path):
    (tmp_path / "ufw").write_text(UFW)
    (tmp_path / "ufw").chmod(0o755)
    (tmp_path / "ufw.rules").write_text("8443/tcp\n")
    monkeypatch.setenv(
        "PATH", f"{tmp_path}:/usr/bin:/bin"
    )  # the stand-in first; it needs sed and friends
    rules = [
        {"port": 8443, "protocol": "tcp", "agent": "dcv"},
        {"port": 5901, "protocol": "tcp", "agent": "vnc"},
    ]

    dry = loaders.states.display.ports_open("ports", ports=rules, backend="ufw", test=True)
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n"
    real = loaders.states.display.ports_open("ports", ports=rules, backend="ufw")
    again = loaders.states.display.ports_open("ports", ports=rules, backend="ufw")

    for result in (dry, real, again):
        _contract(result)
    assert dry.result is None and real.result is True and again.result is True
    assert dry.changes == real.changes == {"backend": "ufw", "opened": ["5901/tcp"]}
    assert again.changes == {} and again.comment == "5901/tcp, 8443/tcp are open in ufw"
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n5901/tcp\n"


def test_an_agent_with_a_pillar_error_fails_alone_and_says_where(make_loaders):
    pillar = {
        "display": {"agents": ["dcv", "vnc"], "owner": "alice", "dcv": {"web_port": "eighty"}}
    }
    loaders = make_loaders(grains=GRAINS, pillar=pillar)
    chunks = {chunk["__id__"]: chunk for chunk in loaders.modules.state.show_low_sls("workstation")}

    refused = chunks["workstation-display-dcv-pillar-valid"]
    assert (refused["state"], refused["fun"]) == ("display", "pillar_valid")
    assert [key for key in chunks if key.startswith("workstation-display-dcv-")] == [
        "workstation-display-dcv-pillar-valid"
    ]
    assert {
        "workstation-display-vnc-packages-installed",
        "workstation-display-vnc-service-running",
    } <= set(chunks)
    result = loaders.states.display.pillar_valid("dcv", errors=refused["errors"])
    _contract(result)
    assert result.result is False and result.changes == {}
    assert "workstation:display:dcv:web_port: must be a TCP port number" in result.comment
