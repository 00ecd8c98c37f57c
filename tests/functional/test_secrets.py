"""Secrets by reference (docs/secrets.md) through Salt's real loaders and Salt's own sdb drivers (`yaml`
and `env`): a reference resolves and lands in its file or the vendor's tool, a missing key fails that
state alone, a rotated secret is rewritten or registered again, and validation names a profile the
minion lacks. No value ever reaches a return."""

from __future__ import annotations

import copy
import hashlib
import json
import stat
from pathlib import Path

import yaml

from tests.functional.test_launchers import _pillar as launchers_pillar
from tests.functional.test_licenses import GRAINS, licenses_pillar
from tests.support.states import by_id, changed, failed
from tests.system.standins.display import register_host_script, validate_license_script
from tests.unit.test_launchers import SMB
from tests.unit.test_licenses import write_autodesk_helper

KATANA = 'LICENSE foundry katana_i 2025 permanent uncounted hostid=ANY sig="SDBFUNC-KATANA"\n'
KATANA_ROTATED = 'LICENSE foundry katana_i 2026 permanent uncounted hostid=ANY sig="SDBFUNC-ROT"\n'
PASSWORD, PASSWORD_ROTATED = "SDBFUNC-smb-Pa55", "SDBFUNC-smb-R0tated"
CODE, CODE_ROTATED = "SDBFUNC4242@ABCD-EF01-2345-6789", "SDBFUNC9999@ABCD-EF01-2345-0000"


def sdb_opts(secrets_file) -> dict:
    """The minion config of a small site: a YAML file of secrets (0600) and the process environment."""
    return {
        "studio-secrets": {"driver": "yaml", "files": [str(secrets_file)]},
        "studio-env": {"driver": "env"},
    }


def write_secrets(path, data: dict):
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)


def test_a_license_by_reference_is_written_a_missing_key_fails_alone_and_a_rotation_rewrites(
    make_loaders, tmp_path
):
    secrets_file = tmp_path / "secrets.yaml"
    write_secrets(secrets_file, {"licenses": {"katana": KATANA}})
    root = tmp_path / "root"
    pillar = licenses_pillar(root, write_autodesk_helper(tmp_path / "autodesk"))
    entries = pillar["licenses"]
    del entries[
        "maya2025"
    ]  # registration by reference is the Anyware test's; keep this one to files
    entries["katana-node"]["content"] = "sdb://studio-secrets/licenses:katana"
    entries["nuke-node"] = {
        "type": "nodelocked",
        "path": "/opt/studio/licenses/nuke.lic",
        "content": "sdb://studio-secrets/licenses:nuke",  # not in the file
    }
    loaders = make_loaders(grains=GRAINS, pillar=pillar, opts=sdb_opts(secrets_file))
    katana = root / "opt/studio/licenses/katana.lic"

    dry = loaders.modules.state.apply("workstation.licenses", test=True).raw
    assert not katana.exists(), "test=True wrote the license"
    first = loaders.modules.state.apply("workstation.licenses").raw
    again = loaders.modules.state.apply("workstation.licenses").raw
    write_secrets(secrets_file, {"licenses": {"katana": KATANA_ROTATED}})
    rotated = loaders.modules.state.apply("workstation.licenses").raw

    missing = "workstation-licenses-nuke-node-file-managed"
    for run in (dry, first, again, rotated):
        assert set(failed(run)) == {missing}
        assert failed(run)[missing] == (
            "Node-locked license "
            f"{root}/opt/studio/licenses/nuke.lic (0600 root:root, from "
            "workstation:licenses:nuke-node:content) was not written: "
            "workstation:licenses:nuke-node:content: sdb://studio-secrets/licenses:nuke resolves "
            "to nothing; put the secret at key 'licenses:nuke' of sdb profile 'studio-secrets', "
            "or fix the reference (docs/secrets.md)"
        )
    assert set(changed(first)) == set(changed(dry)) and len(changed(first)) == 5
    assert changed(again) == {}
    assert by_id(first)["workstation-licenses-katana-node-file-managed"]["changes"]["created"]
    assert not (root / "opt/studio/licenses/nuke.lic").exists()
    assert katana.read_text() == KATANA_ROTATED and stat.S_IMODE(katana.stat().st_mode) == 0o640
    rewrite = by_id(rotated)["workstation-licenses-katana-node-file-managed"]
    assert set(changed(rotated)) == {"workstation-licenses-katana-node-file-managed"}
    assert rewrite["changes"]["updated"] == ["content"]
    assert rewrite["comment"].endswith("was written (content differed)")
    shown = json.dumps([dry, first, again, rotated, loaders.modules.licenses.plan()])
    assert "SDBFUNC" not in shown


def test_smb_credentials_by_reference_are_written_0600_and_rewritten_when_rotated(
    make_loaders, tmp_path
):
    secrets_file = tmp_path / "secrets.yaml"
    write_secrets(secrets_file, {"smb": {"projects": {"password": PASSWORD}}})
    pillar = launchers_pillar(tmp_path)
    mount = copy.deepcopy(SMB)
    mount["credentials"]["password"] = "sdb://studio-secrets/smb:projects:password"
    pillar["productions"]["nightfall"]["mounts"] = {"projects": mount}
    loaders = make_loaders(pillar=pillar, opts=sdb_opts(secrets_file))
    path = tmp_path / "studio/productions/nightfall/.secrets/projects.credentials"

    def credentials(test=False):
        return loaders.states.launchers.credentials(
            str(path), production="nightfall", mount="projects", test=test
        )

    results = [credentials(test=True), credentials(), credentials()]
    written = path.read_text()
    write_secrets(secrets_file, {"smb": {"projects": {"password": PASSWORD_ROTATED}}})
    results += [credentials(), credentials()]

    assert [r.result for r in results] == [None, True, True, True, True]
    assert [bool(r.changes) for r in results] == [True, True, False, True, False]
    assert f"password={PASSWORD}\n" in written and "username=render\n" in written
    assert f"password={PASSWORD_ROTATED}\n" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "SDBFUNC" not in json.dumps([r.full_return for r in results])


def test_anyware_registers_with_a_code_from_the_environment_and_again_when_it_rotates(
    make_loaders, tmp_path, monkeypatch
):
    marker = tmp_path / "registered"
    register, validate = tmp_path / "pcoip-register-host", tmp_path / "pcoip-validate-license"
    register.write_bytes(register_host_script(str(marker)))
    validate.write_bytes(validate_license_script(str(marker)))
    register.chmod(0o755)
    validate.chmod(0o755)
    monkeypatch.setenv("WS_ANYWARE_CODE", CODE)  # the env driver reads the minion's environment
    loaders = make_loaders(
        grains=GRAINS,
        pillar={
            "display": {
                "agents": ["anyware"],
                "anyware": {"registration_code": "sdb://studio-env/WS_ANYWARE_CODE"},
            }
        },
        opts=sdb_opts(tmp_path / "unused.yaml"),
    )
    tools = {"register_tool": str(register), "validate_tool": str(validate)}

    def registered(test=False):
        return loaders.states.display.anyware_registered("anyware", test=test, **tools)

    results = [registered(test=True), registered(), registered()]
    first_marker = marker.read_text().strip()
    monkeypatch.setenv("WS_ANYWARE_CODE", CODE_ROTATED)
    results += [registered(test=True), registered(), registered()]
    monkeypatch.delenv("WS_ANYWARE_CODE")
    gone = registered()

    rotation = {"registered": True, "registration_code": "changed"}
    assert [r.changes for r in results] == [
        {"registered": True},
        {"registered": True},
        {},
        rotation,
        rotation,
        {},
    ]
    assert [r.result for r in results] == [None, True, True, None, True, True]
    assert results[4].comment == (
        "HP Anyware was registered again: the registration code at "
        "workstation:display:anyware:registration_code changed since it registered"
    )
    assert first_marker == hashlib.sha256(CODE.encode()).hexdigest()
    assert marker.read_text().strip() == hashlib.sha256(CODE_ROTATED.encode()).hexdigest()
    assert gone.result is False and gone.changes == {}
    assert "sdb://studio-env/WS_ANYWARE_CODE resolves to nothing" in gone.comment
    kept = list((Path(loaders.opts["cachedir"]) / "workstation/digests").iterdir())
    assert sorted(p.name for p in kept) == ["digest.key", "display.anyware.registration_code.hmac"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)
    for item in kept:
        held = item.read_bytes()
        for code in (CODE, CODE_ROTATED):
            assert code.encode() not in held
            assert hashlib.sha256(code.encode()).hexdigest().encode() not in held
    outputs = json.dumps([r.full_return for r in [*results, gone]])
    assert "SDBFUNC" not in outputs and "2345-" not in outputs


def test_validate_names_the_field_and_a_profile_the_minion_does_not_define(make_loaders, tmp_path):
    root = tmp_path / "root"
    pillar = licenses_pillar(root, write_autodesk_helper(tmp_path / "autodesk"))
    pillar["licenses"]["katana-node"]["content"] = "sdb://studio-vault/licenses/katana"
    pillar["licenses"]["maya2025"]["product_key"] = "sdb://studio-secrets"  # no key
    pillar["display"] = {"anyware": {"registration_code": "sdb://studio-secrets/anyware"}}
    loaders = make_loaders(grains=GRAINS, pillar=pillar, opts=sdb_opts(tmp_path / "s.yaml"))

    report = loaders.modules.workstation.validate()

    errors = {error["path"]: error["message"] for error in report["errors"]}
    assert errors["workstation:licenses:katana-node:content"] == (
        "refers to sdb profile 'studio-vault', which this minion's config does not define "
        "(it defines studio-env, studio-secrets); add `studio-vault: {driver: ...}` to the minion "
        "config (docs/secrets.md) or fix the profile name"
    )
    assert errors["workstation:licenses:maya2025:product_key"].startswith(
        "'sdb://studio-secrets' is not an sdb reference Salt can read"
    )
    assert "workstation:display:anyware:registration_code" not in errors
