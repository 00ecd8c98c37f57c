"""workstation.launchers in a fresh Debian 12 root: a launcher run by the root's own /bin/sh (dash),
studio-launch on PATH, a desktop entry, and the production's NFS mount written to the root's fstab
(phase bake: nothing is mounted while an image is baked)."""

from __future__ import annotations

import pytest

from tests.support.states import by_id, changed, failed
from tests.system.conftest import BLENDER, workstation_pillar

pytestmark = pytest.mark.system

MOUNT = {
    "type": "nfs",
    "device": "nas.studio.test:/export/nightfall",
    "path": "/mnt/nightfall/projects",
    "options": ["vers=4.2"],
}


def launcher_changes(data: dict) -> dict:
    return {
        key: value
        for key, value in changed(data).items()
        if key.startswith("workstation-launchers-")
    }


def test_a_baked_root_gets_launchers_a_desktop_entry_and_the_production_mount_in_fstab(
    station_factory, studio_server
):
    pillar = workstation_pillar(studio_server)  # phase bake
    pillar["productions"]["nightfall"]["env"] = {
        "SHOW": "nightfall",
        "NOTE": 'it\'s "quoted" $HOME',
    }
    pillar["productions"]["nightfall"]["mounts"] = {"projects": MOUNT}
    station = station_factory(pillar)
    minion = station.minion

    predicted = station.apply("test=True")
    assert not minion.exists(
        "/usr/local/bin/studio-launch"
    ) and "nas.studio.test" not in minion.read("/etc/fstab")
    real = station.apply()
    again = station.apply()

    assert failed(real) == {}
    mount_id = "workstation-launchers-nightfall-mount-projects-mounted"
    # Salt's mount.mounted predicts with a comment only; ours predict their exact changes.
    assert (
        by_id(predicted)[mount_id]["result"] is None and real and by_id(real)[mount_id]["changes"]
    )
    assert {k: v for k, v in launcher_changes(predicted).items() if k != mount_id} == {
        k: v for k, v in launcher_changes(real).items() if k != mount_id
    }
    assert set(launcher_changes(real)) == {
        "workstation-launchers-mount-clients-installed",
        "workstation-launchers-nightfall-launchers-managed",
        "workstation-launchers-nightfall-mount-projects-mounted",
        "workstation-launchers-studio-launch-installed",
    }
    assert launcher_changes(again) == {}
    app, version = BLENDER
    started = minion.run(
        "studio-launch", "nightfall", app, "--", "shot 010.blend", "it's", check=True
    )
    assert started.stdout.strip() == f"{app} {version} shot 010.blend it's"
    printed = minion.run("studio-launch", "--env", "nightfall", app, check=True).stdout.splitlines()
    assert 'NOTE=it\'s "quoted" $HOME' in printed and "STUDIO_PRODUCTION=nightfall" in printed
    assert "Exec=/opt/studio/productions/nightfall/bin/blender %F" in minion.read(
        "/usr/local/share/applications/workstation-nightfall-blender.desktop"
    )
    fstab = [
        line.split() for line in minion.read("/etc/fstab").splitlines() if "nas.studio.test" in line
    ]
    assert fstab == [
        [
            "nas.studio.test:/export/nightfall",
            "/mnt/nightfall/projects",
            "nfs",
            "_netdev,nofail,vers=4.2",
            "0",
            "0",
        ]
    ]
    assert minion.run("test", "-d", "/mnt/nightfall/projects").returncode == 0
    assert (
        minion.run("mountpoint", "-q", "/mnt/nightfall/projects").returncode != 0
    )  # baked, not mounted
