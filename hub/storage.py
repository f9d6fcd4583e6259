"""Storage, as Home Assistant does it: small registries in JSON files written atomically
(TinyDB on an atomic storage), and the append-heavy history in SQLite (WAL).

A kill -9 at any moment leaves both valid: the JSON file is replaced with ``os.replace`` after
an fsync of a temporary file, and SQLite's WAL journal recovers the last committed transaction.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from hub.api import DeviceInfo
from hub.redact import redact, redact_cut

log = logging.getLogger(__name__)


def private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600), or take group and others' access away
    from an existing one: the history holds who commanded what, the outbox the events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    # SQLite creates the -wal and -shm files with the database file's mode; fix older ones
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if extra.stat().st_mode & 0o077:
                extra.chmod(0o600)
        except OSError:
            pass


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # temp files of writes interrupted by a crash: the real file is intact, drop them
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        return json.loads(text)

    def write(self, data: dict[str, Any]) -> None:
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode())

    def close(self) -> None:
        pass


class Registry:
    """Devices seen, with model/serial/firmware and first/last seen.

    Writes are batched: :meth:`seen` marks the registry dirty, :meth:`flush` writes it (the hub
    flushes every few seconds and on shutdown), so 5,000 devices coming online at once cost one
    file write, not 5,000.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = TinyDB(path, storage=AtomicJSONStorage)
        self.table = self.db.table("devices")
        self._cache: dict[str, dict[str, Any]] = {doc["id"]: dict(doc) for doc in self.table.all()}
        raw = self.db.storage.read() or {}
        self._data: dict[str, dict[str, Any]] = dict(raw.get("device_data", {}).get("1", {}))
        self._dirty = False
        self._flush_lock = threading.Lock()

    def seen(self, device_id: str, platform: str, when: datetime, info: DeviceInfo | None = None) -> None:
        rec = self._cache.get(device_id)
        stamp = when.isoformat()
        if rec is None:
            rec = {"id": device_id, "platform": platform, "first_seen": stamp}
            self._cache[device_id] = rec
        rec["last_seen"] = stamp
        rec["platform"] = platform
        if info is not None:
            for key in ("model", "serial", "firmware", "manufacturer"):
                value = getattr(info, key)
                if value is not None:
                    rec[key] = value
        self._dirty = True

    def put_data(self, device_id: str, key: str, value: Any) -> None:
        """Small JSON-able values a driver keeps across hub restarts (e.g. a light's manual hold)."""
        entry = self._data.setdefault(device_id, {})
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
        self._dirty = True

    def get_data(self, device_id: str, key: str) -> Any:
        return self._data.get(device_id, {}).get(key)

    def get(self, device_id: str) -> dict[str, Any] | None:
        rec = self._cache.get(device_id)
        return dict(rec) if rec else None

    def all(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._cache.values()]

    def snapshot(self) -> dict[str, Any] | None:
        """What :meth:`write` stores, copied now (None when nothing changed). Take it on the thread
        that updates the registry (the hub's loop): a worker thread iterating the live dicts while the
        loop adds devices fails with "dictionary changed size during iteration"."""
        if not self._dirty:
            return None
        self._dirty = False
        return {"devices": {str(i + 1): dict(rec) for i, rec in enumerate(self._cache.values())},
                "device_data": {"1": {dev: dict(values) for dev, values in self._data.items()}}}

    def write(self, snapshot: dict[str, Any]) -> None:
        """One atomic write of the whole table (safe on a worker thread: it only reads ``snapshot``)."""
        # a worker thread's write may still run when the hub's stop flushes: one at a time
        with self._flush_lock:
            self.db.storage.write(snapshot)
            self.table.clear_cache()

    def flush(self) -> None:
        snapshot = self.snapshot()
        if snapshot is not None:
            self.write(snapshot)

    def close(self) -> None:
        self.flush()
        self.db.close()


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    ts REAL NOT NULL, device TEXT NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS states_device_ts ON states (device, ts);
CREATE TABLE IF NOT EXISTS events (
    ts REAL NOT NULL, type TEXT NOT NULL, device TEXT, site TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_type_ts ON events (type, ts);
CREATE TABLE IF NOT EXISTS audit (
    ts REAL NOT NULL, user TEXT, device TEXT NOT NULL, command TEXT NOT NULL, result TEXT NOT NULL,
    error TEXT);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE TABLE IF NOT EXISTS device_data (
    device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (device, key));
CREATE TABLE IF NOT EXISTS availability (
    device TEXT NOT NULL, ts REAL NOT NULL, available INTEGER NOT NULL, cause TEXT, down_from REAL,
    down_cause TEXT);
CREATE TABLE IF NOT EXISTS device_kinds (device TEXT PRIMARY KEY, kind TEXT NOT NULL, site TEXT);
"""

CAUSES = ("site_power", "network", "device", "unknown")
"""Why a device was unavailable, in the ``availability`` table (see :class:`hub.core.storage.Storage`)."""

POWER_EVENTS = ("power_lost", "power_restored", "power_suspected_lost", "power_suspected_restored")
"""The site power events a report reads; pruning keeps each site's last one before the cut."""

_ABSENT = object()


class History:
    """State changes, events, the command audit trail and drivers' small remembered values
    (a light's manual hold) in SQLite (WAL, ``synchronous=NORMAL``: a committed transaction
    survives a kill -9 of the hub; an operating-system crash may lose the last ones).

    Rows are buffered in memory and written in one transaction per :meth:`flush`. The hub flushes
    every second, and at once (one commit for the commands finished in the same loop turn) before
    a command is acknowledged, so what an acknowledgement promises is on disk when it goes out.

    ``max_bytes`` bounds the file: past it the oldest states and events are deleted (the audit
    trail and the availability transitions are kept) and their pages reused, so the file stops growing.

    The ``availability`` table holds each device's transitions (``available`` 1/0) with the cause of
    an outage (:data:`CAUSES`), which may be named later than the outage began (:meth:`set_cause`),
    and on the row after an outage its start and cause (``down_from``, ``down_cause``) so a report
    sums outages in SQL; ``device_kinds`` the kind and site each device last had. Reports read both
    (:mod:`hub.ops.report`).
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        private_file(path)
        self.path = path
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # no checkpoint inside a commit: the commits run in the event loop (one per acknowledged
        # command), and a checkpoint, with its fsyncs, cost up to 20 ms there; :meth:`checkpoint`
        # runs them in a worker thread instead
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute("PRAGMA journal_size_limit=8388608")  # the WAL file shrinks back to 8 MB
        self._db.executescript(_SCHEMA)
        self._migrate_availability()
        self._lock = threading.Lock()
        # the checkpointer runs in a worker thread that a hub stop does not wait for (a cancelled
        # asyncio.to_thread leaves its thread running): closing it under that thread crashed the
        # process (SIGSEGV in sqlite3), so both hold this lock and a closed History checkpoints nothing
        self._ckpt_lock = threading.Lock()
        self._closed = False
        self._checkpointer: sqlite3.Connection | None = None
        self._states: dict[str, tuple[float, dict[str, Any]]] = {}
        self._events: list[tuple[float, str, str | None, str | None, str]] = []
        self._audit: list[tuple[float, str | None, str, str, str, str | None]] = []
        self._data: dict[tuple[str, str], Any] = {
            (dev, key): json.loads(value)
            for dev, key, value in self._db.execute("SELECT device, key, value FROM device_data")}
        self._data_dirty: set[tuple[str, str]] = set()
        self._avail: list[tuple[str, float, int, str | None]] = []
        self._causes: list[tuple[str, str, float]] = []
        self._kinds: dict[str, tuple[str, str | None]] = {
            dev: (kind, site) for dev, kind, site in self._db.execute("SELECT device, kind, site FROM device_kinds")}
        self._kinds_dirty: set[str] = set()
        self.trimmed = 0
        """Rows deleted to keep the file within ``max_bytes``."""

    def _migrate_availability(self) -> None:
        """Give a history written before ``down_from``/``down_cause`` existed those columns, filled
        from each device's transitions (one transaction: a kill -9 leaves the old file or the new one),
        and the covering index the report's aggregation reads."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(availability)")}
        if "down_from" not in columns:
            log.info("history: linking each availability transition to the outage it ends (once, at the "
                     "first start of this version; about 5 s a million rows)")
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute("ALTER TABLE availability ADD COLUMN down_from REAL")
                self._db.execute("ALTER TABLE availability ADD COLUMN down_cause TEXT")
                self._db.execute(
                    "UPDATE availability SET down_from = p.prev_ts, down_cause = p.prev_cause FROM "
                    "(SELECT rowid AS rid, LAG(ts) OVER w AS prev_ts, LAG(available) OVER w AS prev_available, "
                    "LAG(cause) OVER w AS prev_cause FROM availability "
                    "WINDOW w AS (PARTITION BY device ORDER BY ts, available, cause)) AS p "
                    "WHERE p.rid = availability.rowid AND p.prev_available = 0")
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("CREATE INDEX IF NOT EXISTS availability_device_ts_down "
                             "ON availability (device, ts, available, cause, down_from, down_cause)")
            self._db.execute("DROP INDEX IF EXISTS availability_device_ts")  # the new one covers it

    def add_state(self, when: datetime, device: str, changed: dict[str, Any]) -> None:
        """Buffer a state change. Changes of one device within one flush interval (a second) are
        merged into one row stamped with the last change, so a device that chatters costs one row
        a second, not one per message; events and the audit trail are never merged."""
        pending = self._states.get(device)
        if pending is None:
            self._states[device] = (when.timestamp(), changed)
        else:
            self._states[device] = (when.timestamp(), {**pending[1], **changed})

    def add_event(self, when: datetime, type: str, device: str | None, site: str | None,
                  data: dict[str, Any]) -> None:
        self._events.append((when.timestamp(), type, device, site, redact(_ENCODER.encode(data))))

    def add_audit(self, when: datetime, user: str | None, device: str, command: dict[str, Any],
                  result: str, error: str | None = None) -> None:
        # every column redacted: the user and device come from the topic, typed by a person
        self._audit.append((when.timestamp(), redact_cut(user, 64) if user is not None else None,
                            redact_cut(device, 64), redact(_ENCODER.encode(command)), result,
                            redact(error) if error else None))

    def add_availability(self, when: datetime, device: str, available: bool, cause: str | None = None, *,
                         kind: str | None = None, site: str | None = None) -> None:
        """Buffer one availability transition (``cause``: why it went offline, one of :data:`CAUSES`),
        and remember the device's kind and site when given."""
        self._avail.append((device, when.timestamp(), int(available), None if available else cause or "unknown"))
        if kind is not None and self._kinds.get(device) != (kind, site):
            self._kinds[device] = (kind, site)
            self._kinds_dirty.add(device)

    def set_cause(self, device: str, since: datetime, cause: str) -> None:
        """Name the cause of the outage of ``device`` that began at ``since`` (written with the next flush)."""
        self._causes.append((cause, device, since.timestamp()))

    def put_data(self, device: str, key: str, value: Any) -> None:
        """A small JSON-able value a driver keeps across restarts (None forgets it); written with
        the next :meth:`flush`."""
        self._data[(device, key)] = value
        self._data_dirty.add((device, key))

    def get_data(self, device: str, key: str, default: Any = None) -> Any:
        """The value, ``None`` if it was forgotten, ``default`` if it was never stored here."""
        return self._data.get((device, key), default)

    def has_data(self, device: str, key: str) -> bool:
        return (device, key) in self._data

    @property
    def pending(self) -> int:
        return (len(self._states) + len(self._events) + len(self._audit) + len(self._data_dirty) + len(self._avail)
                + len(self._causes) + len(self._kinds_dirty))

    def flush(self, with_states: bool = True) -> int:
        """Commit what is buffered in one transaction; ``with_states=False`` leaves the state rows (the
        bulk under a busy hub: up to one per device a second) for the next full flush, so that a
        command waiting for its audit row (:meth:`hub.core.storage.Storage.durable`) does not wait
        for thousands of them (measured: 20-30 ms at 5,000 changes/s)."""
        with self._lock:
            if with_states:
                states, self._states = self._states, {}
            else:
                states = {}
            events, self._events = self._events, []
            audit, self._audit = self._audit, []
            dirty, self._data_dirty = self._data_dirty, set()
            avail, self._avail = self._avail, []
            causes, self._causes = self._causes, []
            kinds, self._kinds_dirty = self._kinds_dirty, set()
            n = len(states) + len(events) + len(audit) + len(dirty) + len(avail) + len(causes) + len(kinds)
            if not n:
                return 0
            with self._db:
                self._db.execute("BEGIN")
                if states:
                    enc = _ENCODER.encode
                    self._db.executemany("INSERT INTO states VALUES (?,?,?)",
                                         [(ts, dev, redact(enc(st))) for dev, (ts, st) in states.items()])
                if events:
                    self._db.executemany("INSERT INTO events VALUES (?,?,?,?,?)", events)
                if audit:
                    self._db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?)", audit)
                if dirty:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO device_data VALUES (?,?,?)",
                        [(dev, key, redact(_ENCODER.encode(self._data[(dev, key)]))) for dev, key in dirty])
                if avail:
                    self._insert_availability(avail)
                if causes:
                    self._db.executemany("UPDATE availability SET cause=? WHERE device=? AND ts=? AND available=0",
                                         causes)
                    # and on the row that ends that outage
                    self._db.executemany("UPDATE availability SET down_cause=?1 WHERE device=?2 AND ts>=?3 "
                                         "AND down_from=?3", causes)
                if kinds:
                    self._db.executemany("INSERT OR REPLACE INTO device_kinds VALUES (?,?,?)",
                                         [(dev, *self._kinds[dev]) for dev in kinds])
            return n

    def _insert_availability(self, rows: list[tuple[str, float, int, str | None]]) -> None:
        """Insert transitions, each with ``down_from``/``down_cause``: the time and cause of the
        device's previous transition when that was an outage, so the row ends the interval [down_from,
        ts) and a report sums intervals without pairing rows. A transition stamped before a stored
        one (a late clock) also becomes the predecessor of the next one."""
        self._db.executemany(
            "INSERT INTO availability SELECT ?1, ?2, ?3, ?4, p.ts, p.cause FROM (SELECT 1) LEFT JOIN "
            "(SELECT ts, available, cause FROM availability WHERE device=?1 AND ts<=?2 "
            "ORDER BY ts DESC LIMIT 1) AS p ON p.available = 0", rows)
        # then each new row is the predecessor of the row after it (rows of this batch included)
        self._db.executemany(
            "UPDATE availability SET down_from = CASE WHEN ?3 = 0 THEN ?2 END, "
            "down_cause = CASE WHEN ?3 = 0 THEN ?4 END "
            "WHERE rowid = (SELECT rowid FROM availability WHERE device=?1 AND ts>?2 ORDER BY ts LIMIT 1)", rows)

    def checkpoint(self) -> None:
        """Copy the WAL into the database (SQLite's PASSIVE checkpoint: it never blocks writers),
        from its own connection, so that a worker thread can do it while the loop commits."""
        with self._ckpt_lock:
            if not self._closed:
                self._checkpoint()

    def _checkpoint(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # fetched: no read lock left
        # writes that never pause keep the WAL from starting over; past 32 MB, one checkpoint
        # that waits for the writer and truncates the file
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            big = wal.stat().st_size > 32 * 1024 * 1024
        except OSError:
            big = False
        if big:
            self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def size(self) -> int:
        """Bytes in use in the database (pages not on the free list)."""
        with self._lock:
            pages, free, page = (self._db.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("page_count", "freelist_count", "page_size"))
        return int((pages - free) * page)

    def enforce_budget(self) -> int:
        """Delete the oldest states and events until the data fit ``max_bytes`` (to 90% of it, so
        that this does not run at every flush). Returns the rows deleted."""
        if not self.max_bytes:
            return 0
        deleted = 0
        target = self.max_bytes * 0.9
        used = self.size()
        if used <= self.max_bytes:
            return 0
        while used > target:
            with self._lock, self._db:
                self._db.execute("BEGIN")
                counts = {t: self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                          for t in ("states", "events")}
                total = sum(counts.values())
                if not total:
                    break
                share = max(1.0 - target / used, 0.05)
                for table, count in counts.items():
                    k = int(count * share) + 1
                    cur = self._db.execute(f"DELETE FROM {table} WHERE rowid IN "
                                           f"(SELECT rowid FROM {table} ORDER BY ts LIMIT ?)", (k,))
                    deleted += cur.rowcount
            used = self.size()
        if deleted:
            self.trimmed += deleted
            log.warning("history over its size budget (%.1f MB): deleted the %d oldest state and event "
                        "rows", self.max_bytes / 1e6, deleted)
        return deleted

    def purge(self, older_than: datetime) -> None:
        """Delete what is older than ``older_than``, keeping what a report of the period after it
        needs: each device's last availability transition before the cut, each site's last power
        event before it, and each device's states before it folded into one row (its last known
        values, stamped with the last of them)."""
        cutoff = older_than.timestamp()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            folded: dict[str, tuple[float, dict[str, Any]]] = {}
            for ts, dev, state in self._db.execute("SELECT ts, device, state FROM states WHERE ts < ? "
                                                   "ORDER BY device, ts", (cutoff,)):
                prev = folded.get(dev)
                folded[dev] = (ts, {**prev[1], **json.loads(state)} if prev else json.loads(state))
            self._db.execute("DELETE FROM states WHERE ts < ?", (cutoff,))
            self._db.executemany("INSERT INTO states VALUES (?,?,?)",
                                 [(ts, dev, _ENCODER.encode(st)) for dev, (ts, st) in folded.items()])
            marks = ",".join("?" * len(POWER_EVENTS))
            self._db.execute(
                f"DELETE FROM events WHERE ts < ? AND NOT (type IN ({marks}) AND rowid IN "
                f"(SELECT max(rowid) FROM events WHERE ts < ? AND type IN ({marks}) GROUP BY site))",
                (cutoff, *POWER_EVENTS, cutoff, *POWER_EVENTS))
            self._db.execute("DELETE FROM audit WHERE ts < ?", (cutoff,))
            # the last by time (a transition stamped late by a device's clock was written after
            # later ones); SQLite takes the rowid of the row holding max(ts)
            self._db.execute("DELETE FROM availability WHERE ts < ? AND rowid NOT IN "
                             "(SELECT rowid FROM (SELECT rowid, max(ts) FROM availability WHERE ts < ? "
                             "GROUP BY device))", (cutoff, cutoff))

    def events(self, since: datetime | None = None, type: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT ts, type, device, site, data FROM events WHERE ts >= ?"
        args: list[Any] = [since.timestamp() if since else 0.0]
        if type:
            q += " AND type = ?"
            args.append(type)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY ts", args).fetchall()
        return [{"ts": r[0], "type": r[1], "device": r[2], "site": r[3], **json.loads(r[4])} for r in rows]

    def states(self, device: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT ts, state FROM states WHERE device=? ORDER BY ts",
                                    (device,)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def availability_before(self, device: str, ts: float) -> tuple[float, bool, str | None] | None:
        """The last transition of ``device`` before Unix time ``ts`` (``None``: it had none)."""
        with self._lock:
            row = self._db.execute("SELECT ts, available, cause FROM availability WHERE device=? AND ts<? "
                                   "ORDER BY ts DESC LIMIT 1", (device, ts)).fetchone()
        return (row[0], bool(row[1]), row[2]) if row else None

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (reports), under the history's lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def device_kinds(self) -> dict[str, tuple[str, str | None]]:
        """device -> (kind, site) as last recorded."""
        return dict(self._kinds)

    def audit(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT ts, user, device, command, result, error FROM audit "
                                    "ORDER BY ts").fetchall()
        return [{"ts": r[0], "user": r[1], "device": r[2], "command": json.loads(r[3]),
                 "result": r[4], "error": r[5]} for r in rows]

    def close(self) -> None:
        self.flush()
        with self._ckpt_lock:
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.close()
        with self._lock:
            self._db.close()


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


_OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    """Messages waiting for the broker, in SQLite (WAL), so a hub restart during a broker outage
    loses none: kept in order, deleted only once the broker has acknowledged them (at least once),
    bounded to ``max_rows`` with the oldest dropped and counted (the count survives restarts).

    :meth:`put` buffers; :meth:`commit` writes what was put in one transaction (the MQTT
    connection commits at the end of each loop turn).
    """

    def __init__(self, path: Path, max_rows: int) -> None:
        private_file(path)
        self.path = path
        self.max_rows = max_rows
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_OUTBOX_SCHEMA)
        self._new: list[tuple[str, bytes, int, int]] = []
        self._done: list[int] = []
        self.count = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        row = self._db.execute("SELECT value FROM outbox_meta WHERE key='dropped'").fetchone()
        self.dropped = int(row[0]) if row else 0

    def __len__(self) -> int:
        return self.count + len(self._new) - len(self._done)

    @property
    def dirty(self) -> bool:
        return bool(self._new or self._done)

    def put(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self._new.append((topic, payload, qos, int(retain)))

    def done(self, row_id: int) -> None:
        """The broker has the message of ``row_id``: delete it with the next commit."""
        self._done.append(row_id)

    def commit(self) -> None:
        new, self._new = self._new, []
        done, self._done = self._done, []
        if not new and not done:
            return
        with self._db:
            self._db.execute("BEGIN")
            if done:
                self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in done])
            if new:
                self._db.executemany("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?,?,?,?)", new)
            self.count = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            over = self.count - self.max_rows
            if over > 0:
                self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                                 (over,))
                self.count -= over
                self.dropped += over
                self._db.execute("INSERT OR REPLACE INTO outbox_meta VALUES ('dropped', ?)", (self.dropped,))

    def rows(self) -> list[tuple[int, str, bytes, int, bool]]:
        """Every waiting message, oldest first (commits first)."""
        self.commit()
        return [(r[0], r[1], bytes(r[2]), r[3], bool(r[4]))
                for r in self._db.execute("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id")]

    def take_dropped(self) -> int:
        """Messages dropped (outbox full) since the last call; the count is reset."""
        n, self.dropped = self.dropped, 0
        if n:
            self._db.execute("INSERT OR REPLACE INTO outbox_meta VALUES ('dropped', 0)")
        return n

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()
