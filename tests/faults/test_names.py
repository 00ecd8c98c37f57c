"""Hostile names in every pillar field that becomes a path.

Each field gets its hostile values in one apply (one state per name, so each is seen
on its own): validation names the exact pillar path, no state that would use the name
succeeds, and nothing is written outside install_root, or in install_root where the
name would have pointed. Removing the names, the next apply converges.

An absolute app name points into this test's own `outside` folder rather than at /abs:
an engine that followed it must not write to the real machine.
"""

from __future__ import annotations

import os

import pytest

from salt_workstation.paths import INSTALL_SLOTS
from tests.faults.conftest import (
    BAKE_FILES,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_verifies,
    baseline,
    converge,
    install_id,
    launcher_files,
)

DOTS_AND_SLASHES = ["../evil", "a/b"]
LONG = "x" * 300


def hostile_values(field: str, box) -> list[str]:
    if field == "app":
        return ["../evil", str(box.outside / "abs"), "..", ".", "a/b", LONG]
    if field == "version":
        return ["../x", "a/b"]
    if field == "launcher":
        return ["..", ".", "a/b"]
    return DOTS_AND_SLASHES


def hostile_pillar(field: str, box, pillar: dict) -> tuple[dict, dict]:
    """The baseline pillar with the hostile names of one field; and per name: its exact pillar path,
    the IDs of the states that would use it, and the (app, version) whose install it fails, if any."""
    builds, names = box.builds, hostile_values(field, box)
    catalog, productions, top = dict(pillar["catalog"]), dict(pillar["productions"]), {}
    other = box.entry(builds.good("other", "1.0"), "other")
    uses = {}
    if field == "app":
        for name in names:
            catalog[name] = {"versions": {"1.0": other}}
            uses[name] = (
                f"workstation:catalog:{name}",
                [install_id(name, "1.0"), f"workstation-app-{name}-retention"],
                (name, "1.0"),
            )
        productions["fault"] = {"apps": dict.fromkeys(names, "1.0")}
    elif field == "version":
        catalog["other"] = {"versions": dict.fromkeys(names, other)}
        for index, name in enumerate(names):
            productions[f"fault-{index}"] = {"apps": {"other": name}}
            uses[name] = (
                f"workstation:catalog:other:versions:{name}",
                [install_id("other", name), "workstation-app-other-retention"],
                ("other", name),
            )
    elif field == "production":
        for name in names:
            productions[name] = {"apps": {"good": "1.0"}}
            uses[name] = (
                f"workstation:productions:{name}",
                [f"workstation-launchers-{name}-launchers-managed"],
                None,
            )
    elif field == "launcher":
        catalog["other"] = {
            "versions": {"1.0": {**other, "launchers": dict.fromkeys(names, "bin/other")}}
        }
        productions["fault"] = {"apps": {"other": "1.0"}}
        for name in names:
            uses[name] = (
                f"workstation:catalog:other:versions:1.0:launchers:{name}",
                [install_id("other", "1.0")],
                ("other", "1.0"),
            )
    elif field == "plugin":
        catalog["blender"] = {
            "versions": {"1.0": box.entry(builds.good("blender", "1.0"), "blender")}
        }
        plugin = {key: value for key, value in other.items() if key != "launchers"}
        for name in names:
            catalog[name] = {
                "versions": {"1.0": {**plugin, "host": "blender", "host_versions": ["1.0"]}}
            }
            uses[name] = (
                f"workstation:productions:fault:plugins:{name}",
                [install_id(name, "1.0")],
                (name, "1.0"),
            )
        productions["fault"] = {"apps": {"blender": "1.0"}, "plugins": dict.fromkeys(names, "1.0")}
    elif field == "license":
        top["licenses"] = {
            name: {"type": "rlm", "isv": "foundry", "servers": ["4101@127.0.0.1"]} for name in names
        }
        for name in names:
            uses[name] = (
                f"workstation:licenses:{name}",
                ["workstation-licenses-pillar-valid"],
                None,
            )
    elif field == "mount":
        top["phase"] = "bake"  # fstab (in the sandbox) and the mount point only: nothing is mounted
        mounts = {}
        for index, name in enumerate(names):
            mounts[name] = {
                "type": "smb",
                "device": f"//fs1/show{index}",
                "path": str(box.outside / f"mnt{index}"),
                "credentials": {"username": "artist", "password": "secret"},
            }
            state = f"workstation-launchers-fault-mount-{name}"
            uses[name] = (
                f"workstation:productions:fault:mounts:{name}",
                [f"{state}-mounted", f"{state}-credentials-managed"],
                None,
            )
        productions["fault"] = {"apps": {"good": "1.0"}, "mounts": mounts}
    return {**pillar, "catalog": catalog, "productions": productions, **top}, uses


def assert_layout(box, apps: dict) -> None:
    """install_root holds apps, logs and productions; apps/ only the apps wanted (and the install
    slots' lock files), each only its versions."""
    root = box.install_root
    assert set(os.listdir(root)) <= {"apps", "logs", "productions"}, sorted(os.listdir(root))
    allowed = {*apps, INSTALL_SLOTS}
    assert set(os.listdir(root / "apps")) <= allowed, sorted(os.listdir(root / "apps"))
    for app, versions in apps.items():
        folder = root / "apps" / app
        found = (
            {name for name in os.listdir(folder) if not name.startswith(".")}
            if folder.is_dir()
            else set()
        )
        assert found <= set(versions), f"{folder}: {sorted(found)}"
    productions = root / "productions"
    if productions.is_dir():
        assert {name for name in os.listdir(productions) if not name.startswith(".")} <= {
            "show",
            "fault",
        }


@pytest.mark.parametrize(
    "field", ["app", "version", "production", "launcher", "plugin", "license", "mount"]
)
def test_hostile_names_fail_validation_and_their_states_and_write_nothing(sandbox, field):
    pillar = baseline(sandbox)
    hostile, uses = hostile_pillar(field, sandbox, pillar)
    sandbox.write_pillar(hostile)
    before = sandbox.snapshot()

    run = sandbox.apply()

    assert_no_traceback(run)
    succeeded = {
        state_id: run.ids[state_id]["comment"]
        for _, ids, _ in uses.values()
        for state_id in ids
        if state_id in run.ids and run.ids[state_id]["result"] is not False
    }
    assert succeeded == {}, "states that use a hostile name did not fail"
    # The mounts' production still gets its launchers: the mount states are the ones using the name.
    # The mount case is an image bake: launchers and the image identity are rightly written.
    assert_in_place(
        before,
        sandbox.snapshot(),
        launcher_files("fault", "good") | BAKE_FILES if field == "mount" else (),
    )
    assert_layout(sandbox, {"good": ["1.0"], "other": ["1.0"], "blender": ["1.0"]})
    assert_verifies(sandbox, ("good", "1.0"))
    validated = run.ids["workstation-pillar-validated"]
    assert validated["result"] is False
    unnamed = [path for path, _, _ in uses.values() if f"- {path}: " not in validated["comment"]]
    assert unnamed == [], f"validation does not name: {unnamed}"
    for _, ids, install in uses.values():
        if install and ids[0] in run.ids:
            assert_not_installed(run, *install)

    sandbox.write_pillar(pillar)
    converge(sandbox)
    assert_layout(sandbox, {"good": ["1.0"], "other": ["1.0"], "blender": ["1.0"]})
