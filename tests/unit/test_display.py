"""workstation:display: pillar checks (contract), the plan per phase, registration and firewall (effects),
reporting (status)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from salt_workstation import config, display, gpu_detect, units
from salt_workstation import contract as workstation_contract
from salt_workstation.display import effects, plan, status
from salt_workstation.errors import WorkstationError
from tests.system.standins.display import register_host_script, validate_license_script

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}
CODE = "CANARYCODE0123@AAAA-BBBB-CCCC-DDDD"
DEBIAN = plan.Platform("Debian", "Debian", "x86_64", nvidia=False)
H200 = plan.Platform("Debian", "Ubuntu", "x86_64", nvidia=True)
STEPS = ("video_group", "configured", "owned", "registers")


def make(display_section, phase="all"):
    return config.load({"phase": phase, "display": display_section}, GRAINS)


def full(**overrides):
    section = {
        "agents": ["dcv", "anyware", "vnc"],
        "owner": "alice",
        "dcv": {
            "license": "5053@rlm.studio.test",
            "web_port": 8443,
            "quic": True,
            "authentication": "system",
            "settings": {"display": {"target-fps": 60}},
        },
        "anyware": {"registration_code": CODE, "settings": {"pcoip.maximum_frame_rate": 30}},
        "vnc": {"display": 2, "settings": {"geometry": "2560x1440", "localhost": True}},
    }
    section.update(overrides)
    return section


def by_name(agents):
    return {agent["name"]: agent for agent in agents}


def steps(agent):
    """Which of its optional states the SLS writes for this agent."""
    return {step for step in STEPS if agent[step]}


# ---- pillar checks ---------------------------------------------------------------------------------


def test_a_full_section_is_valid_and_an_empty_one_asks_nothing():
    assert display.check(make(full())) == []
    assert display.check(make({})) == []
    assert workstation_contract.validate(make(full())) == []


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        (
            {"agents": ["anywhere"], "owner": "alice"},
            "workstation:display:agents",
            "did you mean 'anyware'",
        ),
        ({"agents": ["vnc"]}, "workstation:display:owner", "is required for dcv and vnc"),
        ({"agents": ["vnc"], "owner": "root"}, "workstation:display:owner", "must not be root"),
        ({"agents": ["vnc"], "owner": "Alice Smith"}, "workstation:display:owner", "user name"),
        (
            {"agents": ["dcv"], "owner": "a", "dcv": {"web_port": 70000}},
            "workstation:display:dcv:web_port",
            "1-65535",
        ),
        (
            {
                "agents": ["dcv"],
                "owner": "a",
                "dcv": {"settings": {"connectivity": {"web-port": 1}}},
            },
            "workstation:display:dcv:settings:connectivity:web-port",
            "is set by workstation:display:dcv:web_port",
        ),
        (
            {"agents": ["dcv"], "owner": "a", "dcv": {"settings": {"display": {"x": [1]}}}},
            "workstation:display:dcv:settings:display:x",
            "got a list",
        ),
        (
            {"agents": ["dcv"], "owner": "a", "dcv": {"versions": {"nice-dcv-server": 2024.0}}},
            "workstation:display:dcv:versions:nice-dcv-server",
            "quoted string",
        ),
        (
            {"agents": ["dcv"], "owner": "a", "dcv": {"wep_port": 1}},
            "workstation:display:dcv:wep_port",
            "web_port",
        ),
        ({"agents": ["anyware"]}, "workstation:display:anyware", "needs registration_code"),
        (
            {
                "agents": ["anyware"],
                "anyware": {
                    "registration_code": CODE,
                    "license_server": "https://lls:7070/request",
                },
            },
            "workstation:display:anyware",
            "not both",
        ),
        (
            {"agents": ["vnc"], "owner": "a", "vnc": {"display": 0}},
            "workstation:display:vnc:display",
            "1 to 99",
        ),
        (
            {"agents": ["vnc"], "owner": "a", "firewall": "iptables"},
            "workstation:display:firewall",
            "firewalld, ufw",
        ),
    ],
)
def test_each_mistake_names_its_pillar_path_and_the_fix(section, path, words):
    issues = display.check(make(section))
    assert any(issue.path == path and words in issue.message for issue in issues), [
        str(i) for i in issues
    ]


def test_a_malformed_registration_code_is_reported_without_its_value():
    bad = "SECRET WITH SPACES 1234"
    issues = display.check(make({"agents": ["anyware"], "anyware": {"registration_code": bad}}))
    assert [issue.path for issue in issues] == ["workstation:display:anyware:registration_code"]
    assert "SECRET" not in str(issues[0]) and "1234" not in str(issues[0])


def test_bake_needs_no_owner():
    assert display.check(make({"agents": ["dcv", "vnc"]}, phase="bake")) == []


# ---- the plan, per phase ---------------------------------------------------------------------------
# (the states the SLS writes from it, with their requisites: tests/functional/test_display.py)


def test_phase_all_plans_every_agent_and_every_step():
    data = plan.plan(make(full()), DEBIAN)
    agents = by_name(data["agents"])

    assert (data["install"], data["hand_over"], data["start_services"]) == (True, True, True)
    assert data["owner"] == "alice" and data["check_owner"] is True and data["blocked"] == []
    assert data["after_repositories"] is False  # no workstation:repositories: nothing to wait for
    assert list(agents) == ["dcv", "anyware", "vnc"]
    assert agents["dcv"]["packages"] == {"nice-dcv-server": None, "nice-xdcv": None}
    assert agents["anyware"]["packages"] == {"pcoip-agent-standard": None}
    assert agents["vnc"]["packages"] == {"tigervnc-standalone-server": None}
    assert agents["dcv"]["config"] == {
        "path": "/etc/dcv/dcv.conf",
        "style": "dcv",
        "settings": {
            "license": {"license-file": "5053@rlm.studio.test"},
            "connectivity": {"web-port": 8443, "enable-quic-frontend": True},
            "security": {"authentication": "system"},
            "display": {"target-fps": 60},
        },
    }
    assert agents["dcv"]["owner_file"]["settings"] == {
        "session-management": {"create-session": True},
        "session-management/automatic-console-session": {"owner": "alice"},
    }
    assert agents["vnc"]["owner_file"] == {
        "path": "/etc/tigervnc/vncserver.users",
        "style": "tigervnc",
        "settings": {"": {":2": "alice"}},
    }
    assert {name: steps(agent) for name, agent in agents.items()} == {
        "dcv": {"configured", "owned"},
        "anyware": {"configured", "registers"},
        "vnc": {"configured", "owned"},
    }
    assert [agents[name]["unit"] for name in agents] == [
        "dcvserver.service",
        "pcoip-agent.service",
        "tigervncserver@:2.service",
    ]
    assert data["firewall"]["open"] is True and data["firewall"]["backend"] == "auto"
    assert [plan.rule_text(rule) for rule in data["firewall"]["ports"]] == [
        "8443/tcp",
        "8443/udp",
        "443/tcp",
        "4172/tcp",
        "60443/tcp",
        "4172/udp",
        "5902/tcp",
    ]


def test_the_registration_code_is_in_no_plan():
    rendered = repr(plan.plan(make(full()), DEBIAN))
    assert CODE not in rendered and "CANARY" not in rendered


def test_bake_installs_configures_and_enables_without_owner_registration_or_start():
    data = plan.plan(make(full(), phase="bake"), DEBIAN)

    assert (data["install"], data["hand_over"], data["start_services"]) == (True, False, False)
    assert data["check_owner"] is False
    assert {agent["name"]: steps(agent) for agent in data["agents"]} == {
        "dcv": {"configured"},
        "anyware": {"configured"},
        "vnc": {"configured"},
    }
    assert [agent["unit"] for agent in data["agents"]] == [
        "dcvserver.service",
        "pcoip-agent.service",
        "tigervncserver@:2.service",
    ]
    assert data["firewall"]["open"] is True


def test_boot_only_checks_the_owner_registers_and_starts():
    data = plan.plan(make(full(), phase="boot"), DEBIAN)

    assert (data["install"], data["hand_over"], data["start_services"]) == (False, True, True)
    assert data["check_owner"] is True and data["firewall"]["open"] is False
    assert {agent["name"]: steps(agent) for agent in data["agents"]} == {
        "dcv": {"owned"},
        "anyware": {"registers"},
        "vnc": {"owned"},
    }


def test_an_nvidia_gpu_brings_dcv_gl_and_the_graphics_agent_and_ubuntu_the_video_group():
    agents = by_name(plan.plan(make(full(dcv={"web_viewer": True})), H200)["agents"])

    assert list(agents["dcv"]["packages"]) == [
        "nice-dcv-server",
        "nice-xdcv",
        "nice-dcv-gl",
        "nice-dcv-web-viewer",
    ]
    assert agents["anyware"]["packages"] == {"pcoip-agent-graphics": None}
    assert agents["dcv"]["video_group"] is True
    assert by_name(plan.plan(make(full()), DEBIAN)["agents"])["dcv"]["video_group"] is False
    assert (
        by_name(plan.plan(make(full(), phase="boot"), H200)["agents"])["dcv"]["video_group"]
        is False
    )


def test_pins_and_an_explicit_flavor_override_detection():
    cfg = make(
        full(
            dcv={"gl": False, "versions": {"nice-dcv-server": "2024.0-17979-1"}},
            anyware={
                "flavor": "standard",
                "license_server": "https://lls.studio.test:7070/request",
            },
        )
    )
    agents = by_name(plan.plan(cfg, H200)["agents"])

    assert agents["dcv"]["packages"] == {"nice-dcv-server": "2024.0-17979-1", "nice-xdcv": None}
    assert agents["anyware"]["packages"] == {"pcoip-agent-standard": None}
    assert agents["anyware"]["config"]["settings"] == {
        "": {"pcoip.license_server_path": "https://lls.studio.test:7070/request"}
    }
    assert agents["anyware"]["registers"] is False


def test_an_agent_with_pillar_errors_is_blocked_alone_and_the_others_converge():
    data = plan.plan(make(full(dcv={"web_port": "eighty"})), DEBIAN)

    assert data["blocked"] == [
        {
            "name": "dcv",
            "title": "Amazon DCV",
            "errors": [
                "workstation:display:dcv:web_port: must be a TCP port number (1-65535), got 'eighty'"
            ],
        }
    ]
    assert [agent["name"] for agent in data["agents"]] == ["anyware", "vnc"]
    assert [plan.rule_text(rule) for rule in data["firewall"]["ports"]] == [
        "443/tcp",
        "4172/tcp",
        "60443/tcp",
        "4172/udp",
        "5902/tcp",
    ]


def test_a_shared_error_stops_every_agent():
    data = plan.plan(make(full(owner="root")), DEBIAN)

    assert [entry["name"] for entry in data["blocked"]] == ["dcv", "anyware", "vnc"]
    assert (
        data["agents"] == [] and data["check_owner"] is False and data["firewall"]["open"] is False
    )


def test_the_studio_repositories_come_first_only_when_there_are_some():
    cfg = config.load(
        {"display": full(), "repositories": {"studio": {"url": "https://repo.studio.test/apt"}}},
        GRAINS,
    )
    assert plan.plan(cfg, DEBIAN)["after_repositories"] is True


def test_the_recorded_h200_counts_as_an_nvidia_gpu():
    grains = {
        "os_family": "Debian",
        "os": "Ubuntu",
        "cpuarch": "x86_64",
        **gpu_detect.grains_of(str(FIXTURES / "h200-open-580")),
    }

    assert plan.platform_of(grains) == H200
    assert plan.platform_of({"os_family": "RedHat", "workstation_gpus": []}).nvidia is False


def test_package_plan_reports_what_a_dry_run_can_know():
    wanted = {"nice-dcv-server": "2024.0-2", "nice-xdcv": None, "nice-dcv-gl": None}
    have = {"nice-dcv-server": "2024.0-1", "nice-xdcv": "", "nice-dcv-gl": "2024.0-1"}

    assert units.package_plan(wanted, have) == {
        "installed": {"nice-xdcv": "latest"},
        "changed": {"nice-dcv-server": {"old": "2024.0-1", "new": "2024.0-2"}},
    }
    assert units.package_plan({"nice-xdcv": None}, {"nice-xdcv": "2024.0-1"}) == {}


def test_owner_problems_name_the_pillar_path():
    assert "workstation:display:owner" in status.owner_problem("no-such-artist-here")
    assert "does not exist" in status.owner_problem("no-such-artist-here")
    assert "is root" in status.owner_problem("root")
    assert status.owner_problem("nobody") is None


# ---- HP Anyware registration -----------------------------------------------------------------------


@pytest.fixture
def hp_tools(tmp_path):
    marker = tmp_path / "state" / "registration.sha256"
    register, validate = tmp_path / "pcoip-register-host", tmp_path / "pcoip-validate-license"
    register.write_bytes(register_host_script(str(marker)))
    validate.write_bytes(validate_license_script(str(marker)))
    register.chmod(0o755)
    validate.chmod(0o755)
    return str(register), str(validate), marker


def test_registration_hands_the_code_to_hps_tool_once(hp_tools):
    register, validate, marker = hp_tools

    assert effects.anyware_registered(validate) is False
    effects.register_anyware(CODE, register)

    assert effects.anyware_registered(validate) is True
    assert marker.read_text().strip() == hashlib.sha256(CODE.encode()).hexdigest()


def test_a_refused_code_is_masked_in_the_error(hp_tools):
    register, _, _ = hp_tools
    refused = "REJECT0123456789@EEEE-FFFF-1111-2222"

    with pytest.raises(WorkstationError) as caught:
        effects.register_anyware(refused, register)

    message = str(caught.value)
    assert (
        "refused code ********" in message
        and "workstation:display:anyware:registration_code" in message
    )
    for piece in (refused, "REJECT0123456789", "EEEE", "2222"):
        assert piece not in message


def test_missing_tools_say_the_agent_is_not_installed(tmp_path):
    with pytest.raises(WorkstationError, match="is the HP Anyware agent installed"):
        effects.register_anyware(CODE, str(tmp_path / "pcoip-register-host"))
    with pytest.raises(WorkstationError, match="is the HP Anyware agent installed"):
        effects.anyware_registered(str(tmp_path / "pcoip-validate-license"))


# ---- firewall --------------------------------------------------------------------------------------

UFW = """#!/bin/sh
# ufw stand-in: rules kept one per line in a file beside it
rules="$(dirname "$0")/ufw.rules"
touch "$rules"
case "$1" in
  show) echo "Added user rules (see 'ufw status' for running firewall):"; sed 's/^/ufw allow /' "$rules" ;;
  allow) echo "$2" >> "$rules"; echo "Rules updated" ;;
  *) exit 2 ;;
esac
"""

FIREWALL_CMD = """#!/bin/sh
# firewall-cmd stand-in: a running firewalld whose permanent and runtime ports are files beside it
here="$(dirname "$0")"
touch "$here/permanent" "$here/runtime"
log="$here/calls"; echo "$*" >> "$log"
case "$1" in
  --state) echo running ;;
  --permanent)
    case "$2" in
      --query-port=*) grep -qx "${2#--query-port=}" "$here/permanent" ;;
      --add-port=*) echo "${2#--add-port=}" >> "$here/permanent"; echo success ;;
    esac ;;
  --add-port=*) echo "${1#--add-port=}" >> "$here/runtime"; echo success ;;
  *) exit 2 ;;
esac
"""

RULES = [
    {"port": 8443, "protocol": "tcp", "agent": "dcv"},
    {"port": 8443, "protocol": "udp", "agent": "dcv"},
    {"port": 5901, "protocol": "tcp", "agent": "vnc"},
]


def _tool(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return folder


def test_ufw_opens_only_the_missing_ports(tmp_path):
    path = str(_tool(tmp_path, "ufw", UFW))
    (tmp_path / "ufw.rules").write_text("8443/tcp\n22/tcp\n")

    closed = effects.closed_ports(RULES, "auto", path=path)
    predicted = effects.open_ports(RULES, "auto", test=True, path=path)
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n22/tcp\n"
    assert closed == {
        "backend": "ufw",
        "closed": ["5901/tcp", "8443/udp"],
        "ports": ["5901/tcp", "8443/tcp", "8443/udp"],
    }
    done = effects.open_ports(RULES, "auto", path=path)
    again = effects.open_ports(RULES, "auto", path=path)

    assert (
        predicted
        == done
        == {
            "backend": "ufw",
            "opened": ["5901/tcp", "8443/udp"],
            "ports": ["5901/tcp", "8443/tcp", "8443/udp"],
        }
    )
    assert again["opened"] == []
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n22/tcp\n5901/tcp\n8443/udp\n"


def test_firewalld_is_preferred_and_opened_permanently_and_now(tmp_path):
    path = str(_tool(tmp_path, "firewall-cmd", FIREWALL_CMD))
    _tool(tmp_path, "ufw", UFW)

    done = effects.open_ports(RULES[:1], "auto", path=path)

    assert done["backend"] == "firewalld" and done["opened"] == ["8443/tcp"]
    assert (tmp_path / "permanent").read_text() == "8443/tcp\n"
    assert (tmp_path / "runtime").read_text() == "8443/tcp\n"
    assert effects.open_ports(RULES[:1], "auto", path=path)["opened"] == []


def test_without_a_firewall_the_ports_are_only_listed(tmp_path):
    assert effects.open_ports(RULES, "auto", path=str(tmp_path)) == {
        "backend": None,
        "opened": [],
        "ports": ["5901/tcp", "8443/tcp", "8443/udp"],
    }
    with pytest.raises(WorkstationError, match="workstation:display:firewall is ufw"):
        effects.open_ports(RULES, "ufw", path=str(tmp_path))


# ---- reporting -------------------------------------------------------------------------------------


def test_listening_sees_a_real_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert (port, "tcp") in status.listening()
    assert (port, "tcp") not in status.listening()


def test_connected_counts_established_sessions_on_the_agent_port_only():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert status.connected({port}) == 0  # listening alone is no session
        with socket.create_connection(("127.0.0.1", port)) as client:
            session, _ = server.accept()
            with session:
                assert status.connected({port}) == 1
                assert client.getpeername()[1] == port  # its own side is not counted: one session


def test_config_drift_names_only_the_keys_that_differ(tmp_path):
    conf = tmp_path / "dcv.conf"
    conf.write_text("[connectivity]\nweb-port=8443\n[display]\ntarget-fps = 30\n")
    files = [
        plan.ConfigFile(
            str(conf), "dcv", {"connectivity": {"web-port": 8443}, "display": {"target-fps": 60}}
        )
    ]

    assert status.config_drift(files) == {
        str(conf): {"[display] target-fps": {"want": "60", "have": "30"}}
    }


def test_config_changes_predict_the_merge_and_write_nothing(tmp_path):
    conf = tmp_path / "dcv.conf"
    conf.write_text("[connectivity]\nweb-port=8443\n")
    wanted = {"connectivity": {"web-port": 9443}}

    predicted = status.config_changes(str(conf), wanted, "dcv")
    assert conf.read_text() == "[connectivity]\nweb-port=8443\n"
    written = effects.merge_config(str(conf), wanted, "dcv")

    assert predicted == written == {"[connectivity] web-port": {"old": "8443", "new": "9443"}}
    assert status.config_changes(str(conf), wanted, "dcv") == {}
    assert status.config_changes(str(tmp_path / "absent.conf"), wanted, "dcv") == {
        "[connectivity] web-port": {"old": None, "new": "9443"}
    }


def test_group_membership_is_read_and_a_missing_group_is_an_error():
    assert status.in_group("no-such-artist-here", "root") is False
    with pytest.raises(WorkstationError, match="group no-such-group-here does not exist"):
        status.in_group("dcv", "no-such-group-here")
