# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Protobuf wire-format scans of OTLP exports, in C and without the GIL.

The reader follows upb (the protobuf runtime the official classes use) on every rule that decides
whether bytes are a message at all, so the core never refuses a request those classes accept:

- a tag is at most 5 bytes and fits 32 bits, its wire type is 0-5, and its field number is not 0
  (except inside a group, where upb lets 0 pass);
- a varint is at most 10 bytes (bits past the 64th are dropped, as upb drops them);
- a length is at most 5 bytes and must fit in what is left of the enclosing message;
- groups (wire types 3/4) are skipped as upb skips unknown groups: each START_GROUP needs the
  END_GROUP of the same field number, and an END_GROUP outside its group is an error;
- messages and groups nest at most 100 deep (upb's default limit), counted from the request;
- a known field with another wire type than its own is an unknown field, skipped.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc


class WireError(ValueError):
    """The bytes are not a protobuf message (truncated, an invalid tag, a length past the end...)."""


cdef enum:
    MAX_DEPTH = 100  # upb's default recursion limit for messages and groups

cdef enum Error:
    OK = 0
    E_TRUNCATED_VARINT
    E_LONG_VARINT
    E_LONG_TAG
    E_FIELD_ZERO
    E_WIRE_TYPE
    E_LENGTH
    E_LONG_LENGTH
    E_FIXED
    E_END_GROUP
    E_OPEN_GROUP
    E_DEPTH
    E_MEMORY

cdef enum Problem:
    TRACE_MISSING = 1
    TRACE_LENGTH
    TRACE_ZERO
    SPAN_MISSING
    SPAN_LENGTH
    SPAN_ZERO
    START_MISSING
    END_MISSING
    END_BEFORE_START

cdef struct Rejected:
    Py_ssize_t resource
    Py_ssize_t scope
    Py_ssize_t span
    int problem
    Py_ssize_t length  # the offending ID's length, for the "got N" texts
    uint64_t start
    uint64_t end

cdef struct Scan:
    const uint8_t* base
    int error
    Py_ssize_t error_at
    Rejected* rejected
    Py_ssize_t count
    Py_ssize_t capacity


cdef inline bint fail(Scan* s, int error, const uint8_t* at) noexcept nogil:
    if s.error == OK:
        s.error = error
        s.error_at = at - s.base
    return False


cdef inline bint read_varint_of(Scan* s, const uint8_t** p, const uint8_t* end, int max_bytes,
                                int too_long, uint64_t* out) noexcept nogil:
    """A varint of at most ``max_bytes`` bytes; ``p`` moves past it only when it is whole."""
    cdef const uint8_t* q = p[0]
    cdef uint64_t value = 0
    cdef uint8_t b
    cdef int i
    for i in range(max_bytes):
        if q >= end:
            return fail(s, E_TRUNCATED_VARINT, p[0])
        b = q[0]
        q += 1
        value |= (<uint64_t>(b & 0x7F)) << (7 * i)
        if b < 0x80:
            p[0] = q
            out[0] = value
            return True
    return fail(s, too_long, p[0])


cdef inline bint read_varint(Scan* s, const uint8_t** p, const uint8_t* end, uint64_t* out) noexcept nogil:
    return read_varint_of(s, p, end, 10, E_LONG_VARINT, out)


cdef inline bint read_tag(Scan* s, const uint8_t** p, const uint8_t* end, uint32_t* field, int* wire,
                          bint in_group=False) noexcept nogil:
    """A tag (at most 5 bytes, as upb reads it); upb refuses field number 0 in a message but not
    inside an unknown group."""
    cdef const uint8_t* start = p[0]
    cdef uint64_t value
    if not read_varint_of(s, p, end, 5, E_LONG_TAG, &value):
        return False
    if value >> 32:
        return fail(s, E_LONG_TAG, start)
    if value >> 3 == 0 and not in_group:
        return fail(s, E_FIELD_ZERO, start)
    if (value & 7) > 5:
        return fail(s, E_WIRE_TYPE, start)
    wire[0] = <int>(value & 7)
    field[0] = <uint32_t>(value >> 3)
    return True


cdef inline bint read_length(Scan* s, const uint8_t** p, const uint8_t* end, Py_ssize_t* out) noexcept nogil:
    """A length prefix (at most 5 bytes, as upb reads it) that must fit in what is left."""
    cdef const uint8_t* start = p[0]
    cdef uint64_t value
    if not read_varint_of(s, p, end, 5, E_LONG_LENGTH, &value):
        return False
    if value > <uint64_t>(end - p[0]):
        return fail(s, E_LENGTH, start)
    out[0] = <Py_ssize_t>value
    return True


cdef bint skip_group(Scan* s, const uint8_t** p, const uint8_t* end, uint32_t field, int depth) noexcept nogil:
    """Skip a group's contents up to its END_GROUP, nested groups included, without recursion."""
    cdef uint32_t open_fields[MAX_DEPTH + 1]
    cdef int open_count = 1
    cdef uint32_t f
    cdef int wire
    if depth + 1 > MAX_DEPTH:
        return fail(s, E_DEPTH, p[0])
    open_fields[0] = field
    while open_count:
        if p[0] >= end:
            return fail(s, E_OPEN_GROUP, p[0])
        if not read_tag(s, p, end, &f, &wire, True):
            return False
        if wire == 4:
            if f != open_fields[open_count - 1]:
                return fail(s, E_END_GROUP, p[0])
            open_count -= 1
        elif wire == 3:
            if depth + open_count + 1 > MAX_DEPTH:
                return fail(s, E_DEPTH, p[0])
            open_fields[open_count] = f
            open_count += 1
        elif not skip_value(s, p, end, wire):
            return False
    return True


cdef inline bint skip_value(Scan* s, const uint8_t** p, const uint8_t* end, int wire) noexcept nogil:
    """Skip one value of wire type 0, 1, 2 or 5 (groups are skip_group's)."""
    cdef uint64_t ignored
    cdef Py_ssize_t length
    if wire == 0:
        return read_varint(s, p, end, &ignored)
    if wire == 1:
        if end - p[0] < 8:
            return fail(s, E_FIXED, p[0])
        p[0] += 8
        return True
    if wire == 5:
        if end - p[0] < 4:
            return fail(s, E_FIXED, p[0])
        p[0] += 4
        return True
    if wire == 2:
        if not read_length(s, p, end, &length):
            return False
        p[0] += length
        return True
    return fail(s, E_WIRE_TYPE, p[0])


cdef inline bint skip_field(Scan* s, const uint8_t** p, const uint8_t* end, uint32_t field, int wire, int depth) noexcept nogil:
    if wire == 3:
        return skip_group(s, p, end, field, depth)
    if wire == 4:
        return fail(s, E_END_GROUP, p[0])
    return skip_value(s, p, end, wire)


cdef inline uint64_t load_le64(const uint8_t* p) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(8):
        value |= (<uint64_t>p[i]) << (8 * i)
    return value


cdef inline bint all_zero(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i]:
            return False
    return True


cdef int span_problem(Py_ssize_t tid_len, const uint8_t* tid, Py_ssize_t sid_len, const uint8_t* sid,
                      uint64_t start, uint64_t end) noexcept nogil:
    """The first rule a span breaks (0 for none), in the order the partial-success texts name them."""
    if tid_len == 0:
        return TRACE_MISSING
    if tid_len != 16:
        return TRACE_LENGTH
    if all_zero(tid, 16):
        return TRACE_ZERO
    if sid_len == 0:
        return SPAN_MISSING
    if sid_len != 8:
        return SPAN_LENGTH
    if all_zero(sid, 8):
        return SPAN_ZERO
    if start == 0:
        return START_MISSING
    if end < start:
        return END_MISSING if end == 0 else END_BEFORE_START
    return 0


cdef bint add_rejected(Scan* s, Py_ssize_t resource, Py_ssize_t scope, Py_ssize_t span, int problem,
                       Py_ssize_t length, uint64_t start, uint64_t end, const uint8_t* at) noexcept nogil:
    cdef Rejected* grown
    cdef Py_ssize_t capacity
    if s.count == s.capacity:
        capacity = s.capacity * 2 if s.capacity else 16
        grown = <Rejected*>realloc(s.rejected, capacity * sizeof(Rejected))
        if grown == NULL:
            return fail(s, E_MEMORY, at)
        s.rejected = grown
        s.capacity = capacity
    s.rejected[s.count] = Rejected(resource, scope, span, problem, length, start, end)
    s.count += 1
    return True


cdef bint scan_span(Scan* s, const uint8_t* p, const uint8_t* end,
                    Py_ssize_t resource, Py_ssize_t scope, Py_ssize_t index) noexcept nogil:
    """Span{trace_id=1, span_id=2, start_time_unix_nano=7, end_time_unix_nano=8}; the last of a field wins."""
    cdef const uint8_t* tid = NULL
    cdef const uint8_t* sid = NULL
    cdef Py_ssize_t tid_len = 0, sid_len = 0, length
    cdef uint64_t start = 0, stop = 0
    cdef uint32_t field
    cdef int wire, problem
    cdef const uint8_t* at = p
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if wire == 2 and (field == 1 or field == 2):
            if not read_length(s, &p, end, &length):
                return False
            if field == 1:
                tid = p
                tid_len = length
            else:
                sid = p
                sid_len = length
            p += length
        elif wire == 1 and (field == 7 or field == 8):
            if end - p < 8:
                return fail(s, E_FIXED, p)
            if field == 7:
                start = load_le64(p)
            else:
                stop = load_le64(p)
            p += 8
        elif not skip_field(s, &p, end, field, wire, 3):
            return False
    problem = span_problem(tid_len, tid, sid_len, sid, start, stop)
    if problem:
        return add_rejected(s, resource, scope, index, problem,
                            tid_len if problem == TRACE_LENGTH else sid_len, start, stop, at)
    return True


cdef bint scan_level(Scan* s, const uint8_t* p, const uint8_t* end, int depth,
                     Py_ssize_t resource, Py_ssize_t scope) noexcept nogil:
    """The messages above the spans, each a list of its children: depth 0 is
    ExportTraceServiceRequest{resource_spans=1}, 1 ResourceSpans{scope_spans=2}, 2
    ScopeSpans{spans=2}. A child's position among its kind is its index in the rejected paths."""
    cdef Py_ssize_t index = 0, length
    cdef uint32_t child = 1 if depth == 0 else 2
    cdef uint32_t field
    cdef int wire
    cdef bint ok
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if field == child and wire == 2:
            if not read_length(s, &p, end, &length):
                return False
            if depth == 0:
                ok = scan_level(s, p, p + length, 1, index, 0)
            elif depth == 1:
                ok = scan_level(s, p, p + length, 2, resource, index)
            else:
                ok = scan_span(s, p, p + length, resource, scope, index)
            if not ok:
                return False
            index += 1
            p += length
        elif not skip_field(s, &p, end, field, wire, depth):
            return False
    return True


_ERRORS = {
    E_TRUNCATED_VARINT: "varint runs past the end",
    E_LONG_VARINT: "varint longer than 10 bytes",
    E_LONG_TAG: "tag longer than 32 bits",
    E_FIELD_ZERO: "field number 0",
    E_WIRE_TYPE: "invalid wire type",
    E_LENGTH: "length runs past the end",
    E_LONG_LENGTH: "length prefix longer than 5 bytes",
    E_FIXED: "fixed-width value runs past the end",
    E_END_GROUP: "END_GROUP that closes no open group",
    E_OPEN_GROUP: "group not closed",
    E_DEPTH: f"nested deeper than {MAX_DEPTH}",
}


cdef str problem_text(const Rejected* r):
    """The partial-success text for a span that breaks a rule."""
    if r.problem == TRACE_MISSING:
        return "trace_id is missing"
    if r.problem == TRACE_LENGTH:
        return f"trace_id must be 16 bytes, got {r.length}"
    if r.problem == TRACE_ZERO:
        return "trace_id must not be all zeros"
    if r.problem == SPAN_MISSING:
        return "span_id is missing"
    if r.problem == SPAN_LENGTH:
        return f"span_id must be 8 bytes, got {r.length}"
    if r.problem == SPAN_ZERO:
        return "span_id must not be all zeros"
    if r.problem == START_MISSING:
        return "start_time_unix_nano is missing"
    if r.problem == END_MISSING:
        return "end_time_unix_nano is missing"
    return f"end_time_unix_nano {r.end} is before start_time_unix_nano {r.start}"


def span_problems(bytes body not None):
    """Validate every span of an ExportTraceServiceRequest's protobuf bytes in one pass.

    Returns a list with one ``(resource_index, scope_index, span_index, problem)`` tuple per
    rejected span, in request order: the indices are its path,
    ``resourceSpans[resource_index].scopeSpans[scope_index].spans[span_index]``, and ``problem``
    says which rule it breaks (trace_id 16 bytes and not all zeros, span_id 8 bytes and not all
    zeros, a start time, an end time not before it). An empty list means every span is valid.
    Raises WireError when the bytes are not a protobuf message. The scan runs without the GIL.
    """
    cdef Scan s
    cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef bint ok
    cdef Py_ssize_t i
    s.base = data
    s.error = OK
    s.error_at = 0
    s.rejected = NULL
    s.count = 0
    s.capacity = 0
    try:
        with nogil:
            ok = scan_level(&s, data, data + size, 0, 0, 0)
        if not ok:
            if s.error == E_MEMORY:
                raise MemoryError()
            raise WireError(f"{_ERRORS[s.error]} (at byte {s.error_at})")
        return [
            (s.rejected[i].resource, s.rejected[i].scope, s.rejected[i].span, problem_text(&s.rejected[i]))
            for i in range(s.count)
        ]
    finally:
        free(s.rejected)
