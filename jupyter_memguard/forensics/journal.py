"""The durable journal: one SQLite file of terminations, intents and checkpoints.

WAL mode, so the CLI (another process) can read while the server writes. Writes come from
worker threads, serialised by a lock. A file that is not a readable journal is moved aside
(``<name>.corrupt-<time>``) and a new one is created, with a warning: the server never fails to
start because of its journal.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("jupyter_memguard")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    kernel_name TEXT,
    path TEXT,
    pid INTEGER,
    started_at REAL,
    ended_at REAL NOT NULL,
    verdict TEXT NOT NULL,
    confidence TEXT NOT NULL,
    explanation TEXT NOT NULL,
    evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS terminations_kernel ON terminations (kernel_id, ended_at);
CREATE INDEX IF NOT EXISTS terminations_ended ON terminations (ended_at);
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    consumed_at REAL
);
CREATE INDEX IF NOT EXISTS intents_kernel ON intents (kernel_id, created_at);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(RuntimeError):
    """The journal cannot be read (read-only opening)."""


@dataclass(frozen=True)
class TerminationRecord:
    """One kernel termination, as stored."""

    id: int | None
    kernel_id: str
    kernel_name: str | None
    path: str | None
    pid: int | None
    started_at: float | None
    ended_at: float
    verdict: str
    confidence: str
    explanation: str
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Intent:
    """memguard's note, written before it signals a kernel, of what it is about to do."""

    id: int
    kernel_id: str
    kind: str
    reason: str
    created_at: float
    consumed_at: float | None


class Journal:
    """Terminations, intents and checkpoints in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        max_rows: int = 10000,
        max_days: float = 90,
        *,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_days = max_days
        self.readonly = readonly
        self._lock = threading.Lock()
        self.recovered_from: Path | None = None
        if readonly:
            self._db = self._connect_readonly()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except (sqlite3.DatabaseError, JournalError) as error:
            self._db = self._recover(error)

    @classmethod
    def open_readonly(cls, path: str | Path) -> Journal:
        """Open for reading only (the CLI): never creates, migrates or recovers."""
        return cls(path, readonly=True)

    # ------------------------------------------------------------------ opening
    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise JournalError(f"no journal at {self.path}")
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("SELECT count(*) FROM terminations").fetchone()
        except sqlite3.DatabaseError as error:
            db.close()
            raise JournalError(f"{self.path} is not a readable journal: {error}") from None
        if version > SCHEMA_VERSION:
            db.close()
            raise JournalError(f"{self.path} has schema {version}, newer than {SCHEMA_VERSION}")
        return db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"schema version {version} is newer than {SCHEMA_VERSION}")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(f"integrity check failed: {check}")
            db.commit()
        except Exception:
            db.close()
            raise
        return db

    def _recover(self, error: Exception) -> sqlite3.Connection:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning(
            "memguard: the journal %s is unreadable (%s); moved it to %s and started a new one",
            self.path,
            error,
            aside,
        )
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            if side.exists():
                os.replace(side, Path(str(aside) + suffix))
        self.recovered_from = aside
        return self._open()

    # ------------------------------------------------------------------ intents
    def record_intent(self, kernel_id: str, kind: str, reason: str, now: float) -> int:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO intents (kernel_id, kind, reason, created_at) VALUES (?, ?, ?, ?)",
                (kernel_id, kind, reason, now),
            )
        return int(cursor.lastrowid or 0)

    def pending_intent(self, kernel_id: str, now: float, max_age_s: float = 600) -> Intent | None:
        """The newest intent for this kernel not yet matched to a termination."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, kernel_id, kind, reason, created_at, consumed_at FROM intents "
                "WHERE kernel_id = ? AND consumed_at IS NULL AND created_at >= ? "
                "ORDER BY created_at DESC, id DESC LIMIT 1",
                (kernel_id, now - max_age_s),
            ).fetchone()
        return Intent(*row) if row else None

    def consume_intent(self, intent_id: int, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE intents SET consumed_at = ? WHERE id = ?", (now, intent_id))

    # ------------------------------------------------------------------ terminations
    def add_termination(self, record: TerminationRecord) -> int:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO terminations (kernel_id, kernel_name, path, pid, started_at, ended_at, "
                "verdict, confidence, explanation, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.kernel_id,
                    record.kernel_name,
                    record.path,
                    record.pid,
                    record.started_at,
                    record.ended_at,
                    record.verdict,
                    record.confidence,
                    record.explanation,
                    json.dumps(record.evidence, default=str),
                ),
            )
        self.prune(time.time())
        return int(cursor.lastrowid or 0)

    def terminations(
        self,
        kernel_id: str | None = None,
        path: str | None = None,
        verdict: str | None = None,
        since: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TerminationRecord], int]:
        """Matching terminations, newest first, and how many match in all."""
        clauses, params = [], []
        for column, value in (("kernel_id", kernel_id), ("path", path), ("verdict", verdict)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("ended_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            total = self._db.execute(
                f"SELECT count(*) FROM terminations {where}", params
            ).fetchone()[0]
            rows = self._db.execute(
                "SELECT id, kernel_id, kernel_name, path, pid, started_at, ended_at, verdict, "
                f"confidence, explanation, evidence FROM terminations {where} "
                "ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [TerminationRecord(*row[:10], evidence=json.loads(row[10])) for row in rows], total

    def prune(self, now: float) -> int:
        """Apply retention (max rows, max days); returns rows removed."""
        if self.readonly:
            return 0
        with self._lock, self._db:
            old = self._db.execute(
                "DELETE FROM terminations WHERE ended_at < ?", (now - self.max_days * 86400,)
            ).rowcount
            extra = self._db.execute(
                "DELETE FROM terminations WHERE id NOT IN "
                "(SELECT id FROM terminations ORDER BY ended_at DESC, id DESC LIMIT ?)",
                (self.max_rows,),
            ).rowcount
            self._db.execute(
                "DELETE FROM intents WHERE created_at < ?", (now - self.max_days * 86400,)
            )
        return old + extra

    # ------------------------------------------------------------------ checkpoints
    def get_checkpoint(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM checkpoints WHERE name = ?", (name,)
            ).fetchone()
        return row[0] if row else None

    def set_checkpoint(self, name: str, value: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO checkpoints (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
