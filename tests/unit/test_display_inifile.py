"""Key-by-key merges into the agents' vendor files: named keys change, every other line stays."""

from __future__ import annotations

import os

import pytest

from salt_workstation import inifile
from salt_workstation.errors import DiskError, UnsafePath, WorkstationError
from tests.system.standins.display import DCV_CONF, PCOIP_CONF, VNC_USERS
from tests.unit.test_engine_faults import needs_root, small_tmpfs

DCV_WANTED = {
    "license": {"license-file": "5053@rlm.studio.test"},
    "connectivity": {"web-port": 8443, "enable-quic-frontend": True},
    "session-management/automatic-console-session": {"owner": "alice"},
    "clipboard": {"primary-selection-copy": True},
}


def added_lines(before: str, after: str) -> list[str]:
    """The lines of `after` that are not `before`'s, asserting that `before` survives in order."""
    remaining, added = iter(before.splitlines()), []
    expected = next(remaining, None)
    for line in after.splitlines():
        if line == expected:
            expected = next(remaining, None)
        else:
            added.append(line)
    assert expected is None, f"line {expected!r} of the original is missing or out of order"
    return added


def test_dcv_keys_land_under_their_examples_and_everything_else_stays():
    text = DCV_CONF.decode()

    merged, changes = inifile.merge(text, DCV_WANTED, inifile.DCV)

    assert changes == {
        "[license] license-file": {"old": None, "new": '"5053@rlm.studio.test"'},
        "[connectivity] web-port": {"old": None, "new": "8443"},
        "[connectivity] enable-quic-frontend": {"old": None, "new": "true"},
        "[session-management/automatic-console-session] owner": {"old": None, "new": '"alice"'},
        "[clipboard] primary-selection-copy": {"old": None, "new": "true"},
    }
    # every original line is still there, in the original order, and only the named keys were added
    assert added_lines(text, merged) == [
        'license-file="5053@rlm.studio.test"',
        'owner="alice"',
        "web-port=8443",
        "enable-quic-frontend=true",
        "",
        "[clipboard]",
        "primary-selection-copy=true",
    ]
    # new keys sit right after the vendor's commented-out example of the same key
    assert '#license-file = ""\nlicense-file="5053@rlm.studio.test"\n' in merged
    assert (
        "#web-port = 8443\nweb-port=8443\n#enable-quic-frontend = false\nenable-quic-frontend=true\n"
        in merged
    )
    assert '#owner = ""\nowner="alice"\n' in merged
    assert merged.endswith(
        "\n[clipboard]\nprimary-selection-copy=true\n"
    )  # a new section at the end
    assert "[display]\ntarget-fps = 30\n" in merged  # the unrelated key the pillar does not name

    again, changes_again = inifile.merge(merged, DCV_WANTED, inifile.DCV)
    assert changes_again == {} and again == merged


def test_a_changed_value_keeps_the_line_spacing_and_null_removes_a_key():
    text = "[display]\ntarget-fps = 30\nmax-head-resolution = (4096, 2160)\n"

    merged, changes = inifile.merge(
        text, {"display": {"target-fps": 60, "max-head-resolution": None}}, inifile.DCV
    )

    assert merged == "[display]\ntarget-fps = 60\n"
    assert changes == {
        "[display] target-fps": {"old": "30", "new": "60"},
        "[display] max-head-resolution": {"old": "(4096, 2160)", "new": None},
    }
    assert inifile.merge(merged, {"display": {"max-head-resolution": None}}, inifile.DCV) == (
        merged,
        {},
    )


def test_dcv_strings_are_quoted_and_escaped():
    merged, _ = inifile.merge("", {"security": {"auth-token-verifier": 'a "b" \\c'}}, inifile.DCV)
    assert merged == '[security]\nauth-token-verifier="a \\"b\\" \\\\c"\n'


def test_a_key_set_twice_is_set_everywhere_so_any_reader_sees_the_pillar_value():
    text = ":1=bob\n:2=carol\n:1=dave\n"

    merged, changes = inifile.merge(text, {"": {":1": "alice"}}, inifile.TIGERVNC)

    assert merged == ":1=alice\n:2=carol\n:1=alice\n"
    assert changes == {":1": {"old": "dave", "new": "alice"}}


def test_pcoip_keys_are_spaced_and_booleans_are_numbers():
    merged, changes = inifile.merge(
        PCOIP_CONF.decode(),
        {"": {"pcoip.maximum_frame_rate": 30, "pcoip.enable_audio": False}},
        inifile.PCOIP,
    )
    assert "# pcoip.maximum_frame_rate = 30\npcoip.maximum_frame_rate = 30\n" in merged
    assert merged.endswith("pcoip.event_filter_mode = 2\npcoip.enable_audio = 0\n")
    assert set(changes) == {"pcoip.maximum_frame_rate", "pcoip.enable_audio"}


def test_tigervnc_flags_are_bare_lines_and_false_removes_them():
    text = "geometry=1920x1080\nalwaysshared\n"

    merged, changes = inifile.merge(
        text,
        {"": {"localhost": True, "alwaysshared": False, "geometry": "2560x1440"}},
        inifile.TIGERVNC,
    )

    assert merged == "geometry=2560x1440\nlocalhost\n"
    assert changes == {
        "localhost": {"old": None, "new": "(flag)"},
        "alwaysshared": {"old": "(flag)", "new": None},
        "geometry": {"old": "1920x1080", "new": "2560x1440"},
    }
    assert (
        inifile.merge(merged, {"": {"localhost": True, "alwaysshared": False}}, inifile.TIGERVNC)[1]
        == {}
    )


def test_the_vnc_users_file_keeps_its_comments():
    merged, _ = inifile.merge(VNC_USERS.decode(), {"": {":1": "alice"}}, inifile.TIGERVNC)
    assert merged == VNC_USERS.decode() + ":1=alice\n"


def test_merge_file_writes_atomically_only_on_change_and_keeps_mode(tmp_path):
    path = tmp_path / "dcv.conf"
    path.write_bytes(DCV_CONF)
    path.chmod(0o640)
    wanted = {"connectivity": {"web-port": 9443}}

    predicted = inifile.merge_file(str(path), wanted, inifile.DCV, test=True)
    assert path.read_bytes() == DCV_CONF
    written = inifile.merge_file(str(path), wanted, inifile.DCV)
    inode = path.stat().st_ino
    converged = inifile.merge_file(str(path), wanted, inifile.DCV)

    assert predicted == written == {"[connectivity] web-port": {"old": None, "new": "9443"}}
    assert converged == {}
    assert path.stat().st_ino == inode  # not rewritten when nothing differs
    assert path.stat().st_mode & 0o777 == 0o640
    assert "web-port=9443" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["dcv.conf"]  # no temporary file left


def test_a_new_file_gets_its_mode_and_a_missing_folder_is_a_clear_error(tmp_path):
    created = tmp_path / "vncserver-config-defaults"
    old_umask = os.umask(0o077)
    try:
        inifile.merge_file(str(created), {"": {"geometry": "1920x1080"}}, inifile.TIGERVNC)
    finally:
        os.umask(old_umask)
    assert created.read_text() == "geometry=1920x1080\n"
    assert created.stat().st_mode & 0o777 == 0o644

    with pytest.raises(WorkstationError, match="is the agent's package installed"):
        inifile.merge_file(str(tmp_path / "missing" / "dcv.conf"), {"a": {"b": 1}}, inifile.DCV)


def test_crlf_files_and_bytes_that_are_not_utf8_survive_a_rewrite(tmp_path):
    path = tmp_path / "pcoip-agent.conf"
    path.write_bytes(b"# caf\xe9 (latin-1)\r\npcoip.event_filter_mode = 2\r\n")

    inifile.merge_file(str(path), {"": {"pcoip.maximum_frame_rate": 24}}, inifile.PCOIP)

    assert (
        path.read_bytes()
        == b"# caf\xe9 (latin-1)\r\npcoip.event_filter_mode = 2\r\npcoip.maximum_frame_rate = 24\r\n"
    )


def test_a_link_where_an_agent_config_belongs_is_refused_and_never_read_through(tmp_path):
    """Before: the merge read what the link pointed to and wrote a copy of it, keys added, in its place."""
    path = tmp_path / "dcv.conf"
    elsewhere = tmp_path / "shadow"
    elsewhere.write_text("root:$6$secret:19000::::::\n")
    path.symlink_to(elsewhere)

    with pytest.raises(UnsafePath, match=f"{path} is not a regular file"):
        inifile.merge_file(str(path), {"connectivity": {"web-port": 9443}}, inifile.DCV)

    assert path.is_symlink() and elsewhere.read_text() == "root:$6$secret:19000::::::\n"


@needs_root
def test_a_full_disk_while_merging_an_agent_config_is_a_disk_error_and_the_old_file_stays(tmp_path):
    with small_tmpfs(tmp_path / "small", "64k") as folder:
        path = folder / "dcv.conf"
        original = (
            DCV_CONF + b"#" * (40 * 1024) + b"\n"
        )  # the rewrite needs as much again: more than is left
        path.write_bytes(original)

        with pytest.raises(DiskError, match=f"^disk full under {folder}"):
            inifile.merge_file(str(path), {"connectivity": {"web-port": 9443}}, inifile.DCV)

        assert path.read_bytes() == original
        assert [p.name for p in folder.iterdir()] == ["dcv.conf"]
