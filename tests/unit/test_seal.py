"""The seal's settings and refusals, as plain data (the seal on real trees: tests/functional/test_seal.py)."""

from __future__ import annotations

import pytest

from salt_workstation import config, seal
from salt_workstation.errors import WorkstationError


def _merged(phase="bake", **seal_settings):
    return config.load({"phase": phase, "lookup": {"os": {"seal": seal_settings}}})


def test_the_defaults_seal_the_real_root():
    settings = seal.settings_of(_merged())

    assert settings["root"] == "/" and settings["machine_id"] == "/etc/machine-id"
    assert settings["temporary"] == ["/tmp", "/var/tmp"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("salt_logs", "var/log/salt"), ("temporary", ["/tmp", "tmp"]), ("root", None)],
)
def test_a_path_that_is_not_absolute_is_refused_with_its_pillar_path(key, value):
    with pytest.raises(
        WorkstationError, match=f"workstation:os:seal:{key} must be an absolute path"
    ):
        seal.seal(_merged(**{key: value}), test=True)


def test_a_path_climbing_out_of_the_image_is_refused(tmp_path):
    with pytest.raises(WorkstationError, match=r"climbs out of the image"):
        seal.seal(_merged(root=str(tmp_path), salt_logs="/var/../../etc"), test=True)


def test_only_an_image_bake_may_seal(tmp_path):
    for phase in ("all", "boot"):
        with pytest.raises(seal.SealRefused, match="workstation:phase is '" + phase):
            seal.seal(_merged(phase=phase, root=str(tmp_path)))
