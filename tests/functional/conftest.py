"""Salt's real loaders in-process (no daemons): our modules and states as Salt loads them."""

from __future__ import annotations

import copy
import pathlib
import subprocess

import pytest
import salt.features
import yaml
from saltfactories.utils import functional, random_string


class Loaders(functional.Loaders):
    """saltfactories' loaders, less the `saltutil.sync_all` they run when made.

    That sync copies `_modules`, `_states` and the rest from the file roots into the minion's
    cache, then everything is loaded again. These tests have nothing to copy (Salt loads ours
    from the extension's entry point), and the sync was about half of each test's CPU time.
    The body is saltfactories' own (pytest-salt-factories 1.0.5) without those two steps.
    """

    def __init__(self, opts, loaded_base_name) -> None:  # pylint: disable=super-init-not-called
        self.opts = opts
        self.loaded_base_name = loaded_base_name
        self.context = {}
        self._cachedir = pathlib.Path(opts["cachedir"])
        self._original_opts = copy.deepcopy(opts)
        self._reset_state_funcs = [self.context.clear, self._cleanup_cache]
        self._reload_all_funcs = [self.reset_state]
        self._grains = self._modules = self._pillar = None
        self._serializers = self._states = self._utils = None
        salt.features.setup_features(self.opts)
        self.reload_all()


def _minion_opts(salt_factories, tmp_path_factory, grains=None, pillar=None, opts=None):
    pillar_root = tmp_path_factory.mktemp("pillar")
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    (pillar_root / "workstation.sls").write_text(yaml.safe_dump({"workstation": pillar or {}}))
    defaults = {
        "file_client": "local",
        "fileserver_backend": ["roots", "workstation"],
        "pillar_roots": {"base": [str(pillar_root)]},
        "file_roots": {"base": [str(tmp_path_factory.mktemp("file-roots"))]},
    }
    if grains:
        defaults["grains"] = grains
    defaults.update(opts or {})  # e.g. sdb profiles
    factory = salt_factories.salt_minion_daemon(random_string("functional-"), defaults=defaults)
    return factory.config.copy()


@pytest.fixture(scope="package")
def minion_opts(salt_factories, tmp_path_factory):
    return _minion_opts(salt_factories, tmp_path_factory)


@pytest.fixture
def loaders(minion_opts):
    loaders = Loaders(minion_opts, loaded_base_name=f"{__name__}.loaded")
    try:
        yield loaders
    finally:
        loaders.reset_state()


@pytest.fixture
def make_loaders(salt_factories, tmp_path_factory):
    """Loaders for a minion with these grains, this workstation pillar and these extra config keys."""
    made = []

    def make(grains=None, pillar=None, opts=None):
        opts = _minion_opts(salt_factories, tmp_path_factory, grains, pillar, opts)
        made.append(Loaders(opts, loaded_base_name=f"{__name__}.loaded{len(made)}"))
        return made[-1]

    yield make
    for loaders in made:
        loaders.reset_state()


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    """A real OpenPGP public key and its fingerprint, made with gpg for this run."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    subprocess.run(
        [*gpg, "--quick-gen-key", "Studio Repo <repo@studio.invalid>", "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )
    armored = subprocess.run(
        [*gpg, "--armor", "--export"], check=True, capture_output=True, text=True
    ).stdout
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")
    )
    return armored, fingerprint
