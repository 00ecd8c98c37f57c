"""
The fleet, from the master: a drift and inventory report, and live install progress.

.. code-block:: bash

    salt-run workstation.report 'ws-*' format=html > fleet.html
    salt-run workstation.watch 'ws-*'
"""

import fnmatch
import sys
import time

import salt.client
import salt.utils.event

from salt_workstation import progress as ws_progress
from salt_workstation import report as ws_report

__virtualname__ = "workstation"


def __virtual__():
    return __virtualname__


def report(tgt="*", tgt_type="glob", format="table", timeout=60, gather_job_timeout=5):  # pylint: disable=redefined-builtin
    """
    Per minion and production: wanted vs installed app versions, the drift an
    apply would fix, reboot pending, license servers and display agents.
    Minions that do not answer within ``timeout`` seconds (plus
    ``gather_job_timeout`` to ask whether they are still working on it) are
    listed as such.

    format
        ``table`` (default), ``json`` or ``html`` (one self-contained page).
        Each prints as it is, with no ``--out`` needed: ``json`` prints JSON
        that ``json.load`` reads, ``table`` and ``html`` print their text.
        An explicit ``--out`` still wins.

    CLI Example:

    .. code-block:: bash

        salt-run workstation.report 'ws-*' format=json
    """
    if format not in ws_report.RENDERERS:
        raise ValueError(f"format must be one of {', '.join(ws_report.RENDERERS)}, got {format!r}")
    started = time.monotonic()
    client = salt.client.get_local_client(mopts=__opts__)
    expected, returns = [], {}
    answers = client.cmd_iter(
        tgt,
        "workstation.report",
        tgt_type=tgt_type,
        timeout=timeout,
        gather_job_timeout=gather_job_timeout,
        yield_pub_data=True,
    )
    for item in answers:
        if "jid" in item and "minions" in item:
            expected = list(item["minions"])
            continue
        for minion, answer in item.items():
            returns[minion] = answer.get("ret") if isinstance(answer, dict) else answer
    fleet = ws_report.fleet(
        returns, expected, tgt, time.monotonic() - started, timeout, gather_job_timeout
    )
    # {"outputter", "data"} is how a runner picks its own outputter (salt-run honours it, --out
    # overrides it): the data as JSON, or the rendered text as it is, not Salt's nested text.
    if format == "json":
        return {"outputter": "json", "data": fleet}
    return {"outputter": "txt", "data": ws_report.RENDERERS[format](fleet)}


def watch(tgt="*", timeout=3600, idle=10, start=None):
    """
    Show live progress of the installs on minions matching ``tgt`` (a glob on
    minion ids) from their ``workstation/install/progress`` events: progress
    bars on a terminal (in MiB), plain lines otherwise. Returns when nothing new
    came for ``idle`` seconds and every install seen has finished or failed;
    when no install starts within ``start`` seconds (default: ``idle``), it
    says that nothing ran; at the latest after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-run workstation.watch 'ws-nightfall-*'
    """
    board = ws_progress.ProgressBoard()
    start = idle if start is None else start
    started = last_event = time.monotonic()
    with (
        salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=True) as bus,
        _display(sys.stdout) as show,
    ):
        while time.monotonic() - started < timeout:
            event = bus.get_event(wait=1, tag=ws_progress.TAG, full=True)
            if event:
                data = event["data"].get("data", event["data"])
                if fnmatch.fnmatch(str(data.get("minion", "")), tgt):
                    show(board.update(data), data)
                    last_event = time.monotonic()
            elif board.installs:
                if board.finished() and time.monotonic() - last_event >= idle:
                    break
            elif time.monotonic() - started >= start:
                break
    return board.outcome(start, timeout, time.monotonic() - started)


class _display:
    """Rich progress bars on a terminal; one plain line per event elsewhere (logs, CI, pipes)."""

    def __init__(self, stream):
        self.stream = stream
        self.bars = None
        self.tasks = {}

    def __enter__(self):
        if self.stream.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
            )  # only on a terminal

            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),  # MiB, as the plain lines and the states say
                TextColumn("{task.fields[phase]}"),
            )
            self.bars.start()
        return self

    def __call__(self, key, data):
        if self.bars is None:
            print(ws_progress.ProgressBoard.line(data), file=self.stream, flush=True)
            return
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(
                " ".join(key), total=data.get("bytes_total"), phase=""
            )
        self.bars.update(
            self.tasks[key],
            completed=data.get("bytes_done") or 0,
            total=data.get("bytes_total"),
            phase=data.get("phase"),
        )

    def __exit__(self, *exc):
        if self.bars is not None:
            self.bars.stop()
