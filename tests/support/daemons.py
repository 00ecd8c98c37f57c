"""Starting and stopping several salt daemons side by side.

A minion takes a few seconds to stop (it waits for its processes), so ten stopped
one after the other cost most of a minute of waiting and no work.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def start_together(factories, workers: int, start_timeout: int = 180) -> None:
    """Start the daemons, `workers` at a time: minions starting at once compete for the CPUs."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda factory: factory.start(start_timeout=start_timeout), factories))


def stop_together(factories) -> None:
    """Stop every daemon at once; stopping is mostly waiting."""
    if factories:
        with ThreadPoolExecutor(max_workers=len(factories)) as pool:
            list(pool.map(lambda factory: factory.terminate(), factories))
