"""engine.AppStore on real archives, a real depot folder and a real HTTP depot on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from salt_workstation import __version__, pillar, safefs
from salt_workstation.engine import ABSENT, CHANGED, DAMAGED, FOREIGN, INSTALLED
from salt_workstation.errors import (
    DepotError,
    HashMismatch,
    InstallError,
    UnsafeArchive,
    WorkstationError,
)
from salt_workstation.paths import FILE_LIST, MANIFEST
from tests.support import archives
from tests.support.depot import DepotServer
from tests.unit.conftest import snapshot


def entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def leftovers(store, app) -> list[str]:
    """Staging, trash or installer-source folders an install left behind."""
    return [
        name
        for name in entries(store.layout.app_dir(app))
        if name.startswith((".staging-", ".trash-"))
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- install and status -----------------------------------------------------------------


def test_install_from_a_file_depot(store, depot):
    spec = depot.build("blender", "4.2")
    assert spec.source.startswith("file://")
    assert store.status(spec) == ABSENT

    manifest = store.install(spec)

    dest = store.layout.version_dir("blender", "4.2")
    for name, (data, mode) in archives.app_files("blender", "4.2").items():
        assert (dest / name).read_bytes() == data
        assert stat.S_IMODE((dest / name).stat().st_mode) == mode
    assert manifest == json.loads((dest / MANIFEST).read_text())
    files = archives.app_files("blender", "4.2")
    assert (
        manifest["app"] == "blender"
        and manifest["version"] == "4.2"
        and manifest["kind"] == "archive"
    )
    assert manifest["source"] == spec.source
    assert manifest["hash"] == spec.hash
    assert manifest["identity"] == {"kind": "archive", "hash": spec.hash, "strip_components": 1}
    assert manifest["launchers"] == {"blender": "bin/blender"}
    assert manifest["env"] == {}
    assert manifest["files"] == len(files)
    assert manifest["bytes"] == sum(len(data) for data, _ in files.values())
    assert manifest["installed_by"] == f"salt-workstation {__version__}"
    assert time.strptime(manifest["installed_at"], "%Y-%m-%dT%H:%M:%SZ")
    rows = json.loads((dest / FILE_LIST).read_text())
    assert {row[0] for row in rows} == set(files) | {"bin", "lib", "scripts"}

    assert store.status(spec) == INSTALLED
    assert store.installed() == {"blender": {"4.2": manifest}}
    assert leftovers(store, "blender") == []
    assert store.verify("blender", "4.2")["ok"] is True


def test_install_from_an_http_depot_and_converged_status_makes_no_request(store, http_depot):
    archive = http_depot.app_archive("nuke", "15.1v3")
    spec = http_depot.spec("nuke", "15.1v3", http_depot.entry(archive), http_depot.url)
    assert spec.source == f"{http_depot.url}/nuke/nuke-15.1v3.tar.gz"
    manifest = store.install(spec)
    assert http_depot.requests == 1
    assert manifest["source"] == spec.source
    for _ in range(3):
        assert store.status(spec) == INSTALLED
    assert store.verify("nuke", "15.1v3", deep=True)["ok"] is True
    assert store.installed()["nuke"]["15.1v3"] == manifest
    assert http_depot.requests == 1
    assert (
        (store.layout.version_dir("nuke", "15.1v3") / "bin/nuke")
        .read_bytes()
        .startswith(b"#!/bin/sh")
    )


def test_install_with_a_sha512_hash(store, depot):
    archive = depot.app_archive("blender", "4.2", suffix=".tar.xz")
    digest = hashlib.sha512(archive.read_bytes()).hexdigest()
    spec = depot.spec("blender", "4.2", depot.entry(archive, hash=f"sha512:{digest}"))
    assert store.install(spec)["hash"] == f"sha512:{digest}"
    assert store.status(spec) == INSTALLED


def test_install_from_zip_hashes_the_whole_file(store, depot):
    # libarchive never reads a zip's central directory when streaming: drain() must hash it.
    spec = depot.build("blender", "4.2", suffix=".zip")
    store.install(spec)
    dest = store.layout.version_dir("blender", "4.2")
    assert (dest / "README").read_bytes() == b"blender 4.2\n"
    assert store.status(spec) == INSTALLED


def test_install_from_zip_keeps_the_launcher_executable(store, depot):
    spec = depot.build("blender", "4.2", suffix=".zip")
    store.install(spec)
    launcher = store.layout.version_dir("blender", "4.2") / "bin/blender"
    assert os.access(launcher, os.X_OK)
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755


def test_status_changed_damaged_absent(store, depot):
    spec = depot.build("blender", "4.2")
    assert store.status(spec) == ABSENT
    store.install(spec)
    rebuilt = depot.build(
        "blender",
        "4.2",
        name="blender-4.2-rebuild.tar.gz",
        extra_files={"NEWS": (b"rebuilt", 0o644)},
    )
    assert rebuilt.hash != spec.hash
    assert store.status(rebuilt) == CHANGED
    assert store.status(pillar.VersionSpec(**{**vars(spec), "strip_components": 0})) == CHANGED
    assert store.status(spec) == INSTALLED

    dest = store.layout.version_dir("blender", "4.2")
    (dest / "bin/blender").unlink()
    assert store.status(spec) == DAMAGED
    store.install(spec)
    assert store.status(spec) == INSTALLED

    (dest / MANIFEST).unlink()
    assert store.status(spec) == FOREIGN
    assert store.installed() == {}
    with pytest.raises(WorkstationError, match="did not install it"):
        store.install(spec)
    assert (dest / "bin/blender").is_file()  # a folder we did not install is never replaced


def test_replacing_a_changed_version_swaps_the_whole_folder(store, depot):
    old = depot.build("blender", "4.2", extra_files={"old-only.txt": (b"old", 0o644)})
    store.install(old)
    dest = store.layout.version_dir("blender", "4.2")
    (dest / "user-cruft").write_text("left by someone")
    new = depot.build(
        "blender", "4.2", name="blender-4.2-b.tar.gz", extra_files={"new-only.txt": (b"new", 0o644)}
    )

    manifest = store.install(new)

    assert not (dest / "old-only.txt").exists()
    assert not (dest / "user-cruft").exists()
    assert (dest / "new-only.txt").read_bytes() == b"new"
    assert manifest["hash"] == new.hash
    assert store.manifest("blender", "4.2")["hash"] == new.hash
    assert store.status(new) == INSTALLED
    assert store.status(old) == CHANGED
    assert leftovers(store, "blender") == []
    assert store.verify("blender", "4.2")["ok"] is True


def test_exchange_swaps_two_folders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "a").write_text("a")
    (second / "b").write_text("b")
    with safefs.Dir.root(tmp_path) as folder:
        if not folder.exchange("first", "second"):
            pytest.skip("this kernel or filesystem has no renameat2 RENAME_EXCHANGE")
    assert entries(first) == ["b"] and entries(second) == ["a"]


def test_other_apps_and_versions_sit_side_by_side(store, depot):
    specs = [
        depot.build("blender", "4.1"),
        depot.build("blender", "4.2"),
        depot.build("nuke", "15.1v3"),
    ]
    for spec in specs:
        store.install(spec)
    assert {app: sorted(v) for app, v in store.installed().items()} == {
        "blender": ["4.1", "4.2"],
        "nuke": ["15.1v3"],
    }
    assert all(store.status(spec) == INSTALLED for spec in specs)


# ---- failures leave nothing behind --------------------------------------------------------


def test_hash_mismatch_installs_nothing_and_keeps_the_installed_build(store, depot):
    good = depot.build("blender", "4.2")
    store.install(good)
    dest = store.layout.version_dir("blender", "4.2")
    before = snapshot(dest)
    other = depot.app_archive(
        "blender", "4.2", name="tampered.tar.gz", extra_files={"evil": (b"x", 0o755)}
    )
    wrong = depot.spec(
        "blender", "4.2", depot.entry(other, hash=good.hash.replace(good.hash[-4:], "0000"))
    )

    with pytest.raises(HashMismatch) as raised:
        store.install(wrong)

    message = str(raised.value)
    assert "Nothing was installed" in message
    assert archives.sha256_of(other).split(":")[1] in message and wrong.hash_hex in message
    assert snapshot(dest) == before
    assert store.manifest("blender", "4.2")["hash"] == good.hash
    assert not (dest / "evil").exists()
    assert leftovers(store, "blender") == []


def test_hash_mismatch_on_a_new_version_creates_no_folder(store, depot):
    archive = depot.app_archive("blender", "4.3")
    spec = depot.spec("blender", "4.3", depot.entry(archive, hash="sha256:" + "0" * 64))
    with pytest.raises(HashMismatch):
        store.install(spec)
    assert entries(store.layout.app_dir("blender")) == [".lock"]
    assert store.status(spec) == ABSENT


def test_corrupt_depot_file_installs_nothing(store, depot):
    spec = depot.build("blender", "4.2")
    source = Path(spec.source.removeprefix("file://"))
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(WorkstationError):
        store.install(spec)
    assert store.status(spec) == ABSENT
    assert leftovers(store, "blender") == []


def test_truncated_depot_file_is_a_hash_mismatch(store, depot):
    spec = depot.build("blender", "4.2")
    source = Path(spec.source.removeprefix("file://"))
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(HashMismatch):
        store.install(spec)


def test_depot_down_is_a_depot_error_that_says_what_to_check(store, depot):
    old_archive = depot.app_archive("blender", "4.1")
    archive = depot.app_archive("blender", "4.2")
    with DepotServer(depot.root) as server:
        installed = depot.spec("blender", "4.1", depot.entry(old_archive), server.url)
        store.install(installed)
        spec = depot.spec("blender", "4.2", depot.entry(archive), server.url)
    # the depot is down now
    assert store.status(installed) == INSTALLED  # a converged check never needs the depot
    with pytest.raises(DepotError) as raised:
        store.install(spec)
    message = str(raised.value)
    assert spec.source in message
    assert "is the depot up and reachable" in message
    assert store.status(spec) == ABSENT
    assert store.status(installed) == INSTALLED
    assert leftovers(store, "blender") == []


def test_nothing_listening_is_a_depot_error(store, depot):
    archive = depot.app_archive("blender", "4.2")
    spec = depot.spec(
        "blender", "4.2", depot.entry(archive), f"http://127.0.0.1:{closed_port()}/dcc"
    )
    with pytest.raises(
        DepotError, match=r"could not read http://127\.0\.0\.1:.*/dcc/blender/blender-4\.2\.tar\.gz"
    ):
        store.install(spec)


def test_missing_file_on_the_http_depot_is_a_404_depot_error(store, http_depot):
    archive = http_depot.app_archive("blender", "4.2")
    spec = http_depot.spec(
        "blender", "4.2", http_depot.entry(archive, source="blender/nope.tar.gz"), http_depot.url
    )
    with pytest.raises(DepotError) as raised:
        store.install(spec)
    assert http_depot.requests == 1
    assert "answered 404" in str(raised.value)
    assert f"{http_depot.url}/blender/nope.tar.gz" in str(raised.value)
    assert store.status(spec) == ABSENT


def test_missing_file_in_a_file_depot(store, depot):
    archive = depot.app_archive("blender", "4.2")
    spec = depot.spec("blender", "4.2", depot.entry(archive, source="blender/nope.tar.gz"))
    with pytest.raises(DepotError, match="does not exist in the depot"):
        store.install(spec)


def test_salt_sources_go_through_fetch_salt(store, depot):
    archive = depot.app_archive("blender", "4.2")
    spec = depot.spec("blender", "4.2", depot.entry(archive), "salt://depot")
    assert spec.source == "salt://depot/blender/blender-4.2.tar.gz"
    with pytest.raises(DepotError, match="need a Salt minion"):
        store.install(spec)
    with pytest.raises(DepotError, match="not found on the Salt fileserver"):
        store.install(spec, fetch_salt=lambda url: "")
    fetched = []

    def fetch_salt(url):  # what cp.cache_file does: the salt:// file as a local path
        fetched.append(url)
        return str(depot.root / url.removeprefix("salt://depot/"))

    store.install(spec, fetch_salt=fetch_salt)
    assert fetched == [spec.source]
    assert store.status(spec) == INSTALLED


def test_interrupted_install_is_cleaned_up_by_the_next_one(store, depot):
    spec = depot.build("blender", "4.2")
    app_dir = store.layout.app_dir("blender")
    for name in (".staging-4.2-99999", ".staging-4.2-99999-source", ".trash-4.1-99999"):
        (app_dir / name / "deep").mkdir(parents=True)
        (app_dir / name / "deep" / "junk").write_bytes(b"half written" * 100)

    store.install(spec)

    assert leftovers(store, "blender") == []
    assert entries(app_dir) == [".lock", "4.2"]
    assert store.status(spec) == INSTALLED
    assert store.verify("blender", "4.2")["ok"] is True


def test_missing_launcher_fails_the_install_and_names_it(store, depot):
    archive = depot.app_archive("blender", "4.2")
    spec = depot.spec(
        "blender",
        "4.2",
        depot.entry(archive, launchers={"blender": "bin/blender", "bpy": "bin/bpy"}),
    )
    with pytest.raises(InstallError) as raised:
        store.install(spec)
    message = str(raised.value)
    assert "bpy -> bin/bpy" in message
    assert "blender -> bin/blender" not in message
    assert "workstation:catalog:blender:versions:4.2:launchers" in message
    assert not store.layout.version_dir("blender", "4.2").exists()
    assert leftovers(store, "blender") == []


def test_hostile_archive_with_the_right_hash_is_still_refused(store, depot, tmp_path):
    store.layout.app_dir("evil").mkdir(parents=True)
    for kind in archives.HOSTILE_KINDS:
        archive = archives.write_tar(
            depot.root / "evil" / f"{kind}.tar.gz",
            {"bin/ok": (b"ok", 0o755)},
            top="app",
            extra=archives.hostile_members(kind),
        )
        spec = depot.spec("evil", kind.replace("_", "-"), depot.entry(archive, launchers={}))
        before = snapshot(tmp_path, skip=store.layout.app_dir("evil"))
        with pytest.raises(UnsafeArchive):
            store.install(spec)
        assert snapshot(tmp_path, skip=store.layout.app_dir("evil")) == before, kind
        assert store.status(spec) == ABSENT
    assert leftovers(store, "evil") == []


def test_reserved_folder_name_is_a_workstation_error(store, depot):
    archive = depot.app_archive(
        "blender",
        "4.2",
        extra_files={".workstation-manifest.json/x": (b"x", 0o644)},
        explicit_dirs=False,
    )
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    with pytest.raises(UnsafeArchive):
        store.install(spec)


def test_reserved_folder_name_installs_nothing(store, depot):
    archive = depot.app_archive(
        "blender",
        "4.2",
        extra_files={".workstation-manifest.json/x": (b"x", 0o644)},
        explicit_dirs=False,
    )
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    with pytest.raises(UnsafeArchive, match="reserves"):
        store.install(spec)
    assert store.status(spec) == ABSENT
    assert leftovers(store, "blender") == []


def test_http_depot_with_credentials(store, http_depot):
    archive = http_depot.app_archive("blender", "4.2")
    url = http_depot.url.replace("http://", "http://builder:s3cret@")
    spec = http_depot.spec("blender", "4.2", http_depot.entry(archive), url)
    try:
        manifest = store.install(spec)
    except DepotError as exc:
        assert "s3cret" not in str(exc)  # at least the password stays out of the message
        raise
    assert manifest["source"] == spec.source.replace("builder:s3cret@", "***@")


def test_http_source_with_a_space_in_its_name(store, http_depot):
    archive = http_depot.app_archive("blender", "4.2", name="Blender 4.2 Linux.tar.gz")
    spec = http_depot.spec("blender", "4.2", http_depot.entry(archive), http_depot.url)
    store.install(spec)
    assert store.status(spec) == INSTALLED


def test_file_source_with_a_hash_sign_in_its_name(store, depot):
    archive = depot.app_archive("blender", "4.2", name="blender#4.2.tar.gz")
    spec = depot.spec("blender", "4.2", depot.entry(archive))
    store.install(spec)
    assert store.status(spec) == INSTALLED


# ---- remove ---------------------------------------------------------------------------------


def test_remove(store, depot):
    keep, gone = depot.build("blender", "4.1"), depot.build("blender", "4.2")
    store.install(keep)
    store.install(gone)
    assert store.remove("blender", "4.2") is True
    assert not store.layout.version_dir("blender", "4.2").exists()
    assert store.status(gone) == ABSENT
    assert store.status(keep) == INSTALLED
    assert store.remove("blender", "4.2") is False
    assert leftovers(store, "blender") == []


def test_remove_refuses_a_folder_without_manifest(store):
    hand_made = store.layout.version_dir("blender", "3.6")
    hand_made.mkdir(parents=True)
    (hand_made / "precious").write_text("artist's own build")
    with pytest.raises(WorkstationError, match="not installed by salt-workstation"):
        store.remove("blender", "3.6")
    assert (hand_made / "precious").read_text() == "artist's own build"


# ---- verify ---------------------------------------------------------------------------------


@pytest.fixture
def installed(store, depot):
    spec = depot.build("blender", "4.2")
    store.install(spec)
    return store.layout.version_dir("blender", "4.2")


def test_verify_clean_install(store, installed):
    for deep in (True, False):
        result = store.verify("blender", "4.2", deep=deep)
        assert result == {
            "app": "blender",
            "version": "4.2",
            "ok": True,
            "files": 4,
            "folders": 3,
            "links": 0,
            "deep": deep,
            "missing": [],
            "changed": [],
            "extra": [],
        }


def test_verify_missing_file(store, installed):
    (installed / "lib/libblender.so").unlink()
    for deep in (True, False):
        result = store.verify("blender", "4.2", deep=deep)
        assert result["ok"] is False
        assert result["missing"] == ["lib/libblender.so"]


def test_verify_same_size_content_change_needs_deep(store, installed):
    readme = installed / "README"
    data = readme.read_bytes()
    os.chmod(readme, 0o644)
    readme.write_bytes(data.upper())
    os.chmod(readme, 0o444)
    assert readme.stat().st_size == len(data)
    assert store.verify("blender", "4.2", deep=False)["ok"] is True
    deep = store.verify("blender", "4.2", deep=True)
    assert deep["ok"] is False
    assert deep["changed"] == ["README: content changed"]


def test_verify_size_change_is_seen_shallow(store, installed):
    (installed / "scripts/startup.py").write_text("import os\nos.system('evil')\n")
    result = store.verify("blender", "4.2", deep=False)
    assert result["ok"] is False
    assert result["changed"][0].startswith("scripts/startup.py: size ")


def test_verify_extra_file(store, installed):
    (installed / "scripts" / "injected.py").write_text("x")
    (installed / "stray").mkdir()
    result = store.verify("blender", "4.2", deep=False)
    assert result["ok"] is False
    assert sorted(result["extra"]) == ["scripts/injected.py", "stray"]
    assert result["missing"] == [] and result["changed"] == []


def test_verify_mode_change(store, installed):
    os.chmod(installed / "bin/blender", 0o777)
    result = store.verify("blender", "4.2", deep=False)
    assert result["ok"] is False
    assert result["changed"] == ["bin/blender: mode 777, expected 755"]


def test_verify_file_replaced_by_a_link(store, installed):
    target = installed / "lib/libblender.so"
    data = target.read_bytes()
    target.unlink()
    (installed / "lib/elsewhere.so").write_bytes(data)
    os.symlink("elsewhere.so", target)
    result = store.verify("blender", "4.2")
    assert "lib/libblender.so: no longer a regular file" in result["changed"]
    assert "lib/elsewhere.so" in result["extra"]


def test_verify_without_manifest(store, installed):
    (installed / MANIFEST).unlink()
    result = store.verify("blender", "4.2")
    assert result["ok"] is False and "no manifest" in result["error"]
    assert store.verify("blender", "9.9")["ok"] is False


def test_verify_right_after_installing_an_archive_without_folder_entries(store, depot):
    spec = depot.build("blender", "4.2", explicit_dirs=False)
    store.install(spec)
    result = store.verify("blender", "4.2")
    assert result["extra"] == []
    assert result["ok"] is True


# ---- installer kind -------------------------------------------------------------------------

INSTALL_SH = b"""#!/bin/sh
set -e
echo "installing into $1 from $(pwd)"
mkdir -p "$1/bin" "$1/houdini"
cp payload/bin/houdini "$1/bin/houdini"
cp payload/houdini/ui.py "$1/houdini/ui.py"
chmod 755 "$1/bin/houdini"
"""


def installer_spec(depot, version, script: bytes, command=None, timeout=60, launchers=None):
    files = {
        "install.sh": (script, 0o755),
        "payload/bin/houdini": (b"#!/bin/sh\necho houdini\n", 0o755),
        "payload/houdini/ui.py": (b"print('ui')\n", 0o644),
    }
    archive = archives.write_tar(
        depot.root / "houdini" / f"houdini-{version}.tar.gz", files, top=f"houdini-{version}"
    )
    raw = depot.entry(
        archive,
        kind="installer",
        installer={"command": command or ["./install.sh", "{dest}"], "timeout": timeout},
        launchers=launchers if launchers is not None else {"houdini": "bin/houdini"},
    )
    return depot.spec("houdini", version, raw)


def test_installer_kind_success(store, depot):
    spec = installer_spec(depot, "20.5.332", INSTALL_SH)
    manifest = store.install(spec)
    dest = store.layout.version_dir("houdini", "20.5.332")
    assert (dest / "bin/houdini").read_bytes() == b"#!/bin/sh\necho houdini\n"
    assert stat.S_IMODE((dest / "bin/houdini").stat().st_mode) == 0o755
    assert not (dest / "install.sh").exists() and not (dest / "payload").exists()
    assert manifest["kind"] == "installer"
    assert manifest["identity"]["installer"] == ["./install.sh", "{dest}"]
    assert manifest["files"] == 2
    log = store.layout.install_log("houdini", "20.5.332").read_text()
    assert "installing into" in log and ".staging-20.5.332-" in log
    assert store.status(spec) == INSTALLED
    assert store.verify("houdini", "20.5.332")["ok"] is True
    assert leftovers(store, "houdini") == []
    changed_command = installer_spec(
        depot, "20.5.332", INSTALL_SH, command=["./install.sh", "{dest}", "--quiet"]
    )
    assert store.status(changed_command) == CHANGED


def test_installer_nonzero_exit_names_the_log(store, depot):
    script = b'#!/bin/sh\necho "license server unreachable" >&2\nexit 7\n'
    spec = installer_spec(depot, "20.5.332", script)
    with pytest.raises(InstallError) as raised:
        store.install(spec)
    log = store.layout.install_log("houdini", "20.5.332")
    assert "exited with 7" in str(raised.value)
    assert str(log) in str(raised.value)
    assert "license server unreachable" in log.read_text()
    assert store.status(spec) == ABSENT
    assert leftovers(store, "houdini") == []


def test_installer_timeout(store, depot):
    spec = installer_spec(depot, "20.5.332", b"#!/bin/sh\nexec sleep 30\n", timeout=1)
    started = time.monotonic()
    with pytest.raises(InstallError) as raised:
        store.install(spec)
    assert time.monotonic() - started < 10
    assert "timeout" in str(raised.value)
    assert str(store.layout.install_log("houdini", "20.5.332")) in str(raised.value)
    assert store.status(spec) == ABSENT
    assert leftovers(store, "houdini") == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_installer_timeout_stops_the_whole_installer(store, depot, tmp_path):
    pidfile = tmp_path / "child.pid"
    script = b'#!/bin/sh\nsleep 30 &\necho $! > "$2"\nwait\n'
    spec = installer_spec(
        depot, "20.5.332", script, command=["./install.sh", "{dest}", str(pidfile)], timeout=1
    )
    with pytest.raises(InstallError):
        store.install(spec)
    pid = int(pidfile.read_text())
    try:
        deadline = time.monotonic() + 0.5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def test_installer_that_cannot_start(store, depot):
    spec = installer_spec(depot, "20.5.332", INSTALL_SH, command=["./no-such-installer", "{dest}"])
    with pytest.raises(InstallError, match="could not start"):
        store.install(spec)
    assert leftovers(store, "houdini") == []


def test_installer_that_misses_a_launcher(store, depot):
    spec = installer_spec(depot, "20.5.332", INSTALL_SH, launchers={"hython": "bin/hython"})
    with pytest.raises(InstallError, match="hython -> bin/hython"):
        store.install(spec)
    assert store.status(spec) == ABSENT


# ---- packages kind --------------------------------------------------------------------------


def test_packages_kind(store):
    raw = {
        "kind": "packages",
        "packages": {"krita": "1:5.2.2-1"},
        "launchers": {"krita": "/usr/bin/krita"},
    }
    spec = pillar.resolve_spec("krita", "5.2.2", raw, "salt://depot")
    with pytest.raises(InstallError, match="package manager"):
        store.install(spec)
    installed_packages = {}
    store.install(spec, install_packages=installed_packages.update)
    assert installed_packages == {"krita": "1:5.2.2-1"}
    assert store.manifest("krita", "5.2.2")["identity"] == {
        "kind": "packages",
        "packages": {"krita": "1:5.2.2-1"},
    }
    assert (
        store.status(spec, lambda names: {name: installed_packages.get(name) for name in names})
        == INSTALLED
    )
    assert store.status(spec, lambda names: {"krita": "1:5.2.1-1"}) == CHANGED


# ---- retention ------------------------------------------------------------------------------


@pytest.fixture
def versions(store, depot):
    """Install-on-demand specs for blender A, B, C, D (sorted names, so 'unknown = oldest' is visible)."""
    specs = {}

    def want(version, retain):
        spec = specs.get(version) or depot.build("blender", version)
        specs[version] = spec
        if store.status(spec) != INSTALLED:
            store.install(spec)
        return store.prune("blender", [version], retain)

    return want


def installed_versions(store):
    return sorted(store.installed().get("blender", {}))


def history(store):
    return json.loads(store.layout.history("blender").read_text())


def test_retain_one_keeps_the_previous_version(store, versions):
    assert versions("1.0", 1) == []
    assert history(store) == ["1.0"]
    assert versions("2.0", 1) == []
    assert installed_versions(store) == ["1.0", "2.0"]
    assert history(store) == ["1.0", "2.0"]
    assert versions("3.0", 1) == ["1.0"]
    assert installed_versions(store) == ["2.0", "3.0"]
    assert history(store) == ["2.0", "3.0"]


def test_switching_back_makes_the_rollback_target_the_most_recently_wanted(store, versions):
    versions("1.0", 1)
    versions("2.0", 1)
    assert versions("1.0", 1) == []  # back to 1.0: 2.0 is now the previous version
    assert history(store) == ["2.0", "1.0"]
    assert versions("3.0", 1) == ["2.0"]  # 1.0 was wanted last, so it is the one kept for rollback
    assert installed_versions(store) == ["1.0", "3.0"]
    assert history(store) == ["1.0", "3.0"]


def test_retain_two(store, versions):
    for version in ("1.0", "2.0", "3.0"):
        assert versions(version, 2) == []
    assert versions("4.0", 2) == ["1.0"]
    assert installed_versions(store) == ["2.0", "3.0", "4.0"]


def test_retain_zero_removes_every_unwanted_version(store, versions):
    versions("1.0", 1)
    versions("2.0", 1)
    versions("3.0", 1)
    assert versions("4.0", 0) == ["2.0", "3.0"]
    assert installed_versions(store) == ["4.0"]
    assert history(store) == ["4.0"]


def test_versions_without_history_count_as_oldest(store, depot):
    for version in ("1.0", "2.0", "3.0"):
        store.install(depot.build("blender", version))
    store.layout.history("blender").write_text(
        json.dumps(["1.0"])
    )  # 2.0 was installed by hand, say
    remove, new_history = store.retention("blender", ["3.0"], 1)
    assert (remove, new_history) == (["2.0"], ["1.0", "3.0"])
    assert installed_versions(store) == ["1.0", "2.0", "3.0"]  # retention() only predicts
    assert store.prune("blender", ["3.0"], 1) == ["2.0"]
    assert installed_versions(store) == ["1.0", "3.0"]


def test_several_wanted_versions_are_all_kept(store, versions, depot):
    versions("1.0", 0)
    for version in ("2.0", "3.0"):
        store.install(depot.build("blender", version))
    assert store.prune("blender", ["3.0", "2.0"], 0) == ["1.0"]
    assert history(store) == ["2.0", "3.0"]
    assert installed_versions(store) == ["2.0", "3.0"]


def test_hand_made_folders_are_never_pruned(store, versions):
    hand_made = store.layout.version_dir("blender", "0.9")
    hand_made.mkdir(parents=True)
    (hand_made / "precious").write_text("x")
    versions("1.0", 0)
    versions("2.0", 0)
    assert versions("3.0", 0) == ["2.0"]
    assert (hand_made / "precious").read_text() == "x"
    assert installed_versions(store) == ["3.0"]


def test_wanted_version_that_is_not_installed_is_not_in_history(store, versions):
    versions("1.0", 1)
    assert store.prune("blender", ["9.9"], 1) == []
    assert history(store) == ["1.0"]
    assert installed_versions(store) == ["1.0"]


def test_prune_of_an_unknown_app_does_nothing(store):
    assert store.retention("maya", ["2025"], 1) == ([], [])
    assert store.prune("maya", ["2025"], 1) == []
    assert not store.layout.app_dir("maya").exists()


def test_install_slots_bound_installs_running_at_once(tmp_path):
    """Issue #16: with `workers` set, an install takes one of that many slots (lock files shared by
    every process on the machine) before its app's lock, and waits while all are held."""
    import threading

    from salt_workstation import engine

    store = engine.AppStore(tmp_path / "studio", workers=1)
    entered = threading.Event()

    def second():
        with store._install_slot():
            entered.set()

    with store._install_slot():
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not entered.wait(0.3)  # the one slot is held
    assert entered.wait(5)
    waiter.join()
    assert sorted(os.listdir(tmp_path / "studio" / "apps" / ".install-slots")) == ["slot-0"]
    assert store.installed() == {}
