# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""NDJSON business events (``POST /v1/events``) read in C: the fast lane of sidecar.ingest.events.

Parsing each line with ``json.loads`` and validating the object in Python costs ~15 us an event;
this reads the usual line (a flat object of strings, integers, short numbers and a small
``properties`` object) in one pass over the bytes and builds the Event directly. It decides only
what it can prove: a line is *fast* when today's Python path (``json.loads``, ``validate_event``)
would certainly give a valid event, and then it gives exactly that event; every other line (an
error of any kind, or merely something unusual) is handed back to Python as text, so errors and
their messages stay Python's alone. Deliberately left to Python:

- arrays, NaN/Infinity, duplicate keys in any object (``json.loads`` keeps the last value in the
  first key's place), objects nested deeper than MAX_DEPTH or with more than MAX_KEYS keys;
- escapes that give a lone surrogate, raw control characters in strings, integers of more than
  18 digits, numbers that read as infinite;
- names whose blankness needs Unicode (no ASCII non-space character), identifiers given as
  floats or bools, timestamps that are not an integer, a string of digits or exact RFC 3339;
- anything that breaks a limit or a rule (too long, too many, out of the time window, twice).

The first pass (UTF-8 check, lines, tokens, limits) runs without the GIL and records where each
value is, CHUNK lines at a time so memory stays bounded; the second builds their Python objects.
Every read is bounds-checked against its line; nesting is bounded by MAX_DEPTH.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetItem, PyDict_Size
from cpython.long cimport PyLong_FromLongLong
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.math cimport isfinite
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memchr, memcmp, memcpy, memset

from sidecar.core._arrays cimport reserve


cdef extern from "Python.h":
    # float()'s own conversion (correctly rounded, locale-free): exactly what json.loads gives a float.
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0


cdef enum:
    MAX_DEPTH = 16  # nesting of objects, the line's own object being 1
    MAX_KEYS = 128  # keys in one object; the pairwise duplicate check stays cheap below it
    MAX_INT_DIGITS = 18  # any such integer fits int64
    MAX_ID_BYTES = 128  # sidecar.ingest.events.MAX_ID_BYTES: the cap of ``id``
    CHUNK = 1024  # lines read without the GIL before their objects are made

# The event's own fields (sidecar.ingest.events.FIELDS), as bit positions; -1 is an extra property.
cdef enum Field:
    EXTRA = -1
    F_NAME = 0
    F_TIMESTAMP
    F_USER_ID
    F_SESSION_ID
    F_SERVICE
    F_ID
    F_PROPERTIES

cdef enum Kind:
    K_NONE = 0  # an identifier that is None (null or "")
    K_STR
    K_INT
    K_FLOAT
    K_TRUE
    K_FALSE

cdef int64_t SECONDS_BELOW = 100_000_000_000  # events._SECONDS_BELOW: below, Unix seconds; above, ms
cdef int64_t MS_BELOW = 100_000_000_000_000  # events._MS_BELOW: the end of the range
cdef int64_t NS = 1_000_000_000


cdef struct Str:
    Py_ssize_t off  # into the body, or into the arena when ``arena`` (a decoded or joined text)
    Py_ssize_t n  # UTF-8 bytes
    Py_ssize_t cp  # code points: len() of the str
    bint arena

cdef struct Leaf:  # one property: its flattened name and its value
    Str name
    Str text  # K_STR: the value; K_FLOAT: the number's JSON text (in the body)
    int64_t i  # K_INT
    int kind

cdef struct Ident:  # user_id, session_id, service or id
    Str text
    int64_t i
    int kind  # K_NONE, K_STR or K_INT (the str of the integer)

cdef struct Line:
    Py_ssize_t start  # the line's bytes in the body, without its newline
    Py_ssize_t end
    Py_ssize_t number  # 1-based over all lines, as enumerate(text.split("\n"), 1)
    bint fast
    Str name
    int64_t ts
    Ident ids[4]  # user_id, session_id, service, id
    Py_ssize_t first_leaf
    Py_ssize_t n_leaves

cdef struct Reader:
    const uint8_t* body
    Py_ssize_t max_name
    Py_ssize_t max_props
    Py_ssize_t max_value
    int64_t min_ts
    int64_t max_ts
    int64_t now
    uint8_t* arena  # decoded strings (with escapes) and joined property names
    Py_ssize_t n_arena
    Py_ssize_t cap_arena
    uint8_t* path  # the flattening prefix of the object being read: "a.b."
    Py_ssize_t n_path
    Py_ssize_t cap_path
    Py_ssize_t cp_path
    Leaf* leaves  # every fast line's properties, extras first then ``properties``' own
    Py_ssize_t n_leaves
    Py_ssize_t cap_leaves
    Leaf* pleaves  # the current line's ``properties``, appended after its extras at the end
    Py_ssize_t n_pleaves
    Py_ssize_t cap_pleaves
    Str* keys  # the keys of the objects being read (a stack), for the duplicate check
    Py_ssize_t n_keys
    Py_ssize_t cap_keys
    Line* lines
    Py_ssize_t n_lines
    Py_ssize_t cap_lines
    Py_ssize_t line_first  # the current line's first leaf
    bint nomem


cdef inline bint room(Reader* r, void** items, Py_ssize_t* cap, Py_ssize_t need, size_t size) noexcept nogil:
    if reserve(items, cap, need, size):
        return True
    r.nomem = True
    return False


cdef inline const uint8_t* ptr(Reader* r, Str s) noexcept nogil:
    return (<const uint8_t*>r.arena if s.arena else r.body) + s.off


# -- UTF-8, whitespace, tokens ---------------------------------------------------------------------

cdef Py_ssize_t utf8_error(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """-1 when ``s`` is UTF-8 as ``bytes.decode("utf-8")`` reads it (no overlongs, no surrogates,
    nothing past U+10FFFF, no truncated sequence), else the offset of the first bad byte."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef uint8_t c, b1
    while i < n:
        while i + 8 <= n:
            memcpy(&word, s + i, 8)
            if word & 0x8080808080808080ULL:
                break
            i += 8
        if i >= n:
            break
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:  # a continuation byte, or the overlong C0/C1
            return i
        elif c < 0xE0:
            if i + 1 >= n or s[i + 1] & 0xC0 != 0x80:
                return i
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return i
            b1 = s[i + 1]
            if (c == 0xE0 and b1 < 0xA0) or (c == 0xED and b1 > 0x9F) or b1 & 0xC0 != 0x80:
                return i  # overlong, a surrogate, or no continuation
            if s[i + 2] & 0xC0 != 0x80:
                return i
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return i
            b1 = s[i + 1]
            if (c == 0xF0 and b1 < 0x90) or (c == 0xF4 and b1 > 0x8F) or b1 & 0xC0 != 0x80:
                return i  # overlong, or past U+10FFFF
            if s[i + 2] & 0xC0 != 0x80 or s[i + 3] & 0xC0 != 0x80:
                return i
            i += 4
        else:
            return i
    return -1


cdef inline bint is_strip_space(uint8_t c) noexcept nogil:
    """The ASCII characters str.strip() strips (str.isspace): \\t \\n \\x0b \\x0c \\r \\x1c-\\x1f space."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef inline bint is_blank(const uint8_t* p, const uint8_t* end) noexcept nogil:
    """Certainly blank to ``line.strip()``; a line with non-ASCII bytes is never decided here."""
    while p < end:
        if not is_strip_space(p[0]):
            return False
        p += 1
    return True


cdef inline const uint8_t* skip_ws(const uint8_t* p, const uint8_t* end) noexcept nogil:
    """Past JSON's whitespace: space, tab, CR, LF, nothing else (json's WHITESPACE)."""
    while p < end and (p[0] == c' ' or p[0] == c'\t' or p[0] == c'\r' or p[0] == c'\n'):
        p += 1
    return p


cdef inline bint is_digit(uint8_t c) noexcept nogil:
    return c'0' <= c <= c'9'


cdef inline bint literal(const uint8_t** pp, const uint8_t* end, const char* word, Py_ssize_t n) noexcept nogil:
    if end - pp[0] < n or memcmp(pp[0], word, n) != 0:
        return False
    pp[0] += n
    return True


cdef inline int hex_digit(uint8_t c) noexcept nogil:
    if is_digit(c):
        return c - c'0'
    c |= 0x20
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    return -1


cdef inline int hex4(const uint8_t* p) noexcept nogil:
    """The value of 4 hex digits (either case, as json reads ``\\uXXXX``), or -1."""
    cdef int value = 0, d, i
    for i in range(4):
        d = hex_digit(p[i])
        if d < 0:
            return -1
        value = value * 16 + d
    return value


cdef bint read_string(Reader* r, const uint8_t** pp, const uint8_t* end, Str* out) noexcept nogil:
    """The JSON string at ``pp`` (its opening quote) as json.loads decodes it; False to leave the
    line to Python (unterminated, a raw control character, a bad escape, a lone surrogate). Text
    without escapes stays in the body; escapes are decoded into the arena (never longer)."""
    cdef const uint8_t* p = pp[0] + 1
    cdef const uint8_t* start = p
    cdef Py_ssize_t cp = 0
    cdef uint8_t c
    cdef uint8_t* o
    cdef int u, low
    while True:
        if p >= end:
            return False
        c = p[0]
        if c == c'"':
            out.off = start - r.body
            out.n = p - start
            out.cp = cp
            out.arena = False
            pp[0] = p + 1
            return True
        if c == c'\\':
            break
        if c < 0x20:
            return False  # json: "Invalid control character"
        cp += (c & 0xC0) != 0x80
        p += 1
    # escapes: decode from here into the arena
    if not room(r, <void**>&r.arena, &r.cap_arena, r.n_arena + (end - start), 1):
        return False
    out.off = r.n_arena
    out.arena = True
    o = r.arena + r.n_arena
    memcpy(o, start, p - start)
    o += p - start
    while True:
        if p >= end:
            return False
        c = p[0]
        if c == c'"':
            break
        if c < 0x20:
            return False
        if c != c'\\':
            o[0] = c
            o += 1
            cp += (c & 0xC0) != 0x80
            p += 1
            continue
        if p + 1 >= end:
            return False
        c = p[1]
        p += 2
        cp += 1
        if c == c'"' or c == c'\\' or c == c'/':
            o[0] = c
        elif c == c'b':
            o[0] = 8
        elif c == c'f':
            o[0] = 12
        elif c == c'n':
            o[0] = 10
        elif c == c'r':
            o[0] = 13
        elif c == c't':
            o[0] = 9
        elif c == c'u':
            if end - p < 4:
                return False
            u = hex4(p)
            p += 4
            if u < 0 or 0xDC00 <= u <= 0xDFFF:
                return False  # a bad escape, or a lone low surrogate
            if 0xD800 <= u <= 0xDBFF:  # only as the first half of a pair
                if end - p < 6 or p[0] != c'\\' or p[1] != c'u':
                    return False
                low = hex4(p + 2)
                if not 0xDC00 <= low <= 0xDFFF:
                    return False
                p += 6
                u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
            if u < 0x80:
                o[0] = <uint8_t>u
            elif u < 0x800:
                o[0] = <uint8_t>(0xC0 | (u >> 6))
                o[1] = <uint8_t>(0x80 | (u & 0x3F))
                o += 1
            elif u < 0x10000:
                o[0] = <uint8_t>(0xE0 | (u >> 12))
                o[1] = <uint8_t>(0x80 | ((u >> 6) & 0x3F))
                o[2] = <uint8_t>(0x80 | (u & 0x3F))
                o += 2
            else:
                o[0] = <uint8_t>(0xF0 | (u >> 18))
                o[1] = <uint8_t>(0x80 | ((u >> 12) & 0x3F))
                o[2] = <uint8_t>(0x80 | ((u >> 6) & 0x3F))
                o[3] = <uint8_t>(0x80 | (u & 0x3F))
                o += 3
        else:
            return False  # json: "Invalid \\escape"
        o += 1
    out.n = o - (r.arena + out.off)
    out.cp = cp
    r.n_arena += out.n
    pp[0] = p + 1
    return True


cdef bint read_number(const uint8_t** pp, const uint8_t* end, int64_t* value, bint* is_float) noexcept nogil:
    """A JSON number as json.loads reads it: an int (here at most 18 digits, so int64) or a float,
    whose text is then [start, pp); False for anything else (-Infinity, a lone sign, "1." ...)."""
    cdef const uint8_t* p = pp[0]
    cdef bint negative = False
    cdef int64_t v = 0
    cdef Py_ssize_t digits = 0
    is_float[0] = False
    if p < end and p[0] == c'-':
        negative = True
        p += 1
    if p >= end or not is_digit(p[0]):
        return False
    if p[0] == c'0':
        p += 1  # "01": json reads 0 and then fails at 1, which the caller's next token check sees
    else:
        while p < end and is_digit(p[0]):
            if digits < MAX_INT_DIGITS:
                v = v * 10 + (p[0] - c'0')
            digits += 1
            p += 1
    if p < end and p[0] == c'.':
        p += 1
        if p >= end or not is_digit(p[0]):
            return False
        while p < end and is_digit(p[0]):
            p += 1
        is_float[0] = True
    if p < end and (p[0] == c'e' or p[0] == c'E'):
        p += 1
        if p < end and (p[0] == c'+' or p[0] == c'-'):
            p += 1
        if p >= end or not is_digit(p[0]):
            return False
        while p < end and is_digit(p[0]):
            p += 1
        is_float[0] = True
    if not is_float[0] and digits > MAX_INT_DIGITS:
        return False
    value[0] = -v if negative else v  # "-0" is int 0, as json.loads makes it
    pp[0] = p
    return True


# -- timestamps (events._timestamp / _unix, params.parse_rfc3339_nano) -----------------------------

cdef bint unix_ns(int64_t v, int64_t* out) noexcept nogil:
    """Unix seconds below 1e11, milliseconds below 1e14, as nanoseconds; False when negative, out
    of that range or past int64 (all errors or far outside any time window)."""
    if v < 0 or v >= MS_BELOW:
        return False
    if v < SECONDS_BELOW:
        if v > INT64_MAX // NS:
            return False
        out[0] = v * NS
    else:
        if v > INT64_MAX // 1_000_000:
            return False
        out[0] = v * 1_000_000
    return True


cdef inline int two(const uint8_t* s) noexcept nogil:
    return (s[0] - c'0') * 10 + (s[1] - c'0')


cdef inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date (year >= 1)."""
    cdef int64_t era, yoe, doy, doe
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef bint rfc3339_ns(const uint8_t* s, Py_ssize_t n, int64_t* out) noexcept nogil:
    """parse_rfc3339_nano on text that fully matches its pattern with a valid calendar date and
    offset; False for anything else (which Python then refuses, or reads some other way)."""
    cdef Py_ssize_t i, first
    cdef int year, month, day, hour, minute, second, oh, om, dim
    cdef int64_t nanos = 0, offset = 0, seconds
    cdef int k
    cdef const char* shape = b"dddd-dd-ddTdd:dd:dd"  # T: T, t or a space
    if n < 20:
        return False
    for i in range(19):
        if shape[i] == c'd':
            if not is_digit(s[i]):
                return False
        elif shape[i] == c'T':
            if s[i] != c'T' and s[i] != c't' and s[i] != c' ':
                return False
        elif s[i] != shape[i]:
            return False
    i = 19
    if s[i] == c'.':
        i += 1
        first = i
        while i < n and is_digit(s[i]):
            if i - first < 9:
                nanos = nanos * 10 + (s[i] - c'0')
            i += 1
        if i == first:
            return False
        for k in range(<int>(i - first if i - first < 9 else 9), 9):
            nanos *= 10
    if i >= n:
        return False
    if s[i] == c'Z' or s[i] == c'z':
        i += 1
    elif s[i] == c'+' or s[i] == c'-' or s[i] == c' ':
        if n - i < 6 or not (is_digit(s[i + 1]) and is_digit(s[i + 2]) and s[i + 3] == c':'
                             and is_digit(s[i + 4]) and is_digit(s[i + 5])):
            return False
        oh = two(s + i + 1)
        om = two(s + i + 4)
        if oh > 23 or om > 59:
            return False
        offset = (oh * 3600 + om * 60) * (-1 if s[i] == c'-' else 1)
        i += 6
    else:
        return False
    if i != n:
        return False
    year = two(s) * 100 + two(s + 2)
    month = two(s + 5)
    day = two(s + 8)
    hour = two(s + 11)
    minute = two(s + 14)
    second = two(s + 17)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour > 23 or minute > 59 or second > 59:
        return False
    if month == 2:
        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        dim = 30
    else:
        dim = 31
    if day > dim:
        return False
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    if seconds > (INT64_MAX - NS) // NS or seconds < INT64_MIN // NS + 1:
        return False
    out[0] = seconds * NS + nanos
    return True


cdef bint read_timestamp(Reader* r, const uint8_t** pp, const uint8_t* end, int64_t* out) noexcept nogil:
    """An integer, a string of digits (no sign, no leading zero) or exact RFC 3339 text, in the
    time window; False for the rest (floats, padded or signed text, bools...)."""
    cdef Str s
    cdef const uint8_t* t
    cdef Py_ssize_t i
    cdef int64_t v = 0
    cdef bint is_float
    if pp[0][0] == c'"':
        if not read_string(r, pp, end, &s):
            return False
        t = ptr(r, s)
        for i in range(s.n):
            if not is_digit(t[i]):
                break
        else:
            # _NUMBER: "0" or no leading zero; at most 14 digits (1e14 is out of range anyway)
            if s.n == 0 or s.n > 14 or (s.n > 1 and t[0] == c'0'):
                return False
            for i in range(s.n):
                v = v * 10 + (t[i] - c'0')
            return unix_ns(v, out)
        return rfc3339_ns(t, s.n, out)
    if not read_number(pp, end, &v, &is_float) or is_float:
        return False
    return unix_ns(v, out)


# -- one line ------------------------------------------------------------------------------------

cdef int field_of(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """The own field a key names (events._ALIAS), or EXTRA."""
    if n == 2:
        if memcmp(s, b"ts", 2) == 0 or memcmp(s, b"dt", 2) == 0:
            return F_TIMESTAMP
        if memcmp(s, b"id", 2) == 0:
            return F_ID
    elif n == 4:
        if memcmp(s, b"name", 4) == 0:
            return F_NAME
        if memcmp(s, b"user", 4) == 0:
            return F_USER_ID
    elif n == 5:
        if memcmp(s, b"event", 5) == 0:
            return F_NAME
    elif n == 6:
        if memcmp(s, b"userid", 6) == 0:
            return F_USER_ID
    elif n == 7:
        if memcmp(s, b"user_id", 7) == 0:
            return F_USER_ID
        if memcmp(s, b"service", 7) == 0:
            return F_SERVICE
    elif n == 9:
        if memcmp(s, b"timestamp", 9) == 0:
            return F_TIMESTAMP
    elif n == 10:
        if memcmp(s, b"session_id", 10) == 0:
            return F_SESSION_ID
        if memcmp(s, b"properties", 10) == 0:
            return F_PROPERTIES
    return EXTRA


cdef bint read_key(Reader* r, const uint8_t** pp, const uint8_t* end, Py_ssize_t base, Str* key) noexcept nogil:
    """A key of the object whose keys start at ``base`` in r.keys, then ``:``; False when it
    repeats an earlier key of that object (json.loads would keep the last value)."""
    cdef const uint8_t* p = pp[0]
    cdef const uint8_t* text
    cdef Py_ssize_t i
    if p >= end or p[0] != c'"' or not read_string(r, &p, end, key):
        return False
    if r.n_keys - base >= MAX_KEYS:
        return False
    text = ptr(r, key[0])
    for i in range(base, r.n_keys):
        if r.keys[i].n == key.n and memcmp(ptr(r, r.keys[i]), text, key.n) == 0:
            return False
    if not room(r, <void**>&r.keys, &r.cap_keys, r.n_keys + 1, sizeof(Str)):
        return False
    r.keys[r.n_keys] = key[0]
    r.n_keys += 1
    p = skip_ws(p, end)
    if p >= end or p[0] != c':':
        return False
    pp[0] = skip_ws(p + 1, end)
    return pp[0] < end


cdef bint add_leaf(Reader* r, bint to_properties, Leaf* leaf) noexcept nogil:
    if (r.n_leaves - r.line_first) + r.n_pleaves >= r.max_props:
        return False  # one more would be too many (or a duplicate name: an error as well)
    if to_properties:
        if not room(r, <void**>&r.pleaves, &r.cap_pleaves, r.n_pleaves + 1, sizeof(Leaf)):
            return False
        r.pleaves[r.n_pleaves] = leaf[0]
        r.n_pleaves += 1
    else:
        if not room(r, <void**>&r.leaves, &r.cap_leaves, r.n_leaves + 1, sizeof(Leaf)):
            return False
        r.leaves[r.n_leaves] = leaf[0]
        r.n_leaves += 1
    return True


cdef bint read_leaf(Reader* r, const uint8_t** pp, const uint8_t* end, Str key, bint to_properties) noexcept nogil:
    """A scalar member as events._flatten takes it: one leaf named by the path and ``key``, or
    nothing for null (after its name's length check, which _flatten makes first)."""
    cdef const uint8_t* p = pp[0]
    cdef Leaf leaf
    cdef bint is_float
    cdef uint8_t c = p[0]
    if r.cp_path + key.cp > r.max_name:
        return False  # the property name is too long
    if c == c'n':
        return literal(pp, end, b"null", 4)
    memset(&leaf, 0, sizeof(Leaf))
    if c == c'"':
        if not read_string(r, pp, end, &leaf.text) or leaf.text.n > r.max_value:
            return False
        leaf.kind = K_STR
    elif c == c't':
        if not literal(pp, end, b"true", 4):
            return False
        leaf.kind = K_TRUE
    elif c == c'f':
        if not literal(pp, end, b"false", 5):
            return False
        leaf.kind = K_FALSE
    elif c == c'-' or is_digit(c):
        if not read_number(pp, end, &leaf.i, &is_float):
            return False
        leaf.kind = K_FLOAT if is_float else K_INT
        leaf.text.off = p - r.body
        leaf.text.n = pp[0] - p
    else:
        return False  # an array, NaN, Infinity, or not JSON
    if r.n_path == 0:
        leaf.name = key
    else:  # the joined name "a.b.key" goes to the arena
        if not room(r, <void**>&r.arena, &r.cap_arena, r.n_arena + r.n_path + key.n, 1):
            return False
        memcpy(r.arena + r.n_arena, r.path, r.n_path)
        memcpy(r.arena + r.n_arena + r.n_path, ptr(r, key), key.n)
        leaf.name.off = r.n_arena
        leaf.name.n = r.n_path + key.n
        leaf.name.cp = r.cp_path + key.cp
        leaf.name.arena = True
        r.n_arena += leaf.name.n
    return add_leaf(r, to_properties, &leaf)


cdef bint read_object(Reader* r, const uint8_t** pp, const uint8_t* end, Str* key, bint to_properties,
                      int depth) noexcept nogil:
    """A nested object (``pp`` at its ``{``) flattened as events._flatten does: its members
    under the path plus ``key.`` (``key`` NULL: the path as it is, for ``properties``), nested
    objects in place."""
    cdef const uint8_t* p = skip_ws(pp[0] + 1, end)
    cdef Py_ssize_t base = r.n_keys, n_path = r.n_path, cp_path = r.cp_path
    cdef Str member
    cdef bint ok
    if depth > MAX_DEPTH:
        return False
    if key != NULL:
        if not room(r, <void**>&r.path, &r.cap_path, r.n_path + key.n + 1, 1):
            return False
        memcpy(r.path + r.n_path, ptr(r, key[0]), key.n)
        r.path[r.n_path + key.n] = c'.'
        r.n_path += key.n + 1
        r.cp_path += key.cp + 1
    if p < end and p[0] == c'}':
        p += 1
    else:
        while True:
            if not read_key(r, &p, end, base, &member):
                return False
            if p[0] == c'{':
                ok = read_object(r, &p, end, &member, to_properties, depth + 1)
            else:
                ok = read_leaf(r, &p, end, member, to_properties)
            if not ok:
                return False
            p = skip_ws(p, end)
            if p >= end:
                return False
            if p[0] == c'}':
                p += 1
                break
            if p[0] != c',':
                return False
            p = skip_ws(p + 1, end)
    r.n_keys = base
    r.n_path = n_path
    r.cp_path = cp_path
    pp[0] = p
    return True


cdef inline bint has_ascii_mark(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """An ASCII character str.strip() keeps: then the text is certainly not blank."""
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] < 0x80 and not is_strip_space(s[i]):
            return True
    return False


cdef inline Py_ssize_t int_text_length(int64_t v) noexcept nogil:
    """len(str(v))."""
    cdef Py_ssize_t n = 1
    cdef uint64_t u
    if v < 0:
        n += 1
        u = <uint64_t>0 - <uint64_t>v
    else:
        u = <uint64_t>v
    while u >= 10:
        u //= 10
        n += 1
    return n


cdef bint read_identifier(Reader* r, const uint8_t** pp, const uint8_t* end, Ident* ident,
                          Py_ssize_t cap) noexcept nogil:
    """events._identifier: null or "" -> None, a string, or an integer's text, at most ``cap`` bytes."""
    cdef uint8_t c = pp[0][0]
    cdef bint is_float
    if c == c'n':
        ident.kind = K_NONE
        return literal(pp, end, b"null", 4)
    if c == c'"':
        if not read_string(r, pp, end, &ident.text) or ident.text.n > cap:
            return False
        ident.kind = K_STR if ident.text.n else K_NONE
        return True
    if c == c'-' or is_digit(c):
        if not read_number(pp, end, &ident.i, &is_float) or is_float:
            return False
        ident.kind = K_INT
        return int_text_length(ident.i) <= cap
    return False


cdef bint read_line(Reader* r, Line* line, const uint8_t* p, const uint8_t* end) noexcept nogil:
    """One line as validate_event would take it: True when it is certainly a valid event (its
    fields and leaves recorded), False to leave it to Python."""
    cdef int field
    cdef int seen = 0
    cdef Str key
    cdef Py_ssize_t i
    cdef bint ok
    line.ts = r.now
    for i in range(4):
        line.ids[i].kind = K_NONE
    line.first_leaf = r.line_first = r.n_leaves
    r.n_pleaves = r.n_keys = r.n_path = r.cp_path = 0
    p = skip_ws(p, end)
    if p >= end or p[0] != c'{':
        return False
    p = skip_ws(p + 1, end)
    while True:
        if not read_key(r, &p, end, 0, &key):
            return False  # also "{}": no name
        field = field_of(ptr(r, key), key.n)
        if field == EXTRA:
            if p[0] == c'{':
                ok = read_object(r, &p, end, &key, False, 2)
            else:
                ok = read_leaf(r, &p, end, key, False)
        elif seen & (1 << field):
            return False  # "given twice" under two spellings
        else:
            seen |= 1 << field
            if field == F_NAME:
                ok = (p[0] == c'"' and read_string(r, &p, end, &line.name) and line.name.cp <= r.max_name
                      and has_ascii_mark(ptr(r, line.name), line.name.n))
            elif field == F_TIMESTAMP:
                ok = read_timestamp(r, &p, end, &line.ts) and r.min_ts <= line.ts <= r.max_ts
            elif field == F_PROPERTIES:
                ok = p[0] == c'{' and read_object(r, &p, end, NULL, True, 2)
            else:
                ok = read_identifier(r, &p, end, &line.ids[field - F_USER_ID],
                                     MAX_ID_BYTES if field == F_ID else r.max_value)
        if not ok:
            return False
        p = skip_ws(p, end)
        if p >= end:
            return False
        if p[0] == c'}':
            break
        if p[0] != c',':
            return False
        p = skip_ws(p + 1, end)
    if skip_ws(p + 1, end) != end or not seen & (1 << F_NAME):
        return False
    if r.max_props < 0:
        return False  # then even no property is too many
    # ``properties``' own members come after the extras (validate_event flattens them second)
    if not room(r, <void**>&r.leaves, &r.cap_leaves, r.n_leaves + r.n_pleaves, sizeof(Leaf)):
        return False
    if r.n_pleaves:
        memcpy(r.leaves + r.n_leaves, r.pleaves, r.n_pleaves * sizeof(Leaf))
    r.n_leaves += r.n_pleaves
    line.n_leaves = r.n_leaves - line.first_leaf
    return True


cdef bint read_lines(Reader* r, Py_ssize_t size, Py_ssize_t* start, Py_ssize_t* number) noexcept nogil:
    """The next lines of the body, from ``start`` (line ``number`` + 1), into r.lines (certainly
    blank ones left out), up to CHUNK of them so memory stays bounded whatever the body; True when
    the body's last line was read. Sets r.nomem when memory runs out."""
    cdef const uint8_t* body = r.body
    cdef const uint8_t* nl
    cdef Py_ssize_t end, mark_leaves, mark_arena
    cdef Line* line
    r.n_lines = r.n_leaves = r.n_arena = 0
    while r.n_lines < CHUNK:
        number[0] += 1
        nl = <const uint8_t*>memchr(body + start[0], c'\n', size - start[0])
        end = nl - body if nl != NULL else size
        if not is_blank(body + start[0], body + end):
            if not room(r, <void**>&r.lines, &r.cap_lines, r.n_lines + 1, sizeof(Line)):
                return True
            line = &r.lines[r.n_lines]
            r.n_lines += 1
            line.start = start[0]
            line.end = end
            line.number = number[0]
            mark_leaves = r.n_leaves
            mark_arena = r.n_arena
            line.fast = read_line(r, line, body + start[0], body + end)
            if r.nomem:
                return True
            if not line.fast:  # what the line left behind is dropped
                r.n_leaves = mark_leaves
                r.n_arena = mark_arena
        if nl == NULL:
            return True
        start[0] = end + 1
    return False


# -- the Python objects ----------------------------------------------------------------------------

cdef inline str text_of(Reader* r, Str s):
    return PyUnicode_DecodeUTF8(<const char*>ptr(r, s), s.n, NULL)


cdef object ident_of(Reader* r, Ident* ident):
    if ident.kind == K_STR:
        return text_of(r, ident.text)
    if ident.kind == K_INT:
        return str(ident.i)
    return None


cdef object event_of(Reader* r, Line* line, object event_type):
    """The Event of a fast line, or None when a property name repeats after flattening or a
    number reads as infinite (both errors: the line goes to Python)."""
    cdef dict properties = {}
    cdef Leaf* leaf
    cdef Py_ssize_t i
    cdef object value
    cdef double number
    cdef char* stop
    cdef const char* text
    for i in range(line.n_leaves):
        leaf = &r.leaves[line.first_leaf + i]
        if leaf.kind == K_STR:
            value = text_of(r, leaf.text)
        elif leaf.kind == K_INT:
            value = PyLong_FromLongLong(leaf.i)
        elif leaf.kind == K_FLOAT:
            text = <const char*>r.body + leaf.text.off
            try:
                number = PyOS_string_to_double(text, &stop, NULL)
            except ValueError:
                return None
            if stop != text + leaf.text.n or not isfinite(number):
                return None
            value = number
        elif leaf.kind == K_TRUE:
            value = True
        else:
            value = False
        PyDict_SetItem(properties, text_of(r, leaf.name), value)
        if PyDict_Size(properties) != i + 1:
            return None
    return event_type(
        text_of(r, line.name),
        line.ts,
        ident_of(r, &line.ids[0]),
        ident_of(r, &line.ids[1]),
        ident_of(r, &line.ids[2]),
        ident_of(r, &line.ids[3]),
        properties,
    )


cdef int64_t clamp(object value):
    """An int bound as int64: beyond it, every timestamp this reader makes is on the same side."""
    if value > INT64_MAX:
        return INT64_MAX
    if value < INT64_MIN:
        return INT64_MIN
    return value


cdef Py_ssize_t limit(object value):
    """A limit as Py_ssize_t: every length and count here is between -1 and PY_SSIZE_T_MAX."""
    if value > PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if value < -1:
        return -1
    return value


def read_ndjson(bytes body not None, max_name_length, max_properties, max_value_bytes, min_ts_ns, max_ts_ns,
                now_ns, object event_type):
    """The events of an NDJSON body, each decided in C where that is certain.

    Returns None when the reader decides nothing: the body is not UTF-8 (``bytes.decode("utf-8")``
    would fail: Python then reports it) or ``now_ns`` is past int64 (no clock's). Otherwise a list
    with one entry per line of ``body.split(b"\\n")`` that is not certainly blank, in order: an
    ``event_type(name, ts_ns, user_id, session_id, service, id, properties)`` where the line is
    certainly a valid event (exactly the Event validate_event would make), else ``(line_number,
    line_text)``, 1-based like ``enumerate(lines, 1)``, for Python to decide (blank after all,
    invalid JSON, an invalid event, or merely unusual).

    The limits are sidecar.ingest.events.Limits'; a timestamp is valid when ``min_ts_ns <= ts <=
    max_ts_ns`` (now minus the past window, now plus the future window) and a line without one
    gets ``now_ns``. The body is read without the GIL, CHUNK lines at a time.
    """
    cdef Reader r
    cdef Py_ssize_t i, start = 0, number = 0
    cdef Line* line
    cdef bint last = False
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef list out = []
    cdef object event
    if not INT64_MIN <= now_ns <= INT64_MAX:
        return None
    memset(&r, 0, sizeof(Reader))
    r.body = <const uint8_t*>PyBytes_AS_STRING(body)
    r.max_name = limit(max_name_length)
    r.max_props = limit(max_properties)
    r.max_value = limit(max_value_bytes)
    r.min_ts = clamp(min_ts_ns)
    r.max_ts = clamp(max_ts_ns)
    r.now = now_ns
    with nogil:
        i = utf8_error(r.body, size)
    if i >= 0:
        return None
    try:
        while not last:
            with nogil:
                last = read_lines(&r, size, &start, &number)
            if r.nomem:
                raise MemoryError()
            for i in range(r.n_lines):
                line = &r.lines[i]
                event = event_of(&r, line, event_type) if line.fast else None
                if event is None:
                    event = (line.number, PyUnicode_DecodeUTF8(<const char*>r.body + line.start,
                                                               line.end - line.start, NULL))
                out.append(event)
        return out
    finally:
        free(r.arena)
        free(r.path)
        free(r.leaves)
        free(r.pleaves)
        free(r.keys)
        free(r.lines)
