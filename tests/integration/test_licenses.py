"""`workstation.licenses` through a real master and minion, and the canary that proves secrets stay put.

The canary test starts its own minion of the shared master with every log level on
(`log_level_logfile: all`) and per-state events on the bus, applies a pillar whose
node-locked license and Autodesk product key are canaries, then searches every
channel a secret could leak through: the minion's log file, the master's event
bus, the job cache (`salt-run jobs.lookup_jid`), the state output,
`state.show_sls` / `state.show_low_sls`, and the master's log (at debug).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.functional.test_licenses import licenses_pillar
from tests.support.states import by_id, changed, failed
from tests.unit.test_licenses import helper_calls, loopback_license_servers, write_autodesk_helper


def mine(states: dict) -> dict:
    """Only this feature's states (the other features' states apply in the same run)."""
    return {key: value for key, value in states.items() if key.startswith("workstation-license")}


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
def trace_minion(salt_master):
    """A second minion of the shared master, logging everything down to trace and firing per-state events."""
    factory = salt_master.salt_minion_daemon(
        "ws-licenses-trace", overrides={"log_level_logfile": "all", "state_events": True}
    )
    with factory.started(start_timeout=120):
        yield factory


def test_canary_secrets_reach_the_license_file_and_no_log_event_job_return_or_output(
    salt_master, salt_cli, trace_minion, pillar_dir, tmp_path
):
    canary = f"CANARY-{uuid.uuid4().hex}"
    content = f'LICENSE foundry katana_i 2025 permanent uncounted hostid=ANY sig="{canary}"\n'
    key = "7C4N9"  # the product key's canary: 5 characters, the form the helper takes
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    data = licenses_pillar(root, helper)
    data["licenses"]["katana-node"]["content"] = content
    data["licenses"]["maya2025"]["product_key"] = key
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
            and event.data.get("fun") == "state.apply"
        }
        job_cache = {jid: run.run("jobs.lookup_jid", jid) for jid in jids}
    finally:
        pillar_file.write_text(saved)
    log_text = Path(trace_minion.config["log_file"]).read_text(encoding="utf-8", errors="replace")

    # The secrets did flow where they belong, so finding them nowhere else means something.
    assert (root / "opt/studio/licenses/katana.lic").read_text() == content
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
        and len(jids) == 2
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
    for channel, text in channels.items():
        for name, secret in (("node-locked content", canary), ("product key", key)):
            assert secret not in text, f"the {name} leaked into the {channel}"
