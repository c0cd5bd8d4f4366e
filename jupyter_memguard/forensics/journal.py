"""The durable journal: one SQLite file of terminations, intents, server sessions, checkpoints.

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

from ..models import Intent, Trigger
from . import privacy

log = logging.getLogger("jupyter_memguard")


def _loads(text: str | None) -> Any:
    """JSON stored by this journal, or None where there is none (or it is unreadable)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


SCHEMA_VERSION = 2
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
    consumed_at REAL,
    trigger TEXT,
    evidence TEXT
);
CREATE INDEX IF NOT EXISTS intents_kernel ON intents (kernel_id, created_at);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    pid_start_ticks INTEGER,
    boot_id TEXT,
    hostname TEXT,
    runtime_dir TEXT,
    started_at REAL NOT NULL,
    heartbeat_at REAL,
    state TEXT,
    stopped_at REAL,
    examined_at REAL
);
"""
# Columns added since schema 1 (a journal written by an older memguard gets them at open).
_MIGRATIONS = (("intents", "trigger", "TEXT"), ("intents", "evidence", "TEXT"))


def default_journal_path() -> Path:
    """Where the journal lives unless c.MemGuard.journal_path says otherwise."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "memguard" / "journal.sqlite"


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
class ServerSession:
    """One run of a server on this journal: from its start to its clean stop, or not."""

    id: int
    pid: int
    pid_start_ticks: int | None
    boot_id: str | None
    hostname: str | None
    runtime_dir: str | None
    started_at: float
    heartbeat_at: float | None
    state: dict[str, Any] | None  # the last heartbeat (kernels, budget)
    stopped_at: float | None
    examined_at: float | None


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
        if str(path) != ":memory:":
            privacy.make_private_dir(self.path.parent)
            privacy.tighten(self.path)  # a journal made by an older memguard, or by hand
            privacy.create_private(self.path)
        try:
            self._db = self._open()
        except (sqlite3.DatabaseError, JournalError) as error:
            self._db = self._recover(error)
        if str(path) != ":memory:":
            privacy.tighten(self.path)

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
            for table, column, kind in _MIGRATIONS:
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
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
        privacy.tighten(aside)  # what was set aside holds code too
        self.recovered_from = aside
        privacy.create_private(self.path)
        return self._open()

    # ------------------------------------------------------------------ intents
    def record_intent(
        self, kernel_id: str, kind: str, trigger: Trigger, reason: str, now: float
    ) -> int:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO intents (kernel_id, kind, reason, created_at, trigger) "
                "VALUES (?, ?, ?, ?, ?)",
                (kernel_id, kind, reason, now, json.dumps(trigger.to_json())),
            )
        return int(cursor.lastrowid or 0)

    def pending_intent(self, kernel_id: str, now: float, max_age_s: float = 600) -> Intent | None:
        """The newest intent for this kernel not yet matched to a termination."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, kernel_id, kind, trigger, reason, created_at, consumed_at, evidence "
                "FROM intents "
                "WHERE kernel_id = ? AND consumed_at IS NULL AND created_at >= ? "
                "ORDER BY created_at DESC, id DESC LIMIT 1",
                (kernel_id, now - max_age_s),
            ).fetchone()
        if not row:
            return None
        trigger = Trigger.from_json(_loads(row[3]))
        evidence = _loads(row[7])
        return Intent(
            row[0], row[1], row[2], trigger, row[4], row[5], row[6],
            evidence if isinstance(evidence, dict) else None,
        )  # fmt: skip

    def add_intent_evidence(self, intent_id: int, evidence: dict[str, Any]) -> None:
        """What memguard learnt while acting (the variables it asked for before a SIGTERM):
        kept with the intent, for the record of the end that follows."""
        with self._lock, self._db:
            row = self._db.execute("SELECT evidence FROM intents WHERE id = ?", (intent_id,))
            found = row.fetchone()
            merged = {**(_loads(found[0]) or {}), **evidence} if found else evidence
            self._db.execute(
                "UPDATE intents SET evidence = ? WHERE id = ?",
                (json.dumps(merged, default=str), intent_id),
            )

    def consume_intent(self, intent_id: int, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE intents SET consumed_at = ? WHERE id = ?", (now, intent_id))

    # ------------------------------------------------------------------ terminations
    def add_termination(self, record: TerminationRecord) -> int:
        """Insert one record and apply retention, in one transaction."""
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
            self._prune(time.time())
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
            return self._prune(now)

    def _prune(self, now: float) -> int:
        """Retention inside the caller's transaction (the lock held)."""
        old = self._db.execute(
            "DELETE FROM terminations WHERE ended_at < ?", (now - self.max_days * 86400,)
        ).rowcount
        extra = self._db.execute(
            "DELETE FROM terminations WHERE id NOT IN "
            "(SELECT id FROM terminations ORDER BY ended_at DESC, id DESC LIMIT ?)",
            (self.max_rows,),
        ).rowcount
        self._db.execute("DELETE FROM intents WHERE created_at < ?", (now - self.max_days * 86400,))
        return old + extra

    # ------------------------------------------------------------------ server sessions
    def start_session(
        self,
        pid: int,
        pid_start_ticks: int | None,
        boot_id: str | None,
        hostname: str | None,
        runtime_dir: str | None,
        now: float,
    ) -> int:
        """This server's row: a session that is never stopped cleanly is examined later."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO sessions (pid, pid_start_ticks, boot_id, hostname, runtime_dir, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (pid, pid_start_ticks, boot_id, hostname, runtime_dir, now),
            )
            # Sessions are small; keep the last few hundred.
            self._db.execute(
                "DELETE FROM sessions WHERE id NOT IN "
                "(SELECT id FROM sessions ORDER BY id DESC LIMIT 500)"
            )
        return int(cursor.lastrowid or 0)

    def heartbeat(self, session_id: int, now: float, state: dict[str, Any]) -> None:
        """The server's state now (its kernels and the budget), over the last one."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE sessions SET heartbeat_at = ?, state = ? WHERE id = ?",
                (now, json.dumps(state, separators=(",", ":"), default=str), session_id),
            )

    def stop_session(self, session_id: int, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE sessions SET stopped_at = ? WHERE id = ?", (now, session_id))

    def unfinished_sessions(self, exclude: int | None = None) -> list[ServerSession]:
        """Sessions that never stopped cleanly and were not examined yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, pid, pid_start_ticks, boot_id, hostname, runtime_dir, started_at, "
                "heartbeat_at, state, stopped_at, examined_at FROM sessions "
                "WHERE stopped_at IS NULL AND examined_at IS NULL AND id != ? ORDER BY id",
                (exclude if exclude is not None else -1,),
            ).fetchall()
        return [ServerSession(*row[:8], _loads(row[8]), row[9], row[10]) for row in rows]

    def mark_examined(self, session_id: int, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE sessions SET examined_at = ? WHERE id = ?", (now, session_id))

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
