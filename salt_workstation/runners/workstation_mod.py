"""
The fleet, from the master: a drift and inventory report, and live install progress.

.. code-block:: bash

    salt-run workstation.report 'ws-*' format=html > fleet.html
    salt-run workstation.watch 'ws-*'
    salt-run workstation.recipes 'ws-*' images=3 write=/srv/packer/pillar
"""

import fnmatch
import sys
import time

import salt.client
import salt.utils.event
import salt.utils.master

from salt_workstation import progress as ws_progress
from salt_workstation import recipes as ws_recipes
from salt_workstation import report as ws_report
from salt_workstation.errors import WorkstationError

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

    CLI Example:

    .. code-block:: bash

        salt-run workstation.report 'ws-*' format=json
    """
    if format not in ws_report.RENDERERS:
        raise ValueError(f"format must be one of {', '.join(ws_report.RENDERERS)}, got {format!r}")
    started = time.monotonic()
    client = salt.client.get_local_client(mopts=__opts__)
    expected, returns, last_answer = [], {}, 0.0
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
            last_answer = time.monotonic() - started
    fleet = ws_report.fleet(returns, expected, tgt, time.monotonic() - started, last_answer)
    return ws_report.RENDERERS[format](fleet) if format != "json" else fleet


def watch(tgt="*", timeout=3600, idle=10):
    """
    Show live progress of the installs on minions matching ``tgt`` (a glob on
    minion ids) from their ``workstation/install/progress`` events: progress
    bars on a terminal, plain lines otherwise. Returns when every install seen
    has finished or failed and nothing new came for ``idle`` seconds, or after
    ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-run workstation.watch 'ws-nightfall-*'
    """
    board = ws_progress.ProgressBoard()
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
            elif board.finished() and time.monotonic() - last_event >= idle:
                break
    return {
        "finished": board.finished(),
        "installs": {" ".join(key): data.get("phase") for key, data in board.installs.items()},
    }


def recipes(tgt="*", tgt_type="glob", images=3, format="table", write=None):  # pylint: disable=redefined-builtin
    """
    Which images to bake, from the fleet's own pillar: machines grouped by the app
    versions their productions need, then at most ``images`` recipes that cover the
    most machines, each with its share of the fleet and the bytes its machines'
    first boots would no longer download. The pillar is the master's (its cache,
    compiled on the master where a minion's is not cached), for every minion the
    master knows, or those ``tgt`` matches.

    format
        ``table`` (default) or ``json``.
    write
        A folder: one bake pillar per recipe, ``<write>/recipe-<n>.sls``, for the
        Packer template in examples/packer (docs/baking.md).

    CLI Example:

    .. code-block:: bash

        salt-run workstation.recipes 'ws-*' images=2 format=json write=/srv/packer/pillar
    """
    if format not in ("table", "json"):
        raise ValueError(f"format must be table or json, got {format!r}")
    pillars = salt.utils.master.MasterPillarUtil(tgt, tgt_type, opts=__opts__).get_minion_pillar()
    try:
        proposal = ws_recipes.from_pillars(pillars, images=images)
        if write:
            proposal["written"] = ws_recipes.write_pillars(write, proposal)
    except WorkstationError as exc:
        raise ValueError(str(exc)) from None
    return ws_recipes.render_table(proposal) if format == "table" else proposal


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
                DownloadColumn(),
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
