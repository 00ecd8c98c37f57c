"""The HP Anyware registration code through a real master and minion logging at trace level:
it reaches HP's tool, and no state output, job return, event or minion log line."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import MASTER_WAKEUP
from tests.support.states import by_id
from tests.system.standins.display import register_host_script, validate_license_script

# Each group holds a letter: an all-digit piece such as "3210" turns up by chance in the timing
# floats of a trace log, and the canary would cry wolf.
CODE = "CANARYINTEG5150@9F8E-7D6C-5B4A-3Q1Z"
REFUSED = "REJECTINTEG5150@0A1B-2C3D-4E5F-6K7W"
PIECES = (CODE, REFUSED, "CANARYINTEG5150", "REJECTINTEG5150", "3Q1Z", "6K7W")
STATE_ID = "workstation-display-anyware-registered"


@pytest.fixture(scope="module")
def hp_tools(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hp-anyware")
    marker = folder / "registration.sha256"
    for name, text in (
        ("pcoip-register-host", register_host_script(str(marker))),
        ("pcoip-validate-license", validate_license_script(str(marker))),
    ):
        (folder / name).write_bytes(text)
        (folder / name).chmod(0o755)
    return folder, marker


@pytest.fixture(scope="module")
def canary(salt_factories, tmp_path_factory, hp_tools):
    """A master and minion of this module's own, both logging at trace level."""
    folder, _ = hp_tools
    pillar_dir, file_roots = (
        tmp_path_factory.mktemp("canary-pillar"),
        tmp_path_factory.mktemp("canary-files"),
    )
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    (pillar_dir / "workstation.sls").write_text("workstation: {}\n")
    # The formula's registration state, with HP's tools from the stand-in folder instead of /usr/sbin
    (file_roots / "registration.sls").write_text(
        yaml.safe_dump(
            {
                STATE_ID: {
                    "display.anyware_registered": [
                        {"name": "anyware"},
                        {"register_tool": str(folder / "pcoip-register-host")},
                        {"validate_tool": str(folder / "pcoip-validate-license")},
                    ]
                }
            }
        )
    )
    master = salt_factories.salt_master_daemon(
        "ws-display-master",
        overrides={
            "file_roots": {"base": [str(file_roots)]},
            "pillar_roots": {"base": [str(pillar_dir)]},
            "open_mode": True,
            "log_level_logfile": "trace",
            **MASTER_WAKEUP,
        },
    )
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "ws-display-minion", overrides={"log_level_logfile": "trace"}
        )
        with minion.started(start_timeout=120):
            yield master, minion, master.salt_cli(timeout=120), pillar_dir


def _set_code(cli, minion, pillar_dir, code):
    display = {"agents": ["anyware"], "anyware": {"registration_code": code}}
    (pillar_dir / "workstation.sls").write_text(
        yaml.safe_dump({"workstation": {"display": display}})
    )
    assert cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id).returncode == 0


def _files_text(root: Path) -> str:
    return "".join(
        path.read_bytes().decode("utf-8", "replace") for path in root.rglob("*") if path.is_file()
    )


def test_the_registration_code_reaches_hp_tool_and_no_output(canary, hp_tools, event_listener):
    master, minion, cli, pillar_dir = canary
    _, marker = hp_tools
    started = time.time()
    outputs = []

    def apply(*args):
        ret = cli.run("state.apply", "registration", *args, minion_tgt=minion.id)
        outputs.append(ret.stdout + ret.stderr)
        return by_id(ret.data)[STATE_ID]

    _set_code(cli, minion, pillar_dir, REFUSED)
    refused = apply()
    _set_code(cli, minion, pillar_dir, CODE)
    dry = apply("test=True")
    assert not marker.exists()
    real = apply()
    again = apply()
    for function in ("display.status", "workstation.validate", "display.plan"):
        ret = cli.run(function, minion_tgt=minion.id)
        outputs.append(ret.stdout + ret.stderr)

    assert refused["result"] is False and "refused code ********" in refused["comment"]
    assert dry["result"] is None and dry["changes"] == real["changes"] == {"registered": True}
    assert real["result"] is True and again["result"] is True and again["changes"] == {}
    assert marker.read_text().strip() == hashlib.sha256(CODE.encode()).hexdigest()

    events = event_listener.get_events([(master.id, "*"), (minion.id, "*")], after_time=started)
    assert any(event.tag.startswith("salt/job/") and "/ret/" in event.tag for event in events)
    places = {
        "state and function output": "\n".join(outputs),
        "events": repr([event.full_data for event in events]),
        "master job cache": _files_text(Path(master.config["cachedir"]) / "jobs"),
        "minion log (trace)": Path(minion.config["log_file"]).read_text(
            encoding="utf-8", errors="replace"
        ),
        "master log (trace)": Path(master.config["log_file"]).read_text(
            encoding="utf-8", errors="replace"
        ),
    }
    for place, text in places.items():
        for piece in PIECES:
            assert piece not in text, f"{piece!r} leaked into the {place}"
