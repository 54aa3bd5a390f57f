"""The RocksDB handle, its options and its time partitions (column families per signal and period).

Retention drops whole partitions, which frees their files at once instead of waiting for
compaction to notice expired keys (the Badger/TTL trap Jaeger users hit). Which signals exist and
how wide their partitions are is in ``partitions.py``; when to drop them, in ``retention.py``. This
is the only module that constructs rocksdict options.

One process at a time owns a data directory. RocksDB's own LOCK file enforces that, but only says
"lock file ... temporarily unavailable" and, before failing, rotates the owner's info LOG. So the
store first takes an flock on ``sidecar.pid`` (which holds the owner's pid, for the message) and
fails early with :class:`DataDirInUse`. The kernel drops the flock when a process dies, so a pid
file left by a killed sidecar never blocks a start; a clean close removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import IO

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBufferManager,
)

from sidecar.config.model import StorageConfig
from sidecar.storage.api import StorageError
from sidecar.storage.rocks.partitions import (
    SIGNALS,
    TRACES,
    Partition,
    Signal,
    check_signals,
    parse_partition,
)

log = logging.getLogger(__name__)
PID_FILE = "sidecar.pid"


class DataDirInUse(StorageError):
    """Another process has the data directory open; ``pid`` is its process id when known."""

    def __init__(self, path: str, pid: int | None) -> None:
        who = f"another sidecar (pid {pid})" if pid else "another process"
        super().__init__(f"data directory {path} is in use by {who}")
        self.path = path
        self.pid = pid


class _PidLock:
    """An flock on ``<data dir>/sidecar.pid`` holding our pid; released by close() or by our death."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, PID_FILE)
        while True:
            file = open(self.path, "a+")  # noqa: SIM115 - held open for the store's lifetime
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file.seek(0)
                text = file.read().strip()
                file.close()
                raise DataDirInUse(directory, int(text) if text.isdigit() else None) from None
            # A closing owner unlinks the file before unlocking: if we locked that unlinked file,
            # the lock guards nothing, so take the new one instead.
            try:
                same = os.path.samestat(os.fstat(file.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            file.close()
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file: IO[str] | None = file

    def release(self) -> None:
        """Remove the pid file, then unlock (in that order, see __init__); safe to call twice."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            file.close()


def _is_lock_error(exc: Exception) -> bool:
    """RocksDB's "IO error: While lock file: <dir>/LOCK: ..." (or "lock hold by current process")."""
    text = str(exc)
    return "LOCK:" in text and ("lock file" in text or "lock hold" in text)


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The ``storage.*`` settings the database needs. Defaults are read from the config model, not
    copied, so ``StoreOptions()`` is what a sidecar with no config file runs with."""

    block_cache_mib: int = StorageConfig.block_cache_mib
    write_buffer_mib: int = StorageConfig.write_buffer_mib
    max_write_buffers: int = StorageConfig.max_write_buffers
    compression: str = StorageConfig.compression
    bloom_bits_per_key: int = StorageConfig.bloom_bits_per_key
    wal_sync: bool = StorageConfig.wal_sync

    @classmethod
    def from_config(cls, storage: StorageConfig) -> StoreOptions:
        """Each field from the config section's attribute of the same name."""
        return cls(**{f.name: getattr(storage, f.name) for f in fields(cls)})


_COMPRESSION = {
    "lz4": DBCompressionType.lz4,
    "zstd": DBCompressionType.zstd,
    "none": DBCompressionType.none,
}


class RocksStore:
    """Opens the database and hands out each signal's partitions; safe to close twice.

    ``signal`` arguments default to traces, the one signal whose callers predate the others.
    """

    def __init__(self, path: str, options: StoreOptions, signals: Iterable[Signal] = SIGNALS) -> None:
        """Raises DataDirInUse when another process has ``path`` open."""
        self.path = path
        self.options = options
        self.signals = check_signals(signals)
        os.makedirs(path, exist_ok=True)
        self._pid_lock = _PidLock(path)
        try:
            self._cache = Cache(options.block_cache_mib << 20)
            self._db_options = self._make_db_options()
            names = Rdict.list_cf(path) if os.path.exists(os.path.join(path, "CURRENT")) else ["default"]
            column_families = {name: self._make_cf_options() for name in names if name != "default"}
            try:
                self.db = Rdict(path, options=self._db_options, column_families=column_families)
            except Exception as exc:
                if _is_lock_error(exc):  # held by something that is not a sidecar
                    raise DataDirInUse(path, None) from exc
                raise
        except BaseException:
            self._pid_lock.release()
            raise
        self._lock = threading.Lock()
        self._partitions: dict[Signal, dict[int, Partition]] = {signal: {} for signal in self.signals}
        for name in names:
            found = parse_partition(name, self.signals)
            if found is not None:
                signal, day = found
                self._partitions[signal][day] = self._open_partition(signal, day, name)
            elif name != "default":
                # A newer version's signal, say: kept open (RocksDB needs every family) but untouched.
                log.warning("column family %s belongs to no known signal; leaving it as it is", name)
        self._closed = False
        self._writers: list[Callable[[], bool]] = []  # liveness of attached writer threads

    # -- options -------------------------------------------------------------------------
    def _make_cf_options(self) -> Options:
        o = Options(raw_mode=True)
        table = BlockBasedOptions()
        table.set_block_cache(self._cache)
        table.set_block_size(16 << 10)
        if self.options.bloom_bits_per_key:
            table.set_bloom_filter(self.options.bloom_bits_per_key, False)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_format_version(5)
        o.set_block_based_table_factory(table)
        o.set_compression_type(_COMPRESSION[self.options.compression]())
        if self.options.compression != "none":
            # Most bytes end up in the last level, written once by compaction: spend CPU there on
            # zstd's better ratio, keep the chosen (fast) codec for the levels rewritten often.
            o.set_bottommost_compression_type(DBCompressionType.zstd())
        o.set_write_buffer_size(self.options.write_buffer_mib << 20)
        o.set_max_write_buffer_number(self.options.max_write_buffers)
        o.set_level_compaction_dynamic_level_bytes(True)
        o.set_target_file_size_base(32 << 20)
        o.set_max_bytes_for_level_base(128 << 20)
        return o

    def _make_db_options(self) -> Options:
        o = self._make_cf_options()
        o.create_if_missing(True)
        o.create_missing_column_families(True)
        o.set_max_background_jobs(2)
        o.set_keep_log_file_num(3)
        o.set_max_log_file_size(8 << 20)
        o.set_max_open_files(512)
        # A killed process leaves a torn WAL tail; recover everything before it and keep serving.
        o.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
        cap = (self.options.write_buffer_mib * self.options.max_write_buffers) << 20
        o.set_write_buffer_manager(WriteBufferManager(cap, False))
        return o

    # -- partitions ----------------------------------------------------------------------
    def _open_partition(self, signal: Signal, day: int, name: str) -> Partition:
        data, handle = self.db.get_column_family(name), self.db.get_column_family_handle(name)
        return Partition(day, name, data, handle, signal)

    def _of(self, signal: Signal) -> dict[int, Partition]:
        try:
            return self._partitions[signal]
        except KeyError:
            raise ValueError(f"signal {signal.name!r} is not one of this store's signals") from None

    def partition_for_write(self, day: int, signal: Signal = TRACES) -> Partition:
        """The partition holding ``day`` for ``signal``, created (a new column family) on first use."""
        parts, start = self._of(signal), signal.period(day)
        part = parts.get(start)
        if part is not None:
            return part
        with self._lock:
            part = parts.get(start)
            if part is None:
                name = signal.partition_name(start)
                self.db.create_column_family(name, self._make_cf_options())
                part = self._open_partition(signal, start, name)
                parts[start] = part
                log.info("created partition %s", name)
            return part

    def partition(self, day: int, signal: Signal = TRACES) -> Partition | None:
        """The partition holding ``day`` for ``signal`` if it exists; reads never create one."""
        return self._of(signal).get(signal.period(day))

    def partitions(self, signal: Signal = TRACES, newest_first: bool = True) -> list[Partition]:
        parts = list(self._of(signal).values())
        parts.sort(key=lambda p: p.day, reverse=newest_first)
        return parts

    def drop_before(self, day: int, signal: Signal = TRACES) -> list[str]:
        """Drop ``signal``'s partitions that end before ``day`` (hold nothing from ``day`` on).

        Their files go as soon as readers let go of the partitions; other signals are not touched.
        """
        dropped: list[str] = []
        with self._lock:
            if self._closed:
                return dropped
            parts = self._of(signal)
            for start in sorted(d for d, p in parts.items() if p.end_day <= day):
                part = parts.pop(start)
                name = part.name
                del part  # our handles must go before RocksDB can delete the files
                self.db.drop_column_family(name)
                dropped.append(name)
        return dropped

    def _all_partitions(self) -> list[Partition]:
        return [part for signal in self.signals for part in self.partitions(signal)]

    def partition_properties(self, names: Iterable[str]) -> list[tuple[str, str, dict[str, int]]]:
        """(signal, partition, {property: value}) of every open partition: RocksDB's integer
        properties (``rocksdb.total-sst-files-size`` and the like), cheap reads of in-memory
        counters. Under the partitions' lock, so a partition being dropped or a store being closed
        is never asked; a property RocksDB does not know is left out."""
        out: list[tuple[str, str, dict[str, int]]] = []
        with self._lock:
            if self._closed:
                return out
            wanted = tuple(names)
            for signal, parts in self._partitions.items():
                for start in sorted(parts):
                    part = parts[start]
                    values = {}
                    for name in wanted:
                        value = part.data.property_int_value(name)
                        if value is not None:
                            values[name] = int(value)
                    out.append((signal.name, part.name, values))
        return out

    def read_options(self) -> ReadOptions:
        return ReadOptions()

    def disk_usage(self) -> int:
        total = 0
        for entry in os.scandir(self.path):
            if entry.is_file():
                total += entry.stat().st_size
        return total

    def flush(self) -> None:
        for part in self._all_partitions():
            part.data.flush(True)
        self.db.flush(True)

    def compact(self) -> None:
        for part in self._all_partitions():
            part.data.compact_range(None, None)
        self.db.compact_range(None, None)

    def attach_writer(self, alive: Callable[[], bool]) -> None:
        """Register a writer thread's liveness: the store refuses to close under a running write."""
        self._writers.append(alive)

    def close(self) -> None:
        """Flush and close; safe twice. Raises StorageError while an attached writer thread runs,
        because RocksDB closed under a write crashes the process instead of failing the write."""
        if any(alive() for alive in self._writers):
            raise StorageError(
                "the store cannot close while its writer thread is running; close the queue first"
            )
        with self._lock:  # after any partition being created or dropped
            if self._closed:
                return
            self._closed = True
        try:
            self.db.flush_wal(True)
        except Exception:  # pragma: no cover - closing must not raise
            log.exception("WAL flush on close failed")
        for parts in self._partitions.values():
            parts.clear()
        try:
            self.db.close()
        finally:
            self._pid_lock.release()
