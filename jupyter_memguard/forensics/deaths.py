"""Every end of a kernel identity becomes one verdict for the recorder, with its facts.

Ends come from the lifecycle (a death, a restart, a shutdown, a kernel that left, the server's
stop); facts from the last Tick that saw the kernel, from the kernel log and the OOM counters
read at that moment, from the kernel's cell records and from an intent memguard wrote before it
acted. The kernel log also names OOM kills of a kernel's children (the kernel survives), and
the iopub listener reports GPU out-of-memory errors of its cells. Classification is pure
(forensics.classify); writing, logging and announcing a record is the recorder's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..guard.policy import kernel_limit
from ..lifecycle import Died, Gone, KernelLife, LifecycleEvent, Restarted, Started
from ..models import Budget, Intent, KernelState, OomKill, Tick, Trigger
from ..probe.cells import CellTracker
from ..probe.gpu_oom import GpuOomError, parse_gpu_oom
from ..settings import MemGuardSettings
from .classify import (
    TerminationFacts,
    classify,
    classify_child_oom,
    classify_gpu_oom,
    classify_kept,
)
from .journal import Journal
from .kernel_log import OOM_MEMORY_S, KernelLog
from .recorder import Recorder

GPU_OOM_KEPT = 10  # GPU out-of-memory errors remembered per kernel process
GPU_OOM_RECORD_GAP_S = 10.0  # at most one journal record of a GPU OOM per kernel in this time
END_WINDOW_S = 15.0  # a cell interrupted this shortly before a halt's shutdown was its cause
RECENT_CELLS_KEPT = 30  # cells kept with a termination record (its timeline)
IDLE_WORTH = 100 * 2**20  # an idle kernel holding this much is worth naming in advice


@dataclass
class KernelFacts:
    """What is known of one kernel identity that outlives a tick: the one per-kernel record
    forensics keeps, from the lifecycle's start (or restart) to the end it records."""

    life: KernelLife
    path: str | None = None
    last: KernelState | None = None  # the last Tick's picture of this process
    pids: tuple[int, ...] = ()
    last_rss: int | None = None
    peak_rss: int | None = None
    gpu_last: int | None = None
    gpu_peak: int | None = None
    gpu_ooms: list[GpuOomError] = field(default_factory=list)
    gpu_oom_recorded_at: float = -1e9

    @property
    def kernel_id(self) -> str:
        return self.life.kernel_id

    def note(self, state: KernelState) -> None:
        """Keep the tick's figures (only for the process this record is about)."""
        if state.pid is not None and self.life.pid is not None and state.pid != self.life.pid:
            return
        self.last = state
        self.path = state.path or self.path
        if state.memory is not None:
            self.pids = state.memory.pids
            self.last_rss = state.memory.rss_bytes
            self.peak_rss = max(self.peak_rss or 0, state.peak_bytes)
        if state.gpu is not None:
            self.gpu_last = state.gpu["used_bytes"]
            self.gpu_peak = max(self.gpu_peak or 0, self.gpu_last or 0)
        elif state.memory is not None:
            self.gpu_last = None  # sampled, and no GPU memory held now


@dataclass(frozen=True)
class CellFacts:
    """The cells at a kernel's end, as JSON (CellRecord.to_json())."""

    running: dict[str, Any] | None = None
    top_kept: tuple[dict[str, Any], ...] = ()
    recent: tuple[dict[str, Any], ...] = ()
    history: tuple[tuple[float, int], ...] = ()  # the kernel's last memory samples
    # The last cell, stopped by an interrupt or an error moments before the end. It is the
    # running cell only of memguard's own halt (which interrupts first): after a user's
    # shutdown it would be a wrong culprit.
    just_stopped: dict[str, Any] | None = None

    def halted(self) -> CellFacts:
        """The cells as memguard's halt left them: its interrupt stopped the running one."""
        if self.running is not None or self.just_stopped is None:
            return self
        return replace(self, running=self.just_stopped)


GpuOomListener = Callable[[str, GpuOomError], Awaitable[None]]


class Containment(Protocol):
    """A memory cgroup of each kernel's own, where there is one (guard.kernel_cgroups)."""

    def oom_counters(self, kernel_id: str) -> tuple[int, int] | None: ...

    def limit_of(self, kernel_id: str) -> int | None: ...

    def path_of(self, kernel_id: str) -> str | None: ...


class Deaths:
    """Listens to the lifecycle, the ticks, the kernel log and the kernels' errors; hands each
    end (and each survived incident) to the recorder."""

    def __init__(
        self,
        settings: MemGuardSettings,
        journal: Journal,
        recorder: Recorder,
        log: logging.Logger,
        *,
        first_tick: Tick,
        read_budget: Callable[[], Budget],
        cells: CellTracker | None = None,
        containment: Containment | None = None,
    ) -> None:
        self.settings = settings
        self.containment = containment
        # The kernel's own cgroup's (kills, limit hits) before its current process ran:
        self._oom_baseline: dict[str, tuple[int, int] | None] = {}
        self.journal = journal
        self.recorder = recorder
        self.log = log
        self.read_budget = read_budget  # OOM counters now (worker thread)
        self.cells = cells
        self.kernel_log = KernelLog(settings.kmsg_path, journal)
        self.tick = first_tick
        self.facts: dict[str, KernelFacts] = {}
        self.on_gpu_oom: list[GpuOomListener] = []  # the GPU relief
        self.stopping = False
        self._kmsg_busy = False
        self._recorded_pids: set[int] = set()  # child OOM kills already recorded

    # ------------------------------------------------------------------ wiring
    async def start(self) -> None:
        await self.kernel_log.start()
        if not self.kernel_log.available:
            self.log.info(
                "memguard: kernel log not readable (%s); OOM verdicts use counters only",
                self.kernel_log.reason,
            )

    async def stop(self) -> None:
        """The server stops: the server_stop ends were handed on by the lifecycle already."""
        self.stopping = True
        self.facts.clear()
        self.kernel_log.close()

    def status_json(self) -> dict[str, Any]:
        return {
            "path": self.settings.journal_path,
            "kmsg_readable": self.kernel_log.available,
            "kmsg_reason": None if self.kernel_log.available else self.kernel_log.reason,
            "recorded_this_run": self.recorder.recorded,
            "gpu_oom_detection": self.settings.detect_gpu_oom,
        }

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self.recorder.track(coro)

    # ------------------------------------------------------------------ the lifecycle
    def on_lifecycle(self, event: LifecycleEvent) -> None:
        kernel_id = event.life.kernel_id
        if isinstance(event, Started):
            self.facts[kernel_id] = KernelFacts(event.life)
            self._oom_baseline[kernel_id] = self._own_oom_kills(kernel_id)
        elif isinstance(event, Restarted):
            previous = self.facts.pop(kernel_id, None) or KernelFacts(event.previous)
            self.facts[kernel_id] = KernelFacts(event.life, path=previous.path)
            if event.by != "restarter":  # after a death, that death was recorded already
                cells = self._cells_at_end(kernel_id, died=False)
                # Only a restart seen asked for is "on request"; one seen late, by nobody
                # known, is recorded as not known.
                action = "restart" if event.by == "request" else None
                self._spawn(self._record_through_manager(previous, action, cells))
        elif isinstance(event, Died):
            facts = self.facts.get(kernel_id) or KernelFacts(event.life)
            facts.life = event.life  # the process that died
            cells = self._cells_at_end(kernel_id, died=True)
            self.facts[kernel_id] = KernelFacts(event.life, path=facts.path)  # its successor's
            self._spawn(self._record_death(facts, event.returncode, cells))
        elif isinstance(event, Gone):
            facts = self.facts.pop(kernel_id, None) or KernelFacts(event.life)
            self._oom_baseline.pop(kernel_id, None)
            if event.cause == "died":
                return  # recorded at its Died
            if event.cause == "server_stop":
                verdict = classify(self._facts(facts, returncode=None, server_shutdown=True))
                self._spawn(self.recorder.record(facts, verdict))
                return
            cells = self._cells_at_end(kernel_id, died=False)
            action = "shutdown" if event.cause != "vanished" else None
            culler = event.culler_timeout_s if event.cause == "culled_by_jupyter_server" else None
            self._spawn(self._record_through_manager(facts, action, cells, culler))

    # ------------------------------------------------------------------ per tick
    def on_tick(self, tick: Tick) -> None:
        """Keep the last facts of every kernel (for when it ends); poll the kernel log."""
        self.tick = tick
        for kernel_id, state in tick.kernels.items():
            facts = self.facts.get(kernel_id)
            if facts is not None:
                facts.note(state)
        if self.kernel_log.available and not self._kmsg_busy:
            self._kmsg_busy = True
            self._spawn(self._poll_kernel_log())

    async def _poll_kernel_log(self) -> None:
        """A child process of a kernel OOM-killed while the kernel itself lives on."""
        try:
            for _record, oom in await self.kernel_log.read():
                owner = self._owner_of(oom)
                if owner is None or owner.life.pid == oom.pid or oom.pid in self._recorded_pids:
                    continue
                self._recorded_pids.add(oom.pid)  # one record per kill, though two lines name it
                limit, source = self._limit()
                verdict = classify_child_oom(
                    owner.kernel_id,
                    oom,
                    kernel_rss_bytes=owner.last_rss,
                    limit_bytes=limit,
                    limit_source=source,
                    kernel_cgroup_path=(
                        self.containment.path_of(owner.kernel_id) if self.containment else None
                    ),
                    units=self.settings.display_units,
                )
                await self.recorder.record(owner, verdict)
        except Exception:
            self.log.exception("memguard: reading the kernel log failed")
        finally:
            self._kmsg_busy = False

    def _owner_of(self, oom: OomKill) -> KernelFacts | None:
        """The kernel whose process the OOM killer ended: by its pid as last sampled, or by the
        victim's cgroup when that is the kernel's own (a worker forked and killed between two
        ticks was never sampled, but its cgroup holds nothing but the kernel's processes)."""
        for facts in self.facts.values():
            if oom.pid == facts.life.pid or oom.pid in facts.pids:
                return facts
        if oom.memcg is None or self.containment is None:
            return None
        for facts in self.facts.values():
            path = self.containment.path_of(facts.kernel_id)
            if path is not None and path.endswith(oom.memcg):
                return facts
        return None

    def _limit(self) -> tuple[int, str]:
        return kernel_limit(self.settings, self.tick.budget)

    # ------------------------------------------------------------------ errors of cells
    def on_kernel_error(self, kernel_id: str, error_name: str, error_value: str) -> None:
        """A cell raised an error: record it if it is a GPU out-of-memory error (event loop)."""
        oom = parse_gpu_oom(error_name, error_value, time.time())
        facts = self.facts.get(kernel_id)
        if oom is None or facts is None or self.stopping:
            return
        facts.gpu_ooms = [*facts.gpu_ooms, oom][-GPU_OOM_KEPT:]
        for callback in self.on_gpu_oom:
            self._spawn(callback(kernel_id, oom))
        if oom.at - facts.gpu_oom_recorded_at < GPU_OOM_RECORD_GAP_S:
            return  # a burst of failing cells: one record, all kept in the evidence
        facts.gpu_oom_recorded_at = oom.at
        state = self.tick.kernels.get(kernel_id)
        limit, source = self._limit()
        verdict = classify_gpu_oom(
            oom,
            kernel_gpu=state.gpu if state is not None else None,
            kernel_rss_bytes=facts.last_rss,
            limit_bytes=limit,
            limit_source=source,
            units=self.settings.display_units,
        )
        self._spawn(self.recorder.record(facts, verdict))

    # ------------------------------------------------------------------ ends
    def _own_oom_kills(self, kernel_id: str) -> tuple[int, int] | None:
        return self.containment.oom_counters(kernel_id) if self.containment is not None else None

    async def _record_death(
        self, facts: KernelFacts, returncode: int | None, cells: CellFacts
    ) -> None:
        # The OOM killer's lines precede the kill, but the reader runs once per tick: read now.
        await self.kernel_log.read()
        budget = await asyncio.to_thread(self.read_budget)
        kernel_id = facts.kernel_id
        # A kernel's cgroup is made for it (after its start): no reading before means zeros.
        before = self._oom_baseline.get(kernel_id) or (0, 0)
        after = self._own_oom_kills(kernel_id)
        self._oom_baseline[kernel_id] = after  # the next process's deaths count from here
        own = None
        if self.containment is not None and self.containment.path_of(kernel_id) is not None:
            own = (
                self.containment.path_of(kernel_id),
                self.containment.limit_of(kernel_id),
                before,
                after,
            )
        # memguard's own stop may have been under way (its interrupt sent, a cell still
        # growing into the kernel's own limit): this death is the end that intent was for, so
        # it is consumed here, or a later end of the same kernel would be taken for memguard's.
        intent = await self._take_intent(kernel_id, made_since=facts.life.started_at)
        verdict = classify(
            self._facts(
                facts,
                returncode=returncode,
                after=budget,
                cells=cells,
                own_cgroup=own,
                trigger=intent.trigger.to_json() if intent and intent.trigger else None,
                variables=_variables_of(intent),
                under_way=intent.kind if intent else None,
                under_way_reason=intent.reason if intent else None,
            )
        )
        await self.recorder.record(facts, verdict)

    async def _take_intent(self, kernel_id: str, made_since: float = 0.0) -> Intent | None:
        """The kernel's pending intent (made since ``made_since``), consumed: the end being
        recorded is the one it was for, and no later end may be taken for it."""
        intent = await asyncio.to_thread(self.journal.pending_intent, kernel_id, time.time())
        if intent is None or intent.created_at < made_since:
            return None
        await asyncio.to_thread(self.journal.consume_intent, intent.id, time.time())
        return intent

    async def _record_through_manager(
        self,
        facts: KernelFacts,
        user_action: str | None,
        cells: CellFacts,
        culler_timeout: float | None = None,
    ) -> None:
        """An end that came through the manager: memguard's own if an intent says so."""
        intent = await self._take_intent(facts.kernel_id)
        trigger = intent.trigger if intent is not None else None
        by_culler = culler_timeout is not None
        if intent is not None and intent.kind == "halt":
            cells = cells.halted()
        if by_culler and intent is None:
            trigger = self._culler_trigger(facts, culler_timeout or None)
        verdict = classify(
            self._facts(
                facts,
                returncode=None,
                user_action=user_action,
                intent=intent.kind if intent else ("server_cull" if by_culler else None),
                intent_reason=intent.reason if intent else None,
                trigger=trigger.to_json() if trigger is not None else None,
                cells=cells,
                variables=_variables_of(intent),
            )
        )
        await self.recorder.record(facts, verdict)

    async def record_kept(self, kernel_id: str, trigger: Trigger) -> None:
        """memguard interrupted a cell and kept the kernel (the runner's ``keep``): a record
        with survived: true, naming the cell it stopped and what to free."""
        facts = self.facts.get(kernel_id)
        if facts is None:
            return
        intent = await self._take_intent(kernel_id)
        if intent is not None:
            trigger = intent.trigger or trigger
        cells = self._cells_at_end(kernel_id, died=False).halted()
        state = self.tick.kernels.get(kernel_id)
        after = state.usage_bytes if state is not None else None
        if state is not None and state.agent is not None and state.agent.memory_after_bytes:
            after = state.usage_bytes or state.agent.memory_after_bytes
        verdict = classify_kept(
            self._facts(
                facts,
                returncode=None,
                intent=intent.kind if intent else "halt",
                intent_reason=intent.reason if intent else None,
                trigger=trigger.to_json(),
                cells=cells,
                variables=_variables_of(intent),
            ),
            after,
        )
        await self.recorder.record(facts, verdict)

    @staticmethod
    def _culler_trigger(facts: KernelFacts, timeout: float | None) -> Trigger:
        """How long the kernel sat idle, against jupyter_server's cull_idle_timeout, and how
        the cull was told apart (the culler's own call, not a guess)."""
        state = facts.last
        return Trigger(
            "jupyter_server_culler",
            idle_seconds=state.idle_seconds if state is not None else None,
            timeout_seconds=timeout,
            usage_bytes=state.usage_bytes if state is not None else None,
            kernel_bytes=state.usage_bytes if state is not None else None,
            note="told by jupyter_server's own cull_kernel_if_idle call",
        )

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
        just_stopped = None
        if running is None and recent and not died:
            # A halt interrupts the cell first: the cell that was running when memguard began
            # is the last one, ended by the interrupt moments before the shutdown.
            last = recent[0]
            ended = last.ended_at or now
            if last.status in ("interrupted", "halted", "error") and now - ended < END_WINDOW_S:
                just_stopped = last.to_json()
        return CellFacts(
            running=running.to_json() if running is not None else None,
            top_kept=tuple(c.to_json() for c in self.cells.top_kept(kernel_id)),
            recent=tuple(c.to_json() for c in recent[:RECENT_CELLS_KEPT]),
            history=history,
            just_stopped=just_stopped,
        )

    def _facts(
        self,
        facts: KernelFacts,
        returncode: int | None,
        user_action: str | None = None,
        intent: str | None = None,
        intent_reason: str | None = None,
        trigger: dict[str, Any] | None = None,
        server_shutdown: bool = False,
        after: Budget | None = None,
        cells: CellFacts | None = None,
        own_cgroup: tuple[Any, ...] | None = None,
        variables: tuple[dict[str, Any], ...] = (),
        under_way: str | None = None,
        under_way_reason: str | None = None,
    ) -> TerminationFacts:
        pid = facts.life.pid
        pids = facts.pids or ((pid,) if pid else ())
        limit, source = self._limit()
        before = self.tick.budget
        now = time.time()
        return TerminationFacts(
            kernel_id=facts.kernel_id,
            pid=pid,
            pids=tuple(pids),
            returncode=returncode,
            intent=intent,
            intent_reason=intent_reason,
            trigger=trigger,
            user_action=user_action,
            server_shutdown=server_shutdown,
            oom_kills=self.kernel_log.kills_of(pids),
            cgroup_oom_kill_before=before.oom_kill_count,
            cgroup_oom_kill_after=(after or before).oom_kill_count,
            system_oom_kill_before=before.system_oom_kill_count,
            system_oom_kill_after=(after or before).system_oom_kill_count,
            last_rss_bytes=facts.last_rss,
            peak_rss_bytes=facts.peak_rss,
            limit_bytes=limit,
            limit_source=source,
            gpu_last_bytes=facts.gpu_last,
            gpu_peak_bytes=facts.gpu_peak,
            gpu_oom_errors=tuple(
                oom.to_json() for oom in facts.gpu_ooms if now - oom.at < OOM_MEMORY_S
            ),
            units=self.settings.display_units,
            running_cell=cells.running if cells else None,
            top_cells=cells.top_kept if cells else (),
            recent_cells=cells.recent if cells else (),
            history=cells.history if cells else (),
            idle_kernels=self._idle_others(facts.kernel_id),
            kernel_cgroup_path=own_cgroup[0] if own_cgroup else None,
            kernel_cgroup_limit_bytes=own_cgroup[1] if own_cgroup else None,
            kernel_cgroup_oom_kill_before=own_cgroup[2] if own_cgroup else None,
            kernel_cgroup_oom_kill_after=own_cgroup[3] if own_cgroup else None,
            variables=variables,
            under_way=under_way,
            under_way_reason=under_way_reason,
        )

    def _idle_others(self, kernel_id: str) -> tuple[dict[str, Any], ...]:
        """The other kernels of this server that sat idle holding memory (advice: free it)."""
        return tuple(
            {"kernel_id": k.kernel_id, "path": k.path, "bytes": k.usage_bytes}
            for k in self.tick.kernels.values()
            if k.kernel_id != kernel_id and not k.busy and (k.usage_bytes or 0) >= IDLE_WORTH
        )


def _variables_of(intent: Intent | None) -> tuple[dict[str, Any], ...]:
    """The largest variables memguard asked for while acting (kept with its intent)."""
    return tuple((intent.evidence or {}).get("variables") or ()) if intent else ()
