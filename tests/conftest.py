import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """Keep every daemon's files in one temporary root (not littered over /tmp)."""
    return {"root_dir": str(tmp_path_factory.mktemp("salt-root")), "log_server_level": "warning"}
