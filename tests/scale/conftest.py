"""The scale tier: 50 real minions on one master on loopback (tests/scale).

It runs in `make test` where the machine has the memory for 50 minions
(MIN_AVAILABLE_GIB of MemAvailable) and skips with one line saying why where
it has not; either way the summary says what happened, with the measured
figures when it ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

MINION_COUNT = 50
# A minion under pytest-salt-factories holds about 80 MiB (its main process and the process manager,
# measured on Salt 3008); with a job running each, 50 peak near 6 GiB. Keep headroom for the master,
# the tests and the rest of the suite.
MIN_AVAILABLE_GIB = 10

FIGURES: dict[str, str] = {}


def _in_tier(item) -> bool:
    return Path(str(item.fspath)).is_relative_to(Path(__file__).parent)


def pytest_itemcollected(item):
    if _in_tier(item):
        item.add_marker(pytest.mark.scale)


def available_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: no check when no scale test is selected
def pytest_collection_modifyitems(items):
    """One skip reason for the whole tier, decided once."""
    selected = [item for item in items if _in_tier(item)]
    if not selected:
        return
    have = available_gib()
    if have < MIN_AVAILABLE_GIB:
        FIGURES["skipped"] = (
            f"{MINION_COUNT} minions need {MIN_AVAILABLE_GIB} GiB of available memory, "
            f"this machine has {have:.1f} GiB"
        )
        for item in selected:
            item.add_marker(pytest.mark.skip(reason=f"scale tier skipped: {FIGURES['skipped']}"))


def pytest_terminal_summary(terminalreporter):
    if "skipped" in FIGURES:
        terminalreporter.write_line(f"scale tier SKIPPED: {FIGURES['skipped']}")
    elif FIGURES:
        terminalreporter.write_line(
            "scale tier: " + "; ".join(f"{name} {value}" for name, value in FIGURES.items())
        )
