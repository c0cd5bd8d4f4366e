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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..models import Action, ActionKind, Budget, KernelState, Line, Tick, Trigger
from ..settings import MemGuardSettings

Stage = Literal["none", "interrupted", "restarted", "kept", "shutdown", "killed"]
Outcome = Literal["keep", "stop"]  # what the agent's report of the interrupted cell's end says
OUTSIDE_WINDOW_S = 5.0  # the outside memory's growth is measured over this many seconds
GROWTH_FLOOR = 2**20  # bytes/s: slower than this is not growing
Level = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class KernelGuardState:
    """Where one kernel stands in the escalation."""

    stage: Stage = "none"
    stage_since: float = 0.0
    warned: bool = False
    culled: bool = False
    releasing_bytes: int = 0  # what a cull or kill in flight will give back
    kept_bytes: int = 0  # kept after an interrupt: its memory then (a new cell must add to it)
    budget_warned: bool = False  # warned as the kernel the budget's relief would fall on


@dataclass(frozen=True)
class PolicyState:
    """The guard's memory between ticks: per-kernel stages and the budget victim."""

    kernels: Mapping[str, KernelGuardState] = field(default_factory=dict)
    budget_victim: str | None = None
    budget_warned: bool = False
    outside_since: float | None = None  # when memory outside the kernels became the cause
    outside_samples: tuple[tuple[float, int], ...] = ()  # (time, bytes outside the kernels)


def forget(state: PolicyState, kernel_id: str) -> PolicyState:
    """A kernel's process ended or was replaced (lifecycle): its escalation ends with it."""
    if kernel_id not in state.kernels and state.budget_victim != kernel_id:
        return state
    kernels = {kid: g for kid, g in state.kernels.items() if kid != kernel_id}
    victim = None if state.budget_victim == kernel_id else state.budget_victim
    return replace(state, kernels=kernels, budget_victim=victim)


def kernel_limit(settings: MemGuardSettings, budget: Budget) -> tuple[int, str]:
    """The limit one kernel is held to and where it comes from (the budget when none is set)."""
    resolved = settings.kernel_memory_limit.resolve(budget.limit_bytes)
    if resolved is not None and resolved <= budget.limit_bytes:
        return resolved, "kernel_memory_limit"
    return budget.limit_bytes, budget.limit_source


CONTAINMENT_FLOOR = 64 * 2**20  # a kernel's own limit stays at least this far above its usage


def containment_limit(kernel: KernelState, budget: Budget, settings: MemGuardSettings) -> int:
    """The limit of a kernel's own memory cgroup: halfway between its kill line and its limit,
    and never more than the same fraction of the budget leaves it beside everything else.

    Above the kill line, so memguard's escalation keeps its window: a kernel still growing
    while the stop line's interrupt lands can be killed by memguard at the kill line (a cgroup
    limited at the kill line itself always ended such kernels first). Below the limit, so an
    allocation faster than any poll ends inside the kernel's cgroup and one kernel alone never
    takes the container to its limit (nor, on Kubernetes, the whole pod down with it).

    Never below the kernel's usage plus a margin: memory others hold must not end a kernel
    that is not growing (the budget relief deals with them).
    """
    usage = kernel.usage_bytes or 0
    fraction = (1 + settings.kill_fraction) / 2  # halfway between the kill line and the limit
    own = int(fraction * kernel.limit_bytes)
    others = max(0, budget.usage_bytes - usage)
    room = int(fraction * budget.limit_bytes) - others
    floor = usage + max(CONTAINMENT_FLOOR, usage // 20)
    return max(floor, min(own, room))


def effective_lines(
    kernel: KernelState, budget: Budget, settings: MemGuardSettings
) -> tuple[int, int, int]:
    """A kernel's (warn, stop, kill) lines as they apply now: its own, or lower where the
    shared budget's line, less what everything else holds, comes first (the server, the other
    kernels). What the UI promises ("memguard stops it at …") is then what happens."""
    usage = kernel.usage_bytes or 0
    others = max(0, budget.usage_bytes - usage)
    lines = []
    for fraction in (settings.warn_fraction, settings.halt_fraction, settings.kill_fraction):
        own = int(fraction * kernel.limit_bytes)
        shared = int(fraction * budget.limit_bytes) - others
        lines.append(max(0, min(own, shared)))
    return lines[0], lines[1], lines[2]


def level(usage: int | None, limit: int, settings: MemGuardSettings) -> Level:
    """Display level of a memory figure against its limit."""
    if usage is None or limit <= 0:
        return "ok"
    if usage >= settings.halt_fraction * limit:
        return "critical"
    if usage >= settings.warn_fraction * limit:
        return "warning"
    return "ok"


def _cullable(kernel: KernelState, settings: MemGuardSettings) -> bool:
    if kernel.protected or kernel.usage_bytes is None:
        return False
    if kernel.busy and not settings.cull_busy:
        return False
    return kernel.connections == 0 or settings.cull_connected


def _escalate(
    guard: KernelGuardState,
    over: tuple[bool, bool, bool],
    now: float,
    settings: MemGuardSettings,
    make: Callable[[ActionKind, Line, bool], Action],
    usage: int = 0,
    outcome: Outcome | None = None,
    again: bool = False,
) -> tuple[list[Action], KernelGuardState]:
    """One step of the halt state machine for one kernel; ``over`` = (warn, halt, kill) lines.

    After an interrupt (or restart) the kernel is let go only once it is back under the warn
    line: a cell stopped while its data still fills the memory is still a hazard, so holding
    on past the grace period leads to the shutdown. Where the kernel's agent has reported that
    the interrupted cell ended (``outcome``), nothing is waited out: ``keep`` keeps the kernel
    with its variables (stage ``kept``, until it runs a cell that crosses the stop line again:
    ``again``), ``stop`` shuts it down at once.
    """
    over_warn, over_halt, over_kill = over
    # The escalation begins (from nothing, or from a kept kernel whose intent was used up by
    # its record): memguard writes its intent first.
    first = guard.stage in ("none", "kept")
    if guard.stage == "killed":
        return [], guard
    if over_kill:
        return [make("kill", "kill", first)], replace(
            guard, stage="killed", stage_since=now, releasing_bytes=usage
        )
    if guard.stage == "kept":
        if not over_warn:
            return [], replace(guard, stage="none", stage_since=now)
        if not (over_halt and again):
            return [], guard
    elif guard.stage in ("interrupted", "restarted"):
        if not over_warn:
            return [], replace(guard, stage="none", stage_since=now)
        if outcome == "keep" and guard.stage == "interrupted":
            return [make("keep", "halt", False)], replace(
                guard, stage="kept", stage_since=now, kept_bytes=usage
            )
        if outcome == "stop" or now - guard.stage_since >= settings.interrupt_grace:
            return [make("shutdown", "halt", False)], replace(
                guard, stage="shutdown", stage_since=now
            )
        return [], guard
    if guard.stage == "shutdown":
        if now - guard.stage_since >= settings.shutdown_grace:
            return [make("kill", "halt", False)], replace(
                guard, stage="killed", stage_since=now, releasing_bytes=usage
            )
        return [], guard
    if over_halt:
        if settings.action == "restart":
            return [make("restart", "halt", True)], replace(
                guard, stage="restarted", stage_since=now
            )
        return [make("interrupt", "halt", True)], replace(
            guard, stage="interrupted", stage_since=now
        )
    return [], guard


def _warn_the_relief(d: _Decision, projected: float, warn_line: float) -> None:
    """The budget is over its warn line and no cull relieved it: warn the kernel whose end
    would (the one the budget's stop would fall on), once per crossing, so its user hears
    before the stop; re-armed once the budget is back under the line."""
    relieving = _relieving_candidate(d, projected, warn_line) if projected >= warn_line else None
    for kid, guard in list(d.guards.items()):
        if guard.budget_warned and kid != relieving:
            d.guards[kid] = replace(
                guard, budget_warned=False, warned=guard.warned and projected >= warn_line
            )
    if relieving is None:
        return
    guard = d.guards[relieving]
    if guard.warned or guard.budget_warned or guard.stage != "none":
        return
    kernel = d.tick.kernels[relieving]
    s, budget = d.settings, d.tick.budget
    trigger = Trigger(
        "budget",
        line="warn",
        usage_bytes=budget.usage_bytes,
        limit_bytes=budget.limit_bytes,
        line_bytes=int(s.warn_fraction * budget.limit_bytes),
        kernel_bytes=kernel.usage_bytes,
    )
    d.actions.append(Action("warn", relieving, trigger))
    d.guards[relieving] = replace(guard, warned=True, budget_warned=True)


def _outcome(
    kernel: KernelState, guard: KernelGuardState, d: _Decision, limit: int, own_limit: bool
) -> Outcome | None:
    """After memguard's interrupt, once the kernel's agent reports the cell ended: keep the
    kernel (with its variables) when it runs nothing, is under its kill line, and the shared
    budget keeps its headroom (a per-kernel limit smaller than the budget: the quota was hit,
    not the machine's memory); else stop it at once. None: no agent, or the cell runs on.

    The agent's word comes straight from the cell's end, ahead of the kernel's own messages:
    nothing is decided until jupyter_server has heard the kernel go idle too, so the cell's
    traceback (MemoryLimitInterrupt) has reached the notebook before a shutdown could cut it
    off (interrupt_grace still bounds the wait)."""
    agent = kernel.agent
    if guard.stage != "interrupted" or agent is None or agent.running:
        return None
    if agent.last_end_at is None or agent.last_end_at < guard.stage_since - CLOCK_SLACK_S:
        return None  # the interrupted cell has not reported its end
    if kernel.execution_state == "busy":
        return None  # its iopub messages (the traceback, then idle) are still on their way
    s, budget = d.settings, d.tick.budget
    usage = kernel.usage_bytes or 0
    roomy = (
        budget.usage_bytes < s.warn_fraction * budget.limit_bytes
        and budget.headroom_bytes >= s.min_headroom_bytes
    )
    if own_limit and roomy and usage < s.kill_fraction * limit:
        return "keep"
    return "stop"


CLOCK_SLACK_S = 1.0  # the interrupt goes out a moment after the tick that decided it
KEPT_MARGIN = 32 * 2**20  # a kept kernel's new cell must add this much to be stopped again


def _runaway(
    kernels: list[KernelState], bytes_to_halt: float, settings: MemGuardSettings
) -> KernelState | None:
    """The kernel whose own growth reaches the halt line within the runaway horizon, if any.

    Pressure caused by one growing kernel is not relieved by culling idle bystanders: it only
    delays that kernel's halt by a moment and costs their users their state.
    """
    if settings.runaway_horizon <= 0:
        return None
    growing = [k for k in kernels if not k.protected and k.growth_bytes_per_s > 0]
    for kernel in sorted(growing, key=lambda k: k.growth_bytes_per_s, reverse=True):
        if kernel.growth_bytes_per_s * settings.runaway_horizon >= max(0.0, bytes_to_halt):
            return kernel
    return None


@dataclass
class _Decision:
    """What the phases of one decision share: the input, the guards so far, the actions."""

    tick: Tick
    settings: MemGuardSettings
    state: PolicyState
    guards: dict[str, KernelGuardState]
    actions: list[Action] = field(default_factory=list)
    outside_since: float | None = None
    outside_samples: tuple[tuple[float, int], ...] = ()

    @property
    def kernels(self) -> list[KernelState]:
        return list(self.tick.kernels.values())


def decide(
    tick: Tick, settings: MemGuardSettings, state: PolicyState
) -> tuple[list[Action], PolicyState]:
    """Turn one tick into actions, with the new state (the input state is not changed)."""
    present = tick.kernels
    guards = {kid: g for kid, g in state.kernels.items() if kid in present}
    decision = _Decision(tick, settings, state, guards)
    _per_kernel_limits(decision)
    _idle_culling(decision)
    victim, warned = _budget_relief(decision)
    state = PolicyState(
        kernels=decision.guards,
        budget_victim=victim,
        budget_warned=warned,
        outside_since=decision.outside_since,
        outside_samples=decision.outside_samples,
    )
    return decision.actions, state


def _per_kernel_limits(d: _Decision) -> None:
    """Phase 1: each kernel against its own limit (warn once per crossing, then escalate)."""
    limit, _ = kernel_limit(d.settings, d.tick.budget)
    s = d.settings
    for kernel in d.kernels:
        kid = kernel.kernel_id
        guard = d.guards.get(kid, KernelGuardState())
        usage = kernel.usage_bytes
        if kernel.protected or usage is None or guard.culled:
            d.guards[kid] = guard
            continue
        over_warn = usage >= s.warn_fraction * limit
        warn_now = over_warn or (guard.warned and guard.budget_warned)
        if warn_now and not guard.warned:
            trigger = _kernel_trigger(usage, limit, "warn", s)
            d.actions.append(Action("warn", kid, trigger))
            guard = replace(guard, warned=True)
        elif not warn_now and guard.warned:
            guard = replace(guard, warned=False)

        def make(
            kind: ActionKind, line: Line, first: bool, usage: int = usage, kid: str = kid
        ) -> Action:
            return Action(kind, kid, _kernel_trigger(usage, limit, line, s), first=first)

        if d.state.budget_victim != kid:
            over = (over_warn, usage >= s.halt_fraction * limit, usage >= s.kill_fraction * limit)
            outcome = _outcome(kernel, guard, d, limit, own_limit=True)
            # A kept kernel is stopped again by a cell that takes more: running, and grown.
            kill_line = s.kill_fraction * limit
            margin = max(2**20, min(KEPT_MARGIN, (kill_line - guard.kept_bytes) / 2))
            again = (
                kernel.agent is not None
                and kernel.agent.running
                and usage >= guard.kept_bytes + margin
            )
            steps, guard = _escalate(
                guard, over, d.tick.at, s, make, usage, outcome, again or kernel.agent is None
            )
            d.actions.extend(steps)
        d.guards[kid] = guard


def _kernel_trigger(usage: int, limit: int, line: Line, s: MemGuardSettings) -> Trigger:
    fraction = {"warn": s.warn_fraction, "halt": s.halt_fraction, "kill": s.kill_fraction}[line]
    return Trigger(
        "kernel_limit",
        line=line,
        usage_bytes=usage,
        limit_bytes=limit,
        line_bytes=int(fraction * limit),
        kernel_bytes=usage,
    )


def _idle_culling(d: _Decision) -> None:
    """Phase 2: kernels idle for longer than idle_timeout are culled, whatever the memory."""
    timeout = d.settings.idle_timeout
    if timeout <= 0:
        return
    for kernel in d.kernels:
        guard = d.guards[kernel.kernel_id]
        if guard.culled or guard.stage != "none" or not _cullable(kernel, d.settings):
            continue
        if kernel.idle_seconds >= timeout:
            trigger = Trigger(
                "idle",
                idle_seconds=kernel.idle_seconds,
                timeout_seconds=timeout,
                usage_bytes=kernel.usage_bytes,
                kernel_bytes=kernel.usage_bytes,
            )
            d.actions.append(Action("cull", kernel.kernel_id, trigger, first=True))
            d.guards[kernel.kernel_id] = replace(
                guard, culled=True, releasing_bytes=kernel.usage_bytes or 0
            )


def _budget_relief(d: _Decision) -> tuple[str | None, bool]:
    """Phase 3: the budget, acting only on the cause.

    When the memory outside the kernels (the server, terminals, other processes, caches) is
    over the warn line by itself, no kernel is the cause: none is culled or halted, and one
    ``pressure`` action per crossing names the largest process outside them. Otherwise idle
    kernels are culled, largest first, only as many as bring the projected usage under
    the warn line, and none when even all of them would not. A kernel is made the budget
    victim only when stopping it brings the usage under the halt line; when no kernel's would,
    the pressure is named instead, as above.

    Returns the budget victim to carry into the next decision (None once relieved) and
    whether the pressure warning stands (sent, usage not yet back under the warn line).
    """
    s, budget = d.settings, d.tick.budget
    limit, usage = budget.limit_bytes, budget.usage_bytes
    in_flight = sum(g.releasing_bytes for g in d.guards.values() if g.culled or g.stage == "killed")
    projected = usage - in_flight
    victim = d.state.budget_victim if d.state.budget_victim in d.tick.kernels else None
    warn_line, halt_line = s.warn_fraction * limit, s.halt_fraction * limit
    warned = d.state.budget_warned and projected >= warn_line
    outside_cause = _outside_is_the_cause(d, projected)  # (also keeps its samples)
    if victim is None and projected >= warn_line and outside_cause:
        return None, _name_the_outside(d, usage, warned)
    if (
        s.cull_under_pressure
        and projected >= warn_line
        and victim is None
        and not any(g.stage != "none" for g in d.guards.values())  # a halt is the relief
        and _runaway(d.kernels, halt_line - projected, s) is None
    ):
        projected = _cull_for_pressure(d, projected, warn_line)
    over_halt = projected >= halt_line or (limit - projected) < s.min_headroom_bytes
    if not over_halt:  # over the halt line the stop comes now: no warning first
        _warn_the_relief(d, projected, warn_line)
    over = (projected >= warn_line, over_halt, projected >= s.kill_fraction * limit)
    if victim is None and over_halt:
        victim = _relieving_candidate(d, projected, min(halt_line, limit - s.min_headroom_bytes))
    if victim is None:
        # No kernel's end would relieve it: name who holds it, when most of it is outside the
        # kernels (a kernel over the warn line is told by its own warning, never as pressure
        # from outside).
        if projected >= warn_line and _outside_bytes(d, projected) * 2 >= usage:
            return None, _name_the_outside(d, usage, warned)
        return None, warned
    kernel = d.tick.kernels[victim]
    fractions = {"warn": s.warn_fraction, "halt": s.halt_fraction, "kill": s.kill_fraction}

    def make(kind: ActionKind, line: Line, first: bool) -> Action:
        trigger = Trigger(
            "budget",
            line=line,
            usage_bytes=usage,
            limit_bytes=limit,
            line_bytes=int(fractions[line] * limit),
            kernel_bytes=kernel.usage_bytes,
        )
        return Action(kind, victim, trigger, first=first)

    outcome = _outcome(kernel, d.guards[victim], d, limit, own_limit=False)
    steps, d.guards[victim] = _escalate(
        d.guards[victim], over, d.tick.at, s, make, kernel.usage_bytes or 0, outcome, True
    )
    d.actions.extend(steps)
    return (None if d.guards[victim].stage == "none" else victim), warned


def _outside_is_the_cause(d: _Decision, projected: float) -> bool:
    """Whether the memory outside the kernels (server, terminals, other processes, caches)
    is the cause: over the warn line by itself, or growing faster than the kernels are.

    The second matters while an outside process is still growing: the total then crosses
    the line before the outside part alone does, and culling idle kernels would only cost
    their users their state. The outside's growth is its slope over the last few seconds.
    """
    s, at = d.settings, d.tick.at
    outside = _outside_bytes(d, projected)
    samples = tuple((t, b) for t, b in d.state.outside_samples if at - t <= OUTSIDE_WINDOW_S)
    d.outside_samples = (*samples, (at, outside))
    if outside >= s.warn_fraction * d.tick.budget.limit_bytes:
        return True
    if not samples or at - samples[0][0] <= 0:
        return False
    outside_rate = (outside - samples[0][1]) / (at - samples[0][0])
    kernels_rate = sum(max(0.0, k.growth_bytes_per_s) for k in d.kernels)
    return outside_rate > max(kernels_rate, GROWTH_FLOOR)


def _outside_bytes(d: _Decision, projected: float) -> int:
    """What lies outside the kernels, from reads consistent with the kernels' (the monitor's
    figure), else the usage minus what the kernels not on their way out hold."""
    measured = d.tick.budget.outside_bytes
    return measured if measured is not None else max(0, int(projected) - _kernels_bytes(d))


def _name_the_outside(d: _Decision, usage: int, warned: bool) -> bool:
    """Warn once per crossing, naming the largest process outside the kernels, from a host
    scan taken since the pressure began (the monitor scans every second meanwhile); with no
    scan at all, without a name. Returns whether the warning stands."""
    since = d.state.outside_since if d.state.outside_since is not None else d.tick.at
    d.outside_since = since
    fresh = d.tick.breakdown is None or d.tick.breakdown.scanned_at >= since
    if not warned and fresh and not _relief_in_flight(d):
        return _warn_outside(d, usage)
    return warned


def _kernels_bytes(d: _Decision) -> int:
    """What the kernels not already on their way out hold."""
    return sum(
        k.usage_bytes or 0
        for k in d.kernels
        if not d.guards.get(k.kernel_id, KernelGuardState()).culled
        and d.guards.get(k.kernel_id, KernelGuardState()).stage != "killed"
    )


def _relief_in_flight(d: _Decision) -> bool:
    """A cull, halt or kill is under way (decided this tick or earlier)."""
    return any(a.kind != "warn" for a in d.actions) or any(
        g.culled or g.stage != "none" for g in d.guards.values()
    )


def _warn_outside(d: _Decision, usage: int) -> bool:
    """The pressure comes from outside the kernels: say who holds the memory, touch no kernel.

    Returns True (the warning is sent; it is re-armed once usage is back under the line).
    """
    budget = d.tick.budget
    culprit: dict[str, Any] | None = None
    if d.tick.breakdown is not None and d.tick.breakdown.largest_outside:
        top = d.tick.breakdown.largest_outside[0]
        culprit = {
            "pid": top.pid,
            "name": top.name,
            "cmdline": top.cmdline,
            "user": top.user,
            "bytes": top.bytes,
            "terminal": top.terminal,
        }
    outside = min(_outside_bytes(d, usage), usage)
    trigger = Trigger(
        "outside",
        line="warn",
        usage_bytes=usage,
        limit_bytes=budget.limit_bytes,
        line_bytes=int(d.settings.warn_fraction * budget.limit_bytes),
        kernel_bytes=usage - outside,  # so that kernels + outside = usage, always
    )
    d.actions.append(Action("pressure", "", trigger, culprit=culprit))
    return True


def _cull_for_pressure(d: _Decision, projected: float, warn_line: float) -> float:
    """Cull idle kernels, largest first, until the projected usage is under the warn line;
    none at all when culling every idle kernel would not get it there (the cause is
    elsewhere, and their users would lose their state for nothing)."""
    s, budget = d.settings, d.tick.budget
    idle = sorted(
        (
            k
            for k in d.kernels
            if not d.guards[k.kernel_id].culled
            and d.guards[k.kernel_id].stage == "none"
            and _cullable(k, s)
        ),
        key=lambda k: k.usage_bytes or 0,
        reverse=True,
    )
    if projected - sum(k.usage_bytes or 0 for k in idle) >= warn_line:
        return projected
    for kernel in idle:
        if projected < warn_line:
            break
        size = kernel.usage_bytes or 0
        trigger = Trigger(
            "idle_pressure",
            line="warn",
            usage_bytes=budget.usage_bytes,
            limit_bytes=budget.limit_bytes,
            line_bytes=int(warn_line),
            idle_seconds=kernel.idle_seconds,
            kernel_bytes=size,
        )
        d.actions.append(Action("cull", kernel.kernel_id, trigger, first=True))
        d.guards[kernel.kernel_id] = replace(
            d.guards[kernel.kernel_id], culled=True, releasing_bytes=size
        )
        projected -= size
    return projected


def _relieving_candidate(d: _Decision, projected: float, line: float) -> str | None:
    """The kernel the budget escalation falls on: the largest one not already on its way out
    whose end brings the usage under the line; None when no kernel's would."""
    candidates = [
        k
        for k in d.kernels
        if not k.protected
        and k.usage_bytes is not None
        and not d.guards[k.kernel_id].culled
        and d.guards[k.kernel_id].stage != "killed"
        and projected - (k.usage_bytes or 0) < line
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda k: (k.usage_bytes or 0, k.growth_bytes_per_s)).kernel_id


def next_interval(tick: Tick, settings: MemGuardSettings) -> float:
    """Seconds until the next tick: short enough that growth cannot skip the kill line.

    For each limit L that applies (each kernel's limit, and the budget) with current usage u:
    ``(kill_fraction·L − u) / max_growth_rate``; the smallest, clamped to
    [min_poll_interval, poll_interval]. Just under halt this is (kill − halt)·L / rate, which
    for L = 2 GiB, the default 5 % gap and 2 GiB/s is 0.05 s: a 2 GB/s allocator is seen
    between halt and kill at least once.
    """
    rate = float(settings.max_growth_rate_bytes)
    budget = tick.budget
    limit, _ = kernel_limit(settings, budget)
    gaps = [settings.kill_fraction * budget.limit_bytes - budget.usage_bytes]
    for kernel in tick.kernels.values():
        if kernel.usage_bytes is not None:
            gaps.append(settings.kill_fraction * limit - kernel.usage_bytes)
    interval = min(gaps) / rate
    return max(settings.min_poll_interval, min(settings.poll_interval, interval))
