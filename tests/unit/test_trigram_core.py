"""The compiled token-filter builder (sidecar/core/_trigrams.pyx) against the numpy builder it
replaced, kept here as the oracle: the stored filters of log blocks must stay bit for bit the same
(blocks written before read with the same probes), on random text with every whitespace byte,
multi-byte characters, NULs and blocks big enough to reach the largest filter."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sidecar.storage.rocks.logs import merge
from tests.unit.test_wire_core import FAST

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def numpy_filter(texts: list[str]) -> bytes:
    data = np.frombuffer(" ".join(texts).lower().encode("utf-8", "replace"), dtype=np.uint8)
    if data.size < 3:
        return bytes(merge._MIN_BITS >> 3)
    space = _WHITESPACE[data]
    inside = ~(space[:-2] | space[1:-1] | space[2:])
    wide = data.astype(np.uint32)
    grams = np.unique((wide[:-2] | (wide[1:-1] << 8) | (wide[2:] << 16))[inside]).astype(np.uint64)
    bits = merge._MIN_BITS
    while bits < len(grams) * merge.BITS_PER_TRIGRAM and bits < merge._MAX_BITS:
        bits <<= 1
    shift = np.uint64(64 - bits.bit_length() + 1)
    flags = np.zeros(bits, dtype=bool)
    for multiplier in merge._MULTIPLIERS:
        flags[(grams * np.uint64(multiplier)) >> shift] = True
    return np.packbits(flags, bitorder="little").tobytes()


text = st.text(alphabet=st.sampled_from("aBc09 \t\n\x0b\x0c\r\x1c\x1f\x00=/.é€😀İ"), max_size=80)


@FAST
@given(st.lists(text, max_size=30))
def test_the_filter_is_the_numpy_builders_bit_for_bit(texts: list[str]) -> None:
    assert merge.build_filter(texts) == numpy_filter(texts)


def test_a_big_block_reaches_the_largest_filter_and_still_matches() -> None:
    rnd = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789-_=/.:;,+*#@!?%&~^"  # ~160k possible trigrams
    texts = ["".join(rnd.choice(letters) for _ in range(40)) for _ in range(20_000)]
    built = merge.build_filter(texts)
    assert len(built) == merge._MAX_BITS >> 3
    assert built == numpy_filter(texts)
