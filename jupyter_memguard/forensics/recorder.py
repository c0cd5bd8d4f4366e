"""The one place a kernel's end becomes a record: journal, log line, event and metric.

Every source of ends (forensics.deaths, the server-death examination at start) hands its
verdict here, so a record is written, logged, announced and counted the same way whatever
noticed it. Writes are tracked: the server's stop waits for them (bounded) before the journal
closes, so no record is lost at stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..models import EventSink
from ..settings import MemGuardSettings
from ..units import Units
from ..wording import describe, verdict_info
from .classify import Classification
from .journal import Journal, TerminationRecord

if TYPE_CHECKING:
    from ..lifecycle import KernelLife


class Subject(Protocol):
    """The kernel a record is about (forensics.deaths.KernelFacts, or a dead server's kernel)."""

    life: KernelLife
    path: str | None


def open_journal(settings: MemGuardSettings, log: logging.Logger) -> Journal:
    """The configured journal; if even a fresh file cannot be made there, one in memory."""
    try:
        return Journal(settings.journal_path, settings.journal_max_rows, settings.journal_max_days)
    except Exception as error:
        log.error(
            "memguard: cannot use the journal %s (%s); terminations are kept in memory only",
            settings.journal_path,
            error,
        )
        return Journal(":memory:", settings.journal_max_rows, settings.journal_max_days)


class Recorder:
    """Writes each verdict to the journal, the server log, the event bus and the metrics."""

    def __init__(
        self,
        journal: Journal,
        events: EventSink,
        log: logging.Logger,
        path_of: Callable[[str], Awaitable[str | None]],
        units: Units = "binary",
    ) -> None:
        self.units = units
        self.journal = journal
        self.events = events
        self.log = log
        self.path_of = path_of
        self.recorded = 0
        self.on_recorded: list[Callable[[str], None]] = []  # e.g. the Prometheus counter
        self._pending: set[asyncio.Future[Any]] = set()

    def track(self, work: Awaitable[Any]) -> None:
        """Run a piece of recording work in the background; ``drain`` waits for it."""
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("memguard: recording failed", exc_info=task.exception())

    async def drain(self, timeout: float = 10.0) -> int:
        """Wait for the records under way (at stop, before the journal closes); returns how
        many were still unfinished when the time ran out."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            await asyncio.wait(list(self._pending), timeout=deadline - time.monotonic())
        return len(self._pending)

    async def record(
        self, subject: Subject, verdict: Classification, ended_at: float | None = None
    ) -> int | None:
        """Record one termination (or survived incident); returns its journal row id (None if
        the write failed)."""
        life = subject.life
        if subject.path is None:
            # The session may be younger than the monitor's cached paths (e.g. a cell that
            # fails in the kernel's first second): ask the session manager afresh.
            subject.path = await self.path_of(life.kernel_id)
        record = TerminationRecord(
            id=None,
            kernel_id=life.kernel_id,
            kernel_name=life.name or None,
            path=subject.path,
            pid=life.pid,
            started_at=life.started_at,
            ended_at=time.time() if ended_at is None else ended_at,
            verdict=verdict.verdict,
            confidence=verdict.confidence,
            explanation=verdict.explanation,
            evidence=verdict.evidence,
        )
        try:
            row_id: int | None = await asyncio.to_thread(self.journal.add_termination, record)
        except Exception:
            self.log.exception("memguard: could not write a termination to the journal")
            row_id = None
        self.recorded += 1
        for callback in self.on_recorded:
            callback(verdict.verdict)
        quiet = verdict_info(verdict.verdict).quiet
        (self.log.info if quiet else self.log.warning)(
            "memguard: kernel %s: %s (%s) %s",
            life.kernel_id,
            verdict.verdict,
            verdict.confidence,
            verdict.explanation,
        )
        self.events.emit(
            "kernel_terminated",
            {
                **describe(record.to_json(), self.units),
                "kernel_id": life.kernel_id,
                "kernel_name": life.name or None,
                "path": subject.path,
                "verdict": verdict.verdict,
                "confidence": verdict.confidence,
                "explanation": verdict.explanation,
                "evidence": verdict.evidence,
                "trigger": verdict.evidence.get("trigger"),
                "termination_id": row_id,
                "ended_at": record.ended_at,
            },
        )
        return row_id
