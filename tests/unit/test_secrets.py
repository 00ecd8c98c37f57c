"""Every secret the pillar holds is masked in a returned config; nothing else is. Secret fields take sdb
references: which, how they are judged and resolved, and the keyed digests that tell a rotation."""

import os
import stat

import pytest

from salt_workstation import secrets
from salt_workstation.errors import WorkstationError


def test_redact_masks_each_secret_path_and_keeps_the_rest():
    config = {
        "install_root": "/opt/studio",
        "licenses": {
            "katana": {"type": "nodelocked", "content": "LICENSE-TEXT", "path": "/opt/k.lic"},
            "maya": {"type": "autodesk", "product_key": "657Q1", "servers": ["lic1"]},
        },
        "display": {"anyware": {"registration_code": "ABCD@0123-4567", "flavor": "auto"}},
        "productions": {
            "nightfall": {
                "mounts": {
                    "projects": {
                        "type": "smb",
                        "credentials": {"username": "render", "password": "hunter2"},
                    }
                }
            }
        },
    }

    masked = secrets.redact(config)

    assert "LICENSE-TEXT" not in str(masked) and "657Q1" not in str(masked)
    assert "ABCD@0123-4567" not in str(masked) and "hunter2" not in str(masked)
    assert masked["productions"]["nightfall"]["mounts"]["projects"] == {
        "type": "smb",
        "credentials": secrets.MASK,
    }
    assert masked["licenses"]["katana"]["path"] == "/opt/k.lic"
    assert masked["display"]["anyware"]["flavor"] == "auto"
    assert config["licenses"]["katana"]["content"] == "LICENSE-TEXT"  # the original is untouched


# --------------------------------------------------------------------------- sdb references

REFERENCED = {
    "licenses": {
        "katana": {"type": "nodelocked", "content": "sdb://vault/licenses/katana"},
        "maya": {"type": "autodesk", "product_key": "sdb://vault"},
        "nuke": {"type": "nodelocked", "content": "LICENSE nuke ..."},
    },
    "display": {"anyware": {"registration_code": "sdb://env/ANYWARE_CODE"}},
    "productions": {
        "nightfall": {
            "mounts": {
                "projects": {"credentials": {"username": "render", "password": "sdb://yaml/smb"}}
            }
        }
    },
    "depot": "sdb://vault/not-a-secret-field",
}


def test_redact_shows_a_reference_which_is_no_secret():
    masked = secrets.redact(REFERENCED)

    assert masked["licenses"]["katana"]["content"] == "sdb://vault/licenses/katana"
    assert masked["licenses"]["nuke"]["content"] == secrets.MASK
    assert masked["productions"]["nightfall"]["mounts"]["projects"]["credentials"] == secrets.MASK


def test_secret_values_lists_every_secret_field_and_each_credential():
    assert dict(secrets.secret_values(REFERENCED)) == {
        "workstation:licenses:katana:content": "sdb://vault/licenses/katana",
        "workstation:licenses:maya:product_key": "sdb://vault",
        "workstation:licenses:nuke:content": "LICENSE nuke ...",
        "workstation:display:anyware:registration_code": "sdb://env/ANYWARE_CODE",
        "workstation:productions:nightfall:mounts:projects:credentials:username": "render",
        "workstation:productions:nightfall:mounts:projects:credentials:password": "sdb://yaml/smb",
    }


def test_reference_parses_profile_and_key_and_refuses_what_salt_cannot_read():
    found = secrets.reference("sdb://vault/licenses/katana")
    assert (found.profile, found.key, found.uri) == (
        "vault",
        "licenses/katana",
        "sdb://vault/licenses/katana",
    )
    for value in ("sdb://vault", "sdb://vault/", "sdb:///key", "sdb://a b/key", "LICENSE", 5, None):
        assert secrets.reference(value) is None
    assert secrets.is_reference("sdb://vault") and not secrets.is_reference("LICENSE")


def test_reference_issues_name_the_field_and_the_missing_profile():
    issues = {issue.path: issue.message for issue in secrets.reference_issues(REFERENCED, {"env"})}

    assert set(issues) == {
        "workstation:licenses:katana:content",
        "workstation:licenses:maya:product_key",
        "workstation:productions:nightfall:mounts:projects:credentials:password",
    }
    assert "sdb profile 'vault'" in issues["workstation:licenses:katana:content"]
    assert "(it defines env)" in issues["workstation:licenses:katana:content"]
    assert "not an sdb reference" in issues["workstation:licenses:maya:product_key"]
    # Without the minion's profiles (the master, a dry plan) only the syntax is judged.
    assert [issue.path for issue in secrets.reference_issues(REFERENCED)] == [
        "workstation:licenses:maya:product_key"
    ]


def test_sdb_profiles_are_the_mappings_with_a_driver_in_config_and_pillar():
    opts = {"vault": {"driver": "vault"}, "cachedir": "/var/cache/salt", "file_roots": {"base": []}}
    pillar = {"env": {"driver": "env"}, "workstation": {}}
    assert secrets.sdb_profiles(opts, pillar, None) == {"vault", "env"}


def test_reveal_resolves_only_references_and_says_which_field_resolved_to_nothing():
    asked = []

    def resolve(uri):
        asked.append(uri)
        return {"sdb://vault/katana": "LICENSE katana"}.get(uri)

    assert secrets.reveal("LICENSE plain", "p", resolve) == "LICENSE plain" and asked == []
    assert secrets.reveal("sdb://vault/katana", "p", resolve) == "LICENSE katana"
    with pytest.raises(WorkstationError) as missing:
        secrets.reveal("sdb://vault/nuke", "workstation:licenses:nuke:content", resolve)
    assert str(missing.value) == (
        "workstation:licenses:nuke:content: sdb://vault/nuke resolves to nothing; put the secret "
        "at key 'nuke' of sdb profile 'vault', or fix the reference (docs/secrets.md)"
    )
    # Salt's sdb hands the URI back when it cannot use the profile: that is nothing too.
    with pytest.raises(WorkstationError, match="resolves to nothing"):
        secrets.reveal("sdb://vault/x", "p", lambda uri: uri)
    with pytest.raises(WorkstationError, match="profile 'vault': RuntimeError: sealed"):
        secrets.reveal(
            "sdb://vault/x", "p", lambda uri: (_ for _ in ()).throw(RuntimeError("sealed"))
        )
    with pytest.raises(WorkstationError, match="no sdb is at hand"):
        secrets.reveal("sdb://vault/x", "p", None)
    with pytest.raises(WorkstationError, match="not an sdb reference"):
        secrets.reveal("sdb://vault", "p", resolve)


def test_digests_tell_a_rotation_without_keeping_the_secret(tmp_path):
    folder = tmp_path / "digests"
    digests = secrets.Digests(folder)

    assert digests.changed("code", "FIRST-SECRET") is None  # nothing recorded yet
    digests.record("code", "FIRST-SECRET")
    assert digests.changed("code", "FIRST-SECRET") is False
    assert digests.changed("code", "SECOND-SECRET") is True
    assert digests.changed("other", "FIRST-SECRET") is None

    key, digest = folder / "digest.key", folder / "code.hmac"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(digest.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert b"FIRST-SECRET" not in key.read_bytes() + digest.read_bytes()
    # Keyed: another minion (another key) records a different digest for the same secret.
    other = secrets.Digests(tmp_path / "elsewhere")
    other.record("code", "FIRST-SECRET")
    assert (tmp_path / "elsewhere/code.hmac").read_bytes() != digest.read_bytes()
    assert len(os.listdir(folder)) == 2
