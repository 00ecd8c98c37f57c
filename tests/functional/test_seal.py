"""workstation.sealed / workstation.seal on a real tree laid out like a baked root, through Salt's loaders:
exactly what the dry run lists goes, nothing else does, a second run changes nothing, and it never
runs outside an image bake. Then the image identity a bake records, and the grain that reads it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import salt.loader

from salt_workstation import __version__
from tests.support.states import by_id

# What a baked root holds that identifies the machine that baked it (path -> bytes).
IDENTIFYING = {
    "etc/salt/minion_id": b"packer-bake-7f3a\n",
    "etc/salt/pki/minion/minion.pem": b"-----BEGIN RSA PRIVATE KEY-----\n",
    "etc/salt/pki/minion/minion.pub": b"-----BEGIN PUBLIC KEY-----\n",
    "etc/ssh/ssh_host_ed25519_key": b"private\n",
    "etc/ssh/ssh_host_ed25519_key.pub": b"ssh-ed25519 AAAA\n",
    "etc/ssh/ssh_host_rsa_key": b"private\n",
    "var/cache/salt/minion/files/base/workstation/init.sls": b"include: []\n",
    "var/cache/salt/minion/proc/20261201100000000000": b"\x00",
    "var/log/salt/minion": b"[INFO] baked\n",
    "tmp/packer-shell-12345.sh": b"#!/bin/sh\n",
    "tmp/salt/minion.d/bake.conf": b"file_client: local\n",
    "var/tmp/systemd-private-1/tmp/x": b"x",
}
# What sealing must leave alone.
KEPT = {
    "etc/salt/minion": b"file_client: local\n",
    "etc/ssh/sshd_config": b"PermitRootLogin no\n",
    "etc/hostname": b"workstation\n",
    "opt/studio/apps/blender/4.2.3/bin/blender": b"#!/bin/sh\n",
}
SEALED = {
    "minion_id": ["/etc/salt/minion_id"],
    "minion_keys": ["/etc/salt/pki/minion/minion.pem", "/etc/salt/pki/minion/minion.pub"],
    "machine_id": ["/etc/machine-id"],
    "ssh_host_keys": [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/etc/ssh/ssh_host_rsa_key",
    ],
    "salt_cache": ["/var/cache/salt/minion"],
    "salt_logs": ["/var/log/salt/minion"],
    "temporary": [
        "/tmp/outside-link",
        "/tmp/packer-shell-12345.sh",
        "/tmp/salt",
        "/var/tmp/systemd-private-1",
    ],
}


def _baked_root(tmp_path):
    root = tmp_path / "image"
    for rel, data in {**IDENTIFYING, **KEPT}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "etc/machine-id").write_bytes(b"0123456789abcdef0123456789abcdef\n")
    (root / "etc/machine-id").chmod(0o444)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"not the image's")
    (root / "tmp/outside-link").symlink_to(outside)  # planted: removed as a link, never followed
    return root, outside


def _pillar(root, phase="bake"):
    return {"phase": phase, "lookup": {"os": {"seal": {"root": str(root)}}}}


def _files(root) -> dict:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = (
                os.readlink(path) if os.path.islink(path) else Path(path).read_bytes()
            )
    return found


def test_sealing_removes_exactly_what_the_dry_run_lists_then_changes_nothing(
    make_loaders, tmp_path
):
    root, outside = _baked_root(tmp_path)
    loaders = make_loaders(pillar=_pillar(root))
    before = _files(root)

    dry = loaders.states.workstation.sealed(str(root), test=True)

    assert dry.result is None and dry.changes == SEALED
    assert _files(root) == before, "test=True changed the image"

    real = loaders.states.workstation.sealed(str(root))
    again = loaders.states.workstation.sealed(str(root))

    assert real.result is True and real.changes == dry.changes
    assert again.result is True and again.changes == {} and "is sealed" in again.comment
    assert _files(root) == {**KEPT, "etc/machine-id": b""}
    assert oct((root / "etc/machine-id").stat().st_mode & 0o777) == "0o444"
    for folder in ("etc/salt/pki/minion", "var/cache/salt", "var/log/salt", "tmp", "var/tmp"):
        assert (root / folder).is_dir() and not any((root / folder).iterdir()), folder
    assert (outside / "precious").read_bytes() == b"not the image's"


@pytest.mark.parametrize("phase", ["all", "boot"])
def test_sealing_refuses_a_machine_that_is_not_an_image_bake(make_loaders, tmp_path, phase):
    root, _ = _baked_root(tmp_path)
    loaders = make_loaders(pillar=_pillar(root, phase=phase))
    before = _files(root)

    for test in (True, False):
        ret = loaders.states.workstation.sealed(str(root), test=test)

        assert ret.result is False and ret.changes == {}
        assert "workstation:phase" in ret.comment and "bake" in ret.comment
    assert _files(root) == before


def test_a_link_where_a_sealed_folder_belongs_is_refused_and_not_followed(make_loaders, tmp_path):
    root, outside = _baked_root(tmp_path)
    (root / "var/log/salt/minion").unlink()
    (root / "var/log/salt").rmdir()
    (root / "var/log/salt").symlink_to(outside)
    loaders = make_loaders(pillar=_pillar(root))

    ret = loaders.states.workstation.sealed(str(root))

    assert ret.result is False and ret.changes == {}
    assert "symlink" in ret.comment and "var/log/salt" in ret.comment
    assert (outside / "precious").exists()
    assert (root / "etc/salt/minion_id").exists(), "a refused seal removed something"


def test_the_seal_sls_seals_the_configured_root(make_loaders, tmp_path):
    root, _ = _baked_root(tmp_path)
    loaders = make_loaders(pillar=_pillar(root))

    predicted = by_id(loaders.modules.state.apply("workstation.seal", test=True).raw)
    applied = by_id(loaders.modules.state.apply("workstation.seal").raw)
    again = by_id(loaders.modules.state.apply("workstation.seal").raw)

    assert set(applied) == {"workstation-image-sealed"}
    assert predicted["workstation-image-sealed"]["changes"] == SEALED
    assert applied["workstation-image-sealed"]["changes"] == SEALED
    assert again["workstation-image-sealed"]["changes"] == {}


def test_a_bake_records_the_image_identity_once_and_the_grain_reads_it(
    make_loaders, minion_opts, tmp_path
):
    identity = tmp_path / "etc/salt-workstation/image.json"
    catalog = {"nuke": {"versions": {"15.1v3": {"kind": "packages", "packages": {"nuke": "15.1"}}}}}
    pillar = {
        "phase": "bake",
        "lookup": {"os": {"image_identity": str(identity)}},
        "catalog": catalog,
        "productions": {"nightfall": {"apps": {"nuke": "15.1v3"}}},
    }
    loaders = make_loaders(pillar=pillar)

    dry = loaders.states.workstation.image_recorded(str(identity), test=True)
    assert dry.result is None and not identity.exists()
    real = loaders.states.workstation.image_recorded(str(identity))
    again = loaders.states.workstation.image_recorded(str(identity))

    assert real.result is True and real.changes == dry.changes
    assert again.result is True and again.changes == {}
    recorded = json.loads(identity.read_text())
    assert recorded["apps"] == {"nuke": ["15.1v3"]} and recorded["productions"] == ["nightfall"]
    assert recorded["extension_version"] == __version__
    assert recorded["catalog_digest"].startswith("sha256:") and recorded["baked_at"]
    assert loaders.modules.workstation.image_plan() == {"record": True, "path": str(identity)}

    grains = salt.loader.grains({**minion_opts, "workstation_image_identity": str(identity)})
    assert grains["workstation_image"] == recorded
    without = salt.loader.grains(
        {**minion_opts, "workstation_image_identity": str(tmp_path / "none.json")}
    )
    assert "workstation_image" not in without
