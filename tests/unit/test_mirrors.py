"""Depot mirrors (issue #16): `depot` and a catalog `source` take ordered lists. A mirror that is
down, refuses, stalls or breaks off is skipped with a note and the next one tried; one that serves
other bytes fails the install at once and no other mirror is asked. Real HTTP on loopback."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from salt_workstation import config, contract, engine, pillar
from salt_workstation.errors import DepotError, HashMismatch
from tests.support.depot import refusing_port
from tests.unit.conftest import HttpDepot

GRAINS = {"os_family": "Debian"}
HASH = "sha256:" + "a" * 64


def leftovers(root, app: str) -> list[str]:
    return sorted(
        n for n in os.listdir(root / "apps" / app) if n.startswith((".staging-", ".trash-"))
    )


@pytest.fixture
def mirrors(http_depot, _http_server) -> tuple[HttpDepot, HttpDepot]:
    """Two mirrors of one depot on the loopback server: the same files under two base URLs."""
    second_root = http_depot.root.parent / f"{http_depot.root.name}-site-b"
    second = HttpDepot(second_root, f"{http_depot.url}-site-b", _http_server)
    return http_depot, second


def _publish(mirrors, app="blender", version="4.2", **kwargs):
    """The archive on every mirror; returns the raw catalog entry (relative source) and its URL path."""
    first, second = mirrors
    archive = first.app_archive(app, version, **kwargs)
    shutil.copytree(first.root, second.root, dirs_exist_ok=True)
    entry = first.entry(archive)
    path = "/" + first.url.split("/", 3)[3] + "/" + entry["source"]
    return entry, path


def _install(tmp_path, raw, depot, limits=None, app="blender", version="4.2"):
    spec = pillar.resolve_spec(app, version, raw, depot)
    store = engine.AppStore(tmp_path / "studio", limits)
    return store, store.install(spec)


def test_a_refusing_first_mirror_is_skipped_with_a_note_and_costs_little(tmp_path, mirrors):
    raw, _ = _publish(mirrors)
    with refusing_port() as port:
        down = f"http://127.0.0.1:{port}/dcc"
        started = time.monotonic()
        store, manifest = _install(tmp_path, raw, [down, mirrors[1].url])
        took = time.monotonic() - started
    assert manifest["fetched_from"] == f"{mirrors[1].url}/{raw['source']}"
    assert (
        manifest["source"] == f"{down}/{raw['source']}"
    )  # the catalog's first choice, as test=True says
    assert len(manifest["notes"]) == 1
    assert manifest["notes"][0].startswith(f"depot mirror skipped: could not read {down}/")
    assert "is the depot up" in manifest["notes"][0]
    assert "notes" not in store.manifest("blender", "4.2")  # a note of this run, not of the version
    assert store.verify("blender", "4.2")["ok"]
    assert took < 5


def test_a_stalling_mirror_is_left_after_the_idle_timeout_and_its_half_is_cleaned(
    tmp_path, mirrors
):
    raw, path = _publish(mirrors, extra_files={"lib/big.bin": (os.urandom(3 << 20), 0o644)})
    first, second = mirrors
    first.server.stall(path, after=1 << 20, limit=20)
    try:
        started = time.monotonic()
        store, manifest = _install(
            tmp_path, raw, [first.url, second.url], engine.Limits(depot_idle_timeout=1)
        )
        took = time.monotonic() - started
    finally:
        first.server.clear(path)
    assert manifest["fetched_from"].startswith(second.url)
    assert "the depot stopped sending" in manifest["notes"][0]
    assert "for 1 s" in manifest["notes"][0]
    assert 1 <= took < 6  # the idle timeout, then the second mirror
    assert store.verify("blender", "4.2", deep=True)["ok"]
    assert leftovers(store.layout.root, "blender") == []


@pytest.mark.parametrize("fault", ["truncate", "500", "404"])
def test_a_mirror_that_breaks_off_or_errors_is_skipped(tmp_path, mirrors, fault):
    raw, path = _publish(mirrors, extra_files={"lib/big.bin": (os.urandom(1 << 20), 0o644)})
    first, second = mirrors
    if fault == "truncate":
        first.server.truncate(path)
    else:
        first.server.answer(path, int(fault))
    try:
        store, manifest = _install(tmp_path, raw, [first.url, second.url])
    finally:
        first.server.clear(path)
    expected = "sent only" if fault == "truncate" else f"answered {fault}"
    assert expected in manifest["notes"][0]
    assert store.verify("blender", "4.2", deep=True)["ok"]
    assert leftovers(store.layout.root, "blender") == []


def test_a_mirror_that_lies_fails_the_install_and_no_other_mirror_is_asked(tmp_path, mirrors):
    raw, path = _publish(mirrors)
    first, second = mirrors
    other = first.app_archive(
        "blender", "4.2", name="other.tar.gz", extra_files={"x": (b"y", 0o644)}
    )
    first.server.serve_instead(path, other.read_bytes())
    try:
        asked = first.server.requests
        with pytest.raises(HashMismatch, match=r"Nothing was installed"):
            _install(tmp_path, raw, [first.url, second.url])
        assert first.server.requests - asked == 1  # the lying mirror only; never the second
    finally:
        first.server.clear(path)
    store = engine.AppStore(tmp_path / "studio")
    assert store.installed() == {}
    assert leftovers(store.layout.root, "blender") == []


def test_when_every_mirror_fails_each_is_named_in_order(tmp_path, mirrors):
    raw, path = _publish(mirrors)
    first, second = mirrors
    second_path = path.replace(first.url.rsplit("/", 1)[1], second.url.rsplit("/", 1)[1], 1)
    second.server.answer(second_path, 500)
    try:
        with refusing_port() as port:
            down = f"http://127.0.0.1:{port}"
            with pytest.raises(DepotError) as caught:
                _install(tmp_path, raw, [down, second.url])
    finally:
        second.server.clear(second_path)
    message = str(caught.value)
    assert message.startswith("none of its 2 depot mirrors delivered it: could not read")
    assert message.index(down) < message.index("answered 500")
    assert engine.AppStore(tmp_path / "studio").installed() == {}


def test_a_source_list_is_tried_in_order_before_the_depot_mirrors_of_the_next(tmp_path, mirrors):
    raw, _ = _publish(mirrors)
    with refusing_port() as port:
        absolute = f"http://127.0.0.1:{port}/mirror/blender.tgz"
        raw = {**raw, "source": [absolute, raw["source"]]}
        spec = pillar.resolve_spec("blender", "4.2", raw, [mirrors[0].url, mirrors[1].url])
        assert spec.sources == (
            absolute,
            f"{mirrors[0].url}/{raw['source'][1]}",
            f"{mirrors[1].url}/{raw['source'][1]}",
        )
        manifest = engine.AppStore(tmp_path / "studio").install(spec)
    assert manifest["fetched_from"] == spec.sources[1]
    assert [note.split(":")[0] for note in manifest["notes"]] == ["depot mirror skipped"]


def test_mirrors_resolve_once_each_and_a_single_depot_keeps_its_shape():
    one = pillar.resolve_spec("a", "1", {"source": "a/a.tgz", "hash": HASH}, "http://x/dcc")
    assert (one.source, one.mirrors) == ("http://x/dcc/a/a.tgz", ())
    absolute = pillar.resolve_spec(
        "a", "1", {"source": "http://y/a.tgz", "hash": HASH}, ["http://x", "/srv/dcc"]
    )
    assert absolute.sources == ("http://y/a.tgz",)
    both = pillar.resolve_spec("a", "1", {"source": "a.tgz", "hash": HASH}, ["salt://d", "/srv"])
    assert both.sources == ("salt://d/a.tgz", "file:///srv/a.tgz")


def _issues(depot=None, source=None):
    workstation = {
        "install_root": "/opt/studio",
        "depot": depot if depot is not None else "salt://depot",
        "retain": 1,
        "catalog": {
            "blender": {
                "versions": {"4.2": {"source": "b.tgz" if source is None else source, "hash": HASH}}
            }
        },
        "productions": {"show": {"apps": {"blender": "4.2"}}},
    }
    return [str(issue) for issue in contract.validate(config.load(workstation, GRAINS))]


def test_depot_and_source_lists_are_validated_with_their_pillar_paths():
    assert _issues(depot=["http://a/dcc", "salt://depot", "/srv/dcc"]) == []
    assert _issues(source=["b.tgz", "https://other/b.tgz"]) == []
    assert _issues(depot=["http://a/dcc", "ftp://b/dcc"]) == [
        "workstation:depot:1: must be a salt://, http(s)://, file:// URL or an absolute path, "
        "got 'ftp://b/dcc'"
    ]
    assert _issues(depot=[]) == [
        "workstation:depot: lists no mirror; give one depot URL or a list of them"
    ]
    path = "workstation:catalog:blender:versions:4.2:source"
    assert _issues(source=["b.tgz", "../up.tgz", 3]) == [
        f"{path}:1: '../up.tgz' must not climb out of the depot with '..'",
        f"{path}:2: is required: a path relative to the depot or an absolute URL",
    ]
    assert _issues(source=[]) == [
        f"{path}: lists no source; give a path relative to the depot or a URL"
    ]
