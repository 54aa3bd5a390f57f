"""http_body.inflate: whole streams only, the limit on the decompressed size, one error per cause."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sidecar.receivers.http_body import BodyTooLarge, CorruptBody, inflate

DATA = b"span bytes " * 100


def test_limit_is_on_the_decompressed_size_of_every_member() -> None:
    body = gzip.compress(DATA)
    assert inflate(body, "gzip", len(DATA)) == DATA
    with pytest.raises(BodyTooLarge):
        inflate(body, "gzip", len(DATA) - 1)
    assert inflate(body + body, "x-gzip", 2 * len(DATA)) == DATA + DATA
    with pytest.raises(BodyTooLarge):  # the second member counts too
        inflate(body + body, "gzip", 2 * len(DATA) - 1)


def test_a_bomb_stops_expanding_at_the_limit() -> None:
    bomb = gzip.compress(bytes(50 << 20))
    assert len(bomb) < 100_000
    with pytest.raises(BodyTooLarge, match="exceeds 1048576 bytes"):
        inflate(bomb, "gzip", 1 << 20)


@pytest.mark.parametrize(
    ("encoding", "body", "reason"),
    [
        ("gzip", gzip.compress(DATA)[:10], "ends before a gzip member's trailer"),
        ("gzip", gzip.compress(DATA)[:-8], "ends before a gzip member's trailer"),
        ("gzip", gzip.compress(DATA)[:-4], "ends before a gzip member's trailer"),
        ("gzip", gzip.compress(DATA)[:-8] + b"\0" * 8, "incorrect data check"),
        ("gzip", gzip.compress(DATA) + b"\0", "trailing data after the end of the stream"),
        ("gzip", b"not gzip at all", "incorrect header check"),
        ("deflate", zlib.compress(DATA)[:-4], "ends before the end of the stream"),
        ("deflate", zlib.compress(DATA) + gzip.compress(DATA), "trailing data after the end of the stream"),
    ],
)
def test_broken_streams_are_named(encoding: str, body: bytes, reason: str) -> None:
    with pytest.raises(CorruptBody, match=f"^{encoding} body is truncated or corrupt") as caught:
        inflate(body, encoding, 1 << 20)
    assert reason in str(caught.value)


def test_deflate_is_zlib_or_raw() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert inflate(zlib.compress(DATA), "deflate", 1 << 20) == DATA
    assert inflate(raw.compress(DATA) + raw.flush(), "deflate", 1 << 20) == DATA
