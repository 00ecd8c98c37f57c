"""Reading sources from the studio depot as one hashed stream."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from salt_workstation.errors import DepotError, LimitExceeded
from salt_workstation.safefs import mib

IDLE_TIMEOUT = 60  # seconds without a byte (workstation:limits:depot_idle_timeout)


def redact_url(url: str) -> str:
    """The URL without any user:password part, fit for comments and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urllib.parse.urlunsplit(
        (parts.scheme, f"***@{_host_port(parts)}", parts.path, parts.query, parts.fragment)
    )


def _host_port(parts) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{host}:{parts.port}" if parts.port else host


def _request(url: str) -> urllib.request.Request:
    """urllib ignores user:password@ in a URL: move it into a Basic Authorization header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return urllib.request.Request(url)
    request = urllib.request.Request(
        urllib.parse.urlunsplit(parts._replace(netloc=_host_port(parts)))
    )
    credentials = (
        f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    )
    # unredirected: a redirect to another host must not carry the password along
    request.add_unredirected_header(
        "Authorization", "Basic " + base64.b64encode(credentials.encode()).decode()
    )
    return request


class HashingReader:
    """A read-only stream that hashes every byte it hands out, and counts them.

    libarchive pulls through readinto(); whatever it leaves unread (tar padding,
    a zip's central directory) is hashed by drain(), so the digest always covers
    the whole source.

    Reads are bounded: `idle` seconds without a byte (the socket's timeout) and
    `deadline` seconds for the whole source. A read that fails, stalls or ends
    short raises DepotError (LimitExceeded past the deadline) saying how far it
    got, and every later read raises the same, so draining after a failure is
    instant.
    """

    def __init__(
        self,
        raw,
        algorithm: str,
        total: int | None = None,
        progress=None,
        idle: float | None = None,
        deadline: float | None = None,
        shown: str = "the source",
    ):
        self._raw = raw
        self._hash = hashlib.new(algorithm)
        self.total = total
        self.done = 0
        self._progress = progress
        self._owner = threading.get_ident()
        self._idle = idle
        self._deadline = deadline
        self._shown = shown
        self._started = time.monotonic()
        self.error: DepotError | None = None

    def _fail(self, error: DepotError) -> DepotError:
        self.error = self.error or error
        return self.error

    def _so_far(self) -> str:
        return f"{mib(self.done)} of {mib(self.total)}" if self.total else mib(self.done)

    def _read(self, buffer) -> int:
        if self.error is not None:
            raise self.error
        if self._deadline is not None and time.monotonic() - self._started > self._deadline:
            raise self._fail(
                LimitExceeded(
                    f"the download of {self._shown} did not finish within {self._deadline} s "
                    f"(workstation:limits:depot_deadline): {self._so_far()} arrived"
                )
            )
        try:
            count = self._raw.readinto(buffer) or 0
        except TimeoutError:
            raise self._fail(
                DepotError(
                    f"the depot stopped sending {self._shown} after {self._so_far()} for {self._idle or IDLE_TIMEOUT} s "
                    "(workstation:limits:depot_idle_timeout); is the depot overloaded or the network down?"
                )
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(
                DepotError(
                    f"the depot connection broke while sending {self._shown} after {self._so_far()}: "
                    f"{exc.__class__.__name__} {exc}".rstrip()
                )
            ) from None
        if not count and self.total is not None and self.done < self.total and len(buffer):
            raise self._fail(
                DepotError(f"the depot sent only {self._so_far()} of {self._shown}, then closed")
            )
        return count

    def readinto(self, buffer) -> int:
        count = self._read(buffer)
        if count:
            self._hash.update(memoryview(buffer).cast("B")[:count])
            self.done += count
            if (
                threading.get_ident() == self._owner
            ):  # a read-ahead thread leaves reporting to report()
                self.report()
        return count

    def report(self) -> None:
        """Tell the progress callback how far the read is, from the thread that made this reader."""
        if self._progress:
            self._progress(self.done, self.total)

    def read(self, size=-1) -> bytes:
        buffer = bytearray(size if size and size > 0 else 1 << 20)
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    def drain(self, chunk: int = 1 << 20) -> None:
        buffer = bytearray(chunk)
        while self.readinto(buffer):
            pass

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._raw.close()


def open_source(url: str, fetch_salt=None, timeout: float = IDLE_TIMEOUT):
    """Open url for reading; returns (stream, size or None). `timeout` bounds the connection
    and each read (an idle depot), not the whole download.

    salt:// sources need the minion's file client: fetch_salt(url) returns a local
    path. Everything else is read directly, so a converged run never calls this.
    """
    shown = redact_url(url)
    scheme = urllib.parse.urlsplit(url).scheme
    try:
        if scheme == "salt":
            if fetch_salt is None:
                raise DepotError(f"{shown}: salt:// sources need a Salt minion to fetch them")
            local = fetch_salt(url)
            if not local:
                raise DepotError(
                    f"{shown} was not found on the Salt fileserver; check the depot path and the master's file roots"
                )
            return _open_file(local)
        if scheme == "file":
            return _open_file(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if scheme in ("http", "https"):
            response = urllib.request.urlopen(_request(url), timeout=timeout)
            length = response.headers.get("Content-Length")
            return response, int(length) if length and length.isdigit() else None
    except urllib.error.HTTPError as exc:
        raise DepotError(
            f"the depot answered {exc.code} {exc.reason} for {shown}; check the source path and the depot"
        ) from None
    except (
        urllib.error.URLError,
        OSError,
        TimeoutError,
        http.client.HTTPException,
        ValueError,
    ) as exc:
        reason = getattr(exc, "reason", exc)
        raise DepotError(
            f"could not read {shown}: {reason}; is the depot up and reachable from this machine?"
        ) from None
    raise DepotError(
        f"{shown}: unsupported URL scheme '{scheme}'; use salt://, http(s):// or file://"
    )


def _open_file(path: str):
    try:
        handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    except FileNotFoundError:
        raise DepotError(f"{path} does not exist in the depot; check the source path") from None
    return handle, os.fstat(handle.fileno()).st_size
