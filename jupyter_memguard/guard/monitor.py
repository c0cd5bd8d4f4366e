"""The monitor loop: sample every kernel, ask the policy, carry out its actions.

Sampling (/proc and cgroup reads) runs in a worker thread; the loop only touches the kernel
manager on the event loop. The interval adapts to the headroom (see policy.next_interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..models import Budget, KernelView, ProcessTreeMemory, Snapshot
from ..probe import limits
from ..probe import proc as sampling
from ..probe.gpu import GpuProcessUsage, GpuReader, kernel_gpu
from ..probe.remote_usage import RemoteUsagePoller
from ..settings import MemGuardSettings
from .policy import PolicySettings, PolicyState, decide, level, next_interval


@dataclass
class TrackedKernel:
    """What memguard knows about one live kernel between ticks."""

    kernel_id: str
    name: str
    pid: int | None
    history: sampling.History
    started_at: float
    memory: ProcessTreeMemory | None = None
    growth_bytes_per_s: float = 0.0
    unavailable_reason: str | None = None
    oom_adjusted: bool = False
    gpu: dict[str, Any] | None = None
    pids: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TickSample:
    """What one sampling pass read from the OS."""

    budget: Budget
    trees: dict[str, ProcessTreeMemory | None]
    took_s: float
    gpu: dict[int, list[GpuProcessUsage]] = field(default_factory=dict)


def kernel_pid(kernel: Any) -> int | None:
    """The local PID of a kernel, or None for kernels without one (remote provisioners)."""
    provisioner = getattr(kernel, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if isinstance(pid, int) and pid > 0:
        return pid
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) and pid > 0 else None


def set_oom_score_adj(pid: int, value: int, proc: Path = Path("/proc")) -> bool:
    """Make the OOM killer prefer this process (raising the score needs no privilege)."""
    try:
        (proc / str(pid) / "oom_score_adj").write_text(str(value))
        return True
    except OSError:
        return False


class Monitor:
    """Tracks the memory of every kernel of one server and applies the guard policy."""

    def __init__(
        self,
        settings: MemGuardSettings,
        kernel_manager: Any,
        session_manager: Any,
        log: logging.Logger,
        runner: Any = None,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.sm = session_manager
        self.log = log
        self.runner = runner  # carries out actions (actions.ActionRunner); None = observe only
        self.kernels: dict[str, TrackedKernel] = {}
        self.paths: dict[str, str] = {}
        self.budget: Budget = self._read_budget()
        self.policy_state = PolicyState()
        self.interval = settings.poll_interval
        self.last_tick_at = 0.0
        self.last_sample_cost_s = 0.0
        self.tick_count = 0
        self.on_tick: list[Any] = []  # callables(monitor) run after each tick (forensics, metrics)
        self.on_kernel_gone: list[Any] = []  # callables(tracked) when a kernel leaves the manager
        self._paths_read_at = 0.0
        self.gpu = GpuReader()
        self.remote = RemoteUsagePoller(
            settings.remote_usage_interval, settings.remote_usage_timeout
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ----------------------------------------------------------------- settings
    def kernel_limit(self) -> tuple[int, str]:
        """The limit that applies to one kernel and where it comes from."""
        resolved = self.settings.kernel_memory_limit.resolve(self.budget.limit_bytes)
        if resolved is not None and resolved <= self.budget.limit_bytes:
            return resolved, "kernel_memory_limit"
        return self.budget.limit_bytes, self.budget.limit_source

    def policy_settings(self) -> PolicySettings:
        s = self.settings
        return PolicySettings(
            kernel_memory_limit_bytes=s.kernel_memory_limit.resolve(self.budget.limit_bytes),
            warn_fraction=s.warn_fraction,
            halt_fraction=s.halt_fraction,
            kill_fraction=s.kill_fraction,
            min_headroom_bytes=s.min_headroom_bytes,
            action=s.action,
            interrupt_grace_s=s.interrupt_grace,
            shutdown_grace_s=s.shutdown_grace,
            idle_timeout_s=s.idle_timeout,
            cull_busy=s.cull_busy,
            cull_connected=s.cull_connected,
            cull_under_pressure=s.cull_under_pressure,
            runaway_horizon_s=s.runaway_horizon,
            dry_run=s.dry_run,
            min_interval_s=s.min_poll_interval,
            max_interval_s=s.poll_interval,
            max_growth_bytes_per_s=s.max_growth_rate_bytes,
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
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    def _live_kernels(self) -> dict[str, tuple[str, int | None]]:
        live: dict[str, tuple[str, int | None]] = {}
        for kernel_id in list(self.km.list_kernel_ids()):
            try:
                kernel = self.km.get_kernel(kernel_id)
            except KeyError:
                continue
            live[kernel_id] = (getattr(kernel, "kernel_name", "") or "", kernel_pid(kernel))
        return live

    def _sample(self, pids: dict[str, int], peaks: dict[str, int], detail: bool) -> TickSample:
        """Read the OS (runs in a worker thread)."""
        started = time.perf_counter()
        ppid_map = sampling.build_ppid_map()
        now = time.time()
        trees = {
            kid: sampling.sample_tree(pid, ppid_map, peaks.get(kid, 0), detail, now=now)
            for kid, pid in pids.items()
        }
        server_tree = sampling.tree_rss(sampling.process_tree(os.getpid(), ppid_map))
        budget = self._read_budget(server_tree)
        gpu = self.gpu.read() if self.gpu.available else {}
        return TickSample(budget, trees, time.perf_counter() - started, gpu)

    def read_budget_now(self) -> Budget:
        """Read the budget and OOM counters again (thread-safe; for forensics at a death)."""
        return self._read_budget(self.budget.usage_bytes)

    def _read_budget(self, tree_rss_bytes: int = 0) -> Budget:
        """The budget under this server's settings (configured and spawner limits)."""
        return limits.read_budget(
            self.settings.memory_limit_bytes,
            tree_rss_bytes,
            spawner_limit=self.settings.spawner_mem_limit_bytes,
        )

    async def sample(self, detail: bool = False) -> TickSample:
        """Sample every live kernel now and update the tracked state (no policy)."""
        live = self._live_kernels()
        for kernel_id, (name, pid) in live.items():
            if kernel_id not in self.kernels:
                self.kernels[kernel_id] = TrackedKernel(
                    kernel_id,
                    name,
                    pid,
                    sampling.History(self.settings.history_length),
                    time.time(),
                )
                self.wake()
            tracked = self.kernels[kernel_id]
            if pid != tracked.pid:  # restarted: a new process, a new history
                tracked.pid, tracked.memory, tracked.oom_adjusted = pid, None, False
                tracked.history = sampling.History(self.settings.history_length)
        for kernel_id in [k for k in self.kernels if k not in live]:
            gone = self.kernels.pop(kernel_id)
            self.paths.pop(kernel_id, None)
            self.remote.forget(kernel_id)
            for callback in self.on_kernel_gone:
                callback(gone)
        pids = {kid: t.pid for kid, t in self.kernels.items() if t.pid is not None}
        peaks = {kid: t.history.peak_bytes for kid, t in self.kernels.items()}
        result = await asyncio.to_thread(self._sample, pids, peaks, detail)
        self.budget = result.budget
        self.last_sample_cost_s = result.took_s
        for kernel_id, tracked in self.kernels.items():
            if tracked.pid is None:
                self._remote_sample(kernel_id, tracked)
                continue
            tree = result.trees.get(kernel_id)
            if tree is None:
                tracked.memory, tracked.gpu = None, None
                tracked.unavailable_reason = "kernel process is not running"
                continue
            tracked.memory, tracked.unavailable_reason, tracked.pids = tree, None, tree.pids
            tracked.gpu = kernel_gpu(tree.pids, result.gpu)
            tracked.history.add(tree.sampled_at, tree.rss_bytes)
            tracked.growth_bytes_per_s = tracked.history.growth_rate(
                self.settings.growth_window, tree.sampled_at
            )
            if not tracked.oom_adjusted and self.settings.oom_score_adj is not None:
                tracked.oom_adjusted = set_oom_score_adj(tracked.pid, self.settings.oom_score_adj)
        return result

    def _remote_sample(self, kernel_id: str, tracked: TrackedKernel) -> None:
        """A kernel without a local process: its memory as its last usage_reply gave it.

        Its PIDs stay empty: the remote PID belongs to another host and is never signalled.
        """
        tracked.pids, tracked.gpu = (), None
        try:
            self.remote.refresh(kernel_id, self.km.get_kernel(kernel_id))
        except KeyError:
            return
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
        self.paths = {
            s["kernel"]["id"]: s.get("path") for s in sessions if s.get("kernel") and s.get("path")
        }

    def views(self, now: float) -> tuple[KernelView, ...]:
        """The policy's picture of every kernel."""
        views = []
        for kernel_id, tracked in self.kernels.items():
            activity = self.activity(kernel_id, now)
            views.append(
                KernelView(
                    kernel_id=kernel_id,
                    rss_bytes=tracked.memory.rss_bytes if tracked.memory else None,
                    growth_bytes_per_s=tracked.growth_bytes_per_s,
                    idle_seconds=activity["idle_seconds"],
                    execution_state=activity["execution_state"],
                    connections=activity["connections"],
                    protected=self.is_protected(kernel_id),
                    path=self.paths.get(kernel_id),
                )
            )
        return tuple(views)

    def is_protected(self, kernel_id: str) -> bool:
        tracked = self.kernels.get(kernel_id)
        protected = self.settings.protected_kernels
        return kernel_id in protected or (tracked is not None and tracked.name in protected)

    def activity(self, kernel_id: str, now: float) -> dict[str, Any]:
        """Execution state, idle seconds and open connections from the kernel manager."""
        try:
            kernel = self.km.get_kernel(kernel_id)
        except KeyError:
            return {"execution_state": "dead", "idle_seconds": 0.0, "connections": 0}
        last = getattr(kernel, "last_activity", None)
        idle = 0.0
        if isinstance(last, datetime):
            if last.tzinfo is None:
                last = last.replace(tzinfo=timezone.utc)
            idle = max(0.0, now - last.timestamp())
        connections = getattr(self.km, "_kernel_connections", {}).get(kernel_id, 0)
        return {
            "execution_state": getattr(kernel, "execution_state", None) or "unknown",
            "idle_seconds": round(idle, 1),
            "connections": int(connections),
        }

    async def tick(self) -> list[Any]:
        """One pass: sample, decide, act. Returns the actions decided."""
        await self.sample()
        await self.refresh_paths()
        now = time.time()
        snapshot = Snapshot(
            now=now,
            budget_limit_bytes=self.budget.limit_bytes,
            budget_usage_bytes=self.budget.usage_bytes,
            kernels=self.views(now),
        )
        settings = self.policy_settings()
        actions: list[Any] = []
        if self.settings.guard_enabled:
            actions, self.policy_state = decide(snapshot, settings, self.policy_state)
            for action in actions:
                if self.runner is not None:
                    await self.runner.carry_out(action, self)
        self.interval = next_interval(snapshot, settings)
        self.last_tick_at = now
        self.tick_count += 1
        for callback in self.on_tick:
            try:
                callback(self)
            except Exception:
                self.log.exception("memguard: tick callback failed")
        return actions

    # ----------------------------------------------------------------- views for the API
    def kernel_json(self, kernel_id: str, history: bool = False) -> dict[str, Any]:
        """The REST representation of one tracked kernel."""
        tracked = self.kernels[kernel_id]
        limit, source = self.kernel_limit()
        s = self.settings
        memory = None
        if tracked.memory is not None:
            m = tracked.memory
            memory = {
                "rss_bytes": m.rss_bytes,
                "peak_bytes": max(m.peak_bytes, tracked.history.peak_bytes),
                "growth_bytes_per_s": round(tracked.growth_bytes_per_s, 1),
                "children": list(m.children),
                "pss_bytes": m.pss_bytes,
                "uss_bytes": m.uss_bytes,
                "sampled_at": round(m.sampled_at, 3),
                "source": m.source,
            }
        rss = tracked.memory.rss_bytes if tracked.memory else None
        data: dict[str, Any] = {
            "id": kernel_id,
            "name": tracked.name,
            "path": self.paths.get(kernel_id),
            "pid": tracked.pid,
            **self.activity(kernel_id, time.time()),
            "protected": self.is_protected(kernel_id),
            "memory": memory,
            "memory_unavailable_reason": tracked.unavailable_reason,
            "limit_bytes": limit,
            "limit_source": source,
            "warn_bytes": int(limit * s.warn_fraction),
            "halt_bytes": int(limit * s.halt_fraction),
            "level": level(rss, limit, self.policy_settings()) if rss is not None else "ok",
            "gpu": tracked.gpu,
        }
        if history:
            data["history"] = tracked.history.as_list()
        return data

    def status_json(self) -> dict[str, Any]:
        s = self.settings
        limit, source = self.kernel_limit()
        return {
            "budget": self.budget.to_json(),
            "gpu": self.gpu.status_json(),
            "kernels_rss_bytes": sum(
                t.memory.rss_bytes for t in self.kernels.values() if t.memory is not None
            ),
            "kernel_count": len(self.kernels),
            "interval_seconds": round(self.interval, 4),
            "last_tick_at": self.last_tick_at,
            "last_sample_cost_seconds": round(self.last_sample_cost_s, 6),
            "settings": {
                "guard_enabled": s.guard_enabled,
                "dry_run": s.dry_run,
                "memory_limit_bytes": s.memory_limit_bytes,
                "kernel_memory_limit_bytes": limit,
                "kernel_memory_limit_source": source,
                "warn_fraction": s.warn_fraction,
                "halt_fraction": s.halt_fraction,
                "kill_fraction": s.kill_fraction,
                "min_headroom_bytes": s.min_headroom_bytes,
                "action": s.action,
                "interrupt_grace": s.interrupt_grace,
                "shutdown_grace": s.shutdown_grace,
                "idle_timeout": s.idle_timeout,
                "cull_busy": s.cull_busy,
                "cull_connected": s.cull_connected,
                "cull_under_pressure": s.cull_under_pressure,
                "runaway_horizon": s.runaway_horizon,
                "poll_interval": s.poll_interval,
                "min_poll_interval": s.min_poll_interval,
                "oom_score_adj": s.oom_score_adj,
                "protected_kernels": list(s.protected_kernels),
            },
        }
