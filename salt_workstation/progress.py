"""Install progress as events: a few per second at most, every phase change and the end always."""

from __future__ import annotations

import time

TAG = "workstation/install/progress"
FINAL_PHASES = ("done", "failed")


class ProgressReporter:
    """Turns engine callbacks (phase, bytes done, bytes total) into rate-limited event payloads.

    `send(tag, data)` delivers one event; `rate` is the most events a second in
    one phase. The first call of a phase and the final one always go out.
    """

    def __init__(
        self, send, app: str, version: str, minion: str, rate: float = 2.0, clock=time.monotonic
    ):
        self._send = send
        self._base = {"minion": minion, "app": app, "version": version}
        self._interval = 1.0 / rate
        self._clock = clock
        self._phase = None
        self._last = float("-inf")
        self._done, self._total = 0, None
        self.sent = 0

    def __call__(
        self,
        phase: str,
        done: int | None = None,
        total: int | None = None,
        error: str | None = None,
    ) -> None:
        """Bytes not given are the last ones reported: the end keeps the download's total, so a
        watcher sees one total from the first event to the last."""
        done = self._done if done is None else done
        total = self._total if total is None else total
        self._done, self._total = done, total
        now = self._clock()
        if phase == self._phase and phase not in FINAL_PHASES and now - self._last < self._interval:
            return
        self._phase, self._last = phase, now
        data = {**self._base, "phase": phase, "bytes_done": done, "bytes_total": total}
        if error:
            data["error"] = error
        self._send(TAG, data)
        self.sent += 1


class ProgressBoard:
    """The installs seen on the event bus and where each one is; `watch` draws it."""

    def __init__(self):
        self.installs: dict[tuple, dict] = {}

    def update(self, data: dict) -> tuple:
        key = (data.get("minion", ""), data.get("app", ""), data.get("version", ""))
        self.installs[key] = data
        return key

    def finished(self) -> bool:
        return bool(self.installs) and all(
            d.get("phase") in FINAL_PHASES for d in self.installs.values()
        )

    def outcome(self, start: float, timeout: float, seconds: float) -> dict:
        """What `watch` returns: whether every install seen ended (or none ran), each install's
        last phase, and a sentence, `nothing ran: …` when no install started within `start` s."""
        installs = {" ".join(key): data.get("phase") for key, data in self.installs.items()}
        phases = list(installs.values())
        ended = f"{phases.count('done')} done, {phases.count('failed')} failed"
        running = len(phases) - phases.count("done") - phases.count("failed")
        if not installs:
            comment = f"nothing ran: no install started on the targeted minions within {start} s"
        elif running:
            comment = f"gave up after {timeout} s with {running} still running; {ended}"
        else:
            comment = f"{len(phases)} installs in {seconds:.0f} s: {ended}"
        return {"finished": not running, "installs": installs, "comment": comment}

    @staticmethod
    def line(data: dict) -> str:
        """One plain line for one install, for logs and non-terminal output."""
        name = f"{data.get('minion')} {data.get('app')} {data.get('version')}"
        phase = data.get("phase")
        if phase == "failed":
            return f"{name}: failed: {data.get('error', '')}"
        done, total = data.get("bytes_done") or 0, data.get("bytes_total")
        amount = f"{done / 2**20:.1f} MiB" + (
            f" of {total / 2**20:.1f} MiB ({100 * done // total}%)" if total else ""
        )
        return f"{name}: {phase} {amount}"
