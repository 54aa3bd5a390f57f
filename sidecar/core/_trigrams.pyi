"""Type stub of the compiled token-filter builder (_trigrams.pyx)."""

def trigram_filter(
    data: bytes, min_bits: int, max_bits: int, bits_per_gram: int, multipliers: tuple[int, ...]
) -> bytes: ...
