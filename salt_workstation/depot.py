"""Reading sources from the studio depot as one hashed stream."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import threading
import urllib.error
import urllib.parse
import urllib.request

from salt_workstation.errors import DepotError

CONNECT_TIMEOUT = 30


def redact_url(url: str) -> str:
    """The URL without any user:password part, fit for comments and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urllib.parse.urlunsplit((parts.scheme, f"***@{_host_port(parts)}", parts.path, parts.query, parts.fragment))


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
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=_host_port(parts))))
    credentials = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    # unredirected: a redirect to another host must not carry the password along
    request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    return request


class HashingReader:
    """A read-only stream that hashes every byte it hands out, and counts them.

    libarchive pulls through readinto(); whatever it leaves unread (tar padding,
    a zip's central directory) is hashed by drain(), so the digest always covers
    the whole source.
    """

    def __init__(self, raw, algorithm: str, total: int | None = None, progress=None):
        self._raw = raw
        self._hash = hashlib.new(algorithm)
        self.total = total
        self.done = 0
        self._progress = progress
        self._owner = threading.get_ident()

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._hash.update(memoryview(buffer).cast("B")[:count])
            self.done += count
            if threading.get_ident() == self._owner:  # a read-ahead thread leaves reporting to report()
                self.report()
        return count or 0

    def report(self) -> None:
        """Tell the progress callback how far the read is, from the thread that made this reader."""
        if self._progress:
            self._progress(self.done, self.total)

    def read(self, size=-1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        self.done += len(data)
        return data

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


def open_source(url: str, fetch_salt=None, timeout: int = CONNECT_TIMEOUT):
    """Open url for reading; returns (stream, size or None).

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
                raise DepotError(f"{shown} was not found on the Salt fileserver; check the depot path and the master's file roots")
            return _open_file(local)
        if scheme == "file":
            return _open_file(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if scheme in ("http", "https"):
            response = urllib.request.urlopen(_request(url), timeout=timeout)  # noqa: S310 - scheme checked above
            length = response.headers.get("Content-Length")
            return response, int(length) if length and length.isdigit() else None
    except urllib.error.HTTPError as exc:
        raise DepotError(f"the depot answered {exc.code} {exc.reason} for {shown}; check the source path and the depot") from None
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DepotError(f"could not read {shown}: {reason}; is the depot up and reachable from this machine?") from None
    raise DepotError(f"{shown}: unsupported URL scheme '{scheme}'; use salt://, http(s):// or file://")


def _open_file(path: str):
    try:
        handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    except FileNotFoundError:
        raise DepotError(f"{path} does not exist in the depot; check the source path") from None
    return handle, os.fstat(handle.fileno()).st_size

