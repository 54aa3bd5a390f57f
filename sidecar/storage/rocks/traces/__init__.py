"""Traces in RocksDB: the merge of prepared spans into a write, and the SpanWriter over the queue."""
