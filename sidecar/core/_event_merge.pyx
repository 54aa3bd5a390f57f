# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The events merge's per-event loop, compiled: dedupe, registry codes, the record and its index keys.

The layout is the one sidecar/storage/rocks/events/merge.py documents (this module only builds
its bytes): ``V|eid`` -> record, ``N|name|eid`` and ``U|user|eid`` -> "", ``I|id`` -> eid, with
``eid`` = ts_ns(8) | write_ns(8) | index(4), all big-endian. What needs the registry's judgement
(a text seen for the first time, a property key not noted yet, which partition a day goes to) is
the caller's callbacks; everything else is done here without a Python call per field.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_Append
from cpython.ref cimport PyObject
from cpython.set cimport PySet_Add, PySet_Contains
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, strlen

from sidecar.core._hashing cimport hash_bytes, mix64

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* type) except NULL
    int Py_DTSF_ADD_DOT_0

cdef int64_t DAY_NS = 86_400_000_000_000

cdef inline void put_be(char* out, uint64_t value, int size) noexcept nogil:
    cdef int i
    for i in range(size):
        out[i] = <char>((value >> (8 * (size - 1 - i))) & 0xFF)


cdef inline const char* utf8(object text, Py_ssize_t* n) except NULL:
    return PyUnicode_AsUTF8AndSize(text, n)


cdef struct Buffer:
    char* data
    Py_ssize_t n
    Py_ssize_t cap


cdef int grow(Buffer* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 256
    cdef char* data
    while cap < b.n + more:
        cap *= 2
    data = <char*>realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data, b.cap = data, cap
    return 0


cdef inline int add(Buffer* b, const char* p, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        grow(b, n)
    memcpy(b.data + b.n, p, n)
    b.n += n
    return 0


cdef inline bint add_text(Buffer* b, object text) except -1:
    """A JSON string as Python's encoder writes it with ensure_ascii=False; False (nothing added
    for good) when it would need an escape, which the caller leaves to that encoder."""
    cdef Py_ssize_t n, i
    cdef const char* p = utf8(text, &n)
    cdef uint8_t c
    for i in range(n):
        c = <uint8_t>p[i]
        if c < 0x20 or c == 34 or c == 92:  # control character, '"', '\\'
            return False
    add(b, '"', 1)
    add(b, p, n)
    add(b, '"', 1)
    return True


cpdef object compact_json(dict props):
    """``props`` (str keys; str, int, float or bool values) as json.dumps(separators=(",", ":"),
    ensure_ascii=False) writes them, UTF-8; None for anything that needs an escape, a non-finite
    float, an integer past 64 bits or another type: the caller's encoder then does it."""
    cdef Buffer b
    cdef object key, value
    cdef char number[32]
    cdef char* text
    cdef long long whole
    cdef int overflow
    cdef bint first = True
    b.data, b.n, b.cap = NULL, 0, 0
    try:
        add(&b, "{", 1)
        for key, value in props.items():
            if type(key) is not str:
                return None
            if not first:
                add(&b, ",", 1)
            first = False
            if not add_text(&b, key):
                return None
            add(&b, ":", 1)
            if type(value) is str:
                if not add_text(&b, value):
                    return None
            elif value is True:
                add(&b, "true", 4)
            elif value is False:
                add(&b, "false", 5)
            elif type(value) is int:
                whole = PyLong_AsLongLongAndOverflow(value, &overflow)
                if overflow:
                    return None
                add(&b, number, snprintf(number, 32, "%lld", whole))
            elif type(value) is float:
                if not isfinite(PyFloat_AS_DOUBLE(value)):
                    return None
                text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
                try:
                    add(&b, text, strlen(text))
                finally:
                    PyMem_Free(text)
            else:
                return None
        add(&b, "}", 1)
        return PyBytes_FromStringAndSize(b.data, b.n)
    finally:
        free(b.data)


cdef class EventRows:
    """One merger's compiled loop. ``codes``: the registry's three text -> code dicts (name, user,
    service; read, never written here); ``make_code(kind, text, batch, cf)``: the registry's code
    maker for a text not in them; ``key_sets``: property keys noted per name group (the key
    registry's own dict), ``note_keys(name, props, batch, cf)`` for a set that lacks some;
    ``month_part(day)``: (month start day, partition handle) of the partition an event of UTC
    ``day`` is stored in; ``encode_properties(props)``: their compact JSON text."""

    cdef dict names, users, services, key_sets, groups
    cdef object make_code, note_keys, month_part, encode_properties

    def __init__(self, dict names, dict users, dict services, make_code, dict key_sets, note_keys,
                 month_part, encode_properties):
        self.names, self.users, self.services = names, users, services
        self.make_code, self.key_sets, self.note_keys = make_code, key_sets, note_keys
        self.month_part, self.encode_properties = month_part, encode_properties
        self.groups = {}

    cdef inline uint32_t _code(self, dict codes, str kind, object text, object batch, object cf) except? 0:
        cdef PyObject* found = PyDict_GetItem(codes, text)
        if found != NULL:
            return <uint32_t>(<object>found)
        return <uint32_t>self.make_code(kind, text, batch, cf)

    cdef inline int _note(self, uint32_t name, dict props, object batch, object cf) except -1:
        cdef PyObject* group = PyDict_GetItem(self.groups, name)
        cdef bytes key
        if group == NULL:
            key = bytes(((name >> 24) & 0xFF, (name >> 16) & 0xFF, (name >> 8) & 0xFF, name & 0xFF))
            self.groups[name] = key
            group = <PyObject*>key
        cdef PyObject* known = PyDict_GetItem(self.key_sets, <object>group)
        if known == NULL or not (<set>known).issuperset(props):
            self.note_keys(name, props, batch, cf)
        return 0

    def merge(self, list items, set known, object batch, object default_cf, uint64_t ns):
        """Put every event of ``items`` (EventBatch) not a duplicate into ``batch``; count the
        duplicates on their item and list each stored eid on its item (``stored``). ``known``: the
        ``I|id`` keys already stored (the caller's multi-get); this write's ids are added to it.
        Returns {month start day: (partition handle, rows)}, a row being (ts_ns, name, user,
        service, session_id, properties), in arrival order, for the column block and rollups."""
        cdef dict blocks = {}
        cdef dict days = {}  # day -> (partition handle, rows) of its month
        cdef object put = batch.put
        cdef object event, item, stored, id_text, session, props, day_entry, cf, rows, key
        cdef object id_key, record, encoded
        cdef uint32_t name, user, service, index = 0
        cdef int64_t ts
        cdef Py_ssize_t n_session, n_id, n_props
        cdef const char* p_session
        cdef const char* p_id = NULL
        cdef char eid[20]
        cdef char head[14]  # the record's head: name, user, service (u32), session length (u16)
        cdef char* out
        put_be(eid + 8, ns, 8)
        for item in items:
            stored = item.stored
            for event in item.events:
                id_text = event.id
                id_key = None
                if id_text is not None:
                    p_id = utf8(id_text, &n_id)
                    id_key = PyBytes_FromStringAndSize(NULL, n_id + 1)
                    out = PyBytes_AS_STRING(id_key)
                    out[0] = 73  # "I"
                    memcpy(out + 1, p_id, n_id)
                    if PySet_Contains(known, id_key):
                        item.duplicates += 1
                        continue
                    PySet_Add(known, id_key)  # a second copy in this write is a duplicate too
                    if n_id > 255:
                        raise ValueError(f"event id of {n_id} bytes: at most 255 fit a record")
                ts = event.ts_ns
                if ts < 0:
                    raise ValueError(f"event time {ts} is before 1970")
                day_entry = days.get(ts // DAY_NS)
                if day_entry is None:
                    month, cf = self.month_part(ts // DAY_NS)
                    found = blocks.get(month)
                    if found is None:
                        found = blocks[month] = (cf, [])
                    day_entry = days[ts // DAY_NS] = found
                cf, rows = day_entry
                name = self._code(self.names, "n", event.name, batch, default_cf)
                props = event.properties
                if props:
                    self._note(name, props, batch, default_cf)
                user = 0
                if event.user_id:
                    user = self._code(self.users, "u", event.user_id, batch, default_cf)
                service = 0
                if event.service:
                    service = self._code(self.services, "s", event.service, batch, default_cf)
                put_be(eid, <uint64_t>ts, 8)
                put_be(eid + 16, index, 4)
                index += 1
                session = event.session_id
                n_session = 0
                p_session = NULL
                if session:
                    p_session = utf8(session, &n_session)
                    if n_session > 0xFFFF:
                        raise ValueError(f"session_id of {n_session} bytes: at most 65535 fit a record")
                if id_text is None:
                    n_id = 0
                encoded = compact_json(props)
                if encoded is None:
                    encoded = self.encode_properties(props)
                n_props = PyBytes_GET_SIZE(encoded)
                put_be(head, name, 4)
                put_be(head + 4, user, 4)
                put_be(head + 8, service, 4)
                put_be(head + 12, <uint64_t>n_session, 2)
                record = PyBytes_FromStringAndSize(NULL, 14 + n_session + 1 + n_id + n_props)
                out = PyBytes_AS_STRING(record)
                memcpy(out, head, 14)
                out += 14
                if n_session:
                    memcpy(out, p_session, n_session)
                    out += n_session
                out[0] = <char>n_id
                out += 1
                if n_id:
                    memcpy(out, p_id, n_id)
                    out += n_id
                memcpy(out, PyBytes_AS_STRING(encoded), n_props)
                key = PyBytes_FromStringAndSize(eid, 20)
                put(b"V" + key, record, cf)
                put_be(head, name, 4)
                put(b"N" + PyBytes_FromStringAndSize(head, 4) + key, b"", cf)
                if user:
                    put_be(head, user, 4)
                    put(b"U" + PyBytes_FromStringAndSize(head, 4) + key, b"", cf)
                if id_key is not None:
                    put(id_key, key, cf)
                PyList_Append(stored, key)
                PyList_Append(rows, (ts, name, user, service, session, props))
        return blocks


def gather_properties(list props_in, list order):
    """Each property key's ([row], [value]) over the property dicts taken in ``order`` (a row is
    a position in ``order``), keys in order of first appearance: the column block's columns. A
    None value leaves its row out (absent) but its key in."""
    cdef dict present = {}
    cdef Py_ssize_t row = 0
    cdef object i, props, key, value, found
    for i in order:
        props = props_in[i]
        if props:
            for key, value in (<dict>props).items():
                found = present.get(key)
                if found is None:
                    found = present[key] = ([], [])
                if value is not None:
                    PyList_Append((<tuple>found)[0], row)
                    PyList_Append((<tuple>found)[1], value)
        row += 1
    return present


def dictionary_codes(list values):
    """(u32 LE code per value, 0 for None; the distinct values, code k = entry k-1): bools,
    integers and floats that compare equal stay distinct entries."""
    cdef dict index = {}
    cdef list entries = []
    cdef Py_ssize_t i, n = len(values)
    cdef bytes codes = PyBytes_FromStringAndSize(NULL, 4 * n)
    cdef char* out = PyBytes_AS_STRING(codes)
    cdef object value, tag, found
    cdef uint32_t code
    for i in range(n):
        value = values[i]
        code = 0
        if value is not None:
            tag = (type(value), value)
            found = index.get(tag)
            if found is None:
                entries.append(value)
                code = len(entries)
                index[tag] = code
            else:
                code = found
        out[4 * i] = <char>(code & 0xFF)
        out[4 * i + 1] = <char>((code >> 8) & 0xFF)
        out[4 * i + 2] = <char>((code >> 16) & 0xFF)
        out[4 * i + 3] = <char>((code >> 24) & 0xFF)
    return codes, entries


def numeric_properties(list rows, Py_ssize_t first, dict numbers):
    """Add to ``numbers`` {(name, key): [(row, float)]} the int and float properties (not bools;
    keys under 256 characters; integers a float64 cannot hold left out) of merge ``rows``, row
    numbers counted from ``first``: the numeric rollups' values."""
    cdef Py_ssize_t at = first
    cdef object row, name, key, value, found, kind
    cdef double number
    for row in rows:
        name = (<tuple>row)[1]
        for key, value in (<dict>(<tuple>row)[5]).items():
            kind = type(value)
            if (kind is float or kind is int) and len(key) < 256:
                try:
                    number = float(value)
                except OverflowError:
                    continue
                found = numbers.get((name, key))
                if found is None:
                    found = numbers[(name, key)] = []
                PyList_Append(found, (at, number))
        at += 1


def ids_by_month(list items, object months_of):
    """{month start day: [``I|id`` key]} of the events of ``items`` that carry an id, each under
    every month ``months_of(day)`` says it may already be stored in: the dedupe multi-gets."""
    cdef dict wanted = {}
    cdef dict months_cache = {}
    cdef object item, event, id_text, key, months, month, found
    cdef Py_ssize_t n_id
    cdef const char* p_id
    cdef int64_t ts
    for item in items:
        for event in item.events:
            id_text = event.id
            if id_text is None:
                continue
            p_id = utf8(id_text, &n_id)
            key = PyBytes_FromStringAndSize(NULL, n_id + 1)
            PyBytes_AS_STRING(key)[0] = 73  # "I"
            memcpy(PyBytes_AS_STRING(key) + 1, p_id, n_id)
            ts = event.ts_ns
            if ts < 0:
                raise ValueError(f"event time {ts} is before 1970")
            months = months_cache.get(ts // DAY_NS)
            if months is None:
                months = months_cache[ts // DAY_NS] = months_of(ts // DAY_NS)
            for month in months:
                found = wanted.get(month)
                if found is None:
                    found = wanted[month] = []
                PyList_Append(found, key)
    return wanted


# -- the dedupe filter ------------------------------------------------------------------------

cdef enum:
    BITS_PER_KEY = 12  # with 7 probes in one 512-bit block: about 1 % false positives


cdef class BloomFilter:
    """A blocked Bloom filter of byte strings (one 64-byte block per key, 7 bits in it), sized for
    ``capacity`` keys at about 1 % false positives: says which keys are certainly absent, so the
    dedupe multi-get asks RocksDB only about the rest."""

    cdef uint64_t* bits
    cdef uint64_t blocks
    cdef readonly Py_ssize_t capacity, count

    def __cinit__(self, Py_ssize_t capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.blocks = <uint64_t>((capacity * BITS_PER_KEY + 511) // 512)
        self.bits = <uint64_t*>calloc(self.blocks * 8, sizeof(uint64_t))
        if self.bits == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.bits)

    @property
    def nbytes(self) -> int:
        return self.blocks * 64

    cdef inline bint _probe(self, bytes key, bint set_bits) noexcept:
        cdef uint64_t h = hash_bytes(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), 0)
        cdef uint64_t* block = self.bits + 8 * (mix64(h) % self.blocks)
        cdef uint64_t bit
        cdef int i
        cdef bint present = True
        for i in range(7):
            bit = (h >> (9 * i)) & 511
            if not (block[bit >> 6] >> (bit & 63)) & 1:
                present = False
                if not set_bits:
                    return False
                block[bit >> 6] |= (<uint64_t>1) << (bit & 63)
        return present

    def add(self, list keys):
        """Add ``keys`` (bytes)."""
        cdef object key
        for key in keys:
            if not self._probe(<bytes?>key, True):
                self.count += 1

    def maybe(self, list keys):
        """The ``keys`` that may have been added; every one that was is among them."""
        cdef list out = []
        cdef object key
        for key in keys:
            if self._probe(<bytes?>key, False):
                out.append(key)
        return out
