"""Catching every kernel termination, classifying it, writing it to the journal.

Sources: the restarter's "restart"/"dead" callbacks (unexpected deaths, with the exit status
read before jupyter_client discards it), jupyter_server's kernel_actions events (shutdowns and
restarts through the API, including memguard's own), kernels that vanish from the manager,
and the server's own shutdown. The kernel log (/dev/kmsg) is read every tick in a worker
thread so OOM kills of a kernel's children are recorded even when the kernel survives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..probe.gpu_oom import GpuOomError, parse_gpu_oom
from ..probe.iopub import KernelErrorListener
from ..probe.kmsg import KmsgReader, oom_kills
from ..settings import MemGuardSettings
from ..views.events import EventEmitter
from .classify import (
    Classification,
    OomKill,
    TerminationFacts,
    classify,
    classify_child_oom,
    classify_gpu_oom,
)
from .journal import Journal, TerminationRecord

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
KMSG_CHECKPOINT = "kmsg_seq"
OOM_MEMORY_S = 600.0  # how long an OOM-kill log line is kept for matching a later death
GPU_OOM_KEPT = 10  # GPU out-of-memory errors remembered per kernel process
GPU_OOM_RECORD_GAP_S = 10.0  # at most one journal record of a GPU OOM per kernel in this time


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


BOOT_ID = _boot_id()


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


@dataclass
class LastSeen:
    """The last facts known about a kernel process, kept for when it dies."""

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


class TerminationWatcher:
    """Records why kernels of this server end."""

    def __init__(
        self, settings: MemGuardSettings, serverapp: Any, events: EventEmitter, log: logging.Logger
    ) -> None:
        self.settings = settings
        self.km = serverapp.kernel_manager
        self.event_logger = getattr(serverapp, "event_logger", None)
        self.events = events
        self.log = log
        self.journal = open_journal(settings, log)
        self.kmsg = KmsgReader(settings.kmsg_path)
        self.monitor: Any = None
        self.runner: Any = None
        self.last_seen: dict[str, LastSeen] = {}
        self.registered: set[str] = set()
        self.recent_ooms: deque[tuple[float, OomKill, str]] = deque()
        self.auto_restarts: dict[str, float] = {}
        self.ended_pids: set[int] = set()  # processes already recorded as ended
        self.counters: tuple[int | None, int | None] = (None, None)
        self.recorded = 0
        self.on_recorded: list[Any] = []  # callables(verdict: str), e.g. the Prometheus counter
        self.stopping = False
        self._kmsg_seq: int | None = None
        self._kmsg_busy = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.kernel_errors: KernelErrorListener | None = (
            KernelErrorListener(self.km, self.on_kernel_error, log)
            if settings.detect_gpu_oom
            else None
        )

    # ------------------------------------------------------------------ wiring
    def attach(self, monitor: Any, runner: Any) -> None:
        self.monitor, self.runner = monitor, runner
        monitor.on_tick.append(self.on_tick)
        monitor.on_kernel_gone.append(self.on_kernel_gone)

    async def start(self) -> None:
        if self.event_logger is not None:
            self.event_logger.add_listener(
                schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action
            )
        checkpoint = await asyncio.to_thread(self.journal.get_checkpoint, KMSG_CHECKPOINT)
        boot, _, seq = (checkpoint or "").partition(":")
        # Sequence numbers restart at boot: a checkpoint from another boot means nothing.
        self._kmsg_seq = int(seq) if boot == BOOT_ID and seq.isdigit() else None
        await asyncio.to_thread(self.kmsg.read_new, self._kmsg_seq)  # position the reader
        if self._kmsg_seq is None:
            self._kmsg_seq = -1
        if not self.kmsg.available:
            self.log.info(
                "memguard: kernel log not readable (%s); OOM verdicts use counters only",
                self.kmsg.reason,
            )
        budget = self.monitor.budget
        self.counters = (budget.oom_kill_count, budget.system_oom_kill_count)

    async def stop(self) -> None:
        """The server is stopping: record its kernels as ended by the server shutdown."""
        self.stopping = True
        for kernel_id in list(self.km.list_kernel_ids()):
            if kernel_id not in self.last_seen:  # started or restarted since the last tick
                self.last_seen[kernel_id] = self._unsampled(kernel_id)
        for seen in list(self.last_seen.values()):
            facts = self._facts(seen, returncode=None, server_shutdown=True)
            await self._record(seen, classify(facts))
        self.last_seen.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.kernel_errors is not None:
            self.kernel_errors.close()
        await asyncio.to_thread(self.journal.close)

    def _unsampled(self, kernel_id: str) -> LastSeen:
        """What is known of a kernel that no tick has sampled yet."""
        from ..guard.monitor import kernel_pid

        try:
            kernel = self.km.get_kernel(kernel_id)
        except KeyError:
            kernel = None
        name = getattr(kernel, "kernel_name", "") or ""
        pid = kernel_pid(kernel) if kernel is not None else None
        path = self.monitor.paths.get(kernel_id) if self.monitor else None
        return LastSeen(kernel_id, name, pid, (), path, time.time(), None, None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status_json(self) -> dict[str, Any]:
        return {
            "path": self.settings.journal_path,
            "kmsg_readable": self.kmsg.available,
            "kmsg_reason": None if self.kmsg.available else self.kmsg.reason,
            "recorded_this_run": self.recorded,
            "gpu_oom_detection": self.kernel_errors is not None,
        }

    # ------------------------------------------------------------------ per tick
    def on_tick(self, monitor: Any) -> None:
        for kernel_id, tracked in monitor.kernels.items():
            seen = self.last_seen.get(kernel_id)
            if tracked.pid in self.ended_pids:
                continue  # a dead kernel the restarter gave up on: already recorded
            if seen is None or seen.pid != tracked.pid:
                seen = LastSeen(
                    kernel_id, tracked.name, tracked.pid, (), None, tracked.started_at, None, None
                )
                self.last_seen[kernel_id] = seen
            seen.path = monitor.paths.get(kernel_id, seen.path)
            if tracked.memory is not None:
                seen.pids = tracked.memory.pids
                seen.last_rss = tracked.memory.rss_bytes
                seen.peak_rss = max(seen.peak_rss or 0, tracked.history.peak_bytes)
            if tracked.gpu is not None:
                seen.gpu_last = tracked.gpu["used_bytes"]
                seen.gpu_peak = max(seen.gpu_peak or 0, seen.gpu_last or 0)
            elif tracked.memory is not None:
                seen.gpu_last = None  # sampled, and no GPU memory held now
            if kernel_id not in self.registered:
                self._register_callbacks(kernel_id)
        if self.kernel_errors is not None:
            self.kernel_errors.sync({kid: t.pid for kid, t in monitor.kernels.items()})
        budget = monitor.budget
        self.counters = (budget.oom_kill_count, budget.system_oom_kill_count)
        if self.kmsg.available and not self._kmsg_busy:
            self._kmsg_busy = True
            self._spawn(self._poll_kmsg())

    def _register_callbacks(self, kernel_id: str) -> None:
        try:
            kernel = self.km.get_kernel(kernel_id)
        except KeyError:
            return
        for event in ("restart", "dead"):
            kernel.add_restart_callback(
                lambda kid=kernel_id, ev=event: self._on_death(kid, ev), event
            )
        self.registered.add(kernel_id)

    async def _poll_kmsg(self) -> None:
        try:
            records = await asyncio.to_thread(self.kmsg.read_new, self._kmsg_seq)
            if not records:
                return
            self._kmsg_seq = records[-1].seq
            now = time.time()
            for record, oom in oom_kills(records):
                self.recent_ooms.append((now, oom, record.text))
                owner = self._owner_of(oom.pid)
                if owner is not None and owner.pid != oom.pid and oom.pid not in self.ended_pids:
                    self.ended_pids.add(oom.pid)  # one record per kill, though two lines name it
                    args = self._child_args(owner)
                    await self._record(owner, classify_child_oom(owner.kernel_id, oom, **args))
            while self.recent_ooms and now - self.recent_ooms[0][0] > OOM_MEMORY_S:
                self.recent_ooms.popleft()
            await asyncio.to_thread(
                self.journal.set_checkpoint, KMSG_CHECKPOINT, f"{BOOT_ID}:{self._kmsg_seq}"
            )
        except Exception:
            self.log.exception("memguard: reading the kernel log failed")
        finally:
            self._kmsg_busy = False

    def _owner_of(self, pid: int) -> LastSeen | None:
        for seen in self.last_seen.values():
            if pid == seen.pid or pid in seen.pids:
                return seen
        return None

    def _child_args(self, seen: LastSeen) -> dict[str, Any]:
        limit, source = self.monitor.kernel_limit()
        return {"kernel_rss_bytes": seen.last_rss, "limit_bytes": limit, "limit_source": source}

    def on_kernel_error(self, kernel_id: str, error_name: str, error_value: str) -> None:
        """A cell raised an error: record it if it is a GPU out-of-memory error (event loop)."""
        oom = parse_gpu_oom(error_name, error_value, time.time())
        seen = self.last_seen.get(kernel_id)
        if oom is None or seen is None or self.stopping:
            return
        seen.gpu_ooms = [*seen.gpu_ooms, oom][-GPU_OOM_KEPT:]
        if oom.at - seen.gpu_oom_recorded_at < GPU_OOM_RECORD_GAP_S:
            return  # a burst of failing cells: one record, all kept in the evidence
        seen.gpu_oom_recorded_at = oom.at
        tracked = self.monitor.kernels.get(kernel_id) if self.monitor else None
        limit, source = self.monitor.kernel_limit()
        verdict = classify_gpu_oom(
            oom,
            kernel_gpu=tracked.gpu if tracked is not None else None,
            kernel_rss_bytes=seen.last_rss,
            limit_bytes=limit,
            limit_source=source,
        )
        self._spawn(self._record(seen, verdict))

    # ------------------------------------------------------------------ deaths
    def _on_death(self, kernel_id: str, event: str) -> None:
        """Restarter callback: the kernel process died unexpectedly (runs on the event loop)."""
        if self.stopping:
            return
        seen = self.last_seen.get(kernel_id)
        if seen is None:
            return
        self.auto_restarts[kernel_id] = time.monotonic()
        if seen.pid is not None:
            self.ended_pids.add(seen.pid)
        returncode = None
        try:
            process = getattr(self.km.get_kernel(kernel_id).provisioner, "process", None)
            returncode = process.poll() if process is not None else None
        except KeyError:
            pass
        # A fresh process follows an auto-restart: forget the old one's facts now.
        self.last_seen.pop(kernel_id, None)
        self._spawn(self._record_death(seen, returncode))

    async def _record_death(self, seen: LastSeen, returncode: int | None) -> None:
        # Give the kernel log a moment: the OOM killer's lines precede the kill, but our
        # reader runs once per tick.
        if self.kmsg.available:
            records = await asyncio.to_thread(self.kmsg.read_new, self._kmsg_seq)
            if records:
                self._kmsg_seq = records[-1].seq
                now = time.time()
                for record, oom in oom_kills(records):
                    self.recent_ooms.append((now, oom, record.text))
        budget = await asyncio.to_thread(self.monitor.read_budget_now)
        facts = self._facts(seen, returncode=returncode, after=budget)
        await self._record(seen, classify(facts))

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """jupyter_server's kernel_actions event: shutdowns and restarts through the manager."""
        action, kernel_id = data.get("action"), data.get("kernel_id")
        if (
            self.stopping
            or data.get("status") != "success"
            or action not in ("shutdown", "restart")
        ):
            return
        if kernel_id is None:
            return
        if action == "restart" and time.monotonic() - self.auto_restarts.pop(kernel_id, -1e9) < 60:
            return  # the restarter's own restart after a death we already recorded
        seen = self.last_seen.pop(kernel_id, None)
        if seen is None:
            return
        intent = await asyncio.to_thread(self.journal.pending_intent, kernel_id, time.time())
        facts = self._facts(
            seen,
            returncode=None,
            user_action=action,
            intent=intent.kind if intent else None,
            intent_reason=intent.reason if intent else None,
        )
        if intent is not None:
            await asyncio.to_thread(self.journal.consume_intent, intent.id, time.time())
        if self.runner is not None:
            self.runner.forget(kernel_id)
        await self._record(seen, classify(facts))

    def on_kernel_gone(self, tracked: Any) -> None:
        """A kernel left the manager without a kernel_actions event we saw."""
        seen = self.last_seen.pop(tracked.kernel_id, None)
        self.registered.discard(tracked.kernel_id)
        if self.runner is not None:
            self.runner.forget(tracked.kernel_id)
        if seen is not None and not self.stopping:
            self._spawn(self._record_gone(seen))

    async def _record_gone(self, seen: LastSeen) -> None:
        intent = await asyncio.to_thread(self.journal.pending_intent, seen.kernel_id, time.time())
        if intent is not None:
            await asyncio.to_thread(self.journal.consume_intent, intent.id, time.time())
        facts = self._facts(
            seen,
            returncode=None,
            intent=intent.kind if intent else None,
            intent_reason=intent.reason if intent else None,
        )
        await self._record(seen, classify(facts))

    # ------------------------------------------------------------------ shared
    def _facts(
        self,
        seen: LastSeen,
        returncode: int | None,
        user_action: str | None = None,
        intent: str | None = None,
        intent_reason: str | None = None,
        server_shutdown: bool = False,
        after: Any = None,
    ) -> TerminationFacts:
        pids = seen.pids or ((seen.pid,) if seen.pid else ())
        ooms = tuple(oom for _, oom, _ in self.recent_ooms if oom.pid in pids)
        limit, source = self.monitor.kernel_limit()
        before_cg, before_sys = self.counters
        return TerminationFacts(
            kernel_id=seen.kernel_id,
            pid=seen.pid,
            pids=tuple(pids),
            returncode=returncode,
            intent=intent,
            intent_reason=intent_reason,
            user_action=user_action,
            server_shutdown=server_shutdown,
            oom_kills=ooms,
            cgroup_oom_kill_before=before_cg,
            cgroup_oom_kill_after=after.oom_kill_count if after is not None else before_cg,
            system_oom_kill_before=before_sys,
            system_oom_kill_after=after.system_oom_kill_count if after is not None else before_sys,
            last_rss_bytes=seen.last_rss,
            peak_rss_bytes=seen.peak_rss,
            limit_bytes=limit,
            limit_source=source,
            gpu_last_bytes=seen.gpu_last,
            gpu_peak_bytes=seen.gpu_peak,
            gpu_oom_errors=tuple(
                oom.to_json() for oom in seen.gpu_ooms if time.time() - oom.at < OOM_MEMORY_S
            ),
        )

    async def _record(self, seen: LastSeen, verdict: Classification) -> None:
        if seen.path is None and self.monitor is not None:
            # The session may be younger than the monitor's cached paths (e.g. a cell that
            # fails in the kernel's first second): ask the session manager afresh.
            await self.monitor.refresh_paths(max_age_s=0)
            seen.path = self.monitor.paths.get(seen.kernel_id)
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
            row_id = await asyncio.to_thread(self.journal.add_termination, record)
        except Exception:
            self.log.exception("memguard: could not write a termination to the journal")
            row_id = None
        self.recorded += 1
        for callback in self.on_recorded:
            callback(verdict.verdict)
        log = (
            self.log.warning
            if verdict.verdict not in ("user_shutdown", "user_restart", "server_shutdown")
            else self.log.info
        )
        log(
            "memguard: kernel %s ended: %s (%s) %s",
            seen.kernel_id,
            verdict.verdict,
            verdict.confidence,
            verdict.explanation,
        )
        self.events.emit(
            "kernel_terminated",
            {
                "kernel_id": seen.kernel_id,
                "kernel_name": seen.name or None,
                "path": seen.path,
                "verdict": verdict.verdict,
                "confidence": verdict.confidence,
                "explanation": verdict.explanation,
                "evidence": verdict.evidence,
                "termination_id": row_id,
            },
        )
