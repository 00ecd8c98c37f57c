"""Symlinks planted inside install_root, each pointing at a folder outside with a file in it.

Whoever can write into install_root must not be able to steer the engine's writes or
deletes elsewhere: the app's state fails saying the path is a symlink (retention leaves
such a version alone and says so), and the folder the link points to stays as it was.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.faults.conftest import (
    assert_contained,
    assert_in_place,
    assert_no_traceback,
    assert_not_installed,
    assert_recovers,
    assert_verifies,
    baseline,
    converge,
    install_id,
    launcher_files,
    with_fault_production,
)
from tests.support.tree import snapshot

APP, VERSION = "sym", "1.0"


def target_folder(box, name: str):
    """A folder outside install_root with a file in it: what a planted link points at."""
    folder = box.outside / name
    folder.mkdir()
    (folder / "precious.txt").write_text("not the engine's to touch\n")
    return folder


def fake_install(folder, entry) -> None:
    """A manifest that says the catalog's build is installed there, and the launcher it names."""
    manifest = {
        "app": APP,
        "version": VERSION,
        "kind": "archive",
        "hash": entry["hash"],
        "identity": {"kind": "archive", "hash": entry["hash"], "strip_components": 1},
        "launchers": entry["launchers"],
        "env": {},
        "files": 1,
        "bytes": 5,
    }
    (folder / ".workstation-manifest.json").write_text(json.dumps(manifest))
    (folder / ".workstation-files.json").write_text("[]")
    (folder / "bin").mkdir()
    (folder / "bin" / APP).write_text("#!/bin/sh\n")


@pytest.mark.parametrize("where", ["apps/<app>", "apps/<app>/<version>", "apps", "logs"])
def test_a_symlink_planted_where_the_engine_writes_fails_the_install_and_touches_nothing(
    sandbox, builds, where
):
    kind = (
        {
            "kind": "installer",
            "installer": {"command": ["./install.sh", "{dest}", "/dev/null", "/nonexistent"]},
        }
        if where == "logs"
        else {}
    )
    archive = builds.installer(APP, VERSION) if where == "logs" else builds.good(APP, VERSION)
    entry = sandbox.entry(archive, APP, **kind)
    catalog = {APP: {"versions": {VERSION: entry}}}
    installed = (
        [] if where == "apps" else [("good", "1.0")]
    )  # nothing is installed where `apps` is a link
    pillar = baseline(sandbox, catalog, apps=dict(installed))
    target = target_folder(sandbox, "target")
    link = sandbox.install_root / where.replace("<app>", APP).replace("<version>", VERSION)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir():  # `logs`, `apps`: made empty by the baseline
        link.rmdir()
    if where == "apps/<app>/<version>":
        fake_install(target, entry)
    link.symlink_to(target, target_is_directory=True)
    with_fault_production(sandbox, pillar, {APP: VERSION})
    before, target_before = sandbox.snapshot(), snapshot(target)

    run = sandbox.apply()

    assert_not_installed(run, APP, VERSION, "is a symlink")
    assert_contained(run, APP)
    assert snapshot(target) == target_before, "the folder the link points at changed"
    assert_in_place(before, sandbox.snapshot())
    assert_verifies(sandbox, *installed)

    link.unlink()
    assert_recovers(sandbox, *installed, (APP, VERSION))


def test_retention_leaves_an_old_version_that_is_a_symlink_and_says_so(sandbox, builds):
    catalog = sandbox.good_catalog("1.0", "2.0", app=APP)
    pillar = baseline(sandbox, catalog)
    with_fault_production(sandbox, pillar, {APP: "1.0"})
    assert sandbox.apply().not_true() == {}
    # The installed 1.0 moves outside; a link takes its place in install_root.
    target = sandbox.outside / "old-version"
    shutil.move(sandbox.app_dir(APP) / "1.0", target)
    (target / "precious.txt").write_text("not the engine's to touch\n")
    (sandbox.app_dir(APP) / "1.0").symlink_to(target, target_is_directory=True)
    with_fault_production(sandbox, pillar, {APP: "2.0"}, retain=0)
    before, target_before = sandbox.snapshot(), snapshot(target)

    run = sandbox.apply()

    assert_no_traceback(run)
    retention = run.ids[f"workstation-app-{APP}-retention"]
    assert "is a symlink" in retention["comment"], retention["comment"]
    assert run.ids[install_id(APP, "2.0")]["result"] is True
    assert (sandbox.app_dir(APP) / "1.0").is_symlink(), "retention removed the link"
    assert snapshot(target) == target_before, "the folder the link points at changed"
    assert_in_place(
        before, sandbox.snapshot(), launcher_files("fault", APP)
    )  # its launcher now starts 2.0
    assert_verifies(sandbox, ("good", "1.0"), (APP, "2.0"))

    (sandbox.app_dir(APP) / "1.0").unlink()
    converge(sandbox)
    assert sandbox.leftovers(APP) == []
