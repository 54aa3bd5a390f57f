"""The compiled core of ingest: the per-span, per-record and per-event loops, in C.

Cython extensions built by the package's normal install (``pip install .`` or ``pip install -e .``),
each typed for mypy by its ``.pyi``:

- ``_wire``: one pass over an OTLP export's protobuf bytes without the GIL (spans and log records
  grouped, validated, shaped into what the stores write);
- ``_ndjson``: the NDJSON event reader's fast lane (lines it can prove valid become Events; the
  rest go to the Python reader);
- ``_event_merge``: the events writer's per-event loop (records, index keys, column gathering)
  and its dedupe Bloom filter;
- ``_trigrams``: the log blocks' token filters, without the GIL.

The ones that read bytes from the network bounds-check every read; malformed input is an error
or a line left to Python, never a crash. ``heap`` hands the C heap's free pages back to the OS,
which glibc would otherwise keep.
"""
