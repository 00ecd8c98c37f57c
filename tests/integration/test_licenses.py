"""`workstation.licenses` through a real master and minion, and the canary that proves secrets stay put.

The canary test starts its own minion of the shared master with every log level on
(`log_level_logfile: all`), per-state events on the bus and an sdb profile (Salt's `yaml`
driver), applies a pillar whose node-locked licenses, Autodesk product key and HP Anyware
registration code are canaries, in pillar or by `sdb://` reference, then searches every
channel a secret could leak through: the minion's log file, the master's event
bus, the job cache (`salt-run jobs.lookup_jid`), the state output,
`state.show_sls` / `state.show_low_sls`, and the master's log (at debug).
The masterless canary does the same for `salt-call --local --log-level=all`, where the
minion renders the pillar itself, with every secret by reference.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.functional.test_licenses import licenses_pillar
from tests.support.masterless import TOP, masterless_call, minion_config, system_paths_under
from tests.support.states import by_id, changed, failed
from tests.system.standins.display import register_host_script, validate_license_script
from tests.unit.test_launchers import SMB
from tests.unit.test_licenses import helper_calls, loopback_license_servers, write_autodesk_helper


def mine(states: dict) -> dict:
    """Only this feature's states (the other features' states apply in the same run)."""
    return {key: value for key, value in states.items() if key.startswith("workstation-license")}


def write_hp_tools(folder: Path) -> dict:
    """Stand-ins for HP Anyware's pcoip-register-host and pcoip-validate-license, and their marker."""
    folder.mkdir(parents=True)
    marker = folder / "registration.sha256"
    tools = {
        "register": folder / "pcoip-register-host",
        "validate": folder / "pcoip-validate-license",
    }
    tools["register"].write_bytes(register_host_script(str(marker)))
    tools["validate"].write_bytes(validate_license_script(str(marker)))
    for tool in tools.values():
        tool.chmod(0o755)
    return {**tools, "marker": marker}


LICENSE_STATES = {
    "workstation-licenses-environment-profile-managed",
    "workstation-licenses-environment-session-managed",
    "workstation-licenses-houdini-file-managed",
    "workstation-licenses-maya2025-registered",
    "workstation-licenses-vray-file-managed",
    "workstation-licenses-katana-node-file-managed",
}


def test_licenses_through_a_real_master_dry_run_apply_converge_and_check(workstation, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    with loopback_license_servers() as ports:
        licenses = licenses_pillar(
            root, helper, foundry=[f"{ports.accepting}@127.0.0.1", f"{ports.closed}@127.0.0.1"]
        )
        workstation.set_pillar(workstation.pillar(productions={}, **licenses))

        predicted = workstation.apply("test=True")
        done = workstation.apply()
        again = workstation.apply()
        check = workstation.run("licenses.check", "timeout=1").data

    assert mine(failed(done)) == {} and mine(failed(again)) == {}
    assert (
        mine(changed(predicted)) == mine(changed(done))
        and set(mine(changed(done))) == LICENSE_STATES
    )
    assert mine(changed(again)) == {}
    assert (root / "etc/environment.d/90-workstation-licenses.conf").read_text().count("=") == 5
    assert (root / "opt/studio/licenses/katana.lic").stat().st_mode & 0o777 == 0o640
    assert [call[0] for call in helper_calls(helper)].count("register") == 1
    assert check["ok"] is False
    assert check["servers"]["foundry"] == {
        f"{ports.accepting}@127.0.0.1": "ok",
        f"{ports.closed}@127.0.0.1": "refused",
    }
    assert check["servers"]["houdini"] == {"sesi1": "unresolved", "sesi2": "unresolved"}
    assert workstation.run("workstation.validate").data == {"valid": True, "errors": []}


@pytest.fixture(scope="module")
def sdb_file(tmp_path_factory):
    """The YAML file behind the trace minion's sdb profile `ws-canary` (Salt's own yaml driver)."""
    return tmp_path_factory.mktemp("sdb") / "secrets.yaml"


@pytest.fixture(scope="module")
def trace_minion(salt_master, sdb_file):
    """A second minion of the shared master, logging everything down to trace and firing per-state
    events, with an sdb profile for the secrets that come by reference."""
    factory = salt_master.salt_minion_daemon(
        "ws-licenses-trace",
        overrides={
            "log_level_logfile": "all",
            "state_events": True,
            "ws-canary": {"driver": "yaml", "files": [str(sdb_file)]},
        },
    )
    with factory.started(start_timeout=120):
        yield factory


def test_canary_secrets_reach_the_license_file_and_no_log_event_job_return_or_output(
    salt_master, salt_cli, trace_minion, sdb_file, pillar_dir, tmp_path
):
    """Secrets in pillar and secrets by sdb reference (docs/secrets.md), side by side in one apply."""
    canary = f"CANARY-{uuid.uuid4().hex}"
    content = f'LICENSE foundry katana_i 2025 permanent uncounted hostid=ANY sig="{canary}"\n'
    key = "7C4N9"  # the product key's canary: 5 characters, the form the helper takes
    referenced = f"CANARY-SDB-{uuid.uuid4().hex}"
    nuke = f'LICENSE foundry nuke_i 2025 permanent uncounted hostid=ANY sig="{referenced}"\n'
    code = f"CANARYSDB{uuid.uuid4().hex[:6]}@9F8E-7D6C-5B4A-3Q1Z"  # each group holds a letter
    sdb_file.write_text(yaml.safe_dump({"maya2025": key, "nuke": nuke, "anyware": code}))
    sdb_file.chmod(0o600)
    hp = write_hp_tools(tmp_path / "hp")
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    data = licenses_pillar(root, helper)
    data["licenses"]["katana-node"]["content"] = content  # in pillar
    data["licenses"]["maya2025"]["product_key"] = "sdb://ws-canary/maya2025"  # by reference
    data["licenses"]["nuke-node"] = {
        "type": "nodelocked",
        "path": "/opt/studio/licenses/nuke.lic",
        "content": "sdb://ws-canary/nuke",
    }
    data["display"] = {"anyware": {"registration_code": "sdb://ws-canary/anyware"}}
    pillar_file = pillar_dir / "workstation.sls"
    saved = pillar_file.read_text()
    pillar_file.write_text(
        yaml.safe_dump({"workstation": {"install_root": str(tmp_path / "studio"), **data}})
    )
    run = salt_master.salt_run_cli(timeout=120)
    started = time.time()
    try:
        assert (
            salt_cli.run(
                "saltutil.refresh_pillar", "wait=True", minion_tgt=trace_minion.id
            ).returncode
            == 0
        )
        outputs = {
            name: salt_cli.run(*command, minion_tgt=trace_minion.id)
            for name, command in {
                "state.apply": ("state.apply", "workstation"),
                "state.apply again": ("state.apply", "workstation"),
                "state.show_sls": ("state.show_sls", "workstation"),
                "state.show_low_sls": ("state.show_low_sls", "workstation"),
                "state.single display.anyware_registered": (
                    "state.single",
                    "display.anyware_registered",
                    "name=anyware",
                    f"register_tool={hp['register']}",
                    f"validate_tool={hp['validate']}",
                ),
                "licenses.plan": ("licenses.plan",),
                "workstation.validate": ("workstation.validate",),
            }.items()
        }
        returns = salt_master.event_listener.wait_for_events(
            [(salt_master.id, f"salt/job/*/ret/{trace_minion.id}")], after_time=started, timeout=30
        )
        events = salt_master.event_listener.get_events([(salt_master.id, "*")], after_time=started)
        jids = {
            event.data["jid"]
            for event in events
            if event.tag.endswith(f"/ret/{trace_minion.id}")
            and event.data.get("fun") in ("state.apply", "state.single")
        }
        job_cache = {jid: run.run("jobs.lookup_jid", jid) for jid in jids}
    finally:
        pillar_file.write_text(saved)
    log_text = Path(trace_minion.config["log_file"]).read_text(encoding="utf-8", errors="replace")

    # The secrets did flow where they belong, so finding them nowhere else means something.
    assert (root / "opt/studio/licenses/katana.lic").read_text() == content
    assert (root / "opt/studio/licenses/nuke.lic").read_text() == nuke
    assert hp["marker"].read_text().strip() == hashlib.sha256(code.encode()).hexdigest()
    registered = outputs["state.single display.anyware_registered"]
    assert registered.returncode == 0, registered.stdout
    assert ["--prod_key", key] == next(
        call for call in helper_calls(helper) if call[0] == "register"
    )[1:3]
    assert mine(failed(outputs["state.apply"].data)) == {}, outputs["state.apply"].stdout
    assert (
        by_id(outputs["state.apply"].data)["workstation-licenses-katana-node-file-managed"][
            "changes"
        ]["created"]
        is True
    )
    assert mine(changed(outputs["state.apply again"].data)) == {}
    assert "[TRACE   ]" in log_text, "the minion did not log at trace level"
    assert (
        returns.found_all_events
        and len(jids) == 3
        and all(ret.returncode == 0 for ret in job_cache.values())
    )
    assert any(event.tag.startswith("salt/job/") and "/prog/" in event.tag for event in events), (
        "no per-state events"
    )

    channels = {f"output of {name}": ret.stdout + ret.stderr for name, ret in outputs.items()}
    channels.update({f"job cache {jid}": ret.stdout + ret.stderr for jid, ret in job_cache.items()})
    channels["event bus"] = "\n".join(
        json.dumps([event.tag, event.full_data], default=str) for event in events
    )
    channels["minion log (all levels)"] = log_text
    channels["master log"] = Path(salt_master.config["log_file"]).read_text(
        encoding="utf-8", errors="replace"
    )
    secrets = (
        ("node-locked content", canary),
        ("product key by reference", key),
        ("node-locked content by reference", referenced),
        ("registration code by reference", code.split("@")[0]),
        ("registration code by reference", code.split("@")[1]),
    )
    for channel, text in channels.items():
        for name, secret in secrets:
            assert secret not in text, f"the {name} leaked into the {channel}"


def test_masterless_at_log_level_all_secrets_by_reference_stay_out_of_every_channel(tmp_path):
    """The case the issue found: `salt-call --local --log-level=all` renders the pillar on the minion and
    logs the rendered text. With every secret by sdb reference (Salt's yaml driver) the pillar holds
    only URIs: the secrets reach their files and tools, and neither the console, the log file nor
    anything under the minion's root (job cache, digests) holds one. The license environment files
    follow `workstation:lookup:os` (profile_dir, environment_dir) and nothing lands in the real /etc."""
    tag = uuid.uuid4().hex
    content = (
        f'LICENSE foundry katana_i 2025 permanent uncounted hostid=ANY sig="CANARY-ML-{tag}"\n'
    )
    key = "8K7QZ"
    code = f"CANARYML{tag[:6]}@9F8E-7D6C-5B4A-3Q1Z"  # each group holds a letter
    password = f"CANARY-ML-smb-{tag}"
    control = f"CONTROL-ML-{tag}"  # a pillar comment: proves the rendered pillar was logged
    sdb_file = tmp_path / "secrets.yaml"
    sdb_file.write_text(
        yaml.safe_dump(
            {
                "licenses": {"katana": content, "maya2025": key},
                "anyware": code,
                "smb": {"projects": password},
            }
        )
    )
    sdb_file.chmod(0o600)
    hp, helper = write_hp_tools(tmp_path / "hp"), write_autodesk_helper(tmp_path / "autodesk")
    system = tmp_path / "system"
    lookup = system_paths_under(system)
    lookup["os"]["licenses"] = {"autodesk_helper": str(helper)}
    mount = {**SMB, "credentials": {**SMB["credentials"], "password": "sdb://studio/smb:projects"}}
    workstation = {
        "install_root": str(tmp_path / "studio"),
        "lookup": lookup,
        "licenses": {
            "foundry": {"type": "rlm", "isv": "foundry", "servers": ["4101@rlm1"]},
            "maya2025": {
                "type": "autodesk",
                "product_key": "sdb://studio/licenses:maya2025",
                "product_version": "2025.0.0.F",
                "servers": ["lic1"],
            },
            "katana-node": {
                "type": "nodelocked",
                "path": str(system / "opt/licenses/katana.lic"),
                "content": "sdb://studio/licenses:katana",
                "variable": "katana_LICENSE",
            },
        },
        "display": {"anyware": {"registration_code": "sdb://studio/anyware"}},
        "productions": {"nightfall": {"apps": {}, "mounts": {"projects": mount}}},
    }
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text(TOP)
    (pillar_root / "workstation.sls").write_text(
        f"# {control}\n" + yaml.safe_dump({"workstation": workstation})
    )
    config = minion_config(
        tmp_path / "etc",
        "ws-sdb-all",
        pillar_root,
        extra={"studio": {"driver": "yaml", "files": [str(sdb_file)]}, "cache_jobs": True},
    )
    credentials = tmp_path / "studio/productions/nightfall/.secrets/projects.credentials"
    # workstation.licenses with the registration and the SMB credentials states beside it
    (config / "empty" / "canary.sls").write_text(
        yaml.safe_dump(
            {
                "include": ["workstation.licenses"],
                "canary-anyware-registered": {
                    "display.anyware_registered": [
                        {"name": "anyware"},
                        {"register_tool": str(hp["register"])},
                        {"validate_tool": str(hp["validate"])},
                    ]
                },
                "canary-smb-credentials-managed": {
                    "launchers.credentials": [
                        {"name": str(credentials)},
                        {"production": "nightfall"},
                        {"mount": "projects"},
                    ]
                },
            }
        )
    )
    real_etc = [
        Path("/etc/profile.d/workstation-licenses.sh"),
        Path("/etc/environment.d/90-workstation-licenses.conf"),
    ]
    before = [path.exists() for path in real_etc]

    runs = [
        masterless_call(config, "--log-level=all", "--log-file-level=all", "state.apply", "canary")
        for _ in range(2)
    ]

    first, second = (json.loads(run.stdout)["local"] for run in runs)
    assert [run.returncode for run in runs] == [0, 0], runs[0].stdout[-3000:]
    assert all(state["result"] is True for state in first.values())
    assert len(changed(first)) == 6 and changed(second) == {}
    # The secrets did flow where they belong.
    assert (system / "opt/licenses/katana.lic").read_text() == content
    assert ["--prod_key", key] == next(
        call for call in helper_calls(helper) if call[0] == "register"
    )[1:3]
    assert hp["marker"].read_text().strip() == hashlib.sha256(code.encode()).hexdigest()
    assert f"password={password}\n" in credentials.read_text()
    # The environment files follow lookup:os; the real /etc is left alone.
    profile = system / "etc/profile.d/workstation-licenses.sh"
    assert "export foundry_LICENSE=4101@rlm1" in profile.read_text()
    assert (system / "etc/environment.d/90-workstation-licenses.conf").exists()
    assert [path.exists() for path in real_etc] == before == [False, False]

    log_file = next(config.rglob("minion.log"))  # Salt puts log_file under root_dir
    log_text = log_file.read_text(encoding="utf-8", errors="replace")
    assert control in log_text and "Rendered data from file" in log_text, (
        "the minion did not log the rendered pillar: this test would prove nothing"
    )
    assert "sdb://studio/licenses:katana" in log_text  # the reference, which is no secret
    channels = {f"console of apply {n}": run.stdout + run.stderr for n, run in enumerate(runs)}
    channels["minion log (all levels)"] = log_text
    cached = [path for path in (config / "root").rglob("*") if path.is_file() and path != log_file]
    assert any("minion_jobs" in str(path) for path in cached), "no job was cached"
    channels.update(
        {f"minion cache {path}": path.read_bytes().decode("latin-1") for path in cached}
    )
    for channel, text in channels.items():
        for name, secret in (
            ("node-locked content", f"CANARY-ML-{tag}"),
            ("product key", key),
            ("registration code", code.split("@")[0]),
            ("registration code", code.split("@")[1]),
            ("SMB password", password),
        ):
            assert secret not in text, f"the {name} leaked into the {channel}"
