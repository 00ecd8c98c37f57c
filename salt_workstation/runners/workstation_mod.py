"""
The fleet, from the master: a drift and inventory report, and live install progress.

.. code-block:: bash

    salt-run workstation.report 'ws-*' format=html > fleet.html
    salt-run workstation.watch 'ws-*'
    salt-run workstation.rollout 'ws-*' production=nightfall canary=10% test=True
    salt-run workstation.recipes 'ws-*' images=3 write=/srv/packer/pillar
"""

import fnmatch
import logging
import sys
import time

import salt.client
import salt.exceptions
import salt.utils.event
import salt.utils.master

from salt_workstation import progress as ws_progress
from salt_workstation import recipes as ws_recipes
from salt_workstation import report as ws_report
from salt_workstation import rollout as ws_rollout
from salt_workstation.errors import WorkstationError

log = logging.getLogger(__name__)
# Seconds of a quiet event bus, with returns missing, before a job's wait reads the job cache.
CACHE_LOOK_S = 5

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
    expected, returns = _gather(
        client, tgt, "workstation.report", (), tgt_type, None, timeout, gather_job_timeout
    )
    fleet = ws_report.fleet(
        returns, expected, tgt, time.monotonic() - started, timeout, gather_job_timeout
    )
    if format == "json":
        return _printed(fleet)
    return _printed(text=ws_report.RENDERERS[format](fleet))


def _printed(data=None, text=None):
    """{"outputter", "data"} is how a runner picks its own outputter (salt-run honours it, --out
    overrides it): data as JSON that json.load reads, or rendered text as it is, never Salt's
    nested text."""
    if text is None:
        return {"outputter": "json", "data": data}
    return {"outputter": "txt", "data": text}


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
    return (
        _printed(text=ws_recipes.render_table(proposal))
        if format == "table"
        else _printed(proposal)
    )


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


def rollout(
    tgt="*",
    production=None,
    canary=1,
    growth=2,
    max_wave=None,
    max_failure="0",
    skip_busy=False,
    test=False,
    format="table",  # pylint: disable=redefined-builtin
    tgt_type="glob",
    timeout=1800,
    gather_job_timeout=10,
):
    """
    Apply the workstation formula to the minions matching ``tgt`` in waves: a
    canary wave, then each wave ``growth`` times the last. Each wave is one
    Salt job (``state.apply workstation``). The rollout halts when more of a
    wave's minions fail than ``max_failure`` allows, or when a minion that had
    nothing to change before the rollout fails; the minions of later waves are
    left untouched. Progress goes to stderr; ``workstation.watch`` shows the
    installs live.

    production
        Only minions whose pillar has this production (``workstation:productions:<name>``).
    canary
        The first wave: a count (``1``) or a percentage (``10%``, at least one minion).
    growth, max_wave
        Each later wave is ``growth`` times the last (2), at most ``max_wave`` minions.
    max_failure
        Failed minions a wave may have without halting: a count (``0``) or a percentage.
    skip_busy
        Leave out minions where ``display.status`` shows a connected remote session,
        reported as deferred.
    test
        Print the plan per wave (what each minion would change), apply nothing.
    format
        ``table`` (default), ``json`` (a JSON document), or ``html`` (the fleet report
        with the rollout on top).

    CLI Example:

    .. code-block:: bash

        salt-run workstation.rollout 'ws-*' production=nightfall canary=10% max_failure=5%
    """
    if format not in ("table", "json", "html"):
        raise ValueError(f"format must be one of table, json, html, got {format!r}")
    if production:
        tgt = f"( {_compound(tgt, tgt_type)} ) and I@workstation:productions:{production}:*"
        tgt_type = "compound"
    client = salt.client.get_local_client(mopts=__opts__)
    started = time.monotonic()

    def job(minions, fun, arg=(), target_type="list", **kwarg):
        """One Salt job; {minion: its return, or None when it did not answer}."""
        expected, returns = _gather(
            client, minions, fun, arg, target_type, kwarg, timeout, gather_job_timeout
        )
        return {minion: returns.get(minion) for minion in expected}

    _progress(f"rollout of {tgt}: asking the minions what an apply would change (test=True)")
    baseline = job(tgt, "state.apply", ["workstation"], target_type=tgt_type, test=True)
    try:
        planned = ws_rollout.waves(list(baseline), canary, growth, max_wave)
        record = ws_rollout.Rollout(
            tgt, baseline, planned, max_failure, test=bool(test), started=started
        )
    except WorkstationError as exc:
        raise ValueError(str(exc)) from exc
    for wave in record.waves:
        minions = wave["minions"]
        if skip_busy:
            for minion, answer in job(minions, "display.status").items():
                if ws_rollout.is_busy(answer):
                    record.defer(minion, "an artist has a remote session (display.status)")
        todo = [m for m in minions if record.minions[m]["status"] != ws_rollout.DEFERRED]
        if test:
            for minion in todo:
                record.plan(minion)
            continue
        _progress(f"wave {wave['wave']}: applying to {len(todo)} minions: {', '.join(todo)}")
        wave_started = time.monotonic()
        returns = job(todo, "state.apply", ["workstation"]) if todo else {}
        going_on = record.record(wave["wave"], returns, time.monotonic() - wave_started)
        _progress(f"wave {wave['wave']}: {wave['failed']} of {wave['applied']} failed")
        if not going_on:
            _progress(f"HALTED: {record.halted['reason']}")
            break
    summary = record.summary()
    if format == "json":
        return _printed(summary)
    if format == "html":
        page = report(tgt, tgt_type, "html", timeout, gather_job_timeout)["data"]
        return _printed(text=ws_rollout.join_html(page, ws_rollout.render_html(summary)))
    return _printed(text=ws_rollout.render_table(summary))


def _gather(client, tgt, fun, arg, tgt_type, kwarg, timeout, gather_job_timeout):
    """Publish one job and wait for its returns: (the minions it went to, {minion: its return}).

    The returns come from the master's event bus as they arrive. When the bus has been
    quiet for CACHE_LOOK_S with minions missing, the master's job cache is read too
    (then after twice as long each time it had nothing new, at most a minute apart), and
    once more when the wait ends: Salt 3007.16's event subscriber can hold a return that
    has arrived in its read buffer until the next event on the bus, which would stall the
    wait until ``timeout``. Minions that neither return nor still run the job after
    ``timeout`` (asked for ``gather_job_timeout`` seconds) are left out of the returns.
    On a master of masters the job's minion list is not all that answer (the syndics'
    minions return too), so the wait runs to its end there, as Salt's own does.
    """
    was_listening = client.event.cpub  # as LocalClient.cmd_iter: close only what we opened
    try:
        pub = client.run_job(
            tgt,
            fun,
            list(arg),
            tgt_type,
            timeout=timeout,
            kwarg=kwarg or None,
            listen=True,
            gather_job_timeout=gather_job_timeout,
        )
        if not pub or "jid" not in pub:
            return [], {}
        jid, expected = pub["jid"], list(pub.get("minions") or [])
        try:
            returns = _wait_for_returns(
                client, jid, expected, tgt, tgt_type, timeout, gather_job_timeout
            )
        finally:
            client._clean_up_subscriptions(jid)  # pylint: disable=protected-access
    finally:
        if not was_listening:
            client.event.close_pub()
    return sorted(set(expected) | set(returns)), returns


def _wait_for_returns(client, jid, expected, tgt, tgt_type, timeout, gather_job_timeout):
    """{minion: its return} for job `jid`: see _gather."""
    returns, wanted = {}, set(expected)
    all_known = bool(wanted) and not __opts__.get("order_masters")

    def read_cache():
        try:
            cached = client.get_cache_returns(jid)
        except salt.exceptions.SaltClientError:  # the job cache failed: the bus alone
            return set()
        new = cached.keys() - returns.keys()
        for minion in new:
            log.info("job %s: %s's return read from the job cache", jid, minion)
            returns[minion] = cached[minion].get("ret")
        return new

    answers = client.get_iter_returns(
        jid,
        set(wanted),  # a copy: Salt adds the minions syndics report to the set it is given
        timeout=timeout,
        tgt=tgt,
        tgt_type=tgt_type,
        block=False,
        gather_job_timeout=gather_job_timeout,
    )
    quiet_since, look_after = time.monotonic(), CACHE_LOOK_S
    try:
        for item in answers:
            for minion, answer in (item or {}).items():
                returns[minion] = answer.get("ret") if isinstance(answer, dict) else answer
                quiet_since, look_after = time.monotonic(), CACHE_LOOK_S
            if not item and time.monotonic() - quiet_since >= look_after:
                new = read_cache()
                quiet_since = time.monotonic()
                look_after = CACHE_LOOK_S if new else min(look_after * 2, 60)
            if all_known and wanted <= returns.keys():
                break
            if not item:
                time.sleep(0.01)  # what get_iter_returns sleeps between looks when it blocks
    finally:
        answers.close()
    if not wanted <= returns.keys():
        read_cache()  # the back-off may have left up to a minute unread
    return returns


def _compound(tgt, tgt_type):
    """A target in compound form (a glob stays as it is)."""
    prefixes = {"glob": "", "list": "L@", "pcre": "E@", "grain": "G@", "pillar": "I@"}
    if tgt_type == "compound":
        return tgt
    if tgt_type not in prefixes:
        raise ValueError(f"production= works with tgt_type {', '.join(prefixes)} or compound")
    if tgt_type == "list" and not isinstance(tgt, str):
        tgt = ",".join(tgt)
    return f"{prefixes[tgt_type]}{tgt}"


def _progress(line):
    """A progress line on stderr, so that stdout stays the summary alone (format=json parses)."""
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)
