"""A real HTTP depot on loopback, serving a folder, that can be taken down and brought back."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output readable
        pass


class DepotServer:
    """Serves root over HTTP on 127.0.0.1; `throttle` (seconds per 64 KiB) slows every body down."""

    def __init__(self, root: Path, throttle: float = 0.0):
        self.root = Path(root)
        self.requests = 0
        self.throttle = throttle
        depot = self

        class Handler(_QuietHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                depot.requests += 1
                super().do_GET()

            def copyfile(self, source, outputfile):
                if not depot.throttle:
                    return super().copyfile(source, outputfile)
                while chunk := source.read(64 * 1024):
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
        self._server.shutdown()
        self._server.server_close()
