# cython: language_level=3
"""Growable C arrays of the core's modules: one growth rule for all of them (cimported, inlined)."""

from libc.stdlib cimport realloc


cdef inline bint reserve(void** items, Py_ssize_t* cap, Py_ssize_t need, size_t size) noexcept nogil:
    """Room for ``need`` items of ``size`` bytes in ``items[0]`` (capacity ``cap[0]``), growing it
    to at least double, 16 at first; the contents are kept. False when memory runs out."""
    cdef Py_ssize_t capacity
    cdef void* grown
    if need <= cap[0]:
        return True
    capacity = need if need > 2 * cap[0] else 2 * cap[0]
    if capacity < 16:
        capacity = 16
    grown = realloc(items[0], capacity * size)
    if grown == NULL:
        return False
    items[0] = grown
    cap[0] = capacity
    return True
