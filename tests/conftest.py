import logging
from pathlib import Path

import pytest

# Salt flushes buffered log records from its daemons at interpreter exit, after
# pytest has closed the captured stream; those records are already in the test
# logs, so drop the "--- Logging error ---" noise that would bury the summary.
logging.raiseExceptions = False

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """Keep every daemon's files in one temporary root (not littered over /tmp)."""
    return {"root_dir": str(tmp_path_factory.mktemp("salt-root")), "log_server_level": "warning"}
