"""The monitor loop: sample every kernel, publish one Tick, ask the policy, hand on its actions.

Sampling (/proc, cgroup and NVML reads) runs in a worker thread; the loop itself touches the
kernel and session managers only on the event loop. Each pass publishes one immutable ``Tick``:
every later stage (policy, actions, forensics, REST, metrics) reads that and nothing else of
the monitor. Kernels come and go only through the lifecycle's events (``on_lifecycle``): a
kernel is tracked from its start, not from the tick that happens to notice it, and its history
begins afresh with each new process. The interval adapts to the headroom (policy.next_interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from ..lifecycle import (
    Died,
    Gone,
    KernelLife,
    Lifecycle,
    LifecycleEvent,
    Orphaned,
    Restarted,
    Started,
)
from ..models import (
    Action,
    AgentView,
    Breakdown,
    Budget,
    GpuDevice,
    KernelState,
    ProcessTreeMemory,
    Tick,
)
from ..probe import limits
from ..probe.breakdown import (
    Owners,
    breakdown,
    unowned_from_meminfo,
    unowned_from_memory_stat,
)
from ..probe.breakdown import (
    in_cgroup as in_cgroup_scope,
)
from ..probe.gpu import GpuProcessUsage, GpuReader, kernel_gpu
from ..probe.proc import History, sample_tree, tree_rss
from ..probe.proctree import (
    HostScan,
    KernelRoot,
    ProcessPss,
    TreePss,
    TreeWalker,
    escaped_members,
    memory_cgroup,
    read_children,
    scan_host,
    walk_tree,
)
from ..probe.remote_usage import RemoteUsagePoller
from ..probe.server import KernelManager, SessionManager, find_kernel, kernel_activity
from ..settings import MemGuardSettings
from .policy import PolicyState, decide, forget, kernel_limit, next_interval

ActionSink = Callable[[Action, Tick], Awaitable[None]]
TerminalRoots = Callable[[], dict[str, int]]  # terminal name → its shell's pid

HOST_SCAN_INTERVAL_S = 10.0  # escapes and the budget breakdown: a full /proc scan this often
PRESSED_SCAN_INTERVAL_S = 1.0  # ... and this often while the budget is over its warn line
QUIET_SCAN_INTERVAL_S = 30.0  # ... and this seldom while nothing moved since the last one
SCAN_MOVE_BYTES = 64 * 2**20  # the budget's usage moved by this much (or 1 % of its limit)
EXACT_REFRESH_S = 5.0  # a multi-process kernel's exact figure is refreshed this often for display
EXACT_FROM = 0.9  # ... and every tick from this fraction of its warn line (or the budget's)
TickListener = Callable[[Tick], None]


@dataclass
class _Tracked:
    """The monitor's own sampling state for one kernel identity (never handed out): made at
    its Started or Restarted, dropped at its Gone."""

    life: KernelLife
    history: History
    alive: bool = True  # False from its process's death until the restarter's new one
    memory: ProcessTreeMemory | None = None
    growth_bytes_per_s: float = 0.0
    unavailable_reason: str | None = "not measured yet"
    gpu: dict[str, Any] | None = None
    pids: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Root:
    """Where a kernel's processes start: its pid and the process group it was started in."""

    pid: int
    pgid: int | None
    busy: bool = False  # running a cell in the last tick: its tree is walked every tick


def _with_holders(
    devices: tuple[GpuDevice, ...], kernels: dict[str, KernelState]
) -> tuple[GpuDevice, ...]:
    """Each device with the kernels that hold memory on it, largest first."""
    result = []
    for device in devices:
        holders = [
            (kid, d["used_bytes"])
            for kid, state in kernels.items()
            for d in (state.gpu or {}).get("devices", ())
            if d["index"] == device.index and d["used_bytes"] > 0
        ]
        holders.sort(key=lambda holder: holder[1], reverse=True)
        result.append(replace(device, kernels=tuple(holders)))
    return tuple(result)


def host_scan_interval(
    budget: Budget,
    warn_fraction: float,
    last: tuple[int, frozenset[str]] | None,
    kernels: Collection[str],
) -> float:
    """Seconds between two host scans: often under pressure, seldom while nothing moved.

    ``last`` is (the budget's usage, the kernels) at the last scan. A scan finds work that
    escaped its kernel's tree and who holds the budget; neither changes while the usage and
    the kernels stay as they were, and a scan costs about 50 µs per process on the host (a
    third of memguard's CPU at idle when made every 10 s)."""
    if budget.usage_bytes >= warn_fraction * budget.limit_bytes:
        return PRESSED_SCAN_INTERVAL_S
    if last is None or last[1] != frozenset(kernels):
        return HOST_SCAN_INTERVAL_S
    moved = abs(budget.usage_bytes - last[0])
    if moved >= max(SCAN_MOVE_BYTES, budget.limit_bytes // 100):
        return HOST_SCAN_INTERVAL_S
    return QUIET_SCAN_INTERVAL_S


def _own_processes(kernel_roots: set[int]) -> tuple[int, ...]:
    """This server and its descendants, without walking into its kernels' trees again."""
    server = os.getpid()
    pids: list[int] = [server]
    for child in read_children(server):
        if child not in kernel_roots:
            pids.extend(walk_tree(child))
    return tuple(pids)


def _own_memory_cgroup() -> str | None:
    """This server's memory cgroup as /proc/self/cgroup names it (the breakdown's scope)."""
    try:
        with open("/proc/self/cgroup") as handle:
            return memory_cgroup(handle.read())
    except OSError:
        return None


@dataclass(frozen=True)
class _OsReading:
    """What one sampling pass read from the OS (in the worker thread)."""

    budget: Budget
    trees: dict[str, ProcessTreeMemory | None]
    took_s: float
    gpu: dict[int, list[GpuProcessUsage]] = field(default_factory=dict)
    gpu_devices: tuple[GpuDevice, ...] = ()


class Monitor:
    """Tracks the memory of every kernel of one server and publishes it, one Tick per pass."""

    def __init__(
        self,
        settings: MemGuardSettings,
        kernel_manager: KernelManager,
        session_manager: SessionManager | None,
        lifecycle: Lifecycle,
        log: logging.Logger,
        act: ActionSink | None = None,
        terminals: TerminalRoots | None = None,
        exact_of: Callable[[str], int | None] | None = None,
        still_of: Callable[[str], bool] | None = None,
        shmem_of: Callable[[str], int] | None = None,
        cells_of: Callable[[str], tuple[str | None, AgentView | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.sm = session_manager
        self.lifecycle = lifecycle
        self.log = log
        self.act = act  # carries out the policy's actions; None = observe only
        self.terminals = terminals or dict
        self.exact_of = exact_of  # a kernel's own memory cgroup, where it has one
        self.still_of = still_of  # ... and whether its charge stayed put at that read
        self.shmem_of = shmem_of  # ... and the shared memory in that figure
        self.cells_of = cells_of  # where its cells come from, and what its agent said
        self.on_tick: list[TickListener] = []
        self.last_tick_cost_s = 0.0  # CPU seconds of the last whole pass (loop and thread)
        # The event loop's CPU in this pass's own code: between its awaits only, so that what
        # other coroutines do while it waits for the worker thread is not counted as its cost.
        self._loop_cpu_s = 0.0
        self.last_tick_wall_s = 0.0
        self.gpu = GpuReader()
        self.remote = RemoteUsagePoller(
            settings.remote_usage_interval, settings.remote_usage_timeout
        )
        self._kernels: dict[str, _Tracked] = {}
        self._orphans: dict[str, int] = {}  # kernels of a dead server, kept: kernel id → pid
        self._paths: dict[str, str] = {}
        self._paths_read_at = 0.0
        self._policy_state = PolicyState()
        self._interval = settings.poll_interval
        self._sample_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Worker-thread state (one sampling pass at a time, under _sample_lock):
        self._pss = TreePss()
        self._walker = TreeWalker()
        self._process_pss = ProcessPss()  # the breakdown's processes, each page once
        self._exact: dict[str, tuple[float, int]] = {}  # kernel → (read at, exact bytes)
        self._escaped: dict[str, tuple[int, ...]] = {}  # kernel → processes that left its tree
        self._scanned_at = -1e9
        self._scanned: tuple[int, frozenset[str]] | None = None  # (usage, kernels) then
        self._breakdown: Breakdown | None = None
        self._terminal_roots: dict[str, int] = {}
        self._scan_task: asyncio.Task[None] | None = None
        self._own_cgroup = _own_memory_cgroup()
        self._budget = limits.BudgetReader(
            settings.memory_limit_bytes, settings.spawner_mem_limit_bytes
        )
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
        return self._budget.read(tree_rss_bytes)

    def halting(self) -> frozenset[str]:
        """The kernels whose escalation is under way (the guard's last decision)."""
        return frozenset(
            kid
            for kid, guard in self._policy_state.kernels.items()
            if guard.stage not in ("none", "kept")
        )

    # ----------------------------------------------------------------- loop
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memguard-monitor")

    async def stop(self) -> None:
        if self._scan_task is not None:
            self._scan_task.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.remote.close()
        self._walker.close()
        self._budget.close()

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

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        """Track each kernel identity from its start; a new process begins a new history."""
        kernel_id = event.life.kernel_id
        if isinstance(event, (Started, Restarted)):
            self._kernels[kernel_id] = _Tracked(event.life, History(self.settings.history_length))
            self._policy_state = forget(self._policy_state, kernel_id)
            self.wake()  # sample it at once
        elif isinstance(event, Died):
            tracked = self._kernels.get(kernel_id)
            if tracked is not None:
                tracked.memory, tracked.gpu, tracked.pids = None, None, ()
                tracked.unavailable_reason = "kernel process is not running"
                tracked.alive = False
            self._policy_state = forget(self._policy_state, kernel_id)
        elif isinstance(event, Orphaned) and event.life.pid is not None:
            self._orphans[kernel_id] = event.life.pid  # shown in the breakdown while it runs
        elif isinstance(event, Gone):
            self._kernels.pop(kernel_id, None)
            self._paths.pop(kernel_id, None)
            self.remote.forget(kernel_id)
            self._policy_state = forget(self._policy_state, kernel_id)

    def _read_os(self, roots: dict[str, _Root], peaks: dict[str, int], detail: bool) -> _OsReading:
        """Read the OS (worker thread): each kernel's own tree, never the whole host, except
        for a host scan every few seconds (escaped work, the budget breakdown)."""
        started = time.thread_time()
        now = time.time()
        last = self._latest.budget
        # The budget's usage before the kernels are read, and again after: what lies outside
        # the kernels is worked out from the lower of the two, so a kernel growing (or
        # freeing) fast between the reads is never taken for memory outside the kernels.
        usage_before = self._budget.usage()
        # The kernel's own memory cgroup gives the exact figure at once (one file read); a
        # charge counter that did not move also spares its tree's stat reads (TreeWalker).
        own = {kid: self.exact_of(kid) if self.exact_of is not None else None for kid in roots}
        still = {
            root.pid
            for kid, root in roots.items()
            if own[kid] is not None and not root.busy and self.still_of and self.still_of(kid)
        }
        walked = self._walker.trees(
            (r.pid for r in roots.values()),
            must_walk={r.pid for r in roots.values() if r.busy},
            still=still,
        )
        trees: dict[str, ProcessTreeMemory | None] = {}
        for kid, root in roots.items():
            pids = walked.get(root.pid, ())
            escaped = [p for p in self._escaped.get(kid, ()) if p not in pids]
            for pid in escaped:  # an escaped process and its own children
                pids += tuple(p for p in walk_tree(pid) if p not in pids)
            tree = sample_tree(
                root.pid,
                pids,
                peaks.get(kid, 0),
                detail,
                now=now,
                known_rss=self._walker.rss,
                read_hwm=root.pid not in self._walker.unchanged,
                exact_bytes=own[kid],
            )
            if tree is not None and own[kid] is None:
                tree = self._with_pss(kid, tree, now, last)
            trees[kid] = tree
        self._pss.retain(roots.keys())
        # Usage against a configured limit: the server's own processes plus each kernel's
        # figure with every page counted once (summed RSS would count forked workers again).
        kernels_bytes = sum(tree.decision_bytes for tree in trees.values() if tree is not None)
        server_rss = 0
        if self.settings.memory_limit_bytes or self.settings.spawner_mem_limit_bytes:
            # Only a configured (or spawner's) limit counts this server's own processes; their
            # walk reads every thread of the server, so it is not done for nothing.
            server_rss = tree_rss(_own_processes({r.pid for r in roots.values()}))
        budget = self._read_budget(server_rss + kernels_bytes)
        if budget.usage_source == "server_tree_rss":
            outside = server_rss  # the kernels' part is the very figure read above
        else:
            outside = max(0, min(usage_before, budget.usage_bytes) - kernels_bytes)
        budget = replace(budget, outside_bytes=outside)
        gpu = self.gpu.read() if self.gpu.available else {}
        devices = tuple(self.gpu.devices(gpu)) if self.gpu.available else ()
        return _OsReading(budget, trees, time.thread_time() - started, gpu, devices)

    def _with_pss(
        self, kid: str, tree: ProcessTreeMemory, now: float, budget: Budget
    ) -> ProcessTreeMemory:
        """Add the exact figure (PSS over the tree) where it matters: a tree of several
        processes near its warn line or under budget pressure (every tick), else every few
        seconds for display. It costs ~10 ms per GiB of summed RSS, so not for every tree."""
        if len(tree.pids) < 2:
            self._exact.pop(kid, None)
            return tree
        limit, _ = kernel_limit(self.settings, budget)
        approach = EXACT_FROM * self.settings.warn_fraction
        near = tree.rss_bytes >= approach * limit or budget.usage_bytes >= approach * (
            budget.limit_bytes
        )
        last = self._exact.get(kid)
        if near or last is None or now - last[0] >= EXACT_REFRESH_S:
            reading = self._pss.read(kid, tree.pids)
            if reading is None:
                return tree
            last = (now, reading.bytes)
            self._exact[kid] = last
        return replace(tree, exact_bytes=last[1], exact_at=last[0])

    async def _scan_host(self, tick: Tick) -> None:
        """The slow host scan, in its own worker-thread call off the tick's path: a busy host
        makes it dearer, never the tick."""
        try:
            await asyncio.to_thread(self._scan, tick)
        except Exception:
            self.log.exception("memguard: host scan failed")
        finally:
            self._scan_task = None

    def _scan(self, tick: Tick) -> HostScan:
        """Processes that left a kernel's tree but not its session or process group
        (``!nohup job &``), and who holds the budget (worker thread)."""
        budget = tick.budget
        in_cgroup = budget.limit_source in ("cgroup_v1", "cgroup_v2")
        scan = scan_host(cgroups=in_cgroup)
        self._scanned_at = time.monotonic()
        self._scanned = (budget.usage_bytes, frozenset(tick.kernels))
        roots = {k.kernel_id: _Root(k.pid, k.pgid) for k in tick.kernels.values() if k.pid}
        trees = {kid: tick.kernels[kid].memory for kid in roots}
        kernel_roots = {
            kid: KernelRoot(root.pid, None, root.pgid, trees[kid].pids if trees.get(kid) else ())
            for kid, root in roots.items()
        }
        self._escaped = escaped_members(kernel_roots, scan)
        owners = Owners(
            server_pid=os.getpid(),
            kernels={
                kid: tuple(dict.fromkeys((tree.pids if tree else ()) + self._escaped.get(kid, ())))
                for kid, tree in trees.items()
            },
            terminals=self._terminal_roots,
            kernel_bytes={kid: t.decision_bytes for kid, t in trees.items() if t is not None},
            kernel_method="decision",
            orphans=dict(self._orphans),
            kernel_shmem={
                kid: self.shmem_of(kid)
                for kid, t in trees.items()
                if t is not None and t.exact_method == "cgroup" and self.shmem_of is not None
            },
        )
        unowned = (
            unowned_from_memory_stat(limits.read_memory_stat(budget.cgroup_path))
            if in_cgroup and budget.cgroup_path
            else unowned_from_meminfo(limits.read_meminfo())
        )
        scope = self._own_cgroup if in_cgroup else None
        kernel_pids = {p for pids in owners.kernels.values() for p in pids}
        counted = self._process_pss.of(
            info
            for info in scan.processes.values()
            if info.pid not in kernel_pids
            and info.rss_bytes > 0
            and info.state != "Z"
            and (scope is None or in_cgroup_scope(info.cgroup, scope))
        )
        self._breakdown = breakdown(
            scan, owners, budget.usage_bytes, cgroup_path=scope, unowned=unowned, pss=counted
        )
        return scan

    async def sample(self, detail: bool = False) -> Tick:
        """Sample every kernel now and publish a Tick (no policy); returns it."""
        async with self._sample_lock:
            cpu = time.thread_time()
            self.lifecycle.reconcile()  # kernels that came or left without an event
            for kernel_id, tracked in self._kernels.items():
                tracked.life = self.lifecycle.life(kernel_id) or tracked.life
            last = self._latest.kernels
            roots = {
                kid: _Root(t.life.pid, t.life.pgid, kid in last and last[kid].busy)
                for kid, t in self._kernels.items()
                if t.life.pid is not None and t.alive
            }
            # The highest seen so far: samples, and VmHWM where read (between two samples).
            peaks = {
                kid: max(t.history.peak_bytes, t.memory.peak_bytes if t.memory else 0)
                for kid, t in self._kernels.items()
            }
            self._terminal_roots = self.terminals()
            self._loop_cpu_s += time.thread_time() - cpu
            reading = await asyncio.to_thread(self._read_os, roots, peaks, detail)
            cpu = time.thread_time()
            for kernel_id, tracked in list(self._kernels.items()):
                if (
                    tracked.life.remote
                    and tracked.unavailable_reason != "kernel process is not running"
                ):
                    self._remote_sample(kernel_id, tracked)
                else:
                    self._local_sample(tracked, reading)
            self._loop_cpu_s += time.thread_time() - cpu
            await self.refresh_paths()
            cpu = time.thread_time()
            tick = self._publish(reading)
            self._loop_cpu_s += time.thread_time() - cpu
        every = host_scan_interval(
            tick.budget, self.settings.warn_fraction, self._scanned, tick.kernels
        )
        due = time.monotonic() - self._scanned_at >= every
        if due and self._scan_task is None:
            self._scan_task = asyncio.create_task(self._scan_host(tick))
        return tick

    def _local_sample(self, tracked: _Tracked, reading: _OsReading) -> None:
        tree = reading.trees.get(tracked.life.kernel_id)
        if tree is None:
            tracked.memory, tracked.gpu, tracked.pids = None, None, ()
            tracked.unavailable_reason = "kernel process is not running"
            return
        tracked.memory, tracked.unavailable_reason, tracked.pids = tree, None, tree.pids
        tracked.gpu = kernel_gpu(tree.pids, reading.gpu)
        tracked.history.add(tree.sampled_at, tree.decision_bytes)  # what the guard decides on
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

    def _state(self, tracked: _Tracked, now: float, limit: tuple[int, str]) -> KernelState:
        """The immutable picture of one kernel for this tick."""
        life = tracked.life
        activity = kernel_activity(self.km, life.kernel_id, now)
        cells_source, agent = self.cells_of(life.kernel_id) if self.cells_of else (None, None)
        limit_bytes, source = limit
        protected = self.settings.protected_kernels
        memory = tracked.memory
        return KernelState(
            kernel_id=life.kernel_id,
            name=life.name,
            pid=life.pid if tracked.alive else None,
            pgid=life.pgid if tracked.alive else None,
            pids=tracked.pids,
            path=self._paths.get(life.kernel_id),
            started_at=life.started_at,
            execution_state=activity.execution_state,
            idle_seconds=activity.idle_seconds,
            connections=activity.connections,
            protected=life.kernel_id in protected or life.name in protected,
            limit_bytes=limit_bytes,
            limit_source=source,
            memory=memory,
            unavailable_reason=tracked.unavailable_reason,
            growth_bytes_per_s=tracked.growth_bytes_per_s,
            # The peak of the figure the guard decides on (``memory.peak_bytes`` is the RSS
            # peak, VmHWM included: another basis, not shown beside the decision figure).
            peak_bytes=tracked.history.peak_bytes,
            gpu=tracked.gpu,
            history=tuple(tracked.history.samples),
            cells_source=cells_source,
            agent=agent,
        )

    def _publish(self, reading: _OsReading) -> Tick:
        now = time.time()
        limit = kernel_limit(self.settings, reading.budget)  # the same for every kernel
        kernels = {kid: self._state(t, now, limit) for kid, t in self._kernels.items()}
        tick = Tick(
            number=self._latest.number + 1,
            at=now,
            budget=reading.budget,
            kernels=kernels,
            interval_s=self._interval,
            sample_cost_s=reading.took_s,
            breakdown=self._breakdown,
            gpu_devices=_with_holders(reading.gpu_devices, kernels),
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
        started = time.perf_counter()
        self._loop_cpu_s = 0.0
        tick = await self.sample()
        cpu = time.thread_time()
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
        # What a pass costs: the event loop's CPU in its code, plus the worker thread's reading.
        self.last_tick_cost_s = self._loop_cpu_s + time.thread_time() - cpu + tick.sample_cost_s
        self.last_tick_wall_s = time.perf_counter() - started
        return actions
