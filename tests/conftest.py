import logging
import tempfile
from pathlib import Path

import pytest

# Salt flushes buffered log records from its daemons at interpreter exit, after
# pytest has closed the captured stream; those records are already in the test
# logs, so drop the "--- Logging error ---" noise that would bury the summary.
logging.raiseExceptions = False

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """Keep every daemon's files in one temporary root, reached through a short link.

    The daemons bind unix sockets below it (run/minion/minion_event_<hash>_pull.ipc), and
    a socket path over 107 bytes cannot be bound. Salt 3007 then only logs "AF_UNIX path
    too long" and runs on without its event bus, so job returns and salt:// fetches time
    out. pytest's folder (deeper still under PYTEST_DEBUG_TEMPROOT, and pytest-10 after
    nine runs) can pass that limit with a long daemon id; /tmp/ws-salt-XXXXXXXX/r cannot.
    The files themselves stay in pytest's folder, kept for a look after a failure.
    """
    if len(tempfile.gettempdir()) > 16:  # so the link leaves a daemon id 27 bytes or more
        raise pytest.UsageError(
            f"TMPDIR={tempfile.gettempdir()} is too deep for Salt's unix sockets: use TMPDIR=/tmp"
        )
    root = tmp_path_factory.mktemp("salt-root")
    link_dir = Path(tempfile.mkdtemp(prefix="ws-salt-"))
    link = link_dir / "r"
    link.symlink_to(root, target_is_directory=True)
    yield {"root_dir": str(link), "log_server_level": "warning"}
    link.unlink()
    link_dir.rmdir()
