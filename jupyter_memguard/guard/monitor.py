"""The monitor loop: sample every kernel, publish one Tick, ask the policy, hand on its actions.

Sampling (/proc, cgroup and NVML reads) runs in a worker thread; the loop itself touches the
kernel and session managers only on the event loop. Each pass publishes one immutable ``Tick``:
every later stage (policy, actions, forensics, REST, metrics) reads that and nothing else of
the monitor. A kernel is tracked from its start (``kernel_started``, fed by jupyter_server's
``kernel_actions`` event), not from the tick that happens to notice it. The interval adapts to
the headroom (policy.next_interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..models import Action, Budget, KernelState, ProcessTreeMemory, Tick
from ..probe import limits
from ..probe.gpu import GpuProcessUsage, GpuReader, kernel_gpu
from ..probe.proc import History, sample_tree, tree_rss
from ..probe.proctree import walk_tree, walk_trees
from ..probe.remote_usage import RemoteUsagePoller
from ..probe.server import find_kernel, kernel_activity, kernel_ids, kernel_pgid, kernel_pid
from ..settings import MemGuardSettings
from .policy import PolicyState, decide, kernel_limit, next_interval

ActionSink = Callable[[Action, Tick], Awaitable[None]]
TickListener = Callable[[Tick], None]
GoneListener = Callable[[KernelState], None]


@dataclass
class _Tracked:
    """The monitor's own working state for one kernel between ticks (never handed out)."""

    kernel_id: str
    name: str
    pid: int | None
    pgid: int | None
    history: History
    started_at: float
    memory: ProcessTreeMemory | None = None
    growth_bytes_per_s: float = 0.0
    unavailable_reason: str | None = "not measured yet"
    gpu: dict[str, Any] | None = None
    pids: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _OsReading:
    """What one sampling pass read from the OS (in the worker thread)."""

    budget: Budget
    trees: dict[str, ProcessTreeMemory | None]
    took_s: float
    gpu: dict[int, list[GpuProcessUsage]] = field(default_factory=dict)


class Monitor:
    """Tracks the memory of every kernel of one server and publishes it, one Tick per pass."""

    def __init__(
        self,
        settings: MemGuardSettings,
        kernel_manager: Any,
        session_manager: Any,
        log: logging.Logger,
        act: ActionSink | None = None,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.sm = session_manager
        self.log = log
        self.act = act  # carries out the policy's actions; None = observe only
        self.on_tick: list[TickListener] = []
        self.on_kernel_gone: list[GoneListener] = []
        self.gpu = GpuReader()
        self.remote = RemoteUsagePoller(
            settings.remote_usage_interval, settings.remote_usage_timeout
        )
        self._kernels: dict[str, _Tracked] = {}
        self._paths: dict[str, str] = {}
        self._paths_read_at = 0.0
        self._policy_state = PolicyState()
        self._interval = settings.poll_interval
        self._sample_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        budget = self._read_budget()
        self._latest = Tick(number=0, at=time.time(), budget=budget, kernels={})

    # ----------------------------------------------------------------- the published state
    @property
    def latest(self) -> Tick:
        """The last Tick published (number 0: nothing sampled yet)."""
        return self._latest

    def read_budget_now(self) -> Budget:
        """Read the budget and OOM counters again (thread-safe; for forensics at a death)."""
        return self._read_budget(self._latest.budget.usage_bytes)

    def _read_budget(self, tree_rss_bytes: int = 0) -> Budget:
        """The budget under this server's settings (configured and spawner limits)."""
        return limits.read_budget(
            self.settings.memory_limit_bytes,
            tree_rss_bytes,
            spawner_limit=self.settings.spawner_mem_limit_bytes,
        )

    # ----------------------------------------------------------------- loop
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memguard-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.remote.close()

    def wake(self) -> None:
        """Run the next tick now (e.g. after a kernel started)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("memguard: monitor tick failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except asyncio.TimeoutError:
                pass

    def kernel_started(self, kernel_id: str) -> bool:
        """Track a kernel from its first moment (kernel_actions 'start'); sample it at once.

        Returns False when the kernel is already gone from the manager.
        """
        kernel = find_kernel(self.km, kernel_id)
        if kernel is None:
            return False
        self._track(kernel_id, kernel)
        self.wake()
        return True

    def _track(self, kernel_id: str, kernel: Any) -> _Tracked:
        tracked = self._kernels.get(kernel_id)
        pid = kernel_pid(kernel)
        if tracked is None:
            tracked = _Tracked(
                kernel_id,
                getattr(kernel, "kernel_name", "") or "",
                pid,
                kernel_pgid(kernel),
                History(self.settings.history_length),
                time.time(),
            )
            self._kernels[kernel_id] = tracked
        elif pid != tracked.pid:  # restarted: a new process, a new history
            tracked.pid, tracked.pgid, tracked.memory = pid, kernel_pgid(kernel), None
            tracked.history = History(self.settings.history_length)
            tracked.started_at, tracked.unavailable_reason = time.time(), "not measured yet"
        return tracked

    def _sync_with_manager(self) -> None:
        """Track every kernel of the manager (also those started before memguard) and let go
        of those that left it."""
        live = {}
        for kernel_id in kernel_ids(self.km):
            kernel = find_kernel(self.km, kernel_id)
            if kernel is not None:
                live[kernel_id] = kernel
        for kernel_id, kernel in live.items():
            self._track(kernel_id, kernel)
        for kernel_id in [k for k in self._kernels if k not in live]:
            gone = self._kernels.pop(kernel_id)
            self._paths.pop(kernel_id, None)
            self.remote.forget(kernel_id)
            state = self._state(gone, time.time(), self._latest.budget)
            for callback in self.on_kernel_gone:
                callback(state)

    def _read_os(self, pids: dict[str, int], peaks: dict[str, int], detail: bool) -> _OsReading:
        """Read the OS (worker thread): each kernel's own tree, never the whole host."""
        started = time.perf_counter()
        now = time.time()
        walked = walk_trees(pids.values())
        trees = {
            kid: sample_tree(pid, walked.get(pid, ()), peaks.get(kid, 0), detail, now=now)
            for kid, pid in pids.items()
        }
        server_rss = tree_rss(walk_tree(os.getpid()))
        budget = self._read_budget(server_rss)
        gpu = self.gpu.read() if self.gpu.available else {}
        return _OsReading(budget, trees, time.perf_counter() - started, gpu)

    async def sample(self, detail: bool = False) -> Tick:
        """Sample every kernel now and publish a Tick (no policy); returns it."""
        async with self._sample_lock:
            self._sync_with_manager()
            pids = {kid: t.pid for kid, t in self._kernels.items() if t.pid is not None}
            peaks = {kid: t.history.peak_bytes for kid, t in self._kernels.items()}
            reading = await asyncio.to_thread(self._read_os, pids, peaks, detail)
            for kernel_id, tracked in list(self._kernels.items()):
                if tracked.pid is None:
                    self._remote_sample(kernel_id, tracked)
                else:
                    self._local_sample(tracked, reading)
            await self.refresh_paths()
            return self._publish(reading)

    def _local_sample(self, tracked: _Tracked, reading: _OsReading) -> None:
        tree = reading.trees.get(tracked.kernel_id)
        if tree is None:
            tracked.memory, tracked.gpu, tracked.pids = None, None, ()
            tracked.unavailable_reason = "kernel process is not running"
            return
        tracked.memory, tracked.unavailable_reason, tracked.pids = tree, None, tree.pids
        tracked.gpu = kernel_gpu(tree.pids, reading.gpu)
        tracked.history.add(tree.sampled_at, tree.rss_bytes)
        tracked.growth_bytes_per_s = tracked.history.growth_rate(
            self.settings.growth_window, tree.sampled_at
        )

    def _remote_sample(self, kernel_id: str, tracked: _Tracked) -> None:
        """A kernel without a local process: its memory as its last usage_reply gave it.

        Its PIDs stay empty: the remote PID belongs to another host and is never signalled.
        """
        tracked.pids, tracked.gpu = (), None
        kernel = find_kernel(self.km, kernel_id)
        if kernel is None:
            return
        self.remote.refresh(kernel_id, kernel)
        usage, reason = self.remote.usage(kernel_id)
        if usage is None or usage.memory_bytes is None:
            tracked.memory = None
            tracked.unavailable_reason = f"kernel has no local process; {reason}"
            return
        if tracked.memory is not None and tracked.memory.sampled_at == usage.received_at:
            return  # no new answer since the last tick
        tracked.history.add(usage.received_at, usage.memory_bytes)
        tracked.memory = ProcessTreeMemory(
            pid=0,
            rss_bytes=usage.memory_bytes,
            peak_bytes=tracked.history.peak_bytes,
            pids=(),
            sampled_at=usage.received_at,
            source="usage_request",
        )
        tracked.unavailable_reason = None
        tracked.growth_bytes_per_s = tracked.history.growth_rate(
            self.settings.growth_window, usage.received_at
        )

    def _state(self, tracked: _Tracked, now: float, budget: Budget) -> KernelState:
        """The immutable picture of one kernel for this tick."""
        activity = kernel_activity(self.km, tracked.kernel_id, now)
        limit, source = kernel_limit(self.settings, budget)
        protected = self.settings.protected_kernels
        memory = tracked.memory
        return KernelState(
            kernel_id=tracked.kernel_id,
            name=tracked.name,
            pid=tracked.pid,
            pgid=tracked.pgid,
            pids=tracked.pids,
            path=self._paths.get(tracked.kernel_id),
            started_at=tracked.started_at,
            execution_state=activity.execution_state,
            idle_seconds=activity.idle_seconds,
            connections=activity.connections,
            protected=tracked.kernel_id in protected or tracked.name in protected,
            limit_bytes=limit,
            limit_source=source,
            memory=memory,
            unavailable_reason=tracked.unavailable_reason,
            growth_bytes_per_s=tracked.growth_bytes_per_s,
            peak_bytes=max(tracked.history.peak_bytes, memory.peak_bytes if memory else 0),
            gpu=tracked.gpu,
            history=tuple(tracked.history.samples),
        )

    def _publish(self, reading: _OsReading) -> Tick:
        now = time.time()
        kernels = {kid: self._state(t, now, reading.budget) for kid, t in self._kernels.items()}
        tick = Tick(
            number=self._latest.number + 1,
            at=now,
            budget=reading.budget,
            kernels=kernels,
            interval_s=self._interval,
            sample_cost_s=reading.took_s,
        )
        self._latest = tick
        return tick

    async def refresh_paths(self, max_age_s: float = 1.0) -> None:
        """Notebook path of each kernel, from the session manager (cached for max_age_s;
        0 reads afresh)."""
        if self.sm is None:
            return
        if max_age_s > 0 and time.monotonic() - self._paths_read_at < max_age_s:
            return
        self._paths_read_at = time.monotonic()
        try:
            sessions = await self.sm.list_sessions()
        except Exception:
            self.log.debug("memguard: could not list sessions", exc_info=True)
            return
        self._paths = {
            s["kernel"]["id"]: s.get("path") for s in sessions if s.get("kernel") and s.get("path")
        }

    async def current_paths(self) -> dict[str, str]:
        """Every kernel's notebook path as the session manager says now."""
        await self.refresh_paths(max_age_s=0)
        return dict(self._paths)

    async def path_of(self, kernel_id: str) -> str | None:
        """A kernel's notebook path, asking the session manager afresh if it is not known."""
        if kernel_id not in self._paths:
            await self.refresh_paths(max_age_s=0)
        return self._paths.get(kernel_id)

    async def tick(self) -> list[Action]:
        """One pass: sample, publish, decide, act. Returns the actions decided."""
        tick = await self.sample()
        actions: list[Action] = []
        if self.settings.guard_enabled:
            actions, self._policy_state = decide(tick, self.settings, self._policy_state)
            if self.act is not None:
                for action in actions:
                    await self.act(action, tick)
        self._interval = next_interval(tick, self.settings)
        for callback in self.on_tick:
            try:
                callback(tick)
            except Exception:
                self.log.exception("memguard: tick listener failed")
        return actions
