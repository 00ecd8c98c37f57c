"""depot: URL redaction, the hashing stream, and opening sources over file:// and real HTTP."""

from __future__ import annotations

import hashlib
import io
import socket
import urllib.parse

import pytest

from salt_workstation import depot
from salt_workstation.errors import DepotError


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "http://builder:s3cret@depot.studio:8080/dcc/x.tgz",
            "http://***@depot.studio:8080/dcc/x.tgz",
        ),
        ("https://token@depot.studio/dcc/x.tgz?a=1#f", "https://***@depot.studio/dcc/x.tgz?a=1#f"),
        ("https://:s3cret@depot.studio/x", "https://***@depot.studio/x"),
        ("http://depot.studio/dcc/x.tgz", "http://depot.studio/dcc/x.tgz"),
        ("salt://depot/x.tgz", "salt://depot/x.tgz"),
        ("file:///srv/depot/x.tgz", "file:///srv/depot/x.tgz"),
    ],
)
def test_redact_url(url, shown):
    assert depot.redact_url(url) == shown
    assert "s3cret" not in depot.redact_url(url)


def test_redact_url_keeps_ipv6_brackets():
    shown = depot.redact_url("http://u:s3cret@[fd00::5]:8080/dcc/x.tgz")
    assert shown == "http://***@[fd00::5]:8080/dcc/x.tgz"
    assert urllib.parse.urlsplit(shown).port == 8080


def test_hashing_reader_hashes_and_counts_every_byte():
    data = bytes(range(256)) * 5000
    seen = []
    reader = depot.HashingReader(
        io.BytesIO(data),
        "sha512",
        total=len(data),
        progress=lambda done, total: seen.append((done, total)),
    )
    buffer = bytearray(1000)
    assert reader.readinto(buffer) == 1000
    assert reader.read(24) == data[1000:1024]
    reader.drain(chunk=4096)
    assert reader.done == len(data)
    assert reader.hexdigest() == hashlib.sha512(data).hexdigest()
    assert seen[0] == (1000, len(data)) and seen[-1] == (len(data), len(data))
    assert reader.seekable() is False
    reader.close()


def test_open_file_source(tmp_path):
    source = tmp_path / "depot" / "my app" / "x.tgz"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"payload")
    stream, size = depot.open_source("file://" + urllib.parse.quote(str(source)))
    with stream:
        assert (stream.read(), size) == (b"payload", 7)


def test_open_missing_file_source(tmp_path):
    with pytest.raises(DepotError, match="does not exist in the depot"):
        depot.open_source(f"file://{tmp_path}/nope.tgz")


def test_open_http_source_and_errors(http_depot):
    (http_depot.root / "x.tgz").write_bytes(b"0123456789")
    stream, size = depot.open_source(f"{http_depot.url}/x.tgz")
    with stream:
        assert (stream.read(), size) == (b"0123456789", 10)
    with pytest.raises(
        DepotError, match=r"answered 404 .* for http://127\.0\.0\.1:\d+/.*/missing\.tgz"
    ):
        depot.open_source(f"{http_depot.url}/missing.tgz")
    assert http_depot.requests == 2


def test_open_closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        DepotError, match=f"could not read http://127.0.0.1:{port}/x.tgz: .*is the depot up"
    ):
        depot.open_source(f"http://127.0.0.1:{port}/x.tgz")


def test_unsupported_and_salt_schemes():
    with pytest.raises(DepotError, match="unsupported URL scheme 'ftp'"):
        depot.open_source("ftp://depot/x.tgz")
    with pytest.raises(DepotError, match="need a Salt minion"):
        depot.open_source("salt://depot/x.tgz")
