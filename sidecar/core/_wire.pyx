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

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from sidecar.core._arrays cimport reserve
from sidecar.core._hashing cimport hash_bytes, mix64

import threading


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

# -- what the scan collects: records pointing into the request's bytes ---------------------------

cdef struct Slice:
    const uint8_t* p
    Py_ssize_t n

cdef struct SpanRec:
    Slice raw  # the Span message's own bytes, stored as they came
    Slice tid
    Slice sid
    Slice parent
    Slice name
    Slice status
    int32_t kind
    int code  # Status.code: 0 unset, 1 ok, 2 error (any other value reads as 0, as span metrics do)
    uint64_t start
    uint64_t end
    Py_ssize_t attrs  # first of its span attributes in Scan.attrs
    Py_ssize_t n_attrs
    Py_ssize_t extras  # first of its event and link attributes in Scan.extras
    Py_ssize_t n_extras
    Py_ssize_t scope  # its ScopeSpans in Scan.scopes
    Py_ssize_t index  # its position among that ScopeSpans' spans
    int problem  # the rule it breaks (0: kept)
    Py_ssize_t next  # the next kept span of the same trace in its ScopeSpans (-1: last)

cdef struct LogRec:
    Slice raw  # the LogRecord message's own bytes, stored as they came
    Slice tid
    Slice sid
    Slice body  # the AnyValue, encoded
    Slice event_name
    uint64_t time
    uint64_t observed
    int32_t severity
    Py_ssize_t attrs  # first of its attributes in Scan.attrs
    Py_ssize_t n_attrs
    Py_ssize_t scope
    Py_ssize_t index
    int problem

cdef struct ScopeRec:
    Py_ssize_t resource  # index of its ResourceSpans / ResourceLogs
    Py_ssize_t index  # its position among that resource's scope_spans / scope_logs
    Slice raw  # InstrumentationScope bytes (the last occurrence, as the shadow schema reads it)
    Py_ssize_t first_span  # its spans or log records in Scan.spans / Scan.logs
    Py_ssize_t n_spans
    Py_ssize_t first_part  # its trace parts in Shape.parts (set by group_traces)
    Py_ssize_t n_parts

ctypedef bint (*LeafScan)(Scan* s, const uint8_t* p, const uint8_t* end, Py_ssize_t scope,
                          Py_ssize_t index) noexcept nogil

cdef struct Scan:
    const uint8_t* base
    int error
    Py_ssize_t error_at
    LeafScan leaf  # scan_span or scan_log: what the third level holds
    Py_ssize_t n_leaves  # spans or log records so far
    LogRec* logs
    Py_ssize_t n_logs
    Py_ssize_t cap_logs
    SpanRec* spans
    Py_ssize_t n_spans
    Py_ssize_t cap_spans
    Slice* attrs
    Py_ssize_t n_attrs
    Py_ssize_t cap_attrs
    Slice* extras
    Py_ssize_t n_extras
    Py_ssize_t cap_extras
    ScopeRec* scopes
    Py_ssize_t n_scopes
    Py_ssize_t cap_scopes
    Slice* resources
    Py_ssize_t n_resources
    Py_ssize_t cap_resources
    Py_ssize_t rejected



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


cdef inline bint read_fixed64(Scan* s, const uint8_t** p, const uint8_t* end, uint64_t* out) noexcept nogil:
    """A fixed64 value (times); ``p`` moves past it only when it is whole."""
    if end - p[0] < 8:
        return fail(s, E_FIXED, p[0])
    out[0] = load_le64(p[0])
    p[0] += 8
    return True


cdef inline bint read_int32(Scan* s, const uint8_t** p, const uint8_t* end, int32_t* out) noexcept nogil:
    """An int32 field (a varint of up to 10 bytes, cut to its low 32 bits as upb reads it)."""
    cdef uint64_t value
    if not read_varint(s, p, end, &value):
        return False
    out[0] = <int32_t><uint32_t>value
    return True


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


cdef bint grow(Scan* s, void** items, Py_ssize_t* cap, Py_ssize_t count, size_t size,
               const uint8_t* at) noexcept nogil:
    """Room for one more item in a growable array; a scan error when memory runs out."""
    return reserve(items, cap, count + 1, size) or fail(s, E_MEMORY, at)


cdef inline bint add_slice(Scan* s, Slice** items, Py_ssize_t* count, Py_ssize_t* cap,
                           const uint8_t* p, Py_ssize_t n) noexcept nogil:
    if not grow(s, <void**>items, cap, count[0], sizeof(Slice), p):
        return False
    items[0][count[0]] = Slice(p, n)
    count[0] += 1
    return True


cdef bint scan_attributes_of(Scan* s, const uint8_t* p, const uint8_t* end, uint32_t number) noexcept nogil:
    """An Event's (field 3) or a Link's (field 4) attributes, appended to Scan.extras."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t length
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if field == number and wire == 2:
            if not read_length(s, &p, end, &length):
                return False
            if not add_slice(s, &s.extras, &s.n_extras, &s.cap_extras, p, length):
                return False
            p += length
        elif not skip_field(s, &p, end, field, wire, 4):
            return False
    return True


cdef int status_code(const uint8_t* p, const uint8_t* end) noexcept nogil:
    """Status{code=3} as int32, the last one winning; 0 outside 0..2. The bytes were checked by the
    official decode (a Status that cannot be read counts as unset)."""
    cdef Scan quiet  # a Status the official classes accepted cannot fail here; if it did, not an error
    cdef uint32_t field
    cdef int wire
    cdef uint64_t value
    cdef uint64_t code = 0
    quiet.base = p
    quiet.error = OK
    while p < end:
        if not read_tag(&quiet, &p, end, &field, &wire):
            return 0
        if field == 3 and wire == 0:
            if not read_varint(&quiet, &p, end, &value):
                return 0
            code = value
        elif not skip_field(&quiet, &p, end, field, wire, 5):
            return 0
    value = <uint32_t>code
    return <int>value if value <= 2 else 0


cdef bint scan_span(Scan* s, const uint8_t* p, const uint8_t* end, Py_ssize_t scope, Py_ssize_t index) noexcept nogil:
    """One Span into Scan.spans. Singular fields: the last occurrence wins (as upb reads them);
    attributes (9), events (11) and links (13) are collected in order."""
    cdef SpanRec* r
    cdef Py_ssize_t length
    cdef uint32_t field
    cdef int wire
    if not grow(s, <void**>&s.spans, &s.cap_spans, s.n_spans, sizeof(SpanRec), p):
        return False
    r = &s.spans[s.n_spans]
    memset(r, 0, sizeof(SpanRec))
    r.raw = Slice(p, end - p)
    r.attrs = s.n_attrs
    r.extras = s.n_extras
    r.scope = scope
    r.index = index
    r.next = -1
    s.n_spans += 1
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if wire == 2 and (field == 1 or field == 2 or field == 4 or field == 5 or field == 9
                          or field == 11 or field == 13 or field == 15):
            if not read_length(s, &p, end, &length):
                return False
            if field == 1:
                r.tid = Slice(p, length)
            elif field == 2:
                r.sid = Slice(p, length)
            elif field == 4:
                r.parent = Slice(p, length)
            elif field == 5:
                r.name = Slice(p, length)
            elif field == 9:
                if not add_slice(s, &s.attrs, &s.n_attrs, &s.cap_attrs, p, length):
                    return False
            elif field == 11:
                if not scan_attributes_of(s, p, p + length, 3):
                    return False
            elif field == 13:
                if not scan_attributes_of(s, p, p + length, 4):
                    return False
            else:
                r.status = Slice(p, length)
            p += length
        elif wire == 1 and (field == 7 or field == 8):
            if not read_fixed64(s, &p, end, &r.start if field == 7 else &r.end):
                return False
        elif wire == 0 and field == 6:
            if not read_int32(s, &p, end, &r.kind):
                return False
        elif not skip_field(s, &p, end, field, wire, 3):
            return False
    # The attribute arrays may have moved (realloc) but r points into s.spans, which did not grow.
    r.n_attrs = s.n_attrs - r.attrs
    r.n_extras = s.n_extras - r.extras
    r.problem = span_problem(r.tid.n, r.tid.p, r.sid.n, r.sid.p, r.start, r.end)
    if r.problem:
        s.rejected += 1
    elif r.status.n:
        r.code = status_code(r.status.p, r.status.p + r.status.n)
    return True


cdef enum LogProblem:
    LOG_TRACE_LENGTH = 1
    LOG_SPAN_LENGTH
    LOG_SEVERITY

cdef enum:
    MAX_SEVERITY = 24  # SeverityNumber FATAL4


cdef bint scan_log(Scan* s, const uint8_t* p, const uint8_t* end, Py_ssize_t scope, Py_ssize_t index) noexcept nogil:
    """One LogRecord into Scan.logs: time_unix_nano=1, severity_number=2, body=5, attributes=6,
    trace_id=9, span_id=10, observed_time_unix_nano=11, event_name=12; the last of a field wins."""
    cdef LogRec* r
    cdef Py_ssize_t length
    cdef uint32_t field
    cdef int wire
    if not grow(s, <void**>&s.logs, &s.cap_logs, s.n_logs, sizeof(LogRec), p):
        return False
    r = &s.logs[s.n_logs]
    memset(r, 0, sizeof(LogRec))
    r.raw = Slice(p, end - p)
    r.attrs = s.n_attrs
    r.scope = scope
    r.index = index
    s.n_logs += 1
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if wire == 2 and (field == 5 or field == 6 or field == 9 or field == 10 or field == 12):
            if not read_length(s, &p, end, &length):
                return False
            if field == 5:
                r.body = Slice(p, length)
            elif field == 6:
                if not add_slice(s, &s.attrs, &s.n_attrs, &s.cap_attrs, p, length):
                    return False
            elif field == 9:
                r.tid = Slice(p, length)
            elif field == 10:
                r.sid = Slice(p, length)
            else:
                r.event_name = Slice(p, length)
            p += length
        elif wire == 1 and (field == 1 or field == 11):
            if not read_fixed64(s, &p, end, &r.time if field == 1 else &r.observed):
                return False
        elif wire == 0 and field == 2:
            if not read_int32(s, &p, end, &r.severity):
                return False
        elif not skip_field(s, &p, end, field, wire, 3):
            return False
    r.n_attrs = s.n_attrs - r.attrs
    if r.tid.n != 0 and r.tid.n != 16:
        r.problem = LOG_TRACE_LENGTH
    elif r.sid.n != 0 and r.sid.n != 8:
        r.problem = LOG_SPAN_LENGTH
    elif r.severity < 0 or r.severity > MAX_SEVERITY:
        r.problem = LOG_SEVERITY
    if r.problem:
        s.rejected += 1
    return True


cdef bint scan_level(Scan* s, const uint8_t* p, const uint8_t* end, int depth, Py_ssize_t index) noexcept nogil:
    """The messages above the spans or log records, the same for both signals: depth 0 is
    Export{Trace,Logs}ServiceRequest{resource_spans / resource_logs=1}, 1 Resource*{resource=1,
    scope_*=2}, 2 Scope*{scope=1, spans / log_records=2} (``s.leaf`` scans each of those). ``index``
    is the message's position among its kind, the index in the rejected items' paths."""
    cdef Py_ssize_t count = 0, length, me = -1
    cdef uint32_t child = 1 if depth == 0 else 2
    cdef uint32_t field
    cdef int wire
    cdef bint ok
    if depth == 1:
        if not add_slice(s, &s.resources, &s.n_resources, &s.cap_resources, p, 0):
            return False
        me = s.n_resources - 1
        s.resources[me].p = NULL
    elif depth == 2:
        if not grow(s, <void**>&s.scopes, &s.cap_scopes, s.n_scopes, sizeof(ScopeRec), p):
            return False
        me = s.n_scopes
        s.scopes[me] = ScopeRec(s.n_resources - 1, index, Slice(NULL, 0), s.n_leaves, 0, 0, 0)
        s.n_scopes += 1
    while p < end:
        if not read_tag(s, &p, end, &field, &wire):
            return False
        if field == child and wire == 2:
            if not read_length(s, &p, end, &length):
                return False
            if depth == 2:
                ok = s.leaf(s, p, p + length, me, count)
                s.n_leaves += 1
            else:
                ok = scan_level(s, p, p + length, depth + 1, count)
            if not ok:
                return False
            count += 1
            p += length
        elif depth > 0 and field == 1 and wire == 2:  # ResourceSpans.resource, ScopeSpans.scope
            if not read_length(s, &p, end, &length):
                return False
            if depth == 1:
                s.resources[me] = Slice(p, length)
            else:
                s.scopes[me].raw = Slice(p, length)
            p += length
        elif not skip_field(s, &p, end, field, wire, depth):
            return False
    if depth == 2:
        s.scopes[me].n_spans = s.n_leaves - s.scopes[me].first_span
    return True


cdef void scan_free(Scan* s) noexcept:
    free(s.logs)
    free(s.spans)
    free(s.attrs)
    free(s.extras)
    free(s.scopes)
    free(s.resources)
    memset(s, 0, sizeof(Scan))




cdef scan_request(Scan* s, bytes body, LeafScan leaf=scan_span):
    """Scan ``body`` into ``s`` (a Workspace's: its arrays are reused) without the GIL; raises
    WireError when it is not a protobuf message."""
    cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef bint ok
    s.error = OK
    s.error_at = 0
    s.n_leaves = s.n_logs = s.n_spans = s.n_attrs = s.n_extras = s.n_scopes = s.n_resources = 0
    s.rejected = 0
    s.base = data
    s.leaf = leaf
    with nogil:
        ok = scan_level(s, data, data + size, 0, 0)
    if not ok:
        if s.error == E_MEMORY:
            raise MemoryError()
        raise WireError(f"{_ERRORS[s.error]} (at byte {s.error_at})")


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


# -- the records the trace store keeps per trace ------------------------------------------------

cdef class TracePart:
    """The spans of one trace that share a resource and a scope within one request.

    ``chunk``: the spans as a storage chunk group (original span bytes, resource and scope by
    reference), framed as field 1 of a Chunk so a trace's groups concatenate into one Chunk.
    ``root``: the root candidate (has_parent, start, name): a span without a parent beats any other,
    then the earliest. ``span_ids`` follow the chunk's order; ``clients`` are the span ids of
    CLIENT/PRODUCER spans (database calls aside), ``servers`` the parent ids of SERVER/CONSUMER
    spans, ``peers`` () or each client's virtual peer ("" for none), ``databases`` the peers of
    database calls (edges at once, never waiting for a server).
    """

    cdef public bytes trace_id
    cdef public object resource
    cdef public object scope
    cdef public bytes chunk
    cdef public Py_ssize_t span_count
    cdef public uint64_t start
    cdef public uint64_t end
    cdef public uint64_t min_duration
    cdef public uint64_t max_duration
    cdef public Py_ssize_t errors
    cdef public object root
    cdef public set operations
    cdef public object span_ids
    cdef public object clients
    cdef public object servers
    cdef public object peers
    cdef public object databases

    def __init__(self, bytes trace_id, resource, scope, bytes chunk, Py_ssize_t span_count, uint64_t start,
                 uint64_t end, uint64_t min_duration, uint64_t max_duration, Py_ssize_t errors, root,
                 set operations, span_ids, clients=(), servers=(), peers=(), databases=()):
        self.trace_id = trace_id
        self.resource = resource
        self.scope = scope
        self.chunk = chunk
        self.span_count = span_count
        self.start = start
        self.end = end
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.errors = errors
        self.root = root
        self.operations = operations
        self.span_ids = span_ids
        self.clients = clients
        self.servers = servers
        self.peers = peers
        self.databases = databases


cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFF
cdef uint32_t NO_SERVICE = 0xFFFFFFFF
# first_seen, start, end, spans, errors, min_span, max_span, root_has_parent, root_start,
# root_service, len(root_name): little-endian "<QQQIIQQBQIH", 63 bytes
cdef enum:
    SUMMARY_HEAD = 63


cdef inline void put_le(char* out, uint64_t value, int size) noexcept nogil:
    cdef int i
    for i in range(size):
        out[i] = <char>((value >> (8 * i)) & 0xFF)


cdef inline uint64_t get_le(const uint8_t* p, int size) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(size):
        value |= (<uint64_t>p[i]) << (8 * i)
    return value


cdef class Summary:
    """A trace's summary record, kept current by the writer as spans arrive; readers decode it.

    Search answers and trace-duration filters come from this small record, never from span data.
    ``services`` maps a service id to [spans, errors]; ``operations`` holds operation ids.
    ``span_ids`` is writer-side only, never encoded: the ids of the trace's stored spans (8 bytes
    each), so that a resent span is recognised.
    """

    cdef public uint64_t first_seen
    cdef public uint64_t start
    cdef public uint64_t end
    cdef public uint32_t spans
    cdef public uint32_t errors
    cdef public uint64_t min_span
    cdef public uint64_t max_span
    cdef public bint root_has_parent
    cdef public uint64_t root_start
    cdef public uint32_t root_service
    cdef public bytes root_name
    cdef public dict services
    cdef public set operations
    cdef public bytearray span_ids

    def __init__(self, uint64_t first_seen):
        self.first_seen = first_seen
        self.start = U64_MAX
        self.end = 0
        self.spans = 0
        self.errors = 0
        self.min_span = U64_MAX
        self.max_span = 0
        self.root_has_parent = True
        self.root_start = U64_MAX
        self.root_service = NO_SERVICE
        self.root_name = b""
        self.services = {}
        self.operations = set()
        self.span_ids = bytearray()

    cpdef add(self, uint32_t service, uint32_t spans, uint32_t errors, uint64_t start, uint64_t end,
              uint64_t min_span, uint64_t max_span, root):
        """One part's figures (root: (has_parent, start, name) or None)."""
        cdef bint has_parent
        cdef uint64_t root_start
        self.spans += spans
        self.errors += errors
        if start < self.start:
            self.start = start
        if end > self.end:
            self.end = end
        if min_span < self.min_span:
            self.min_span = min_span
        if max_span > self.max_span:
            self.max_span = max_span
        counts = self.services.get(service)
        if counts is None:
            self.services[service] = [spans, errors]
        else:
            (<list>counts)[0] += spans
            (<list>counts)[1] += errors
        if root is not None:
            has_parent = root[0]
            root_start = root[1]
            if has_parent < self.root_has_parent or (has_parent == self.root_has_parent and root_start < self.root_start):
                self.root_has_parent = has_parent
                self.root_start = root_start
                self.root_name = root[2]
                self.root_service = service

    cpdef bytes encode(self):
        """The stored record: the 63-byte head, the root name, then u16-counted services
        (id, spans, errors as u32) and operations (u32), all little-endian."""
        cdef Py_ssize_t n_services = len(self.services), n_ops = len(self.operations)
        cdef Py_ssize_t name_len = len(self.root_name)
        cdef bytes out
        cdef char* w
        if n_services > 0xFFFF or n_ops > 0xFFFF or name_len > 0xFFFF:
            raise ValueError("summary too large to encode")
        out = PyBytes_FromStringAndSize(NULL, SUMMARY_HEAD + name_len + 2 + 12 * n_services + 2 + 4 * n_ops)
        w = PyBytes_AS_STRING(out)
        put_le(w, self.first_seen, 8)
        put_le(w + 8, self.start, 8)
        put_le(w + 16, self.end, 8)
        put_le(w + 24, self.spans, 4)
        put_le(w + 28, self.errors, 4)
        put_le(w + 32, self.min_span, 8)
        put_le(w + 40, self.max_span, 8)
        w[48] = <char>(1 if self.root_has_parent else 0)
        put_le(w + 49, self.root_start, 8)
        put_le(w + 57, self.root_service, 4)
        put_le(w + 61, name_len, 2)
        w += SUMMARY_HEAD
        if name_len:
            memcpy(w, PyBytes_AS_STRING(self.root_name), name_len)
            w += name_len
        put_le(w, n_services, 2)
        w += 2
        for sid, counts in self.services.items():
            put_le(w, <uint32_t>sid, 4)
            put_le(w + 4, <uint32_t>(<list>counts)[0], 4)
            put_le(w + 8, <uint32_t>(<list>counts)[1], 4)
            w += 12
        put_le(w, n_ops, 2)
        w += 2
        for op in self.operations:
            put_le(w, <uint32_t>op, 4)
            w += 4
        return out

    @classmethod
    def decode(cls, bytes data not None):
        """A stored record (encode's layout); ValueError when the bytes are cut short."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data), at, name_len, count, i
        cdef Summary s
        if size < SUMMARY_HEAD:
            raise ValueError("summary record cut short")
        s = cls(get_le(p, 8))
        s.start = get_le(p + 8, 8)
        s.end = get_le(p + 16, 8)
        s.spans = <uint32_t>get_le(p + 24, 4)
        s.errors = <uint32_t>get_le(p + 28, 4)
        s.min_span = get_le(p + 32, 8)
        s.max_span = get_le(p + 40, 8)
        s.root_has_parent = p[48] != 0
        s.root_start = get_le(p + 49, 8)
        s.root_service = <uint32_t>get_le(p + 57, 4)
        name_len = <Py_ssize_t>get_le(p + 61, 2)
        at = SUMMARY_HEAD
        if size < at + name_len + 2:
            raise ValueError("summary record cut short")
        s.root_name = data[at:at + name_len]
        at += name_len
        count = <Py_ssize_t>get_le(p + at, 2)
        at += 2
        if size < at + 12 * count + 2:
            raise ValueError("summary record cut short")
        for i in range(count):
            s.services[<uint32_t>get_le(p + at, 4)] = [<uint32_t>get_le(p + at + 4, 4), <uint32_t>get_le(p + at + 8, 4)]
            at += 12
        count = <Py_ssize_t>get_le(p + at, 2)
        at += 2
        if size < at + 4 * count:
            raise ValueError("summary record cut short")
        for i in range(count):
            s.operations.add(<uint32_t>get_le(p + at + 4 * i, 4))
        return s


cdef class WriteFold:
    """One write's parts folded per service, operation and trace: what the trace merge stores.

    ``service_id(name)`` and ``operation_id(service, name, kind)`` come from the registry (they
    add its entries to the write); ``op_cache`` maps (service, name, kind) to operation ids across
    writes. After :meth:`add`: ``services`` name -> id; ``chunks`` trace id -> its chunk groups;
    ``by_service`` / ``by_operation`` id -> trace ids (repeats allowed); ``first_seen``
    (service, resource ref, scope ref) -> (their attributes, traces that met that service in this
    write); ``clients`` trace id + span id -> service and ``servers`` trace id + parent id ->
    service (the dependency halves); ``peers`` trace id + span id -> virtual peer; ``databases``
    (service, peer) of database calls.
    """

    cdef object service_id, operation_id
    cdef dict op_cache
    cdef public dict services, chunks, by_service, by_operation, first_seen, clients, servers, peers
    cdef public list databases

    def __init__(self, service_id, operation_id, dict op_cache not None):
        self.service_id = service_id
        self.operation_id = operation_id
        self.op_cache = op_cache
        self.services = {}
        self.chunks = {}
        self.by_service = {}
        self.by_operation = {}
        self.first_seen = {}
        self.clients = {}
        self.servers = {}
        self.peers = {}
        self.databases = []

    def add(self, list parts not None, dict summaries not None):
        """Fold ``parts`` in, updating each trace's Summary (``summaries`` has one per trace)."""
        cdef TracePart p
        cdef Summary summary
        cdef bytes tid
        cdef list groups, posting
        for p in parts:
            tid = p.trace_id
            svc_name = p.resource.service
            svc = self.services.get(svc_name)
            if svc is None:
                svc = self.services[svc_name] = self.service_id(svc_name)
                self.by_service[svc] = []
            groups = self.chunks.get(tid)
            if groups is None:
                self.chunks[tid] = [p.chunk]
            else:
                groups.append(p.chunk)
            summary = summaries[tid]
            if svc not in summary.services:
                # Resource and scope attributes: indexed once per trace and service, not per span.
                group = (svc, p.resource.ref, p.scope.ref)
                waiting = self.first_seen.get(group)
                if waiting is None:
                    self.first_seen[group] = ([*p.resource.attributes, *p.scope.attributes], [tid])
                else:
                    (<list>(<tuple>waiting)[1]).append(tid)
            summary.add(svc, p.span_count, p.errors, p.start, p.end, p.min_duration, p.max_duration, p.root)
            (<list>self.by_service[svc]).append(tid)
            for operation in p.operations:
                name, kind = <tuple>operation
                key = (svc, name, kind)
                op = self.op_cache.get(key)
                if op is None:
                    op = self.op_cache[key] = self.operation_id(svc, name, kind)
                summary.operations.add(op)
                posting = self.by_operation.get(op)
                if posting is None:
                    self.by_operation[op] = [tid]
                else:
                    posting.append(tid)
            if p.clients:
                for sid in p.clients:
                    self.clients[tid + sid] = svc
                if p.peers:
                    for sid, peer in zip(p.clients, p.peers):
                        self.peers[tid + sid] = peer
            if p.databases:
                for peer in p.databases:
                    self.databases.append((svc, peer))
            if p.servers:
                for sid in p.servers:
                    self.servers[tid + sid] = svc


# -- grouping spans by trace and attributes by term, in C --------------------------------------

cdef inline Py_ssize_t table_size(Py_ssize_t items) noexcept nogil:
    """A power of two at least twice ``items``: open addressing stays short."""
    cdef Py_ssize_t size = 16
    while size < 2 * items:
        size *= 2
    return size


cdef struct PartRec:
    Py_ssize_t first  # first span of the part (request order), linked by SpanRec.next
    Py_ssize_t last
    Py_ssize_t count

cdef struct TermRec:
    Py_ssize_t service  # the request's service slot
    Slice kv  # the encoded KeyValue
    uint64_t hash
    Py_ssize_t count  # trace entries (consecutive repeats of one part merged)
    Py_ssize_t last_part

cdef struct SeriesRec:
    Py_ssize_t service
    Slice name
    int32_t kind
    int code
    uint64_t hash

cdef struct Shape:
    PartRec* parts
    Py_ssize_t n_parts
    Py_ssize_t* part_of  # per span: its part (-1: rejected)
    TermRec* terms
    Py_ssize_t n_terms
    Py_ssize_t* term_hits  # pairs (term, part), in order
    Py_ssize_t n_hits
    Py_ssize_t* slots  # hash table (trace grouping, then terms, then series)
    Py_ssize_t* service_of  # per resource: its service slot
    SeriesRec* series  # distinct (service, name, kind, status code) of kept spans
    Py_ssize_t n_series
    int32_t* series_of  # per span: its series
    Py_ssize_t cap_series
    Py_ssize_t cap_series_of
    Py_ssize_t cap_parts
    Py_ssize_t cap_part_of
    Py_ssize_t cap_terms
    Py_ssize_t cap_hits
    Py_ssize_t cap_slots
    Py_ssize_t cap_service_of


cdef void shape_free(Shape* g) noexcept:
    free(g.series)
    free(g.series_of)
    free(g.parts)
    free(g.part_of)
    free(g.terms)
    free(g.term_hits)
    free(g.slots)
    free(g.service_of)
    memset(g, 0, sizeof(Shape))


cdef enum:
    KEPT_BYTES = 8 << 20  # a workspace grown past this by a huge request is freed after it


cdef class Workspace:
    """The arrays one thread's scans and groupings fill, kept from request to request.

    Allocating them per request (hundreds of KB, grown by doubling) left glibc's heap fragmented
    beside the writer's long-lived objects: RSS grew by tens of MB that were free but never
    returned. Each thread reuses its own (the scan runs without the GIL, so threads never share
    one); a re-entrant call gets a fresh one.
    """

    cdef Scan scan
    cdef Shape shape
    cdef bint busy

    def __cinit__(self):
        memset(&self.scan, 0, sizeof(Scan))
        memset(&self.shape, 0, sizeof(Shape))

    def __dealloc__(self):
        scan_free(&self.scan)
        shape_free(&self.shape)

    cdef void start(self) noexcept:
        self.busy = True
        self.shape.n_parts = self.shape.n_terms = self.shape.n_hits = self.shape.n_series = 0

    cdef void done(self) noexcept:
        cdef Scan* s = &self.scan
        cdef Shape* g = &self.shape
        cdef Py_ssize_t kept = (
            s.cap_spans * sizeof(SpanRec) + s.cap_logs * sizeof(LogRec)
            + (s.cap_attrs + s.cap_extras + s.cap_resources) * sizeof(Slice) + s.cap_scopes * sizeof(ScopeRec)
            + g.cap_parts * sizeof(PartRec) + g.cap_terms * sizeof(TermRec) + g.cap_series * sizeof(SeriesRec)
            + g.cap_series_of * sizeof(int32_t)
            + (g.cap_part_of + 2 * g.cap_hits + g.cap_slots + g.cap_service_of) * sizeof(Py_ssize_t)
        )
        if kept > KEPT_BYTES:
            scan_free(s)
            shape_free(g)
        self.busy = False


_workspaces = threading.local()


cdef Workspace workspace():
    """This thread's Workspace, marked busy (``done()`` when finished)."""
    cdef Workspace ws = getattr(_workspaces, "ws", None)
    if ws is None:
        ws = _workspaces.ws = Workspace()
    elif ws.busy:
        ws = Workspace()
    ws.start()
    return ws


cdef bint group_traces(Scan* s, Shape* g) noexcept nogil:
    """Per ScopeSpans, its kept spans into parts by trace id, in order of first appearance; the
    spans of a part stay in request order (linked by SpanRec.next)."""
    cdef Py_ssize_t sc, i, k, size, mask, slot, largest = 0
    cdef SpanRec* r
    cdef PartRec* part
    cdef uint64_t h
    for sc in range(s.n_scopes):
        if s.scopes[sc].n_spans > largest:
            largest = s.scopes[sc].n_spans
    size = table_size(largest)
    mask = size - 1
    if not (reserve(<void**>&g.slots, &g.cap_slots, size, sizeof(Py_ssize_t))
            and reserve(<void**>&g.parts, &g.cap_parts, s.n_spans + 1, sizeof(PartRec))
            and reserve(<void**>&g.part_of, &g.cap_part_of, s.n_spans + 1, sizeof(Py_ssize_t))):
        return False
    for sc in range(s.n_scopes):
        memset(g.slots, 0xFF, size * sizeof(Py_ssize_t))  # all -1
        s.scopes[sc].first_part = g.n_parts
        for i in range(s.scopes[sc].first_span, s.scopes[sc].first_span + s.scopes[sc].n_spans):
            r = &s.spans[i]
            if r.problem:
                g.part_of[i] = -1
                continue
            h = mix64(load_le64(r.tid.p) ^ load_le64(r.tid.p + 8))
            slot = <Py_ssize_t>(h & <uint64_t>mask)
            while True:
                k = g.slots[slot]
                if k < 0:
                    k = g.slots[slot] = g.n_parts
                    g.parts[k] = PartRec(i, i, 1)
                    g.n_parts += 1
                    break
                if memcmp(s.spans[g.parts[k].first].tid.p, r.tid.p, 16) == 0:
                    part = &g.parts[k]
                    s.spans[part.last].next = i
                    part.last = i
                    part.count += 1
                    break
                slot = (slot + 1) & mask
            g.part_of[i] = k
        s.scopes[sc].n_parts = g.n_parts - s.scopes[sc].first_part
    return True


cdef bint add_hit(Scan* s, Shape* g, Py_ssize_t* cap_terms, Py_ssize_t* cap_hits, Py_ssize_t mask,
                  Py_ssize_t service, Slice kv, Py_ssize_t part) noexcept nogil:
    cdef uint64_t h = hash_bytes(kv.p, kv.n, <uint64_t>service)
    cdef Py_ssize_t slot = <Py_ssize_t>(h & <uint64_t>mask)
    cdef Py_ssize_t t
    cdef TermRec* term
    while True:
        t = g.slots[slot]
        if t < 0:
            if not grow(s, <void**>&g.terms, cap_terms, g.n_terms, sizeof(TermRec), kv.p):
                return False
            t = g.slots[slot] = g.n_terms
            g.terms[t] = TermRec(service, kv, h, 0, -1)
            g.n_terms += 1
            break
        term = &g.terms[t]
        if term.hash == h and term.service == service and term.kv.n == kv.n and memcmp(term.kv.p, kv.p, kv.n) == 0:
            break
        slot = (slot + 1) & mask
    term = &g.terms[t]
    if term.last_part == part:
        return True
    term.last_part = part
    term.count += 1
    if not grow(s, <void**>&g.term_hits, cap_hits, g.n_hits, 2 * sizeof(Py_ssize_t), kv.p):
        return False
    g.term_hits[2 * g.n_hits] = t
    g.term_hits[2 * g.n_hits + 1] = part
    g.n_hits += 1
    return True


cdef inline bint empty_slots(Shape* g, Py_ssize_t size) noexcept nogil:
    """The open-addressing table, ``size`` slots, all empty (-1); False when memory runs out."""
    if not reserve(<void**>&g.slots, &g.cap_slots, size, sizeof(Py_ssize_t)):
        return False
    memset(g.slots, 0xFF, size * sizeof(Py_ssize_t))
    return True


cdef bint group_terms(Scan* s, Shape* g) noexcept nogil:
    """Every kept span's attributes, and its events' and links' (Jaeger's tag search matches those
    too), as distinct (service, term) entries with the parts (traces) that carry them."""
    cdef Py_ssize_t size = table_size(s.n_attrs + s.n_extras)
    cdef Py_ssize_t mask = size - 1, i, j, service
    cdef SpanRec* r
    if not empty_slots(g, size):
        return False
    for i in range(s.n_spans):
        if g.part_of[i] < 0:
            continue
        r = &s.spans[i]
        service = g.service_of[s.scopes[r.scope].resource]
        for j in range(r.attrs, r.attrs + r.n_attrs):
            if not add_hit(s, g, &g.cap_terms, &g.cap_hits, mask, service, s.attrs[j], g.part_of[i]):
                return False
        for j in range(r.extras, r.extras + r.n_extras):
            if not add_hit(s, g, &g.cap_terms, &g.cap_hits, mask, service, s.extras[j], g.part_of[i]):
                return False
    return True


cdef bint group_series(Scan* s, Shape* g) noexcept nogil:
    """Every kept span's span-metrics series: (service, name, kind, status code), numbered in
    order of first appearance, so the span metrics tap needs no Python object per span."""
    cdef Py_ssize_t size = table_size(s.n_spans), mask, i, k, slot, service
    cdef SpanRec* r
    cdef SeriesRec* rec
    cdef uint64_t h
    mask = size - 1
    if not (empty_slots(g, size)
            and reserve(<void**>&g.series_of, &g.cap_series_of, s.n_spans + 1, sizeof(int32_t))):
        return False
    for i in range(s.n_spans):
        if g.part_of[i] < 0:
            continue
        r = &s.spans[i]
        service = g.service_of[s.scopes[r.scope].resource]
        h = hash_bytes(r.name.p, r.name.n, (<uint64_t>service << 36) ^ (<uint64_t><uint32_t>r.kind << 4) ^ r.code)
        slot = <Py_ssize_t>(h & <uint64_t>mask)
        while True:
            k = g.slots[slot]
            if k < 0:
                if not grow(s, <void**>&g.series, &g.cap_series, g.n_series, sizeof(SeriesRec), r.name.p):
                    return False
                k = g.slots[slot] = g.n_series
                g.series[k] = SeriesRec(service, r.name, r.kind, r.code, h)
                g.n_series += 1
                break
            rec = &g.series[k]
            if (rec.hash == h and rec.service == service and rec.kind == r.kind and rec.code == r.code
                    and rec.name.n == r.name.n and memcmp(rec.name.p, r.name.p, r.name.n) == 0):
                break
            slot = (slot + 1) & mask
        g.series_of[i] = <int32_t>k
    return True


cdef inline bytes slice_bytes(Slice x):
    return PyBytes_FromStringAndSize(<const char*>x.p, x.n) if x.n else b""


cdef inline Py_ssize_t varint_size(uint64_t n) noexcept nogil:
    cdef Py_ssize_t size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


cdef inline char* put_varint(char* out, uint64_t n) noexcept nogil:
    while n >= 0x80:
        out[0] = <char>((n & 0x7F) | 0x80)
        out += 1
        n >>= 7
    out[0] = <char>n
    return out + 1


cdef bytes chunk_group(Scan* s, PartRec* part, bytes resource_ref, bytes scope_ref):
    """Field 1 of a storage Chunk: ChunkGroup{resource_ref=1, scope_ref=2, spans=3 (the spans'
    original bytes, in request order)}, so a trace's groups concatenate into one Chunk."""
    cdef Py_ssize_t group = 0, i = part.first, n_res = len(resource_ref), n_scope = len(scope_ref)
    cdef bytes out
    cdef char* w
    if n_res:
        group += 1 + varint_size(n_res) + n_res
    if n_scope:
        group += 1 + varint_size(n_scope) + n_scope
    while i >= 0:
        group += 1 + varint_size(s.spans[i].raw.n) + s.spans[i].raw.n
        i = s.spans[i].next
    out = PyBytes_FromStringAndSize(NULL, 1 + varint_size(group) + group)
    w = PyBytes_AS_STRING(out)
    w[0] = 0x0A
    w = put_varint(w + 1, group)
    if n_res:
        w[0] = 0x0A
        w = put_varint(w + 1, n_res)
        memcpy(w, PyBytes_AS_STRING(resource_ref), n_res)
        w += n_res
    if n_scope:
        w[0] = 0x12
        w = put_varint(w + 1, n_scope)
        memcpy(w, PyBytes_AS_STRING(scope_ref), n_scope)
        w += n_scope
    i = part.first
    while i >= 0:
        w[0] = 0x1A
        w = put_varint(w + 1, s.spans[i].raw.n)
        memcpy(w, s.spans[i].raw.p, s.spans[i].raw.n)
        w += s.spans[i].raw.n
        i = s.spans[i].next
    return out


cdef str problem_text(const SpanRec* r):
    """The partial-success text for a span that breaks a rule."""
    if r.problem == TRACE_MISSING:
        return "trace_id is missing"
    if r.problem == TRACE_LENGTH:
        return f"trace_id must be 16 bytes, got {r.tid.n}"
    if r.problem == TRACE_ZERO:
        return "trace_id must not be all zeros"
    if r.problem == SPAN_MISSING:
        return "span_id is missing"
    if r.problem == SPAN_LENGTH:
        return f"span_id must be 8 bytes, got {r.sid.n}"
    if r.problem == SPAN_ZERO:
        return "span_id must not be all zeros"
    if r.problem == START_MISSING:
        return "start_time_unix_nano is missing"
    if r.problem == END_MISSING:
        return "end_time_unix_nano is missing"
    return f"end_time_unix_nano {r.end} is before start_time_unix_nano {r.start}"


cdef list problems_of(Scan* s):
    return [
        (s.scopes[s.spans[i].scope].resource, s.scopes[s.spans[i].scope].index, s.spans[i].index,
         problem_text(&s.spans[i]))
        for i in range(s.n_spans) if s.spans[i].problem
    ]


def span_problems(bytes body not None):
    """Validate every span of an ExportTraceServiceRequest's protobuf bytes in one pass.

    Returns a list with one ``(resource_index, scope_index, span_index, problem)`` tuple per
    rejected span, in request order: the indices are its path,
    ``resourceSpans[resource_index].scopeSpans[scope_index].spans[span_index]``, and ``problem``
    says which rule it breaks (trace_id 16 bytes and not all zeros, span_id 8 bytes and not all
    zeros, a start time, an end time not before it). An empty list means every span is valid.
    Raises WireError when the bytes are not a protobuf message. The scan runs without the GIL.
    """
    cdef Workspace ws = workspace()
    try:
        scan_request(&ws.scan, body)
        return problems_of(&ws.scan)
    finally:
        ws.done()


cdef bint has_prefix(Slice kv, tuple prefixes):
    cdef bytes prefix
    cdef Py_ssize_t n
    for prefix in prefixes:
        n = len(prefix)
        if kv.n >= n and memcmp(kv.p, PyBytes_AS_STRING(prefix), n) == 0:
            return True
    return False


cdef class TraceShaper:
    """Turns an export's bytes into what the trace store writes, with ingest's own types and rules.

    Ingest builds one at import and hands it its callables, so the core holds no storage types and
    no semantic conventions: ``resource_info(raw, seen)`` and ``scope_info(raw, seen)`` describe a
    Resource / InstrumentationScope once per distinct bytes (``.service`` and ``.ref`` are read
    here), ``columns(...)`` builds a ScopeColumns, and
    ``peer_of(hits, kind)`` names a client span's virtual peer from its attributes that start with
    one of ``peer_prefixes``; ``database`` is the connection type of database calls.
    """

    cdef object resource_info, scope_info, make_columns, peer_of, database
    cdef tuple peer_prefixes

    def __init__(self, resource_info, scope_info, columns, tuple peer_prefixes, peer_of, str database):
        self.resource_info = resource_info
        self.scope_info = scope_info
        self.make_columns = columns
        self.peer_prefixes = peer_prefixes
        self.peer_of = peer_of
        self.database = database

    def shape(self, bytes body not None):
        """One ExportTraceServiceRequest: ``(problems, parts, terms, columns, accepted, series)``.

        ``problems`` is span_problems' list; ``parts`` one TracePart per (ScopeSpans, trace) with
        its chunk bytes and summary figures, in request order; ``terms`` maps a service name to
        {encoded attribute: trace ids carrying it}; ``columns`` one ScopeColumns per ScopeSpans
        (kept spans only); ``accepted`` the number of kept spans; ``series`` is (the distinct
        (service, name, kind, status code) of kept spans, each kept span's index among them as
        native int32, each kept span's duration in ns as native uint64), in column order. Raises
        WireError when the bytes are not a protobuf message. Scanning and grouping run without
        the GIL.
        """
        cdef Workspace ws = workspace()
        try:
            scan_request(&ws.scan, body)
            return self._build(&ws.scan, &ws.shape, body)
        finally:
            ws.done()

    cdef tuple _build(self, Scan* s, Shape* g, bytes body):
        cdef Py_ssize_t i, k, sc, j, n_kept, col_index, kept
        cdef int64_t* spans_at
        cdef int32_t* series_at
        cdef uint64_t* durations_at
        cdef SpanRec* r
        cdef PartRec* part
        cdef bint ok
        resources_seen: dict = {}
        scopes_seen: dict = {}
        services: dict = {}
        resources = []
        if not reserve(<void**>&g.service_of, &g.cap_service_of, s.n_resources + 1, sizeof(Py_ssize_t)):
            raise MemoryError()
        for i in range(s.n_resources):
            info = self.resource_info(slice_bytes(s.resources[i]), resources_seen)
            resources.append(info)
            g.service_of[i] = services.setdefault(info.service, len(services))
        with nogil:
            ok = group_traces(s, g) and group_terms(s, g) and group_series(s, g)
        if not ok:
            raise MemoryError()

        tids = [None] * g.n_parts
        names = [None] * s.n_spans  # per span, shared by columns and operations
        sids = [None] * s.n_spans
        parts = []
        columns = []
        empty = b""
        for sc in range(s.n_scopes):
            resource = resources[s.scopes[sc].resource]
            scope = self.scope_info(slice_bytes(s.scopes[sc].raw), scopes_seen)
            col_names = []
            col_kinds = []
            col_statuses = []
            col_starts = []
            col_durations = []
            col_tids = []
            col_sids = []
            col_parents = []
            col_peers = {}
            # Each kept span's (start, end) in the body, as native int64 pairs: one object a scope.
            offsets = PyBytes_FromStringAndSize(NULL, 2 * sizeof(int64_t) * s.scopes[sc].n_spans)
            spans_at = <int64_t*>PyBytes_AS_STRING(offsets)
            any_edges = False
            for i in range(s.scopes[sc].first_span, s.scopes[sc].first_span + s.scopes[sc].n_spans):
                r = &s.spans[i]
                k = g.part_of[i]
                if k < 0:
                    continue
                tid = tids[k]
                if tid is None:
                    tid = tids[k] = slice_bytes(r.tid)
                name = names[i] = slice_bytes(r.name)
                sid = sids[i] = slice_bytes(r.sid)
                col_index = len(col_names)
                col_names.append(name)
                col_kinds.append(r.kind)
                col_statuses.append(slice_bytes(r.status) if r.status.n else empty)
                col_starts.append(r.start)
                col_durations.append(r.end - r.start)
                col_tids.append(tid)
                col_sids.append(sid)
                col_parents.append(slice_bytes(r.parent) if r.parent.n else empty)
                spans_at[2 * col_index] = r.raw.p - s.base
                spans_at[2 * col_index + 1] = r.raw.p - s.base + r.raw.n
                if 2 <= r.kind <= 5:
                    any_edges = True
                    if r.kind == 3 or r.kind == 4:
                        hits = tuple([
                            slice_bytes(s.attrs[j]) for j in range(r.attrs, r.attrs + r.n_attrs)
                            if has_prefix(s.attrs[j], self.peer_prefixes)
                        ])
                        if hits:
                            peer = self.peer_of(hits, r.kind)
                            if peer is not None:
                                col_peers[col_index] = peer
            columns.append(self.make_columns(
                resource, body, offsets[:2 * sizeof(int64_t) * len(col_names)], col_names, col_kinds, col_statuses, col_starts, col_durations,
                col_tids, col_sids, col_parents, col_peers,
            ))
            self._scope_parts(s, g, sc, resource, scope, tids, names, sids, any_edges, col_peers, parts)
        terms = self._terms(s, g, services, tids)
        problems = problems_of(s) if s.rejected else []
        kept = s.n_spans - s.rejected
        service_names = list(services)  # by slot: the dict holds them in slot order
        series = [
            (service_names[g.series[k].service], slice_bytes(g.series[k].name), g.series[k].kind, g.series[k].code)
            for k in range(g.n_series)
        ]
        series_of = PyBytes_FromStringAndSize(NULL, kept * sizeof(int32_t))
        durations = PyBytes_FromStringAndSize(NULL, kept * sizeof(uint64_t))
        series_at = <int32_t*>PyBytes_AS_STRING(series_of)
        durations_at = <uint64_t*>PyBytes_AS_STRING(durations)
        k = 0
        for i in range(s.n_spans):
            if g.part_of[i] >= 0:
                series_at[k] = g.series_of[i]
                durations_at[k] = s.spans[i].end - s.spans[i].start
                k += 1
        return problems, parts, terms, columns, kept, (series, series_of, durations)

    cdef void _scope_parts(self, Scan* s, Shape* g, Py_ssize_t sc, resource, scope, list tids,
                           list names, list sids, bint any_edges, dict col_peers, list out) except *:
        """The parts of one ScopeSpans, each with its summary figures and edge halves."""
        cdef Py_ssize_t k, i, j, root, col = 0, first = s.scopes[sc].first_span
        cdef Py_ssize_t last = first + s.scopes[sc].n_spans
        cdef SpanRec* r
        cdef PartRec* part
        cdef TracePart made
        cdef uint64_t start, end, min_d, max_d, d
        cdef Py_ssize_t errors
        cdef bint has_peers = len(col_peers) > 0
        resource_ref = resource.ref
        scope_ref = scope.ref
        database = self.database
        # Column index of every kept span of this scope (peers are keyed by it).
        column_of = {}
        if has_peers:
            for i in range(first, last):
                if g.part_of[i] >= 0:
                    column_of[i] = col
                    col += 1
        for k in range(s.scopes[sc].first_part, s.scopes[sc].first_part + s.scopes[sc].n_parts):
            part = &g.parts[k]
            j = part.first
            r = &s.spans[j]
            start = r.start
            end = r.end
            min_d = max_d = r.end - r.start
            errors = r.code == 2
            root = -1 if r.parent.n else j
            if part.count == 1:
                operations = {(names[j], r.kind)}
                span_ids = [sids[j]]
                root = j
            else:
                operations = set()
                span_ids = []
                j = part.first
                while j >= 0:
                    r = &s.spans[j]
                    operations.add((names[j], r.kind))
                    span_ids.append(sids[j])
                    if j != part.first:
                        d = r.end - r.start
                        if r.start < start:
                            start = r.start
                        if r.end > end:
                            end = r.end
                        if d < min_d:
                            min_d = d
                        if d > max_d:
                            max_d = d
                        errors += r.code == 2
                        if not r.parent.n and (root < 0 or r.start < s.spans[root].start):
                            root = j
                    j = r.next
                if root < 0:  # no span without a parent: the earliest
                    root = part.first
                    j = part.first
                    while j >= 0:
                        if s.spans[j].start < s.spans[root].start:
                            root = j
                        j = s.spans[j].next
            made = TracePart.__new__(TracePart)
            made.trace_id = tids[k]
            made.resource = resource
            made.scope = scope
            made.chunk = chunk_group(s, part, resource_ref, scope_ref)
            made.span_count = part.count
            made.start = start
            made.end = end
            made.min_duration = min_d
            made.max_duration = max_d
            made.errors = errors
            made.operations = operations
            made.span_ids = span_ids
            made.clients = made.servers = made.peers = made.databases = ()
            r = &s.spans[root]
            made.root = (r.parent.n > 0, r.start, names[root])
            if has_peers or any_edges:
                clients = []
                servers = []
                peers = []
                databases = []
                j = part.first
                while j >= 0:
                    r = &s.spans[j]
                    if r.kind == 3 or r.kind == 4:
                        peer = col_peers.get(column_of[j]) if has_peers else None
                        if peer is not None and peer[1] == database:
                            databases.append(peer[0])
                        else:
                            clients.append(sids[j])
                            peers.append(peer[0] if peer is not None else "")
                    elif (r.kind == 2 or r.kind == 5) and r.parent.n:
                        servers.append(slice_bytes(r.parent))
                    j = r.next
                made.clients = clients
                made.servers = servers
                if has_peers:
                    made.peers = peers
                    made.databases = databases
            out.append(made)

    cdef dict _terms(self, Scan* s, Shape* g, dict services, list tids):
        """service name -> {encoded attribute: trace ids carrying it (in order, with repeats)}."""
        cdef Py_ssize_t t, h, filled
        cdef TermRec* term
        by_slot = [{} for _ in range(len(services))]
        lists = [None] * g.n_terms
        fill = [0] * g.n_terms
        for t in range(g.n_terms):
            term = &g.terms[t]
            lists[t] = [None] * term.count
            by_slot[term.service][slice_bytes(term.kv)] = lists[t]
        for h in range(g.n_hits):
            t = g.term_hits[2 * h]
            filled = fill[t]
            lists[t][filled] = tids[g.term_hits[2 * h + 1]]
            fill[t] = filled + 1
        return {service: by_slot[slot] for service, slot in services.items() if by_slot[slot]}


# -- postings: one write's trace lists as u16 slots into its trace table --------------------------

cdef class SlotTable:
    """A write's trace table (trace id -> slot, at most 65,535) and the posting values built on it.

    A posting value is the distinct slots of its traces, as u16 in native order (array("H")), in
    order of first appearance: the layout ``storage/rocks/traces/merge.py`` documents.
    """

    cdef dict slot_of
    cdef uint32_t* stamp  # per slot: the posting that last took it (dedupe without a set)
    cdef uint32_t posting
    cdef uint16_t* buffer
    cdef Py_ssize_t capacity

    def __cinit__(self, trace_ids):
        self.slot_of = {}
        for tid in trace_ids:
            if tid not in self.slot_of:
                self.slot_of[tid] = len(self.slot_of)
        if len(self.slot_of) > 65535:
            raise ValueError("a write holds at most 65,535 traces")
        self.stamp = <uint32_t*>calloc(len(self.slot_of) + 1, sizeof(uint32_t))
        self.capacity = 1024
        self.buffer = <uint16_t*>malloc(self.capacity * sizeof(uint16_t))
        if self.stamp == NULL or self.buffer == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.stamp)
        free(self.buffer)

    cdef Py_ssize_t _add(self, list trace_ids, Py_ssize_t n) except -1:
        """Append the new slots of ``trace_ids`` to the buffer (of ``n`` so far); returns the count."""
        cdef Py_ssize_t slot
        cdef uint16_t* grown
        for tid in trace_ids:
            slot = self.slot_of[tid]
            if self.stamp[slot] == self.posting:
                continue
            self.stamp[slot] = self.posting
            if n == self.capacity:
                grown = <uint16_t*>realloc(self.buffer, 2 * self.capacity * sizeof(uint16_t))
                if grown == NULL:
                    raise MemoryError()
                self.buffer = grown
                self.capacity *= 2
            self.buffer[n] = <uint16_t>slot
            n += 1
        return n

    cdef inline bytes _value(self, Py_ssize_t n):
        return PyBytes_FromStringAndSize(<const char*>self.buffer, n * sizeof(uint16_t))

    def slots(self, list trace_ids not None):
        """The posting value of ``trace_ids`` (repeats and any order)."""
        self.posting += 1
        return self._value(self._add(trace_ids, 0))

    def put_terms(self, batch, bytes prefix not None, list term_maps not None, bytes rev not None,
                  Py_ssize_t max_term, long_prefix, set known_keys not None):
        """One posting per distinct term of ``term_maps`` ({encoded KeyValue: trace ids}, merged):
        ``batch.put(prefix | len(2, big-endian) | term | rev, slots)``, or, for a term longer than
        ``max_term`` bytes, ``long_prefix(term) + rev`` as the key. Returns the attribute key names
        (bytes) not in ``known_keys`` yet, which are added to it."""
        cdef Py_ssize_t n, size, at
        cdef dict merged
        cdef bytes key, name
        cdef char* w
        cdef const uint8_t* kvp
        new_keys = []
        if len(term_maps) == 1:
            merged = term_maps[0]
        else:
            merged = {}
            for term_map in term_maps:
                for kv, tids in (<dict>term_map).items():
                    found = merged.get(kv)
                    if found is None:
                        merged[kv] = tids
                    else:
                        merged[kv] = found + tids
        for kv, tids in merged.items():
            self.posting += 1
            n = self._add(<list>tids, 0)
            size = len(<bytes>kv)
            if size <= max_term:
                key = PyBytes_FromStringAndSize(NULL, len(prefix) + 2 + size + len(rev))
                w = PyBytes_AS_STRING(key)
                memcpy(w, PyBytes_AS_STRING(prefix), len(prefix))
                w += len(prefix)
                w[0] = <char>(size >> 8)
                w[1] = <char>(size & 0xFF)
                memcpy(w + 2, PyBytes_AS_STRING(<bytes>kv), size)
                memcpy(w + 2 + size, PyBytes_AS_STRING(rev), len(rev))
            else:
                key = long_prefix(kv) + rev
            batch.put(key, self._value(n))
            kvp = <const uint8_t*>PyBytes_AS_STRING(<bytes>kv)
            if size >= 2 and kvp[0] == 0x0A and kvp[1] < 0x80 and 2 + kvp[1] <= size:
                name = PyBytes_FromStringAndSize(<const char*>kvp + 2, kvp[1])
                if name not in known_keys:
                    known_keys.add(name)
                    new_keys.append(name)
        return new_keys


# -- log records -------------------------------------------------------------------------------

cdef const char* EVENT_NAME_KEY = b"\x0a\x0aevent.name"  # KeyValue{key="event.name"} as it starts
cdef enum:
    EVENT_NAME_KEY_LEN = 12
    KEYS_IN_C = 64  # distinct attribute keys a group dedupes in C before it uses a Python set


cdef inline bint contains(Slice hay, const char* needle, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if hay.n < n:
        return False
    for i in range(hay.n - n + 1):
        if hay.p[i] == <uint8_t>needle[0] and memcmp(hay.p + i, needle, n) == 0:
            return True
    return False


cdef str log_problem_text(const LogRec* r):
    if r.problem == LOG_TRACE_LENGTH:
        return f"trace_id must be 16 bytes or empty, got {r.tid.n}"
    if r.problem == LOG_SPAN_LENGTH:
        return f"span_id must be 8 bytes or empty, got {r.sid.n}"
    return f"severity_number must be 0..{MAX_SEVERITY}, got {r.severity}"


cdef object string_body_text(Slice body):
    """The text of an encoded AnyValue that is exactly one ``string_value`` (its bytes are then
    verbatim in the record's bytes), else None: as ``otlp.anyvalue.string_body`` reads it."""
    cdef Py_ssize_t at = 1, size = 0, shift = 0
    cdef uint8_t b
    if body.n == 0 or body.p[0] != 0x0A:
        return None
    while at < body.n and at < 6:
        b = body.p[at]
        size |= (<Py_ssize_t>(b & 0x7F)) << shift
        at += 1
        if b < 0x80:
            if body.n != at + size:
                return None
            return PyUnicode_DecodeUTF8(<const char*>body.p + at, size, "replace")
        shift += 7
    return None


cdef class LogShaper:
    """Turns an ExportLogsServiceRequest's bytes into the log store's groups, with ingest's types.

    As TraceShaper: ingest hands it ``resource_info`` / ``scope_info``, ``group(resource, scope,
    records, times, severities, trace_ids, bodies)`` to build a LogGroup, ``body_text(body)`` for
    a body that is not one string, ``attribute_key(kv)`` for a KeyValue whose key is not its first
    short field, ``event(record, service, when)`` for a record that may carry a business event
    (``event_name``, or an ``event.name`` attribute) and ``digest(data)`` for a group's content hash.
    """

    cdef object resource_info, scope_info, make_group, body_text, attribute_key, event, digest

    def __init__(self, resource_info, scope_info, group, body_text, attribute_key, event, digest):
        self.resource_info = resource_info
        self.scope_info = scope_info
        self.make_group = group
        self.body_text = body_text
        self.attribute_key = attribute_key
        self.event = event
        self.digest = digest

    def shape(self, bytes body not None, uint64_t received):
        """One request: ``(groups, accepted, rejected, problems, events)``.

        ``groups``: one LogGroup per ScopeLogs with kept records (times: the record's time, else its
        observed time, else ``received``; the digest is left empty when a record had neither);
        ``problems``: ``(resource, scope, record, text)`` of the first five rejected records;
        ``events``: what ``event`` returned for records that may carry one. Raises WireError when
        the bytes are not a protobuf message. The scan runs without the GIL.
        """
        cdef Workspace ws = workspace()
        try:
            scan_request(&ws.scan, body, scan_log)
            return self._build(&ws.scan, received)
        finally:
            ws.done()

    cdef tuple _build(self, Scan* s, uint64_t received):
        cdef Py_ssize_t sc, i, j, k, n_keys, joined_size
        cdef LogRec* r
        cdef Slice kv
        cdef Slice seen_keys[KEYS_IN_C]
        cdef bint untimed, plain, found
        cdef uint64_t when
        cdef char* w
        resources_seen: dict = {}
        scopes_seen: dict = {}
        resources = [self.resource_info(slice_bytes(s.resources[i]), resources_seen) for i in range(s.n_resources)]
        groups = []
        events = []
        problems = []
        for sc in range(s.n_scopes):
            resource = resources[s.scopes[sc].resource]
            scope = self.scope_info(slice_bytes(s.scopes[sc].raw), scopes_seen)
            records = []
            times = []
            severities = []
            trace_ids = []
            bodies = []
            keys = set()
            n_keys = 0
            untimed = False
            plain = True
            joined_size = 0
            for i in range(s.scopes[sc].first_span, s.scopes[sc].first_span + s.scopes[sc].n_spans):
                r = &s.logs[i]
                if r.problem:
                    if len(problems) < 5:
                        problems.append((s.scopes[sc].resource, s.scopes[sc].index, r.index, log_problem_text(r)))
                    continue
                when = r.time if r.time else r.observed
                if not when:
                    when = received
                    untimed = True
                raw = slice_bytes(r.raw)
                records.append(raw)
                joined_size += r.raw.n
                times.append(when)
                severities.append(r.severity)
                trace_ids.append(slice_bytes(r.tid))
                text = string_body_text(r.body) if r.body.n else ""
                if text is None:  # a map, list or number: its text is not verbatim in the bytes
                    plain = False
                    text = self.body_text(slice_bytes(r.body))
                bodies.append(text)
                for j in range(r.attrs, r.attrs + r.n_attrs):
                    kv = s.attrs[j]
                    if not (kv.n > 1 and kv.p[0] == 0x0A and kv.p[1] < 0x80):
                        keys.add(self.attribute_key(slice_bytes(kv)))
                        continue
                    kv = Slice(kv.p + 2, min(<Py_ssize_t>kv.p[1], kv.n - 2))
                    found = False
                    for k in range(n_keys):
                        if seen_keys[k].n == kv.n and memcmp(seen_keys[k].p, kv.p, kv.n) == 0:
                            found = True
                            break
                    if found:
                        continue
                    if n_keys < KEYS_IN_C:
                        seen_keys[n_keys] = kv
                        n_keys += 1
                    keys.add(slice_bytes(kv))
                # Most records are no events: the attribute check looks for the key's bytes first.
                if r.event_name.n or (r.n_attrs and contains(r.raw, EVENT_NAME_KEY, EVENT_NAME_KEY_LEN)):
                    event = self.event(raw, resource.service, when)
                    if event is not None:
                        events.append(event)
            if not records:
                continue
            group = self.make_group(resource, scope, records, times, severities, trace_ids, bodies)
            group.attribute_keys = keys
            group.plain_bodies = plain
            if not untimed:
                group.digest = self.digest(b"".join([resource.ref, scope.ref, *records]))
            groups.append(group)
        return groups, s.n_logs - s.rejected, s.rejected, problems, events
