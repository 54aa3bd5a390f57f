# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The log blocks' token filter, built in C without the GIL: the bits of a block's distinct trigrams.

sidecar/storage/rocks/logs/merge.py documents the filter (which trigrams, which hash, how many
bits) and keeps the reading side; this module only builds its bytes, which numpy did before with a
sort of every trigram of the block (np.unique), most of the log writer's time.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

cdef enum:
    EMPTY = 0xFFFFFFFF  # no trigram: they are 24-bit numbers
    MAX_MULTIPLIERS = 8


cdef inline bint is_space(uint8_t c) noexcept nogil:
    """The ASCII bytes str.split() splits at: 9-13 and 28-32."""
    return (9 <= c <= 13) or (28 <= c <= 32)


cdef int insert(uint32_t** table, Py_ssize_t* cap, Py_ssize_t* used, uint32_t gram) noexcept nogil:
    """Add ``gram`` to the open-addressing set; -1 when memory runs out."""
    cdef Py_ssize_t mask = cap[0] - 1
    cdef Py_ssize_t at = <Py_ssize_t>((<uint64_t>gram * 0x9E3779B97F4A7C15ULL) >> 40) & mask
    cdef uint32_t* t = table[0]
    cdef uint32_t* bigger
    cdef Py_ssize_t i, size
    while t[at] != EMPTY:
        if t[at] == gram:
            return 0
        at = (at + 1) & mask
    t[at] = gram
    used[0] += 1
    if used[0] * 2 > cap[0]:  # grow: rehash into twice the slots
        size = cap[0] * 2
        bigger = <uint32_t*>malloc(size * sizeof(uint32_t))
        if bigger == NULL:
            return -1
        memset(bigger, 0xFF, size * sizeof(uint32_t))
        cap[0] = size
        table[0] = bigger
        used[0] = 0
        for i in range(size // 2):
            if t[i] != EMPTY:
                insert(table, cap, used, t[i])
        free(t)
    return 0


def trigram_filter(bytes data, Py_ssize_t min_bits, Py_ssize_t max_bits, Py_ssize_t bits_per_gram,
                   tuple multipliers):
    """The filter bytes of ``data`` (a block's lowercased UTF-8 text): every distinct trigram of 3
    non-whitespace bytes (``b0 | b1 << 8 | b2 << 16``) sets, per multiplier m, bit
    ``(gram * m mod 2**64) >> (64 - log2(bits))`` of ``bits`` (little-endian bit order), ``bits``
    the least power of two from ``min_bits`` holding ``bits_per_gram`` per trigram, at most
    ``max_bits`` (both powers of two)."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef uint64_t mult[MAX_MULTIPLIERS]
    cdef int k = len(multipliers), j, shift
    cdef Py_ssize_t i, cap = 4096, used = 0, bits = min_bits
    cdef uint32_t* table
    cdef uint8_t* flags
    cdef uint64_t pos
    cdef bint failed = False
    cdef bytes out
    if k > MAX_MULTIPLIERS:
        raise ValueError(f"at most {MAX_MULTIPLIERS} multipliers")
    for j in range(k):
        mult[j] = multipliers[j]
    if n < 3:
        return bytes(min_bits >> 3)
    table = <uint32_t*>malloc(cap * sizeof(uint32_t))
    if table == NULL:
        raise MemoryError()
    with nogil:
        memset(table, 0xFF, cap * sizeof(uint32_t))
        for i in range(n - 2):
            if is_space(p[i]) or is_space(p[i + 1]) or is_space(p[i + 2]):
                continue
            if insert(&table, &cap, &used, p[i] | (<uint32_t>p[i + 1] << 8) | (<uint32_t>p[i + 2] << 16)) < 0:
                failed = True
                break
    if failed:
        free(table)
        raise MemoryError()
    while bits < used * bits_per_gram and bits < max_bits:
        bits <<= 1
    shift = 64
    i = bits
    while i > 1:
        i >>= 1
        shift -= 1
    out = PyBytes_FromStringAndSize(NULL, bits >> 3)
    flags = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        memset(flags, 0, bits >> 3)
        for i in range(cap):
            if table[i] == EMPTY:
                continue
            for j in range(k):
                pos = (<uint64_t>table[i] * mult[j]) >> shift
                flags[pos >> 3] |= <uint8_t>(1 << (pos & 7))
        free(table)
    return out
