"""A real salt-master and salt-minion on loopback, the formula served by our fileserver backend,
pillar written to the master's pillar_roots, and a depot of real archives over loopback HTTP."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.support.catalog import build_depot, example_productions
from tests.support.depot import DepotServer
from tests.support.masterless import system_paths_under

# The test masters put an event on their bus every 5 s (the maintenance loop's presence event).
# Salt 3007.16's event bus client can hold an event that has arrived until the next one comes
# (salt/transport/tcp.py PublishClient.recv reads 4096 bytes at a time and then asks select() about
# the socket, not about what its IOStream already buffered), so a `salt` command could wait for a
# return the master already had until its --timeout (180 s seen). docs/install.md says more.
MASTER_WAKEUP = {"presence_events": True, "loop_interval": 5}


@pytest.fixture(scope="package")
def depot(tmp_path_factory):
    root = tmp_path_factory.mktemp("depot")
    catalog = build_depot(root)
    with DepotServer(root) as server:
        server.catalog = catalog
        yield server


@pytest.fixture(scope="package")
def pillar_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    (path / "workstation.sls").write_text("workstation: {}\n")
    return path


@pytest.fixture(scope="package")
def file_roots(tmp_path_factory):
    """The master's file_roots: no formula in it (our backend serves that), a salt:// depot for one test."""
    return tmp_path_factory.mktemp("file-roots")


@pytest.fixture(scope="package")
def salt_master(salt_factories, pillar_dir, file_roots):
    overrides = {
        "fileserver_backend": ["roots", "workstation"],
        "file_roots": {"base": [str(file_roots)]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "open_mode": True,
        **MASTER_WAKEUP,
    }
    factory = salt_factories.salt_master_daemon("ws-master", overrides=overrides)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="package")
def salt_minion(salt_master):
    factory = salt_master.salt_minion_daemon("ws-minion-1", overrides={"log_level_logfile": "info"})
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="package")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=180)


class Workstation:
    """One test's view of the minion: its pillar, its install_root, and commands run through the master."""

    def __init__(self, cli, minion, pillar_dir, depot, install_root):
        self.cli, self.minion, self.pillar_dir, self.depot = cli, minion, pillar_dir, depot
        self.install_root = Path(install_root)

    def pillar(self, **overrides):
        """The example catalog and productions against this test's depot and install_root."""
        data = {
            "install_root": str(self.install_root),
            "depot": self.depot.url,
            "retain": 1,
            "catalog": copy.deepcopy(self.depot.catalog),
            "productions": example_productions(),
            "lookup": system_paths_under(self.install_root.parent),
        }
        data.update(overrides)
        return data

    def set_pillar(self, data):
        (self.pillar_dir / "workstation.sls").write_text(
            yaml.safe_dump({"workstation": data}, sort_keys=False)
        )
        ret = self.run("saltutil.refresh_pillar", "wait=True")
        assert ret.returncode == 0, ret

    def run(self, function, *args, **kwargs):
        return self.cli.run(function, *args, minion_tgt=self.minion.id, **kwargs)

    def apply(self, *args):
        ret = self.run("state.apply", "workstation", *args)
        assert isinstance(ret.data, dict), (
            f"state.apply returned no state data: {ret.stdout} {ret.stderr}"
        )
        return ret.data

    def version_dir(self, app, version):
        return self.install_root / "apps" / app / version


@pytest.fixture
def workstation(salt_cli, salt_minion, pillar_dir, depot, tmp_path):
    station = Workstation(salt_cli, salt_minion, pillar_dir, depot, tmp_path / "studio")
    station.set_pillar(station.pillar())
    return station
