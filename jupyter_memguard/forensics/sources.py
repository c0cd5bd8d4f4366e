"""The sources of kernel deaths, each feeding the one Recorder.

- jupyter_server's ``kernel_actions`` events: ``start`` (a kernel is known, and its death
  callbacks registered, from its first moment), ``shutdown`` and ``restart`` (through the API,
  memguard's own included: an intent in the journal says so);
- the restarter's ``restart``/``dead`` callbacks: unexpected deaths, with the exit status read
  before jupyter_client discards it;
- the kernel log (/dev/kmsg, read each tick in a worker thread): OOM kills, also of a kernel's
  children while the kernel survives;
- kernels that leave the manager without an event we saw, and the server's own shutdown.

The facts at a death come from the last Tick (memory, pids, path, limit) and from the kernel
log and OOM counters read at that moment; classification is forensics.classify (pure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..guard.policy import kernel_limit
from ..models import Budget, KernelState, Tick
from ..probe.cells import CellTracker
from ..probe.gpu_oom import GpuOomError, parse_gpu_oom
from ..probe.iopub import IopubListener
from ..probe.kmsg import KmsgReader, oom_kills
from ..probe.server import KernelManager, find_kernel, kernel_ids, kernel_pid, kernel_returncode
from ..settings import MemGuardSettings
from .classify import (
    OomKill,
    TerminationFacts,
    classify,
    classify_child_oom,
    classify_gpu_oom,
)
from .recorder import LastSeen, Recorder

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
KMSG_CHECKPOINT = "kmsg_seq"
OOM_MEMORY_S = 600.0  # how long an OOM-kill log line is kept for matching a later death
GPU_OOM_KEPT = 10  # GPU out-of-memory errors remembered per kernel process
GPU_OOM_RECORD_GAP_S = 10.0  # at most one journal record of a GPU OOM per kernel in this time
AUTO_RESTART_WINDOW_S = 60.0  # a restart event this soon after a death is the restarter's own
END_WINDOW_S = 15.0  # a cell interrupted this shortly before a halt's shutdown was its cause
RECENT_CELLS_KEPT = 30  # cells kept with a termination record (its timeline)
IDLE_WORTH = 100 * 2**20  # an idle kernel holding this much is worth naming in advice


@dataclass(frozen=True)
class CellFacts:
    """The cells at a kernel's end, as JSON (CellRecord.to_json())."""

    running: dict[str, Any] | None = None
    top_kept: tuple[dict[str, Any], ...] = ()
    recent: tuple[dict[str, Any], ...] = ()
    history: tuple[tuple[float, int], ...] = ()  # the kernel's last memory samples


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


BOOT_ID = _boot_id()


class DeathSources:
    """Listens to every source of kernel deaths and hands each death to the recorder."""

    def __init__(
        self,
        settings: MemGuardSettings,
        kernel_manager: KernelManager,
        event_logger: Any,
        recorder: Recorder,
        log: logging.Logger,
        *,
        first_tick: Tick,
        read_budget: Callable[[], Budget],
        track: Callable[[str], bool],
        cells: CellTracker | None = None,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.event_logger = event_logger
        self.recorder = recorder
        self.journal = recorder.journal
        self.log = log
        self.read_budget = read_budget  # OOM counters now (worker thread)
        self.track = track  # the monitor's kernel_started
        self.kmsg = KmsgReader(settings.kmsg_path)
        self.tick = first_tick
        self.last_seen: dict[str, LastSeen] = {}
        self.registered: set[str] = set()
        self.recent_ooms: deque[tuple[float, OomKill, str]] = deque()
        self.auto_restarts: dict[str, float] = {}
        self.ended_pids: set[int] = set()  # processes already recorded as ended
        self.on_kernel_ended: list[Callable[[str], None]] = []  # e.g. the runner's forget
        # A cell ran out of GPU memory (the GPU relief): (kernel id, the error).
        self.on_gpu_oom: list[Callable[[str, GpuOomError], Awaitable[None]]] = []
        self.stopping = False
        self._kmsg_seq: int | None = None
        self._kmsg_busy = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.cells = cells
        on_error = self.on_kernel_error if settings.detect_gpu_oom else None
        self.iopub = IopubListener(self.km, on_error, log, cells=cells)

    @property
    def kernel_errors(self) -> IopubListener | None:
        """The iopub listener, when it reports GPU out-of-memory errors (detect_gpu_oom)."""
        return self.iopub if self.settings.detect_gpu_oom else None

    # ------------------------------------------------------------------ wiring
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
        for kernel_id in kernel_ids(self.km):  # kernels started before the extension
            self._watch(kernel_id)

    async def stop(self) -> None:
        """The server is stopping: record its kernels as ended by the server shutdown."""
        self.stopping = True
        live = kernel_ids(self.km)
        for kernel_id in live:  # also a restarted process no tick has seen yet
            self._watch(kernel_id, listen=False)
        # A kernel still in the manager ends with the server, even one caught mid-restart.
        for seen in [s for s in self.last_seen.values() if s.kernel_id in live]:
            facts = self._facts(seen, returncode=None, server_shutdown=True)
            await self.recorder.record(seen, classify(facts))
        self.last_seen.clear()
        for task in list(self._tasks):
            task.cancel()
        self.iopub.close()
        await asyncio.to_thread(self.journal.close)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status_json(self) -> dict[str, Any]:
        return {
            "path": self.settings.journal_path,
            "kmsg_readable": self.kmsg.available,
            "kmsg_reason": None if self.kmsg.available else self.kmsg.reason,
            "recorded_this_run": self.recorder.recorded,
            "gpu_oom_detection": self.kernel_errors is not None,
        }

    # ------------------------------------------------------------------ a kernel's first moment
    def _watch(self, kernel_id: str, listen: bool = True) -> LastSeen | None:
        """Know a kernel from now on: its facts so far, its death callbacks, its errors."""
        kernel = find_kernel(self.km, kernel_id)
        if kernel is None:
            return None
        pid = kernel_pid(kernel)
        seen = self.last_seen.get(kernel_id)
        if seen is None or (pid is not None and seen.pid not in (None, pid)):
            seen = LastSeen(
                kernel_id, getattr(kernel, "kernel_name", "") or "", pid, (), None, time.time(),
                None, None,
            )  # fmt: skip
            self.last_seen[kernel_id] = seen
        elif seen.pid is None and pid is not None and pid not in self.ended_pids:
            seen.pid, seen.awaiting_restart = pid, False
        if listen:
            self.iopub.watch(kernel_id, pid)
        if listen and kernel_id not in self.registered:
            for event in ("restart", "dead"):
                kernel.add_restart_callback(
                    lambda kid=kernel_id, ev=event: self._on_death(kid, ev), event
                )
            self.registered.add(kernel_id)
        return seen

    # ------------------------------------------------------------------ per tick
    def on_tick(self, tick: Tick) -> None:
        """Keep the last facts of every kernel (for when it ends); poll the kernel log."""
        self.tick = tick
        for kernel_id, state in tick.kernels.items():
            if state.pid in self.ended_pids:
                continue  # a dead kernel the restarter gave up on: already recorded
            seen = self.last_seen.get(kernel_id)
            if seen is None or (state.pid is not None and seen.pid not in (None, state.pid)):
                seen = LastSeen(
                    kernel_id, state.name, state.pid, (), None, state.started_at, None, None
                )
                self.last_seen[kernel_id] = seen
            self._note(seen, state)
            if kernel_id not in self.registered:
                self._watch(kernel_id)
        self.iopub.sync({kid: k.pid for kid, k in tick.kernels.items()})
        if self.kmsg.available and not self._kmsg_busy:
            self._kmsg_busy = True
            self._spawn(self._poll_kmsg())

    @staticmethod
    def _note(seen: LastSeen, state: KernelState) -> None:
        if state.pid is not None:
            seen.pid, seen.awaiting_restart = state.pid, False
        seen.path = state.path or seen.path
        if state.memory is not None:
            seen.pids = state.memory.pids
            seen.last_rss = state.memory.rss_bytes
            seen.peak_rss = max(seen.peak_rss or 0, state.peak_bytes)
        if state.gpu is not None:
            seen.gpu_last = state.gpu["used_bytes"]
            seen.gpu_peak = max(seen.gpu_peak or 0, seen.gpu_last or 0)
        elif state.memory is not None:
            seen.gpu_last = None  # sampled, and no GPU memory held now

    def _limit(self) -> tuple[int, str]:
        return kernel_limit(self.settings, self.tick.budget)

    async def _poll_kmsg(self) -> None:
        try:
            records = await self._read_kmsg()
            for _record, oom in oom_kills(records):
                owner = self._owner_of(oom.pid)
                if owner is not None and owner.pid != oom.pid and oom.pid not in self.ended_pids:
                    self.ended_pids.add(oom.pid)  # one record per kill, though two lines name it
                    limit, source = self._limit()
                    verdict = classify_child_oom(
                        owner.kernel_id,
                        oom,
                        kernel_rss_bytes=owner.last_rss,
                        limit_bytes=limit,
                        limit_source=source,
                    )
                    await self.recorder.record(owner, verdict)
            now = time.time()
            while self.recent_ooms and now - self.recent_ooms[0][0] > OOM_MEMORY_S:
                self.recent_ooms.popleft()
            if records:
                await asyncio.to_thread(
                    self.journal.set_checkpoint, KMSG_CHECKPOINT, f"{BOOT_ID}:{self._kmsg_seq}"
                )
        except Exception:
            self.log.exception("memguard: reading the kernel log failed")
        finally:
            self._kmsg_busy = False

    async def _read_kmsg(self) -> list[Any]:
        """New kernel log records since the last read; OOM kills among them are remembered."""
        if not self.kmsg.available:
            return []
        records = await asyncio.to_thread(self.kmsg.read_new, self._kmsg_seq)
        if records:
            self._kmsg_seq = records[-1].seq
            now = time.time()
            for record, oom in oom_kills(records):
                self.recent_ooms.append((now, oom, record.text))
        return records

    def _owner_of(self, pid: int) -> LastSeen | None:
        for seen in self.last_seen.values():
            if pid == seen.pid or pid in seen.pids:
                return seen
        return None

    def on_kernel_error(self, kernel_id: str, error_name: str, error_value: str) -> None:
        """A cell raised an error: record it if it is a GPU out-of-memory error (event loop)."""
        oom = parse_gpu_oom(error_name, error_value, time.time())
        seen = self.last_seen.get(kernel_id)
        if oom is None or seen is None or self.stopping:
            return
        seen.gpu_ooms = [*seen.gpu_ooms, oom][-GPU_OOM_KEPT:]
        for callback in self.on_gpu_oom:
            self._spawn(callback(kernel_id, oom))
        if oom.at - seen.gpu_oom_recorded_at < GPU_OOM_RECORD_GAP_S:
            return  # a burst of failing cells: one record, all kept in the evidence
        seen.gpu_oom_recorded_at = oom.at
        state = self.tick.kernels.get(kernel_id)
        limit, source = self._limit()
        verdict = classify_gpu_oom(
            oom,
            kernel_gpu=state.gpu if state is not None else None,
            kernel_rss_bytes=seen.last_rss,
            limit_bytes=limit,
            limit_source=source,
        )
        self._spawn(self.recorder.record(seen, verdict))

    # ------------------------------------------------------------------ deaths
    def _on_death(self, kernel_id: str, event: str) -> None:
        """Restarter callback: the kernel process died unexpectedly (runs on the event loop)."""
        if self.stopping:
            return
        kernel = find_kernel(self.km, kernel_id)
        seen = self.last_seen.get(kernel_id) or self._watch(kernel_id)
        if seen is None:
            return
        if kernel is not None:
            seen.pid = kernel_pid(kernel) or seen.pid  # the process that died, not a guess
        self.auto_restarts[kernel_id] = time.monotonic()
        if seen.pid is not None:
            self.ended_pids.add(seen.pid)
        returncode = kernel_returncode(kernel) if kernel is not None else None
        cells = self._cells_at_end(kernel_id, died=True)
        if self.cells is not None:
            self.cells.restarted(kernel_id)
        # A fresh process follows an auto-restart: its facts start afresh.
        self.last_seen[kernel_id] = LastSeen(
            kernel_id, seen.name, None, (), seen.path, time.time(), None, None,
            awaiting_restart=True,
        )  # fmt: skip
        self._spawn(self._record_death(seen, returncode, cells))

    async def _record_death(self, seen: LastSeen, returncode: int | None, cells: CellFacts) -> None:
        # The OOM killer's lines precede the kill, but our reader runs once per tick: read now.
        await self._read_kmsg()
        budget = await asyncio.to_thread(self.read_budget)
        facts = self._facts(seen, returncode=returncode, after=budget, cells=cells)
        await self.recorder.record(seen, classify(facts))

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """jupyter_server's kernel_actions event: starts, shutdowns and restarts."""
        action, kernel_id = data.get("action"), data.get("kernel_id")
        if self.stopping or data.get("status") != "success" or kernel_id is None:
            return
        if action == "start":
            self._watch(kernel_id)
            self.track(kernel_id)
            return
        if action not in ("shutdown", "restart"):
            return
        since_death = time.monotonic() - self.auto_restarts.pop(kernel_id, -1e9)
        if action == "restart" and since_death < AUTO_RESTART_WINDOW_S:
            return  # the restarter's own restart after a death we already recorded
        seen = self.last_seen.pop(kernel_id, None)
        if action == "restart":
            self._watch(kernel_id)  # the same kernel id goes on with a new process
        if seen is None:
            return
        for callback in self.on_kernel_ended:
            callback(kernel_id)
        await self._record_with_intent(seen, user_action=action)

    def on_kernel_gone(self, state: KernelState) -> None:
        """A kernel left the manager without a kernel_actions event we saw."""
        seen = self.last_seen.pop(state.kernel_id, None)
        self.registered.discard(state.kernel_id)
        for callback in self.on_kernel_ended:
            callback(state.kernel_id)
        if seen is not None and not seen.awaiting_restart and not self.stopping:
            self._spawn(self._record_with_intent(seen, user_action=None))

    async def _record_with_intent(self, seen: LastSeen, user_action: str | None) -> None:
        """Record an end that came through the manager: memguard's own if an intent says so."""
        cells = self._cells_at_end(seen.kernel_id, died=False)
        if self.cells is not None and user_action != "restart":
            self.cells.forget(seen.kernel_id)
        elif self.cells is not None:
            self.cells.restarted(seen.kernel_id)
        intent = await asyncio.to_thread(self.journal.pending_intent, seen.kernel_id, time.time())
        if intent is not None:
            await asyncio.to_thread(self.journal.consume_intent, intent.id, time.time())
        facts = self._facts(
            seen,
            returncode=None,
            user_action=user_action,
            intent=intent.kind if intent else None,
            intent_reason=intent.reason if intent else None,
            cells=cells,
        )
        await self.recorder.record(seen, classify(facts))

    # ------------------------------------------------------------------ shared
    def _cells_at_end(self, kernel_id: str, died: bool) -> CellFacts:
        """The cell that was running when the kernel ended, the cells that kept the most
        memory, and the last few cells (for the termination's timeline)."""
        state = self.tick.kernels.get(kernel_id)
        history = state.history if state is not None else ()
        if self.cells is None:
            return CellFacts(history=history)
        now = time.time()
        running = self.cells.kernel_died(kernel_id, now) if died else self.cells.running(kernel_id)
        recent = self.cells.cells(kernel_id)
        if running is None and recent:
            # A halt interrupts the cell first: the cell that was running when memguard began
            # is the last one, ended by the interrupt moments before the shutdown.
            last = recent[0]
            ended = last.ended_at or now
            if (
                last.status in ("interrupted", "error", "kernel_died")
                and now - ended < END_WINDOW_S
            ):
                running = last
        return CellFacts(
            running=running.to_json() if running is not None else None,
            top_kept=tuple(c.to_json() for c in self.cells.top_kept(kernel_id)),
            recent=tuple(c.to_json() for c in recent[:RECENT_CELLS_KEPT]),
            history=history,
        )

    def _facts(
        self,
        seen: LastSeen,
        returncode: int | None,
        user_action: str | None = None,
        intent: str | None = None,
        intent_reason: str | None = None,
        server_shutdown: bool = False,
        after: Budget | None = None,
        cells: CellFacts | None = None,
    ) -> TerminationFacts:
        pids = seen.pids or ((seen.pid,) if seen.pid else ())
        ooms = tuple(oom for _, oom, _ in self.recent_ooms if oom.pid in pids)
        limit, source = self._limit()
        before = self.tick.budget
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
            cgroup_oom_kill_before=before.oom_kill_count,
            cgroup_oom_kill_after=(after or before).oom_kill_count,
            system_oom_kill_before=before.system_oom_kill_count,
            system_oom_kill_after=(after or before).system_oom_kill_count,
            last_rss_bytes=seen.last_rss,
            peak_rss_bytes=seen.peak_rss,
            limit_bytes=limit,
            limit_source=source,
            gpu_last_bytes=seen.gpu_last,
            gpu_peak_bytes=seen.gpu_peak,
            gpu_oom_errors=tuple(
                oom.to_json() for oom in seen.gpu_ooms if time.time() - oom.at < OOM_MEMORY_S
            ),
            units=self.settings.display_units,
            running_cell=cells.running if cells else None,
            top_cells=cells.top_kept if cells else (),
            recent_cells=cells.recent if cells else (),
            history=cells.history if cells else (),
            idle_kernels=self._idle_others(seen.kernel_id),
        )

    def _idle_others(self, kernel_id: str) -> tuple[dict[str, Any], ...]:
        """The other kernels of this server that sat idle holding memory (advice: free it)."""
        return tuple(
            {"kernel_id": k.kernel_id, "path": k.path, "bytes": k.usage_bytes}
            for k in self.tick.kernels.values()
            if k.kernel_id != kernel_id and not k.busy and (k.usage_bytes or 0) >= IDLE_WORTH
        )
