"""The display states through Salt's loaders: the rendered formula, the state contract, test=True, idempotency,
and the registration code kept out of every output."""

from __future__ import annotations

import hashlib
import logging

from tests.system.standins.display import DCV_CONF, register_host_script, validate_license_script

CONTRACT = {"name", "result", "changes", "comment"}
CODE = "CANARYFUNC4242@ABCD-EF01-2345-6789"
GRAINS = {"os_family": "Debian", "os": "Debian", "oscodename": "bookworm", "cpuarch": "x86_64"}


def _contract(result):
    raw = result.full_return
    assert CONTRACT <= set(raw)
    assert isinstance(raw["changes"], dict) and isinstance(raw["comment"], str)
    assert raw["result"] in (True, False, None)
    return raw


def test_the_formula_renders_the_display_states_and_never_the_code(make_loaders):
    pillar = {"display": {
        "agents": ["dcv", "anyware"], "owner": "alice",
        "dcv": {"web_port": 8443, "quic": True},
        "anyware": {"registration_code": CODE},
    }}
    low = make_loaders(grains=GRAINS, pillar=pillar).modules.state.show_low_sls("workstation")
    chunks = {chunk["__id__"]: chunk for chunk in low if chunk["__id__"].startswith("workstation-display-")}

    assert {key: (chunk["state"], chunk["fun"]) for key, chunk in chunks.items()} == {
        "workstation-display-owner": ("display", "owner_exists"),
        "workstation-display-dcv-packages": ("dcc", "packages_installed"),
        "workstation-display-dcv-config": ("display", "config_merged"),
        "workstation-display-dcv-owner": ("display", "config_merged"),
        "workstation-display-dcv-service": ("service", "running"),
        "workstation-display-anyware-packages": ("dcc", "packages_installed"),
        "workstation-display-anyware-registration": ("display", "anyware_registered"),
        "workstation-display-anyware-service": ("service", "running"),
        "workstation-display-firewall": ("display", "ports_open"),
    }
    assert chunks["workstation-display-dcv-config"]["settings"] == {
        "connectivity": {"web-port": 8443, "enable-quic-frontend": True}}
    assert chunks["workstation-display-dcv-service"]["watch"] == [
        {"display": "workstation-display-dcv-config"}, {"display": "workstation-display-dcv-owner"}]
    assert CODE not in repr(low)


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
    assert dry.changes == real.changes == {
        "[connectivity] web-port": {"old": None, "new": "9443"},
        "[license] license-file": {"old": None, "new": '"5053@rlm"'},
    }
    assert again.changes == {}
    assert "target-fps = 30" in conf.read_text()


def test_a_missing_owner_fails_naming_the_pillar_path(loaders):
    result = loaders.states.display.owner_exists("no-such-artist")

    _contract(result)
    assert result.result is False and result.changes == {}
    assert "workstation:display:owner" in result.comment and "does not exist" in result.comment


def test_packages_dry_run_predicts_installs_without_touching_the_package_manager(loaders):
    missing = loaders.states.dcc.packages_installed("dcv", packages={"nice-dcv-server": None}, test=True)
    present = loaders.states.dcc.packages_installed("dcv", packages={"dpkg": None})

    assert missing.result is None and missing.changes == {"installed": {"nice-dcv-server": "latest"}}
    assert present.result is True and present.changes == {}


def test_registration_runs_once_and_the_code_stays_out_of_results_and_logs(make_loaders, tmp_path, caplog):
    marker = tmp_path / "registered"
    register, validate = tmp_path / "pcoip-register-host", tmp_path / "pcoip-validate-license"
    register.write_bytes(register_host_script(str(marker)))
    validate.write_bytes(validate_license_script(str(marker)))
    register.chmod(0o755)
    validate.chmod(0o755)
    loaders = make_loaders(grains=GRAINS, pillar={"display": {"agents": ["anyware"],
                                                              "anyware": {"registration_code": CODE}}})
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
    loaders = make_loaders(grains=GRAINS, pillar={"display": {"agents": ["anyware"],
                                                              "anyware": {"registration_code": refused}}})

    result = loaders.states.display.anyware_registered("anyware", register_tool=str(register),
                                                       validate_tool=str(validate))

    assert result.result is False
    assert "refused code ********" in result.comment
    assert "REJECTFUNC4242" not in result.comment and "6789" not in result.comment


def test_ports_open_lists_the_ports_when_no_firewall_is_installed(loaders, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with neither firewall-cmd nor ufw
    rules = [{"port": 8443, "protocol": "tcp", "agent": "dcv"}, {"port": 5901, "protocol": "tcp", "agent": "vnc"}]

    result = loaders.states.display.ports_open("workstation-display", ports=rules)

    _contract(result)
    assert result.result is True and result.changes == {}
    assert "neither firewalld nor ufw is installed" in result.comment
    assert "5901/tcp, 8443/tcp" in result.comment


def test_an_agent_with_a_pillar_error_fails_alone_and_says_where(make_loaders):
    pillar = {"display": {"agents": ["dcv", "vnc"], "owner": "alice", "dcv": {"web_port": "eighty"}}}
    loaders = make_loaders(grains=GRAINS, pillar=pillar)
    chunks = {chunk["__id__"]: chunk for chunk in loaders.modules.state.show_low_sls("workstation")}

    refused = chunks["workstation-display-dcv"]
    assert (refused["state"], refused["fun"]) == ("display", "pillar_valid")
    assert "workstation-display-vnc-packages" in chunks and "workstation-display-dcv-packages" not in chunks
    result = loaders.states.display.pillar_valid("dcv", errors=refused["errors"])
    _contract(result)
    assert result.result is False and result.changes == {}
    assert "workstation:display:dcv:web_port: must be a TCP port number" in result.comment
