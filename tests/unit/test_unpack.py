"""unpack.extract and unpack.scan on real archives and real folders."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest

from salt_workstation import unpack
from salt_workstation.depot import HashingReader
from salt_workstation.errors import UnsafeArchive
from tests.support import archives
from tests.unit.conftest import dir_members, snapshot

FILES = archives.app_files("blender", "4.2")


def member(name, data=b"", mode=0o644, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode, info.type, info.linkname = mode, kind, linkname
    return info, data


def extract(archive: Path, dest: Path, strip: int = 0):
    dest.mkdir(parents=True, exist_ok=True)
    with open(archive, "rb") as handle:
        reader = HashingReader(handle, "sha256")
        records = unpack.extract(reader, dest, strip)
        reader.drain()
    assert "sha256:" + reader.hexdigest() == archives.sha256_of(
        archive
    )  # the stream saw every byte
    return records


def assert_app_tree(dest: Path, records, files=FILES, modes=True):
    by_path = {record.path: record for record in records}
    for name, (data, mode) in files.items():
        path = dest / name
        assert path.read_bytes() == data
        record = by_path[name]
        assert record.type == "file"
        assert record.mode == stat.S_IMODE(path.stat().st_mode)
        if modes:
            assert record.mode == mode, name
        assert record.size == len(data)
        assert record.digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.xz", ".tar.bz2", ".tar"])
def test_tar_formats_with_strip_components(tmp_path, suffix):
    archive = archives.write_tar(tmp_path / f"blender{suffix}", FILES, top="blender-4.2")
    dest = tmp_path / "dest"
    records = extract(archive, dest, strip=1)
    assert_app_tree(dest, records)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(
        FILES
    )
    assert not (dest / "blender-4.2").exists()


def test_zip_with_strip_components(tmp_path):
    archive = archives.write_zip(tmp_path / "blender.zip", FILES, top="blender-4.2")
    dest = tmp_path / "dest"
    records = extract(archive, dest, strip=1)
    assert_app_tree(dest, records, modes=False)
    assert sorted(r.path for r in records) == sorted(FILES)


def test_zip_from_a_seekable_stream_keeps_modes(tmp_path):
    # A zip keeps Unix modes only in its central directory, at the end of the file. libarchive reads it
    # when it can seek; through the (deliberately unseekable) HashingReader every file comes out 0o664.
    # The engine feeds extract() a HashingReader: see test_engine's zip launcher test for the bug.
    archive = archives.write_zip(tmp_path / "blender.zip", FILES, top="blender-4.2")
    dest = tmp_path / "seekable"
    dest.mkdir()
    with open(archive, "rb") as handle:
        assert_app_tree(dest, unpack.extract(handle, dest, 1), modes=True)


def test_without_strip_the_top_folder_stays(tmp_path):
    archive = archives.write_tar(tmp_path / "b.tar.gz", FILES, top="blender-4.2")
    dest = tmp_path / "dest"
    records = extract(archive, dest, strip=0)
    assert (dest / "blender-4.2" / "bin" / "blender").read_bytes() == FILES["bin/blender"][0]
    assert {"path": "blender-4.2", "type": "dir"}.items() <= vars(records[0]).items()


def test_strip_two_and_entries_stripped_to_nothing_are_skipped(tmp_path):
    archive = archives.write_tar(
        tmp_path / "b.tar.gz", FILES, top="outer/inner", extra=dir_members(FILES, "outer/inner")
    )
    dest = tmp_path / "dest"
    records = extract(archive, dest, strip=2)
    assert_app_tree(dest, records)
    assert {r.path for r in records} == set(FILES) | {"bin", "lib", "scripts"}
    assert sorted(os.listdir(dest)) == ["README", "bin", "lib", "scripts"]


def test_setuid_and_setgid_bits_are_stripped(tmp_path):
    archive = archives.write_tar(
        tmp_path / "s.tar.gz",
        {},
        extra=[
            member("app/bin/suid", b"#!/bin/sh\n", 0o4755),
            member("app/bin/sgid", b"#!/bin/sh\n", 0o2750),
            member("app/bin/both", b"#!/bin/sh\n", 0o6711),
            member("app/shared", kind=tarfile.DIRTYPE, mode=0o2775),
        ],
    )
    dest = tmp_path / "dest"
    records = {r.path: r for r in extract(archive, dest, strip=1)}
    for name, want in {
        "bin/suid": 0o755,
        "bin/sgid": 0o750,
        "bin/both": 0o711,
        "shared": 0o775,
    }.items():
        assert stat.S_IMODE((dest / name).stat().st_mode) == want, name
        assert records[name].mode == want


def test_file_modes_are_kept(tmp_path):
    files = {
        "a": (b"a", 0o600),
        "b": (b"b", 0o640),
        "c": (b"c", 0o700),
        "d": (b"d", 0o444),
        "e": (b"e", 0o755),
    }
    archive = archives.write_tar(tmp_path / "m.tar.xz", files)
    dest = tmp_path / "dest"
    assert_app_tree(dest, extract(archive, dest), files)


def test_hardlinks_inside_the_archive_work(tmp_path):
    archive = archives.write_tar(
        tmp_path / "h.tar.gz",
        {},
        extra=[
            member("app/lib/libreal.so", b"real library bytes", 0o755),
            member(
                "app/lib/libalias.so",
                kind=tarfile.LNKTYPE,
                linkname="app/lib/libreal.so",
                mode=0o755,
            ),
        ],
    )
    dest = tmp_path / "dest"
    records = {r.path: r for r in extract(archive, dest, strip=1)}
    real, alias = dest / "lib/libreal.so", dest / "lib/libalias.so"
    assert alias.read_bytes() == b"real library bytes"
    assert real.stat().st_ino == alias.stat().st_ino
    assert records["lib/libalias.so"].type == "hardlink"
    assert records["lib/libalias.so"].target == "lib/libreal.so"


def test_symlinks_that_stay_inside_are_kept(tmp_path):
    archive = archives.write_tar(
        tmp_path / "l.tar.gz",
        {},
        extra=[
            member("app/bin/blender-4.2", b"#!/bin/sh\n", 0o755),
            member("app/bin/blender", kind=tarfile.SYMTYPE, linkname="blender-4.2"),
            member("app/share/bin", kind=tarfile.SYMTYPE, linkname="../bin"),
        ],
    )
    dest = tmp_path / "dest"
    records = {r.path: r for r in extract(archive, dest, strip=1)}
    assert os.readlink(dest / "bin/blender") == "blender-4.2"
    assert (dest / "share/bin/blender").read_bytes() == b"#!/bin/sh\n"
    assert (
        records["bin/blender"].type == "symlink" and records["bin/blender"].target == "blender-4.2"
    )


# ---- hostile archives -------------------------------------------------------------------


def absolute_targets(kind):
    """Absolute paths an attack aims at, so the test can check they were not touched."""
    return [
        Path(info.name) for info, _ in archives.hostile_members(kind) if info.name.startswith("/")
    ] + [
        Path(info.linkname)
        for info, _ in archives.hostile_members(kind)
        if info.linkname.startswith("/")
    ]


def stat_or_none(path):
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return (info.st_mode, info.st_size, info.st_mtime_ns, info.st_nlink)


HOSTILE_CASES = [(kind, 1) for kind in archives.HOSTILE_KINDS] + [
    (kind, 0)
    for kind in archives.HOSTILE_KINDS
    if kind != "symlink_chain"  # see the test below
]


@pytest.mark.parametrize(("kind", "strip"), HOSTILE_CASES)
def test_hostile_archive_is_refused_and_nothing_lands_outside(tmp_path, kind, strip):
    # Good files first, so the attack comes mid-stream with the writer already busy.
    archive = archives.write_tar(
        tmp_path / "archives" / f"{kind}.tar.gz",
        {"bin/ok": (b"ok", 0o755)},
        top="app",
        extra=archives.hostile_members(kind),
    )
    outer = tmp_path / "outer"
    dest = outer / "inner" / "dest"
    dest.mkdir(parents=True)
    (outer / "inner" / "bystander").write_text("keep me")
    before = snapshot(tmp_path, skip=dest)
    watched = {path: stat_or_none(path) for path in absolute_targets(kind)}

    with pytest.raises(UnsafeArchive) as raised:
        extract(archive, dest, strip)

    assert str(raised.value)
    assert snapshot(tmp_path, skip=dest) == before
    for path, seen in watched.items():
        assert stat_or_none(path) == seen, path
    for path in dest.rglob("*"):  # whatever was written before the refusal stayed inside
        assert (
            Path(os.path.realpath(path)).is_relative_to(os.path.realpath(dest)) or path.is_symlink()
        )


def test_symlink_chain_unstripped_resolves_inside_and_is_accepted(tmp_path):
    # Kept under app/, `up` -> here/.. is dest/app/.. = dest itself: harmless, so not refused.
    archive = archives.write_tar(
        tmp_path / "c.tar.gz", {}, extra=archives.hostile_members("symlink_chain")
    )
    dest = tmp_path / "dest"
    records = extract(archive, dest, strip=0)
    assert {r.path for r in records} == {"app/here", "app/up"}
    assert os.path.realpath(dest / "app" / "up") == os.path.realpath(dest)


def test_chain_followed_by_a_write_through_it_is_refused(tmp_path):
    archive = archives.write_tar(
        tmp_path / "a" / "chain.tar.gz",
        {},
        extra=[
            member("app/here", kind=tarfile.SYMTYPE, linkname="."),
            member("app/up", kind=tarfile.SYMTYPE, linkname="here/.."),
            member("app/up/evil", b"evil"),
            member("app/h", kind=tarfile.LNKTYPE, linkname="app/up/victim"),
        ],
    )
    (tmp_path / "victim").write_text("victim")
    dest = tmp_path / "dest"
    before = snapshot(tmp_path, skip=dest)
    with pytest.raises(UnsafeArchive):
        extract(archive, dest, strip=1)
    assert snapshot(tmp_path, skip=dest) == before
    assert not (tmp_path / "evil").exists()


def test_fifo_message_says_fifo(tmp_path):
    archive = archives.write_tar(tmp_path / "f.tar.gz", {}, extra=archives.hostile_members("fifo"))
    with pytest.raises(UnsafeArchive, match="app/pipe"):
        extract(archive, tmp_path / "dest", strip=0)


def test_fifo_is_not_called_a_device_file(tmp_path):
    archive = archives.write_tar(tmp_path / "f.tar.gz", {}, extra=archives.hostile_members("fifo"))
    with pytest.raises(UnsafeArchive) as raised:
        extract(archive, tmp_path / "dest", strip=0)
    assert "fifo" in str(raised.value)


def test_reserved_name_as_a_folder_is_refused(tmp_path):
    archive = archives.write_tar(
        tmp_path / "r.tar.gz", {}, extra=[member("app/.workstation-manifest.json/x", b"x")]
    )
    with pytest.raises(UnsafeArchive):
        extract(archive, tmp_path / "dest", strip=1)


@pytest.mark.parametrize(
    ("name", "strip", "expect"),
    [
        ("app/bin/x", 1, "bin/x"),
        ("./app/bin/x", 1, "bin/x"),
        ("app//bin/./x", 0, "app/bin/x"),
        ("app", 1, None),
        ("app/", 1, None),
        ("a/b/c", 5, None),
    ],
)
def test_member_path(name, strip, expect):
    assert unpack.member_path(name, strip) == expect


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "C:/Windows/x", "app/../../x", "app\\..\\..\\x", "app/.workstation-files.json"],
)
def test_member_path_refuses(name):
    with pytest.raises(UnsafeArchive):
        unpack.member_path(name, 0)


def test_not_an_archive_is_refused(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>502 Bad Gateway</html>" * 10)
    with pytest.raises(UnsafeArchive, match="could not be unpacked"):
        extract(junk, tmp_path / "dest")


# ---- scan (folders written by vendor installers) ----------------------------------------


def test_scan_records_and_strips_privilege_bits(tmp_path):
    dest = tmp_path / "dest"
    (dest / "bin").mkdir(parents=True)
    (dest / "bin" / "tool").write_bytes(b"tool")
    os.chmod(dest / "bin" / "tool", 0o4755)
    os.link(dest / "bin" / "tool", dest / "bin" / "tool-alias")
    os.symlink("tool", dest / "bin" / "t")
    (dest / ".workstation-manifest.json").write_text(
        "{}"
    )  # reserved names are not part of the payload

    records = {r.path: r for r in unpack.scan(dest)}
    assert set(records) == {"bin", "bin/t", "bin/tool", "bin/tool-alias"}
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    assert records["bin/tool"].mode == 0o755
    assert records["bin/tool"].digest == hashlib.sha256(b"tool").hexdigest()
    assert (
        records["bin/tool-alias"].type == "hardlink"
        and records["bin/tool-alias"].target == "bin/tool"
    )
    assert records["bin/t"].type == "symlink" and records["bin/t"].target == "tool"


def test_scan_refuses_links_out_and_special_files(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink("/etc", dest / "etc")
    with pytest.raises(UnsafeArchive, match="resolves outside"):
        unpack.scan(dest)
    os.unlink(dest / "etc")
    os.mkfifo(dest / "pipe")
    with pytest.raises(UnsafeArchive, match="pipe"):
        unpack.scan(dest)
