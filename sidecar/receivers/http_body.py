"""Request bodies with a ``Content-Encoding``, inflated once by us (the receivers' aiohttp apps
have ``auto_decompress`` off).

aiohttp's own inflater checks for the end of the stream only for ``deflate``, so a gzip body cut
short (an exporter killed mid-request, a proxy dropping the tail) or missing its CRC/size trailer
came out as the part that did inflate, often nothing, and was acknowledged with 200: the exporter
never retried and the data was gone. Here a stream counts only if it reaches its end marker (and,
for gzip, its trailer, whose CRC-32 and length zlib checks), with nothing but further gzip members
after it (Go's gzip reader, the Collector's, reads concatenated members too); anything else is
``CorruptBody`` (400). Output stops one byte past the limit, so the limit is on the decompressed
size (CONTRACTS §1.2) and a small "zip bomb" never expands in memory (``BodyTooLarge``, 413).
"""

from __future__ import annotations

import zlib

_GZIP = 16 + zlib.MAX_WBITS  # gzip header and trailer, checked
_GZIP_MAGIC = b"\x1f\x8b"
# Content-Encoding -> zlib wbits; "deflate" is zlib-wrapped (RFC 9110), raw deflate as browsers send it too.
WBITS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}
SUPPORTED = "gzip, deflate"


class BodyTooLarge(ValueError):
    pass


class CorruptBody(ValueError):
    pass


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The whole gzip or deflate ``body`` (``encoding`` a key of WBITS), of at most ``limit`` bytes."""
    wbits = WBITS[encoding]
    try:
        return _inflate(body, wbits, limit, encoding)
    except zlib.error as exc:
        if wbits != zlib.MAX_WBITS:
            raise CorruptBody(f"{encoding} body is truncated or corrupt ({exc})") from None
        first = exc
    try:
        return _inflate(body, -zlib.MAX_WBITS, limit, encoding)
    except zlib.error:
        raise CorruptBody(f"{encoding} body is truncated or corrupt ({first})") from None


def _inflate(body: bytes, wbits: int, limit: int, encoding: str) -> bytes:
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(rest, limit - size + 1)
        size += len(out)
        if size > limit or inflater.unconsumed_tail:
            raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            # zlib raises only for bad bytes; input that simply stops is no error to it.
            what = "a gzip member's trailer (CRC-32 and size)" if wbits == _GZIP else "the end of the stream"
            raise CorruptBody(f"{encoding} body is truncated or corrupt: it ends before {what}")
        parts.append(out)
        rest = inflater.unused_data
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if wbits != _GZIP or not rest.startswith(_GZIP_MAGIC):
            raise CorruptBody(
                f"{encoding} body is truncated or corrupt: trailing data after the end of the stream"
            )
