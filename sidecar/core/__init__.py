"""The compiled core of ingest: one pass over an export's protobuf bytes, in C, without the GIL.

``_wire`` is a Cython extension built by the package's normal install (``pip install .`` or
``pip install -e .``); ``_wire.pyi`` types it for mypy. It only reads bytes from the network, so
every read is bounds-checked and malformed input is a :class:`WireError`, never a crash.
``heap`` hands the C heap's free pages back to the OS, which glibc would otherwise keep.
"""
