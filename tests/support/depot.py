"""A real HTTP depot on loopback, serving a folder, that can be taken down and brought back,
and that misbehaves on request, per path: truncates, stalls, throttles, serves other bytes,
answers an error status. `refusing_port` gives an address where nothing accepts connections."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 64 * 1024


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output readable
        pass


@dataclass
class Fault:
    """How the depot misbehaves for one path (see DepotServer's fault methods)."""

    kind: str  # truncate | stall | throttle | content | status
    after: int = 0  # stall: bytes sent before it stops sending
    rate: int = 0  # throttle: bytes per second
    data: bytes = b""  # content: what is served instead of the file
    status: int = 0  # status: the HTTP status answered
    limit: float = 0.0  # stall: the longest it holds the connection open
    release: threading.Event = field(default_factory=threading.Event)


class DepotServer:
    """Serves root over HTTP on 127.0.0.1; `throttle` (seconds per 64 KiB) slows every body down.

    Faults are set per URL path ("/sub/app-1.0.tar.gz") and last until `clear`.
    """

    def __init__(self, root: Path, throttle: float = 0.0):
        self.root = Path(root)
        self.requests = 0
        self.active = 0  # requests being answered now
        self.peak = 0  # the most answered at once since reset_peak()
        self._lock = threading.Lock()
        self.throttle = throttle
        self.faults: dict[str, Fault] = {}
        self._closing = threading.Event()
        depot = self

        class Handler(_QuietHandler):
            def do_GET(self):
                with depot._lock:
                    depot.requests += 1
                    depot.active += 1
                    depot.peak = max(depot.peak, depot.active)
                try:
                    fault = depot.faults.get(
                        urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                    )
                    if fault is None:
                        return super().do_GET()
                    return depot._misbehave(self, fault)
                finally:
                    with depot._lock:
                        depot.active -= 1

            def copyfile(self, source, outputfile):
                if not depot.throttle:
                    return super().copyfile(source, outputfile)
                while chunk := source.read(CHUNK):
                    outputfile.write(chunk)
                    time.sleep(depot.throttle)
                return None

        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(self.root))
        )
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._closing.set()
        self.clear()
        self._server.shutdown()
        self._server.server_close()

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.active

    # ---- faults, per URL path -----------------------------------------------------------

    def truncate(self, path: str) -> None:
        """Announce the whole Content-Length, send half of it, close the connection."""
        self.faults[path] = Fault("truncate")

    def stall(self, path: str, after: int = CHUNK, limit: float = 30.0) -> None:
        """Send `after` bytes, then nothing, holding the connection open until clear() or `limit` s."""
        self.faults[path] = Fault("stall", after=after, limit=limit)

    def throttle_path(self, path: str, rate: int) -> None:
        """Send the file at `rate` bytes per second."""
        self.faults[path] = Fault("throttle", rate=rate)

    def serve_instead(self, path: str, data: bytes) -> None:
        """Answer 200 with other bytes than the file's."""
        self.faults[path] = Fault("content", data=data)

    def answer(self, path: str, status: int) -> None:
        """Answer an error status (404, 500) for the path."""
        self.faults[path] = Fault("status", status=status)

    def clear(self, path: str | None = None) -> None:
        """Serve the path (or every path) as it is again; stalled connections let go."""
        for key in [path] if path else list(self.faults):
            fault = self.faults.pop(key, None)
            if fault is not None:
                fault.release.set()

    def _misbehave(self, handler, fault: Fault) -> None:
        if fault.kind == "status":
            handler.send_error(fault.status)
            return
        if fault.kind == "content":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("Content-Length", str(len(fault.data)))
            handler.end_headers()
            handler.wfile.write(fault.data)
            return
        source = (
            handler.send_head()
        )  # the status line and headers with the file's real Content-Length
        if source is None:
            return
        with source:
            size = os.fstat(source.fileno()).st_size
            handler.close_connection = True
            with contextlib.suppress(OSError):  # the client may give up first: that is its business
                if fault.kind == "truncate":
                    self._send(handler, source, size // 2)
                elif fault.kind == "stall":
                    self._send(handler, source, min(fault.after, size))
                    fault.release.wait(fault.limit)
                elif fault.kind == "throttle":
                    self._send(handler, source, size, fault.rate)

    def _send(self, handler, source, count: int, rate: int = 0) -> None:
        step = max(1, rate // 20) if rate else CHUNK
        started, sent = time.monotonic(), 0
        while sent < count and not self._closing.is_set():
            chunk = source.read(min(step, count - sent))
            if not chunk:
                return
            handler.wfile.write(chunk)
            handler.wfile.flush()
            sent += len(chunk)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    self._closing.wait(ahead)


@contextlib.contextmanager
def refusing_port():
    """A loopback port bound by nobody listening: every connection to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(
            ("127.0.0.1", 0)
        )  # bound, never listening: the kernel answers RST, and no one else gets it
        yield holder.getsockname()[1]
