"""Shared helpers for the unit tier: real archives in a real depot folder, a real AppStore."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from salt_workstation import engine, pillar
from tests.support import archives
from tests.support.depot import DepotServer
from tests.support.tree import snapshot  # noqa: F401 - the unit tests import it from here


def dir_members(files: dict, top: str | None = None, mode: int = 0o755):
    """Explicit directory entries for every folder the files live in (what `tar c` writes)."""
    folders = set()
    for name in files:
        parts = name.split("/")[:-1]
        for index in range(1, len(parts) + 1):
            folders.add("/".join(parts[:index]))
    members = []
    for folder in sorted(folders):
        info = tarfile.TarInfo(f"{top}/{folder}" if top else folder)
        info.type, info.mode = tarfile.DIRTYPE, mode
        info.mtime = getattr(archives, "FIXED_MTIME", 0)  # same bytes every build, so a stable hash
        members.append((info, b""))
    return members


class Depot:
    """A depot folder in tmp_path, plus catalog entries pointing at archives written into it."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def app_archive(
        self,
        app: str,
        version: str,
        *,
        suffix=".tar.gz",
        extra_files=None,
        explicit_dirs=True,
        name: str | None = None,
    ) -> Path:
        """A DCC-shaped archive `<app>-<version>/...` (strip_components 1) at <depot>/<app>/<name>."""
        files = dict(archives.app_files(app, version))
        files.update(extra_files or {})
        top = f"{app}-{version}"
        path = self.root / app / (name or f"{app}-{version}{suffix}")
        if suffix == ".zip":
            return archives.write_zip(path, files, top=top)
        extra = dir_members(files, top) if explicit_dirs else ()
        return archives.write_tar(path, files, top=top, extra=extra)

    def entry(self, archive: Path, **overrides) -> dict:
        """The raw catalog spec for an archive in this depot, as a pillar would write it."""
        app = archive.parent.name
        spec = {
            "source": archive.relative_to(self.root).as_posix(),
            "hash": archives.sha256_of(archive),
            "strip_components": 1,
            "launchers": {app: f"bin/{app}"},
        }
        spec.update(overrides)
        return spec

    def spec(
        self, app: str, version: str, raw: dict, depot: str | None = None
    ) -> pillar.VersionSpec:
        assert (
            pillar.check_version_spec(
                app, version, raw, pillar.path_of("catalog", app, "versions", version)
            )
            == []
        )
        return pillar.resolve_spec(app, version, raw, depot or str(self.root))

    def build(self, app: str, version: str, **kwargs) -> pillar.VersionSpec:
        """Archive + catalog entry + resolved spec in one go."""
        overrides = kwargs.pop("overrides", {})
        archive = self.app_archive(app, version, **kwargs)
        return self.spec(app, version, self.entry(archive, **overrides))


@pytest.fixture
def depot(tmp_path) -> Depot:
    return Depot(tmp_path / "depot")


@pytest.fixture
def store(tmp_path) -> engine.AppStore:
    return engine.AppStore(tmp_path / "studio")


class HttpDepot(Depot):
    """A Depot folder served by the shared loopback server; `url` is its depot setting."""

    def __init__(self, root: Path, url: str, server: DepotServer):
        super().__init__(root)
        self.url = url
        self.server = server
        self._start = server.requests

    @property
    def requests(self) -> int:
        """HTTP GETs the server answered since this test began (the server is shared)."""
        return self.server.requests - self._start


@pytest.fixture(scope="session")
def _http_server(tmp_path_factory):
    # One server for the session: each DepotServer costs half a second to shut down.
    with DepotServer(tmp_path_factory.mktemp("http-depot")) as server:
        yield server


@pytest.fixture
def http_depot(_http_server, request) -> HttpDepot:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    return HttpDepot(_http_server.root / name, f"{_http_server.url}/{name}", _http_server)
