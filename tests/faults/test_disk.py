"""Disk full: install_root on a tmpfs too small for the app, and a short disk-full spell mid-install.

The worst bug this tier was written for: a version whose files were zero-filled by a
full disk was promoted and reported installed. A full disk must fail the install and
leave the version absent; once there is room, the next apply installs it whole.
"""

from __future__ import annotations

import subprocess
import tarfile
import time

import pytest

from tests.faults.conftest import (
    MIB,
    assert_contained,
    assert_in_place,
    assert_not_installed,
    assert_recovers,
    assert_verifies,
    baseline,
    install_id,
    with_fault_production,
)

APP, VERSION = "bulky", "1.0"


def unpacked_size(archive) -> int:
    with tarfile.open(archive) as tar:
        return sum(member.size for member in tar.getmembers())


def test_install_root_too_small_for_the_app_fails_cleanly_and_says_how_much_more(
    sandbox, builds, timings
):
    sandbox.mount_tmpfs(16)
    archive = builds.sized(APP, VERSION, 24)
    entry = sandbox.entry(archive, APP, size=unpacked_size(archive))
    pillar = baseline(sandbox, {APP: {"versions": {VERSION: entry}}})
    with_fault_production(sandbox, pillar, {APP: VERSION})
    before = sandbox.snapshot()

    run = sandbox.apply()

    timings.record("disk too small", run, install_id(APP, VERSION))
    assert_not_installed(run, APP, VERSION, "disk full under", "more needed")
    assert_contained(run, APP)
    assert_in_place(before, sandbox.snapshot())
    assert not (sandbox.app_dir(APP) / VERSION).exists()
    assert_verifies(sandbox, ("good", "1.0"))

    subprocess.run(
        ["mount", "-o", "remount,size=64m", str(sandbox.install_root)], check=True, timeout=30
    )
    assert_recovers(sandbox, (APP, VERSION))


@pytest.mark.parametrize("spell", ["whole-apply", "ends-mid-install"])
def test_a_disk_full_spell_never_reports_the_version_installed(sandbox, builds, timings, spell):
    """The ballast leaves 4 MiB, more than the download (130 KiB) and less than the unpacked 16 MiB,
    and no `size` is declared: the disk fills mid-write. whole-apply: the ballast goes once the apply
    has failed. ends-mid-install: it goes while the (throttled) install still runs, where an engine that
    shrugged off the failed writes would write the manifest, promote, and report zero-filled files installed."""
    sandbox.mount_tmpfs(64)
    archive = builds.compressible(APP, VERSION, 16)
    entry = sandbox.entry(archive, APP)
    pillar = baseline(sandbox, {APP: {"versions": {VERSION: entry}}})
    if spell == "ends-mid-install":
        sandbox.depot.throttle_path(sandbox.publish(archive), rate=16 * 1024)  # 130 KiB in 8 s
    with_fault_production(sandbox, pillar, {APP: VERSION})
    before = sandbox.snapshot()

    with sandbox.ballast(leave=4 * MIB):
        apply = sandbox.start_apply()
        deadline = time.monotonic() + 30
        while (
            spell == "ends-mid-install"
            and sandbox.free_bytes() > 256 * 1024
            and apply.poll() is None
        ):
            assert time.monotonic() < deadline, "the install never filled the disk"
            time.sleep(0.02)
        run = sandbox.finish(apply) if spell == "whole-apply" else None
    run = run or sandbox.finish(apply)
    timings.record(f"disk full spell, {spell}", run, install_id(APP, VERSION))
    listed = sandbox.installed()

    assert APP not in listed, f"dcc.list_installed lists {APP} after a disk-full install"
    assert not (sandbox.app_dir(APP) / VERSION).exists()
    assert_not_installed(run, APP, VERSION, "disk full under")
    assert_contained(run, APP)
    assert_in_place(before, sandbox.snapshot())
    assert_verifies(sandbox, ("good", "1.0"))

    sandbox.depot.clear()
    assert_recovers(sandbox, (APP, VERSION))
