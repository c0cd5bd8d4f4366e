"""The one place a kernel's end becomes a record: journal, log line, event and metric.

Every source of deaths (forensics.sources) hands its verdict here, so a termination is written,
logged, announced and counted the same way whatever noticed it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..probe.gpu_oom import GpuOomError
from ..settings import MemGuardSettings
from ..units import Units
from ..views.events import EventEmitter
from .classify import Classification
from .journal import Journal, TerminationRecord
from .wording import describe

QUIET_VERDICTS = ("user_shutdown", "user_restart", "server_shutdown")


@dataclass
class LastSeen:
    """The last facts known about one kernel process, kept for when it ends."""

    kernel_id: str
    name: str
    pid: int | None
    pids: tuple[int, ...]
    path: str | None
    started_at: float
    last_rss: int | None
    peak_rss: int | None
    gpu_last: int | None = None
    gpu_peak: int | None = None
    gpu_ooms: list[GpuOomError] = field(default_factory=list)
    gpu_oom_recorded_at: float = -1e9
    awaiting_restart: bool = False  # its process died and was recorded; no new one seen yet


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
        events: EventEmitter,
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

    async def record(self, seen: LastSeen, verdict: Classification) -> int | None:
        """Record one termination; returns its journal row id (None if the write failed)."""
        if seen.path is None:
            # The session may be younger than the monitor's cached paths (e.g. a cell that
            # fails in the kernel's first second): ask the session manager afresh.
            seen.path = await self.path_of(seen.kernel_id)
        record = TerminationRecord(
            id=None,
            kernel_id=seen.kernel_id,
            kernel_name=seen.name or None,
            path=seen.path,
            pid=seen.pid,
            started_at=seen.started_at,
            ended_at=time.time(),
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
        log = self.log.info if verdict.verdict in QUIET_VERDICTS else self.log.warning
        log(
            "memguard: kernel %s ended: %s (%s) %s",
            seen.kernel_id,
            verdict.verdict,
            verdict.confidence,
            verdict.explanation,
        )
        words = describe(record.to_json(), self.units)
        self.events.emit(
            "kernel_terminated",
            {
                **words,
                "kernel_id": seen.kernel_id,
                "kernel_name": seen.name or None,
                "path": seen.path,
                "verdict": verdict.verdict,
                "confidence": verdict.confidence,
                "explanation": verdict.explanation,
                "evidence": verdict.evidence,
                "termination_id": row_id,
                "ended_at": record.ended_at,
            },
        )
        return row_id
