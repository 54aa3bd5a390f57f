"""The trace merge: prepared spans into the write queue's WriteBatch, with summaries and indexes.

Key layout (all big-endian; ids are registry ids; ``rev`` = 2**64-1 - ns so scans run newest first).

Partition column family ``tYYYYMMDD`` (UTC day of arrival; retention drops the whole family):
    C | trace_id(16) | ingest_ns(8)                    -> Chunk{groups{resource_ref, scope_ref, spans[]}}
    M | trace_id(16)                                   -> trace summary (summary.py)
    T | rev_ingest_ns(8)                               -> trace table of that write: trace ids, 16 bytes each
    S | service_id(4) | rev_ingest_ns(8)               -> slots (u16 LE) into T of that service's traces
    O | operation_id(4) | rev_ingest_ns(8)             -> slots of traces with that (service, span name)
    A | service_id(4) | len(2) | term | rev_ingest_ns(8) -> slots of traces carrying that attribute
    R | 'r'|'s' | blake2b-128(bytes)                   -> resource / scope bytes (once per partition)
    G | hour(4) | parent_service(4) | child_service(4) -> calls that hour, u64 (servicegraph.py)
    V | hour(4) | client_service(4) | peer name        -> calls to a virtual peer that hour, u64 (same)
    L                                                  -> longest (ingest - span start) seen, ns (u64)
Default column family (registries, loaded whole at start-up):
    N | service_id(4) -> name;  P | operation_id(4) -> service_id | kinds | name;  K | key -> ""

A term is the span attribute's own KeyValue encoding (a digest when longer than 128 bytes), so the
hot path never decodes attribute values. Trace-by-ID is one ``C|trace_id`` range per partition.
Postings hold many traces per key: one key per distinct term per write, not per span, which keeps
RocksDB's per-key cost (held under the GIL) off the per-span budget; and they hold 2-byte slots
into the write's trace table rather than 16-byte trace ids, which keeps indexes small on disk.

Everything for one write - chunks, summaries, postings, registry entries, edges - goes in the same
WriteBatch (write_queue.py makes one per drain), so an acknowledged span is always searchable and
nothing is half-indexed after a kill.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import partial

from rocksdict import WriteBatch

from sidecar.core._wire import SlotTable, WriteFold
from sidecar.otlp.shadow import Chunk, RawTraceRequest
from sidecar.storage.prepared import PreparedTraces, TracePart
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.chunks import group_span_ids, trace_chunks
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.servicegraph import ServiceGraph
from sidecar.storage.rocks.summary import Summary, read_summaries

_SUMMARY_CACHE = 16_384  # traces active in the last few seconds; misses cost one multi-get
MAX_TRACES_PER_WRITE = 65_535  # posting slots are u16
_SEARCHED_IDS_BYTES = 2_048  # up to 256 known spans a trace, new ids are found by substring search


def _long_term_prefix(service: int, kv: bytes) -> bytes:
    return keys.attribute_posting_prefix(service, keys.term(kv))


class TraceMerge:
    """The write queue's merger for traces; its caches belong to the writer thread."""

    def __init__(
        self,
        store: RocksStore,
        registry: Registry,
        reprepare: Callable[[bytes], PreparedTraces],
        graph: ServiceGraph | None = None,
    ) -> None:
        # Ingest's own preparation, for the rare part that holds both new and resent spans: the
        # merge rebuilds it from the new spans' bytes rather than knowing how parts are made.
        self._reprepare = reprepare
        self._store = store
        self._registry = registry
        self._default_cf = store.db.get_column_family_handle("default")
        self._summaries: OrderedDict[bytes, Summary] = OrderedDict()  # recently written traces
        # This write's summaries, changed in place: cached once the batch is written, dropped if not.
        self._pending: dict[bytes, Summary] | None = None
        self._blobs_written: set[tuple[int, bytes, bytes]] = set()
        self._graph = graph or ServiceGraph()
        self._operation_cache: dict[tuple[int, bytes, int], int] = {}
        self._lateness: dict[int, int] = {}  # partition day -> max ingest delay seen
        # Attribute key names (as encoded bytes) already in the registry; the hot loop checks bytes.
        self._attribute_key_bytes: set[bytes] = {k.encode() for k in registry.attribute_keys}

    # -- the merge -------------------------------------------------------------------------
    def merge(self, prepared: list[PreparedTraces], batch: WriteBatch, ns: int) -> None:
        """Spans not stored before, with their summaries, indexes and edges, into ``batch``."""
        try:
            self._merge(prepared, batch, ns)
        finally:
            for prep in prepared:
                prep.release_store_data()

    def _merge(self, prepared: list[PreparedTraces], batch: WriteBatch, ns: int) -> None:
        day = ns // keys.DAY_NS
        part = self._store.partition_for_write(day)
        batch.set_default_column_family(part.handle)
        registry, default_cf = self._registry, self._default_cf
        op_cache = self._operation_cache
        if len(op_cache) > 100_000:
            op_cache.clear()

        parts: list[TracePart] = [p for prep in prepared for p in prep.parts]
        trace_ids = dict.fromkeys(p.trace_id for p in parts)
        summaries = self._pending = self._load_summaries(trace_ids, day)
        parts = self._drop_stored_spans(parts, summaries, ns)
        if not parts:
            self._pending = None  # unchanged: nothing to cache or forget
            # Every span is a resent copy of one already stored, or this is the writer's tick
            # (no spans): waits that are over still end, storing their virtual edges.
            self._graph.add({}, {}, ns, part, batch)
            return
        # Postings name traces by their slot in this write's trace table (2 bytes, not 16).
        table = SlotTable(trace_ids)
        self._store_blobs(prepared, part, batch)
        fold = WriteFold(
            partial(registry.service_id, batch=batch, default_cf=default_cf),
            partial(registry.operation_id, batch=batch, default_cf=default_cf),
            op_cache,
        )
        fold.add(parts, summaries)
        # service -> its term maps ({encoded attribute: trace ids}), merged by the posting writer
        by_term: dict[int, list[dict[bytes, list[bytes]]]] = {svc: [] for svc in fold.services.values()}
        for (svc, _, _), (attributes, tids) in fold.first_seen.items():
            by_term[svc].append(dict.fromkeys(attributes, tids))
        for prep in prepared:
            for svc_name, term_lists in prep.terms.items():
                known = fold.services.get(svc_name)
                if known is not None:  # else every span of that service in the request was a resend
                    by_term[known].append(term_lists)

        self._note_lateness(ns - min(p.start for p in parts), part, batch)
        rev = keys.rev(ns)
        ingest = keys.u64(ns)
        batch.put(keys.TRACE_TABLE + rev, b"".join(trace_ids))
        for tid, groups in fold.chunks.items():
            batch.put(keys.CHUNK + tid + ingest, groups[0] if len(groups) == 1 else b"".join(groups))
        for tid, summary in summaries.items():
            batch.put(keys.SUMMARY + tid, summary.encode())
        for svc, tids in fold.by_service.items():
            batch.put(keys.service_posting_prefix(svc) + rev, table.slots(tids))
        for op, tids in fold.by_operation.items():
            batch.put(keys.operation_posting_prefix(op) + rev, table.slots(tids))
        known_keys = self._attribute_key_bytes
        for svc, term_maps in by_term.items():
            long_prefix = partial(_long_term_prefix, svc)
            prefix = keys.ATTRIBUTE_POSTING + keys.u32(svc)
            # The key is keys.attribute_posting_prefix(svc, term) + rev, built in C (a storage
            # test checks they agree).
            limit = keys.MAX_TERM_BYTES
            for name in table.put_terms(batch, prefix, term_maps, rev, limit, long_prefix, known_keys):
                registry.note_attribute_key(name.decode("utf-8", "replace"), batch, default_cf)
        self._graph.add(fold.clients, fold.servers, ns, part, batch, fold.peers, fold.databases)

    # -- write-queue hooks -----------------------------------------------------------------
    def after_write(self) -> None:
        summaries, self._pending = self._pending, None
        if not summaries:
            return
        cache = self._summaries
        for tid, summary in summaries.items():
            cache[tid] = summary
        while len(cache) > _SUMMARY_CACHE:
            cache.popitem(last=False)

    def write_failed(self) -> None:
        summaries, self._pending = self._pending, None
        for tid in summaries or ():  # changed in place but not stored: read them again next time
            self._summaries.pop(tid, None)

    # -- parts of the merge ------------------------------------------------------------------
    def _store_blobs(self, prepared: list[PreparedTraces], part: Partition, batch: WriteBatch) -> None:
        """Resource and scope bytes, once per partition: chunks refer to them by content hash."""
        written = self._blobs_written
        if len(written) > 100_000:
            written.clear()
        for prep in prepared:
            for p in prep.parts:
                for kind, info in ((b"r", p.resource), (b"s", p.scope)):
                    marker = (part.day, kind, info.ref)
                    if marker not in written:
                        written.add(marker)
                        batch.put(keys.BLOB + kind + info.ref, info.encoded, part.handle)

    def _load_summaries(self, trace_ids: Iterable[bytes], day: int) -> dict[bytes, Summary]:
        """Summaries for this write: cached, else read from this or the previous partition."""
        found: dict[bytes, Summary] = {}
        missing: list[bytes] = []
        for tid in trace_ids:
            cached = self._summaries.get(tid)
            if cached is not None:
                self._summaries.move_to_end(tid)
                found[tid] = cached
            else:
                missing.append(tid)
        if missing:
            recent = [
                p for p in (self._store.partition(day), self._store.partition(day - 1)) if p is not None
            ]
            loaded = read_summaries(recent, missing)
            for tid, summary in loaded.items():  # a trace seen before but no longer cached
                summary.span_ids = bytearray().join(
                    sid
                    for part in recent
                    for chunk in trace_chunks(part, tid)
                    for ids in group_span_ids(chunk)
                    for sid in ids
                )
            found.update(loaded)
        return found

    def _drop_stored_spans(
        self, parts: list[TracePart], summaries: dict[bytes, Summary], ns: int
    ) -> list[TracePart]:
        """Drop spans whose (trace id, span id) is stored already or came earlier in this write.

        OTLP exporters resend a batch whose answer was lost, and Jaeger de-duplicates span ids, so a
        span counts once: in the trace, its summary, the index and the service graph. A part is
        usually all new (kept as it is) or all resent (dropped); one with both is prepared again
        from its new spans.

        A trace's known ids are one compact byte string (8 bytes a span: 16k cached traces cost
        ~2 MB, where sets of ids would cost ~40 MB). A part whose ids occur nowhere in it, not even
        across id boundaries, is new: a substring search in C, no set built. Anything else, and
        long traces, where the searches would add up, take the exact path through a set.
        """
        kept: list[TracePart] = []
        for p in parts:
            ids = p.span_ids
            summary = summaries.get(p.trace_id)
            if summary is None:
                summary = summaries[p.trace_id] = Summary(ns)
            known = summary.span_ids  # grows here; the cache drops it if the write fails
            if (
                len(known) <= _SEARCHED_IDS_BYTES
                and not any(map(known.__contains__, ids))
                and (len(ids) == 1 or len(set(ids)) == len(ids))
            ):
                known.extend(b"".join(ids))
                kept.append(p)
                continue
            seen = {bytes(known[i : i + 8]) for i in range(0, len(known), 8)}
            keep = []
            for index, sid in enumerate(ids):
                if sid not in seen:
                    seen.add(sid)
                    keep.append(index)
            if keep:
                known.extend(b"".join(ids[i] for i in keep))
                kept.extend(self._subset(p, keep) if len(keep) < len(ids) else (p,))
        return kept

    def _subset(self, part: TracePart, keep: list[int]) -> list[TracePart]:
        spans = Chunk.FromString(part.chunk).groups[0].spans
        request = RawTraceRequest()
        scope_spans = request.resource_spans.add(resource=part.resource.encoded).scope_spans.add(
            scope=part.scope.encoded
        )
        scope_spans.spans.extend(spans[i] for i in keep)
        return self._reprepare(request.SerializeToString()).parts

    def _note_lateness(self, lateness: int, part: Partition, batch: WriteBatch) -> None:
        """Track how long after their start spans arrive, so searches by start time know how far to look."""
        known = self._lateness.get(part.day)
        if known is None:
            stored = part.data.get(keys.LATENESS)
            known = self._lateness[part.day] = keys.read_u64(stored) if stored else 0
        if lateness > known:
            self._lateness[part.day] = lateness
            batch.put(keys.LATENESS, keys.u64(lateness))
