"""Rolling the workstation formula out in waves: sizing, the halting rules, the summary.

The runner (`salt-run workstation.rollout`) sends one Salt job per wave and
hands the returns here. This module decides nothing about Salt: it sizes the
waves (a canary, then growing batches), classifies each minion's return,
says when to stop, and renders the summary as a table, JSON or an HTML section.
"""

from __future__ import annotations

import html
import time

from salt_workstation.errors import WorkstationError
from salt_workstation.report import drift_of

NO_ANSWER = "no answer"
# What happened to a minion in the rollout.
CONVERGED = "converged"  # applied: nothing failed
FAILED = "failed"  # applied: a state failed, the apply errored, or the minion did not answer
DEFERRED = "deferred"  # skipped: an artist has a remote session (skip_busy)
PENDING = "pending"  # never applied: the rollout halted before its wave
PLANNED = "planned"  # test=True: what an apply would do


def share(value, total: int, what: str) -> int:
    """A count (``3``) or a percentage of ``total`` (``"10%"``, rounded up) as a number of minions."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return -(-int(percent * total) // 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise WorkstationError(
            f"{what}={value!r} is neither a count of minions (3) nor a percentage (10%)"
        ) from None


def waves(minions: list, canary=1, growth: int = 2, max_wave: int | None = None) -> list[list]:
    """The canary wave (a count or a percentage, at least one minion), then each wave `growth`
    times the last, at most `max_wave` minions."""
    if int(growth) < 1:
        raise WorkstationError(f"growth={growth!r} must be 1 or more")
    ordered = sorted(minions)
    size = max(1, share(canary, len(ordered), "canary"))
    found, start = [], 0
    while start < len(ordered):
        if max_wave:
            size = min(size, int(max_wave))
        found.append(ordered[start : start + size])
        start += size
        size *= int(growth)
    return found


def failures(state_return) -> list[dict]:
    """The failed states of one minion's state.apply return: {"id", "comment"} (its first line,
    whole: the fix our comments name comes last)."""
    return [
        {"id": item["id"], "comment": item["comment"]}
        for item in drift_of(state_return, comment_chars=2000)
        if item["result"] is False
    ]


def changes(state_return) -> list[str]:
    """State IDs an apply changed (or, under test=True, would change), in run order."""
    return [item["id"] for item in drift_of(state_return) if item["changes"]]


def is_busy(display_status) -> bool:
    """Whether display.status says an artist is connected to one of the remote display agents."""
    if not isinstance(display_status, dict):
        return False
    return any(
        isinstance(agent, dict) and agent.get("sessions") for agent in display_status.values()
    )


class Rollout:
    """One rollout's record: the baseline, each wave's outcome, and whether (and why) it halted.

    baseline: {minion: state.apply test=True return} taken before the first wave; a minion whose
    baseline shows nothing to change and nothing failing counts as converged before.
    max_failure: a count or a percentage of a wave; a wave halts the rollout when more of its
    minions fail than that.
    """

    def __init__(
        self, target: str, baseline: dict, waves: list, max_failure="0", test=False, started=None
    ):
        self.target, self.baseline, self.test = target, baseline, test
        self.max_failure = max_failure
        share(max_failure, 1, "max_failure")  # a bad value fails before anything is applied
        self.waves = [
            {"wave": number, "minions": list(minions), "status": PENDING}
            for number, minions in enumerate(waves, 1)
        ]
        self.minions = {
            minion: {"wave": wave["wave"], "status": PENDING}
            for wave in self.waves
            for minion in wave["minions"]
        }
        self.halted = None
        self.started = time.monotonic() if started is None else started

    def converged_before(self, minion: str) -> bool:
        answer = self.baseline.get(minion)
        return isinstance(answer, dict) and drift_of(answer) == []

    def defer(self, minion: str, reason: str) -> None:
        self.minions[minion].update(status=DEFERRED, reason=reason)

    def plan(self, minion: str) -> None:
        """test=True: what the baseline says an apply would change or cannot do."""
        answer = self.baseline.get(minion)
        entry = self.minions[minion]
        if answer is None:
            entry.update(status=NO_ANSWER)
            return
        entry.update(status=PLANNED, changes=changes(answer), failed=failures(answer))

    def record(self, number: int, returns: dict, seconds: float) -> bool:
        """A wave's returns {minion: state.apply return or None}; True when the rollout goes on."""
        wave = self.waves[number - 1]
        applied = [m for m in wave["minions"] if self.minions[m]["status"] != DEFERRED]
        failed, worse = [], []
        for minion in applied:
            entry = self.minions[minion]
            answer = returns.get(minion)
            problems = (
                [{"id": NO_ANSWER, "comment": "the minion did not return within the timeout"}]
                if answer is None
                else failures(answer)
            )
            entry.update(
                status=FAILED if problems else CONVERGED,
                failed=problems,
                changes=[] if answer is None else changes(answer),
                converged_before=self.converged_before(minion),
            )
            if problems:
                failed.append(minion)
                if entry["converged_before"]:
                    worse.append(minion)
        allowed = share(self.max_failure, len(applied), "max_failure")
        wave.update(
            status="done",
            applied=len(applied),
            failed=len(failed),
            allowed_failures=allowed,
            seconds=round(seconds, 2),
        )
        if worse:
            self.halted = {
                "wave": number,
                "reason": f"{', '.join(worse)} converged before this rollout and failed after it",
            }
        elif len(failed) > allowed:
            self.halted = {
                "wave": number,
                "reason": f"{len(failed)} of {len(applied)} minions failed in wave {number}; "
                f"max_failure={self.max_failure} allows {allowed}",
            }
        if self.halted:
            wave["status"] = "halted"
        return self.halted is None

    def summary(self) -> dict:
        counts: dict = {}
        for entry in self.minions.values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        return {
            "target": self.target,
            "test": self.test,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - self.started, 2),
            "max_failure": str(self.max_failure),
            "halted": self.halted,
            "counts": dict(sorted(counts.items())),
            "waves": self.waves,
            "minions": self.minions,
        }


def _headline(summary: dict) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items()) or "no minions"
    if summary["test"]:
        verdict = "plan only (test=True), nothing applied"
    elif summary["halted"]:
        verdict = f"HALTED after wave {summary['halted']['wave']}: {summary['halted']['reason']}"
    else:
        verdict = "completed"
    return f"rollout of {summary['target']}: {verdict}; {counts}; {summary['seconds']} s"


def render_table(summary: dict) -> str:
    lines = [_headline(summary), ""]
    width = max([len(m) for m in summary["minions"]] + [6])
    for wave in summary["waves"]:
        state = wave["status"]
        if "applied" in wave:
            state += (
                f": {wave['failed']} of {wave['applied']} failed "
                f"(allowed {wave['allowed_failures']}) in {wave['seconds']} s"
            )
        lines.append(f"wave {wave['wave']} ({len(wave['minions'])} minions) {state}")
        for minion in wave["minions"]:
            entry = summary["minions"][minion]
            detail = entry.get("reason") or ", ".join(entry.get("changes") or [])
            lines.append(f"  {minion:<{width}}  {entry['status']:<10} {detail}".rstrip())
            for problem in entry.get("failed") or []:
                lines.append(f"  {'':<{width}}    {problem['id']}: {problem['comment']}")
    return "\n".join(lines)


def render_html(summary: dict) -> str:
    """A section for the HTML fleet report: the verdict, then one row per minion by wave."""
    esc = html.escape
    parts = [
        f'<section id=rollout><h2>Rollout</h2><p class="{"missing" if summary["halted"] else "ok"}">'
        f"{esc(_headline(summary))}</p>",
        "<table><tr><th>wave<th>minion<th>result<th>failed states</tr>",
    ]
    css = {FAILED: "missing", DEFERRED: "drift", PENDING: "", CONVERGED: "ok"}
    for wave in summary["waves"]:
        for minion in wave["minions"]:
            entry = summary["minions"][minion]
            problems = "<br>".join(
                f"{esc(p['id'])}: {esc(p['comment'])}" for p in entry.get("failed") or []
            )
            parts.append(
                f'<tr class="{css.get(entry["status"], "")}" data-minion="{esc(minion)}">'
                f"<td>{wave['wave']}<td>{esc(minion)}<td>{esc(entry['status'])}<td>{problems}</tr>"
            )
    parts.append("</table></section>")
    return "".join(parts)


def join_html(fleet_page: str, section: str) -> str:
    """The fleet report's page with the rollout section before its minion table."""
    head, marker, rest = fleet_page.partition("<table id=minions>")
    if not marker:
        return fleet_page + section
    return f"{head}{section}{marker}{rest}"
