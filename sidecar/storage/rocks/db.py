"""The RocksDB handle, its options and its time partitions (one column family per UTC day).

Retention drops whole partitions, which frees their files at once instead of waiting for
compaction to notice expired keys (the Badger/TTL trap Jaeger users hit). This is the only module
that constructs rocksdict options.

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
from dataclasses import dataclass
from typing import IO

from rocksdict import (
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBufferManager,
)

from sidecar.storage.api import StorageError
from sidecar.storage.rocks.keys import partition_day, partition_name

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
    block_cache_mib: int = 32
    write_buffer_mib: int = 16
    max_write_buffers: int = 3
    compression: str = "lz4"
    bloom_bits_per_key: int = 10
    wal_sync: bool = False


@dataclass(slots=True)
class Partition:
    day: int
    name: str
    data: Rdict  # column-family view for reads
    handle: ColumnFamily  # for WriteBatch


_COMPRESSION = {
    "lz4": DBCompressionType.lz4,
    "zstd": DBCompressionType.zstd,
    "none": DBCompressionType.none,
}


class RocksStore:
    """Opens the database and hands out partitions; safe to close twice."""

    def __init__(self, path: str, options: StoreOptions) -> None:
        """Raises DataDirInUse when another process has ``path`` open."""
        self.path = path
        self.options = options
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
        self._partitions: dict[int, Partition] = {}
        for name in names:
            day = partition_day(name)
            if day is not None:
                self._partitions[day] = self._open_partition(day, name)
        self._closed = False

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
    def _open_partition(self, day: int, name: str) -> Partition:
        return Partition(day, name, self.db.get_column_family(name), self.db.get_column_family_handle(name))

    def partition_for_write(self, day: int) -> Partition:
        part = self._partitions.get(day)
        if part is not None:
            return part
        with self._lock:
            part = self._partitions.get(day)
            if part is None:
                name = partition_name(day)
                self.db.create_column_family(name, self._make_cf_options())
                part = self._open_partition(day, name)
                self._partitions[day] = part
                log.info("created partition %s", name)
            return part

    def partition(self, day: int) -> Partition | None:
        return self._partitions.get(day)

    def partitions(self, newest_first: bool = True) -> list[Partition]:
        parts = list(self._partitions.values())
        parts.sort(key=lambda p: p.day, reverse=newest_first)
        return parts

    def drop_before(self, day: int) -> list[str]:
        """Drop every partition older than ``day``; their files go as soon as readers let go."""
        dropped: list[str] = []
        with self._lock:
            for old_day in sorted(d for d in self._partitions if d < day):
                part = self._partitions.pop(old_day)
                del part  # our handles must go before RocksDB can delete the files
                name = partition_name(old_day)
                self.db.drop_column_family(name)
                dropped.append(name)
        return dropped

    def read_options(self) -> ReadOptions:
        return ReadOptions()

    def disk_usage(self) -> int:
        total = 0
        for entry in os.scandir(self.path):
            if entry.is_file():
                total += entry.stat().st_size
        return total

    def flush(self) -> None:
        for part in self.partitions():
            part.data.flush(True)
        self.db.flush(True)

    def compact(self) -> None:
        for part in self.partitions():
            part.data.compact_range(None, None)
        self.db.compact_range(None, None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.db.flush_wal(True)
        except Exception:  # pragma: no cover - closing must not raise
            log.exception("WAL flush on close failed")
        self._partitions.clear()
        try:
            self.db.close()
        finally:
            self._pid_lock.release()
