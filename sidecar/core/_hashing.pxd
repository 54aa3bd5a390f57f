# cython: language_level=3
"""Hashing of the core's modules (cimported, inlined): its hash tables and the dedupe filter."""

from libc.stdint cimport uint8_t, uint64_t


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    """A 64-bit finaliser (murmur3's): good spread of the table slots from any input bits."""
    x ^= x >> 33
    x *= <uint64_t>0xff51afd7ed558ccd
    x ^= x >> 33
    x *= <uint64_t>0xc4ceb9fe1a85ec53
    x ^= x >> 33
    return x


cdef inline uint64_t hash_bytes(const uint8_t* p, Py_ssize_t n, uint64_t seed) noexcept nogil:
    """FNV-1a over the bytes, then mixed: terms and ids are short (tens of bytes)."""
    cdef uint64_t h = <uint64_t>0xcbf29ce484222325 ^ mix64(seed + 1)
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * <uint64_t>0x100000001b3
    return mix64(h)
