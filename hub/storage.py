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
from hub.redact import redact

log = logging.getLogger(__name__)


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
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
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

    def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        # one atomic write of the whole table
        self.db.storage.write({"devices": {str(i + 1): rec for i, rec in enumerate(self._cache.values())},
                               "device_data": {"1": self._data}})
        self.table.clear_cache()

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
"""


class History:
    """State changes, events and the command audit trail in SQLite (WAL).

    Rows are buffered in memory and written in one transaction per :meth:`flush` (the hub
    flushes every second in a worker thread), so a burst of state changes never blocks the loop.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._states: dict[str, tuple[float, dict[str, Any]]] = {}
        self._events: list[tuple[float, str, str | None, str | None, str]] = []
        self._audit: list[tuple[float, str | None, str, str, str, str | None]] = []

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
        self._audit.append((when.timestamp(), user, device, redact(_ENCODER.encode(command)), result,
                            redact(error) if error else None))

    @property
    def pending(self) -> int:
        return len(self._states) + len(self._events) + len(self._audit)

    def flush(self) -> int:
        with self._lock:
            states, self._states = self._states, {}
            events, self._events = self._events, []
            audit, self._audit = self._audit, []
            n = len(states) + len(events) + len(audit)
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
            return n

    def purge(self, older_than: datetime) -> None:
        cutoff = older_than.timestamp()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for table in ("states", "events", "audit"):
                self._db.execute(f"DELETE FROM {table} WHERE ts < ?", (cutoff,))

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

    def audit(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT ts, user, device, command, result, error FROM audit "
                                    "ORDER BY ts").fetchall()
        return [{"ts": r[0], "user": r[1], "device": r[2], "command": json.loads(r[3]),
                 "result": r[4], "error": r[5]} for r in rows]

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()


def retention_cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)
