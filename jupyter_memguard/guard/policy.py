"""Pure guard decisions: Snapshot + settings + state → actions + new state.

No I/O and no clock reads: time comes in ``Snapshot.now``. The monitor carries out the
actions; in dry-run mode it only reports them, but the state still advances (so a report is
made once per step, as a real halt would be).

Escalation of one kernel over its limit L (fractions of L):
  * ≥ warn: one ``warn`` per crossing (re-armed once the kernel is back under warn);
  * ≥ halt: ``interrupt`` (or ``restart`` when ``action == "restart"``); if still ≥ warn
    ``interrupt_grace_s`` later: ``shutdown`` (SIGTERM); ``shutdown_grace_s`` after that:
    ``kill``. Falling under warn after the interrupt resets the escalation (it worked: the
    memory was given back);
  * ≥ kill: ``kill`` at once, whatever the stage.
The budget (all of memory) escalates the same way on one victim at a time (the largest).
Before that, when usage crosses warn of the budget, idle kernels are culled largest-first,
except while a halt is under way or a kernel's own growth will reach the halt line within
``runaway_horizon_s`` (culling bystanders would not stop a runaway).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from ..models import Action, KernelView, Snapshot

Stage = Literal["none", "interrupted", "restarted", "shutdown", "killed"]
Level = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class PolicySettings:
    """The knobs of the guard, with bytes already resolved."""

    kernel_memory_limit_bytes: int | None = None
    warn_fraction: float = 0.8
    halt_fraction: float = 0.9
    kill_fraction: float = 0.95
    min_headroom_bytes: int = 100 * 2**20
    action: str = "interrupt"
    interrupt_grace_s: float = 2.0
    shutdown_grace_s: float = 3.0
    idle_timeout_s: float = 0.0
    cull_busy: bool = False
    cull_connected: bool = True
    cull_under_pressure: bool = True
    runaway_horizon_s: float = 10.0
    dry_run: bool = False
    min_interval_s: float = 0.05
    max_interval_s: float = 2.0
    max_growth_bytes_per_s: int = 2 * 2**30

    def validate(self) -> None:
        """Raise ValueError naming the field for any inconsistent value."""
        for f in fields(self):
            value = getattr(self, f.name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and (math.isnan(value) or value < 0):
                raise ValueError(f"{f.name} must be a non-negative number, got {value!r}")
        if not 0 < self.warn_fraction < self.halt_fraction < self.kill_fraction <= 1:
            raise ValueError(
                "warn_fraction < halt_fraction < kill_fraction <= 1 must hold, got "
                f"{self.warn_fraction}, {self.halt_fraction}, {self.kill_fraction}"
            )
        if self.action not in ("interrupt", "restart"):
            raise ValueError(f"action must be 'interrupt' or 'restart', got {self.action!r}")
        if not 0 < self.min_interval_s <= self.max_interval_s:
            raise ValueError("min_interval_s must be positive and at most max_interval_s")
        if self.max_growth_bytes_per_s <= 0:
            raise ValueError("max_growth_bytes_per_s must be positive")
        if self.kernel_memory_limit_bytes is not None and self.kernel_memory_limit_bytes <= 0:
            raise ValueError("kernel_memory_limit_bytes must be positive")


@dataclass(frozen=True)
class KernelGuardState:
    """Where one kernel stands in the escalation."""

    stage: Stage = "none"
    stage_since: float = 0.0
    warned: bool = False
    culled: bool = False
    releasing_bytes: int = 0  # what a cull or kill in flight will give back


@dataclass(frozen=True)
class PolicyState:
    """The guard's memory between ticks: per-kernel stages and the budget victim."""

    kernels: Mapping[str, KernelGuardState] = field(default_factory=dict)
    budget_victim: str | None = None
    budget_warned: bool = False


def level(rss: int | None, limit: int, settings: PolicySettings) -> Level:
    """Display level of a memory figure against its limit."""
    if rss is None or limit <= 0:
        return "ok"
    if rss >= settings.halt_fraction * limit:
        return "critical"
    if rss >= settings.warn_fraction * limit:
        return "warning"
    return "ok"


def human(size: float) -> str:
    """Bytes as '3.7 GB' (decimal units), for reasons people read."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _cullable(kernel: KernelView, settings: PolicySettings) -> bool:
    if kernel.protected or kernel.rss_bytes is None:
        return False
    if kernel.execution_state != "idle" and not settings.cull_busy:
        return False
    return kernel.connections == 0 or settings.cull_connected


def _escalate(
    kernel_id: str,
    guard: KernelGuardState,
    over_warn: bool,
    over_halt: bool,
    over_kill: bool,
    now: float,
    settings: PolicySettings,
    make: Callable[[str], Action],
    rss: int = 0,
) -> tuple[list[Action], KernelGuardState]:
    """One step of the halt state machine for one kernel.

    After an interrupt (or restart) the kernel is let go only once it is back under the warn
    line: a cell stopped while its data still fills the memory is still a hazard, so holding
    on past the grace period leads to the shutdown.
    """
    if guard.stage == "killed":
        return [], guard
    if over_kill:
        return [make("kill")], replace(guard, stage="killed", stage_since=now, releasing_bytes=rss)
    if guard.stage in ("interrupted", "restarted"):
        if not over_warn:
            return [], replace(guard, stage="none", stage_since=now)
        if now - guard.stage_since >= settings.interrupt_grace_s:
            return [make("shutdown")], replace(guard, stage="shutdown", stage_since=now)
        return [], guard
    if guard.stage == "shutdown":
        if now - guard.stage_since >= settings.shutdown_grace_s:
            return [make("kill")], replace(
                guard, stage="killed", stage_since=now, releasing_bytes=rss
            )
        return [], guard
    if over_halt:
        if settings.action == "restart":
            return [make("restart")], replace(guard, stage="restarted", stage_since=now)
        return [make("interrupt")], replace(guard, stage="interrupted", stage_since=now)
    return [], guard


def _runaway(
    kernels: tuple[KernelView, ...], bytes_to_halt: float, settings: PolicySettings
) -> KernelView | None:
    """The kernel whose own growth reaches the halt line within the runaway horizon, if any.

    Pressure caused by one growing kernel is not relieved by culling idle bystanders: it only
    delays that kernel's halt by a moment and costs their users their state.
    """
    if settings.runaway_horizon_s <= 0:
        return None
    growing = [k for k in kernels if not k.protected and k.growth_bytes_per_s > 0]
    for kernel in sorted(growing, key=lambda k: k.growth_bytes_per_s, reverse=True):
        if kernel.growth_bytes_per_s * settings.runaway_horizon_s >= max(0.0, bytes_to_halt):
            return kernel
    return None


def decide(
    snapshot: Snapshot, settings: PolicySettings, state: PolicyState
) -> tuple[list[Action], PolicyState]:
    """Turn one snapshot into actions, with the new state (the input state is not changed)."""
    now = snapshot.now
    budget = snapshot.budget_limit_bytes
    usage = snapshot.budget_usage_bytes
    kernel_limit = settings.kernel_memory_limit_bytes or budget
    present = {k.kernel_id: k for k in snapshot.kernels}
    guards = {kid: g for kid, g in state.kernels.items() if kid in present}
    actions: list[Action] = []

    # 1. Each kernel against its own limit.
    for kernel in snapshot.kernels:
        guard = guards.get(kernel.kernel_id, KernelGuardState())
        if kernel.protected or kernel.rss_bytes is None or guard.culled:
            guards[kernel.kernel_id] = guard
            continue
        rss = kernel.rss_bytes
        if rss >= settings.warn_fraction * kernel_limit and not guard.warned:
            actions.append(
                Action(
                    "warn",
                    kernel.kernel_id,
                    f"kernel uses {human(rss)}, over {settings.warn_fraction:.0%} of its "
                    f"{human(kernel_limit)} limit",
                    "kernel_limit",
                    rss,
                    kernel_limit,
                )
            )
            guard = replace(guard, warned=True)
        elif rss < settings.warn_fraction * kernel_limit and guard.warned:
            guard = replace(guard, warned=False)

        def make(kind: str, rss: int = rss, kid: str = kernel.kernel_id) -> Action:
            return Action(
                kind,
                kid,  # type: ignore[arg-type]
                f"kernel uses {human(rss)}, over {settings.halt_fraction:.0%} of its "
                f"{human(kernel_limit)} limit",
                "kernel_limit",
                rss,
                kernel_limit,
            )

        if state.budget_victim != kernel.kernel_id:
            steps, guard = _escalate(
                kernel.kernel_id,
                guard,
                rss >= settings.warn_fraction * kernel_limit,
                rss >= settings.halt_fraction * kernel_limit,
                rss >= settings.kill_fraction * kernel_limit,
                now,
                settings,
                make,
                rss,
            )
            actions.extend(steps)
        guards[kernel.kernel_id] = guard

    # 2. Idle culling by age.
    if settings.idle_timeout_s > 0:
        for kernel in snapshot.kernels:
            guard = guards[kernel.kernel_id]
            if guard.culled or guard.stage != "none" or not _cullable(kernel, settings):
                continue
            if kernel.idle_seconds >= settings.idle_timeout_s:
                actions.append(
                    Action(
                        "cull",
                        kernel.kernel_id,
                        f"kernel idle for {kernel.idle_seconds:.0f} s (timeout "
                        f"{settings.idle_timeout_s:.0f} s)",
                        "idle",
                        kernel.rss_bytes,
                    )
                )
                guards[kernel.kernel_id] = replace(
                    guard, culled=True, releasing_bytes=kernel.rss_bytes or 0
                )

    # 3. The budget: cull idle kernels largest first, then escalate on one victim.
    in_flight = sum(g.releasing_bytes for g in guards.values() if g.culled or g.stage == "killed")
    projected = usage - in_flight
    victim = state.budget_victim if state.budget_victim in present else None
    warn_line = settings.warn_fraction * budget
    halt_line = settings.halt_fraction * budget
    if (
        settings.cull_under_pressure
        and projected >= warn_line
        and victim is None
        and not any(g.stage != "none" for g in guards.values())  # a halt is already the relief
        and _runaway(snapshot.kernels, halt_line - projected, settings) is None
    ):
        idle = [
            k
            for k in snapshot.kernels
            if not guards[k.kernel_id].culled
            and guards[k.kernel_id].stage == "none"
            and _cullable(k, settings)
            and k.kernel_id != victim
        ]
        for kernel in sorted(idle, key=lambda k: k.rss_bytes or 0, reverse=True):
            if projected < warn_line:
                break
            actions.append(
                Action(
                    "cull",
                    kernel.kernel_id,
                    f"memory pressure: {human(usage)} of {human(budget)} in use; culling the "
                    f"largest idle kernel ({human(kernel.rss_bytes or 0)})",
                    "idle_pressure",
                    kernel.rss_bytes,
                    budget,
                )
            )
            guards[kernel.kernel_id] = replace(
                guards[kernel.kernel_id], culled=True, releasing_bytes=kernel.rss_bytes or 0
            )
            projected -= kernel.rss_bytes or 0
    over_warn = projected >= warn_line
    over_halt = projected >= halt_line or (budget - projected) < settings.min_headroom_bytes
    over_kill = projected >= settings.kill_fraction * budget
    if victim is None and over_halt:
        candidates = [
            k
            for k in snapshot.kernels
            if not k.protected
            and k.rss_bytes is not None
            and not guards[k.kernel_id].culled
            and guards[k.kernel_id].stage != "killed"
        ]
        if candidates:
            chosen = max(candidates, key=lambda k: (k.rss_bytes or 0, k.growth_bytes_per_s))
            victim = chosen.kernel_id
    if victim is not None:
        kernel = present[victim]

        def make_budget(kind: str) -> Action:
            return Action(
                kind,
                victim,  # type: ignore[arg-type]
                f"memory budget exhausted: {human(usage)} of {human(budget)} in use; this "
                f"kernel is the largest ({human(kernel.rss_bytes or 0)})",
                "budget",
                kernel.rss_bytes,
                budget,
            )

        steps, guards[victim] = _escalate(
            victim,
            guards[victim],
            over_warn,
            over_halt,
            over_kill,
            now,
            settings,
            make_budget,
            kernel.rss_bytes or 0,
        )
        actions.extend(steps)
        if guards[victim].stage == "none":
            victim = None  # pressure relieved: no victim any more
    return actions, PolicyState(kernels=guards, budget_victim=victim)


def next_interval(snapshot: Snapshot, settings: PolicySettings) -> float:
    """Seconds until the next tick: short enough that growth cannot skip the kill line.

    For each limit L that applies (each kernel's limit, and the budget) with current usage u:
    ``(kill_fraction·L − u) / max_growth_bytes_per_s``; the smallest, clamped to
    [min_interval_s, max_interval_s]. Just under halt this is (kill − halt)·L / rate, which for
    L = 2 GiB, the default 5 % gap and 2 GiB/s is 0.05 s: a 2 GB/s allocator is seen between
    halt and kill at least once.
    """
    rate = float(settings.max_growth_bytes_per_s)
    budget = snapshot.budget_limit_bytes
    kernel_limit = settings.kernel_memory_limit_bytes or budget
    gaps = [settings.kill_fraction * budget - snapshot.budget_usage_bytes]
    for kernel in snapshot.kernels:
        if kernel.rss_bytes is not None:
            gaps.append(settings.kill_fraction * kernel_limit - kernel.rss_bytes)
    interval = min(gaps) / rate
    return max(settings.min_interval_s, min(settings.max_interval_s, interval))
