"""workstation:display: pillar checks, the states laid out per phase, registration, firewall, reporting."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from salt_workstation import config, contract, display, gpu_detect, pillar, units
from salt_workstation.errors import WorkstationError
from tests.system.standins.display import register_host_script, validate_license_script

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}
CODE = "CANARYCODE0123@AAAA-BBBB-CCCC-DDDD"
DEBIAN = display.Platform("Debian", "Debian", "x86_64", nvidia=False)
H200 = display.Platform("Debian", "Ubuntu", "x86_64", nvidia=True)


def make(display_section, phase="all"):
    return config.load({"phase": phase, "display": display_section}, GRAINS)


def full(**overrides):
    section = {
        "agents": ["dcv", "anyware", "vnc"],
        "owner": "alice",
        "dcv": {"license": "5053@rlm.studio.test", "web_port": 8443, "quic": True, "authentication": "system",
                "settings": {"display": {"target-fps": 60}}},
        "anyware": {"registration_code": CODE, "settings": {"pcoip.maximum_frame_rate": 30}},
        "vnc": {"display": 2, "settings": {"geometry": "2560x1440", "localhost": True}},
    }
    section.update(overrides)
    return section


def by_id(states):
    return {state["id"]: state for state in states}


def args(state):
    merged = {}
    for arg in state["args"]:
        merged.update(arg)
    return merged


# ---- pillar checks ---------------------------------------------------------------------------------


def test_a_full_section_is_valid_and_an_empty_one_asks_nothing():
    assert display.check(make(full())) == []
    assert display.check(make({})) == []
    assert contract.validate(make(full())) == []


@pytest.mark.parametrize(("section", "path", "words"), [
    ({"agents": ["anywhere"], "owner": "alice"}, "workstation:display:agents", "did you mean 'anyware'"),
    ({"agents": ["vnc"]}, "workstation:display:owner", "is required for dcv and vnc"),
    ({"agents": ["vnc"], "owner": "root"}, "workstation:display:owner", "must not be root"),
    ({"agents": ["vnc"], "owner": "Alice Smith"}, "workstation:display:owner", "user name"),
    ({"agents": ["dcv"], "owner": "a", "dcv": {"web_port": 70000}}, "workstation:display:dcv:web_port", "1-65535"),
    ({"agents": ["dcv"], "owner": "a", "dcv": {"settings": {"connectivity": {"web-port": 1}}}},
     "workstation:display:dcv:settings:connectivity:web-port", "is set by workstation:display:dcv:web_port"),
    ({"agents": ["dcv"], "owner": "a", "dcv": {"settings": {"display": {"x": [1]}}}},
     "workstation:display:dcv:settings:display:x", "got a list"),
    ({"agents": ["dcv"], "owner": "a", "dcv": {"versions": {"nice-dcv-server": 2024.0}}},
     "workstation:display:dcv:versions:nice-dcv-server", "quoted string"),
    ({"agents": ["dcv"], "owner": "a", "dcv": {"wep_port": 1}}, "workstation:display:dcv:wep_port", "web_port"),
    ({"agents": ["anyware"]}, "workstation:display:anyware", "needs registration_code"),
    ({"agents": ["anyware"], "anyware": {"registration_code": CODE, "license_server": "https://lls:7070/request"}},
     "workstation:display:anyware", "not both"),
    ({"agents": ["vnc"], "owner": "a", "vnc": {"display": 0}}, "workstation:display:vnc:display", "1 to 99"),
    ({"agents": ["vnc"], "owner": "a", "firewall": "iptables"}, "workstation:display:firewall", "firewalld, ufw"),
])
def test_each_mistake_names_its_pillar_path_and_the_fix(section, path, words):
    issues = display.check(make(section))
    assert any(issue.path == path and words in issue.message for issue in issues), [str(i) for i in issues]


def test_a_malformed_registration_code_is_reported_without_its_value():
    bad = "SECRET WITH SPACES 1234"
    issues = display.check(make({"agents": ["anyware"], "anyware": {"registration_code": bad}}))
    assert [issue.path for issue in issues] == ["workstation:display:anyware:registration_code"]
    assert "SECRET" not in str(issues[0]) and "1234" not in str(issues[0])


def test_bake_needs_no_owner():
    assert display.check(make({"agents": ["dcv", "vnc"]}, phase="bake")) == []


# ---- the states, per phase -------------------------------------------------------------------------


def test_phase_all_lays_out_every_state_with_its_requisites():
    states = by_id(display.formula_data(make(full()), DEBIAN)["states"])

    assert list(states) == [
        "workstation-display-owner",
        "workstation-display-dcv-packages", "workstation-display-dcv-config", "workstation-display-dcv-owner",
        "workstation-display-dcv-service",
        "workstation-display-anyware-packages", "workstation-display-anyware-config",
        "workstation-display-anyware-registration", "workstation-display-anyware-service",
        "workstation-display-vnc-packages", "workstation-display-vnc-config", "workstation-display-vnc-owner",
        "workstation-display-vnc-service",
        "workstation-display-firewall",
    ]
    assert args(states["workstation-display-dcv-packages"])["packages"] == {"nice-dcv-server": None, "nice-xdcv": None}
    assert args(states["workstation-display-anyware-packages"])["packages"] == {"pcoip-agent-standard": None}
    assert args(states["workstation-display-vnc-packages"])["packages"] == {"tigervnc-standalone-server": None}
    assert args(states["workstation-display-dcv-config"])["settings"] == {
        "license": {"license-file": "5053@rlm.studio.test"},
        "connectivity": {"web-port": 8443, "enable-quic-frontend": True},
        "security": {"authentication": "system"},
        "display": {"target-fps": 60},
    }
    assert args(states["workstation-display-dcv-owner"])["settings"] == {
        "session-management": {"create-session": True},
        "session-management/automatic-console-session": {"owner": "alice"},
    }
    assert args(states["workstation-display-vnc-owner"]) == {
        "name": "/etc/tigervnc/vncserver.users", "style": "tigervnc", "settings": {"": {":2": "alice"}},
        "require": [{"display": "workstation-display-owner"}, {"display": "workstation-display-vnc-config"},
                    {"dcc": "workstation-display-vnc-packages"}],
    }
    service = states["workstation-display-vnc-service"]
    assert service["function"] == "service.running"
    assert args(service)["name"] == "tigervncserver@:2.service" and args(service)["enable"] is True
    assert args(service)["watch"] == [{"display": "workstation-display-vnc-config"},
                                      {"display": "workstation-display-vnc-owner"}]
    assert args(states["workstation-display-anyware-service"])["require"] == [
        {"dcc": "workstation-display-anyware-packages"}, {"display": "workstation-display-anyware-registration"}]
    assert [f"{rule['port']}/{rule['protocol']}" for rule in args(states["workstation-display-firewall"])["ports"]] == [
        "8443/tcp", "8443/udp", "443/tcp", "4172/tcp", "60443/tcp", "4172/udp", "5902/tcp"]


def test_the_registration_code_is_in_no_state_argument():
    rendered = repr(display.formula_data(make(full()), DEBIAN))
    assert CODE not in rendered and "CANARY" not in rendered


def test_bake_installs_configures_and_enables_without_owner_registration_or_start():
    states = by_id(display.formula_data(make(full(), phase="bake"), DEBIAN)["states"])

    assert not [key for key in states if key.endswith(("-owner", "-registration"))]
    for agent, unit in (("dcv", "dcvserver.service"), ("anyware", "pcoip-agent.service"),
                        ("vnc", "tigervncserver@:2.service")):
        service = states[f"workstation-display-{agent}-service"]
        assert service["function"] == "workstation.unit_enabled"
        assert args(service) == {"name": unit, "require": [{"dcc": f"workstation-display-{agent}-packages"}]}
    assert "workstation-display-firewall" in states


def test_boot_only_checks_the_owner_registers_and_starts():
    states = by_id(display.formula_data(make(full(), phase="boot"), DEBIAN)["states"])

    assert list(states) == [
        "workstation-display-owner", "workstation-display-dcv-owner", "workstation-display-dcv-service",
        "workstation-display-anyware-registration", "workstation-display-anyware-service",
        "workstation-display-vnc-owner", "workstation-display-vnc-service",
    ]
    assert args(states["workstation-display-dcv-owner"])["require"] == [{"display": "workstation-display-owner"}]
    assert args(states["workstation-display-dcv-service"])["watch"] == [{"display": "workstation-display-dcv-owner"}]


def test_an_nvidia_gpu_brings_dcv_gl_and_the_graphics_agent_and_ubuntu_the_video_group():
    cfg = make(full(dcv={"web_viewer": True}))
    states = by_id(display.formula_data(cfg, H200)["states"])

    assert list(args(states["workstation-display-dcv-packages"])["packages"]) == [
        "nice-dcv-server", "nice-xdcv", "nice-dcv-gl", "nice-dcv-web-viewer"]
    assert args(states["workstation-display-anyware-packages"])["packages"] == {"pcoip-agent-graphics": None}
    group = states["workstation-display-dcv-video-group"]
    assert group["function"] == "display.group_member"
    assert args(group) == {"name": "dcv", "group": "video", "require": [{"dcc": "workstation-display-dcv-packages"}]}


def test_pins_and_an_explicit_flavor_override_detection():
    cfg = make(full(dcv={"gl": False, "versions": {"nice-dcv-server": "2024.0-17979-1"}},
                    anyware={"flavor": "standard", "license_server": "https://lls.studio.test:7070/request"}))
    states = by_id(display.formula_data(cfg, H200)["states"])

    assert args(states["workstation-display-dcv-packages"])["packages"] == {
        "nice-dcv-server": "2024.0-17979-1", "nice-xdcv": None}
    assert args(states["workstation-display-anyware-packages"])["packages"] == {"pcoip-agent-standard": None}
    assert args(states["workstation-display-anyware-config"])["settings"] == {
        "": {"pcoip.license_server_path": "https://lls.studio.test:7070/request"}}
    assert "workstation-display-anyware-registration" not in states


def test_an_agent_with_pillar_errors_fails_alone_and_the_others_converge():
    cfg = make(full(dcv={"web_port": "eighty"}))
    states = by_id(display.formula_data(cfg, DEBIAN)["states"])

    refused = states["workstation-display-dcv"]
    assert refused["function"] == "display.pillar_valid"
    assert args(refused)["errors"] == ["workstation:display:dcv:web_port: must be a TCP port number (1-65535), got 'eighty'"]
    assert not [key for key in states if key.startswith("workstation-display-dcv-")]
    assert "workstation-display-vnc-service" in states and "workstation-display-anyware-service" in states


def test_a_shared_error_stops_every_agent():
    states = display.formula_data(make(full(owner="root")), DEBIAN)["states"]
    assert [state["id"] for state in states] == [
        "workstation-display-dcv", "workstation-display-anyware", "workstation-display-vnc"]


def test_the_recorded_h200_counts_as_an_nvidia_gpu():
    grains = {"os_family": "Debian", "os": "Ubuntu", "cpuarch": "x86_64",
              **gpu_detect.grains_of(str(FIXTURES / "h200-open-580"))}

    assert display.platform_of(grains) == H200
    assert display.platform_of({"os_family": "RedHat", "workstation_gpus": []}).nvidia is False


def test_package_plan_reports_what_a_dry_run_can_know():
    wanted = {"nice-dcv-server": "2024.0-2", "nice-xdcv": None, "nice-dcv-gl": None}
    have = {"nice-dcv-server": "2024.0-1", "nice-xdcv": "", "nice-dcv-gl": "2024.0-1"}

    assert units.package_plan(wanted, have) == {
        "installed": {"nice-xdcv": "latest"},
        "changed": {"nice-dcv-server": {"old": "2024.0-1", "new": "2024.0-2"}},
    }
    assert units.package_plan({"nice-xdcv": None}, {"nice-xdcv": "2024.0-1"}) == {}


def test_owner_problems_name_the_pillar_path():
    assert "workstation:display:owner" in display.owner_problem("no-such-artist-here")
    assert "does not exist" in display.owner_problem("no-such-artist-here")
    assert "is root" in display.owner_problem("root")
    assert display.owner_problem("nobody") is None


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

    assert display.anyware_registered(validate) is False
    display.register_anyware(CODE, register)

    assert display.anyware_registered(validate) is True
    assert marker.read_text().strip() == hashlib.sha256(CODE.encode()).hexdigest()


def test_a_refused_code_is_masked_in_the_error(hp_tools):
    register, _, _ = hp_tools
    refused = "REJECT0123456789@EEEE-FFFF-1111-2222"

    with pytest.raises(WorkstationError) as caught:
        display.register_anyware(refused, register)

    message = str(caught.value)
    assert "refused code ********" in message and "workstation:display:anyware:registration_code" in message
    for piece in (refused, "REJECT0123456789", "EEEE", "2222"):
        assert piece not in message


def test_missing_tools_say_the_agent_is_not_installed(tmp_path):
    with pytest.raises(WorkstationError, match="is the HP Anyware agent installed"):
        display.register_anyware(CODE, str(tmp_path / "pcoip-register-host"))
    with pytest.raises(WorkstationError, match="is the HP Anyware agent installed"):
        display.anyware_registered(str(tmp_path / "pcoip-validate-license"))


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

RULES = [{"port": 8443, "protocol": "tcp", "agent": "dcv"}, {"port": 8443, "protocol": "udp", "agent": "dcv"},
         {"port": 5901, "protocol": "tcp", "agent": "vnc"}]


def _tool(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return folder


def test_ufw_opens_only_the_missing_ports(tmp_path):
    path = str(_tool(tmp_path, "ufw", UFW))
    (tmp_path / "ufw.rules").write_text("8443/tcp\n22/tcp\n")

    predicted = display.open_ports(RULES, "auto", test=True, path=path)
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n22/tcp\n"
    done = display.open_ports(RULES, "auto", path=path)
    again = display.open_ports(RULES, "auto", path=path)

    assert predicted == done == {"backend": "ufw", "opened": ["5901/tcp", "8443/udp"],
                                 "ports": ["5901/tcp", "8443/tcp", "8443/udp"]}
    assert again["opened"] == []
    assert (tmp_path / "ufw.rules").read_text() == "8443/tcp\n22/tcp\n5901/tcp\n8443/udp\n"


def test_firewalld_is_preferred_and_opened_permanently_and_now(tmp_path):
    path = str(_tool(tmp_path, "firewall-cmd", FIREWALL_CMD))
    _tool(tmp_path, "ufw", UFW)

    done = display.open_ports(RULES[:1], "auto", path=path)

    assert done["backend"] == "firewalld" and done["opened"] == ["8443/tcp"]
    assert (tmp_path / "permanent").read_text() == "8443/tcp\n"
    assert (tmp_path / "runtime").read_text() == "8443/tcp\n"
    assert display.open_ports(RULES[:1], "auto", path=path)["opened"] == []


def test_without_a_firewall_the_ports_are_only_listed(tmp_path):
    assert display.open_ports(RULES, "auto", path=str(tmp_path)) == {
        "backend": None, "opened": [], "ports": ["5901/tcp", "8443/tcp", "8443/udp"]}
    with pytest.raises(WorkstationError, match="workstation:display:firewall is ufw"):
        display.open_ports(RULES, "ufw", path=str(tmp_path))


# ---- reporting -------------------------------------------------------------------------------------


def test_listening_sees_a_real_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert (port, "tcp") in display.listening()
    assert (port, "tcp") not in display.listening()


def test_config_drift_names_only_the_keys_that_differ(tmp_path):
    conf = tmp_path / "dcv.conf"
    conf.write_text("[connectivity]\nweb-port=8443\n[display]\ntarget-fps = 30\n")
    files = [display.ConfigFile(str(conf), "dcv", {"connectivity": {"web-port": 8443}, "display": {"target-fps": 60}})]

    assert display.config_drift(files) == {str(conf): {"[display] target-fps": {"want": "60", "have": "30"}}}
