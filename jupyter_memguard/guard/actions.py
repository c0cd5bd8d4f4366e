"""Carrying out the policy's actions on real kernels: events, intent records, signals.

Safety rules: an intent (with its structured trigger) is written before any signal; only the
process group and the descendants of a kernel of this server are ever signalled; never this
server's own process or process group. The runner keeps no per-kernel state: the policy says
which step begins an escalation (``Action.first``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from ..agent.messages import VariablesReport
from ..models import Action, EventSink, Intent, KernelState, Tick, Trigger
from ..probe.orphans import Orphan, still_there
from ..probe.server import KernelManager, ServerKernel, find_kernel
from ..settings import MemGuardSettings
from ..wording import (
    action_reason,
    cull_words,
    gpu_pressure_words,
    halting_words,
    interrupt_message,
    pressure_words,
    step_words,
    warning_words,
)
from .policy import effective_lines

PROC = Path("/proc")
EXIT_POLL_S = 0.05  # how often a kernel's end is polled where no pidfd tells it
EXIT_RECHECK_S = 0.5  # ... and re-checked where one does (it may name a process since reused)


def open_exit_watch(pid: int | None) -> int | None:
    """A pidfd on a kernel's process, opened before it is signalled (so it names that
    process): readable the moment the process has exited. None where pidfds are not had."""
    if pid is None or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


async def wait_exit(fd: int, timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, for the process of pidfd ``fd`` to exit. Its memory
    is back then (exiting frees it: about 0.1 s per GiB here), so the end is heard when it
    happens, not at the next poll."""
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    try:
        loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    except (OSError, NotImplementedError, ValueError):
        await asyncio.sleep(EXIT_POLL_S)
        return
    try:
        await asyncio.wait_for(exited, timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)


class IntentStore(Protocol):
    """Where intents go before memguard signals a kernel (the journal)."""

    def record_intent(
        self, kernel_id: str, kind: str, trigger: Trigger, reason: str, now: float
    ) -> int: ...

    def add_intent_evidence(self, intent_id: int, evidence: dict[str, Any]) -> None: ...

    def pending_intent(self, kernel_id: str, now: float) -> Intent | None: ...


class KernelAgent(Protocol):
    """The kernels' agents, as the runner uses them (agent.AgentChannel)."""

    def connected(self, kernel_id: str) -> bool: ...

    async def variables(
        self, kernel_id: str, limit: int = 10, timeout: float = 0.3
    ) -> VariablesReport: ...

    def recent_variables(self, kernel_id: str, max_age_s: float) -> VariablesReport | None: ...

    async def arm_interrupt(self, kernel_id: str, message: str, timeout: float = 0.1) -> bool: ...


KeptListener = Callable[[str, Trigger], Awaitable[None]]
RECENT_VARIABLES_S = 60.0  # the interrupt's message names variables reported this recently


def signal_kernel(kernel: ServerKernel, pids: tuple[int, ...], signum: int) -> list[int]:
    """Send a signal to a kernel's process group and to each of its known descendants.

    Returns the PIDs/PGIDs signalled. Refuses anything that is this server.
    """
    own_pid, own_pgid = os.getpid(), os.getpgrp()
    signalled: list[int] = []
    provisioner = getattr(kernel, "provisioner", None)
    pgid = getattr(provisioner, "pgid", None)
    if isinstance(pgid, int) and pgid > 1 and pgid != own_pgid:
        try:
            os.killpg(pgid, signum)
            signalled.append(-pgid)
        except OSError:
            pass
    for pid in pids:
        if pid in (own_pid, 0, 1):
            continue
        try:
            os.kill(pid, signum)
            signalled.append(pid)
        except OSError:
            pass
    return signalled


def set_oom_score_adj(pid: int, value: int, proc: Path = PROC) -> bool:
    """Make the OOM killer prefer this process (raising the score needs no privilege)."""
    try:
        (proc / str(pid) / "oom_score_adj").write_text(str(value))
        return True
    except OSError:
        return False


class ActionRunner:
    """Turns policy actions into events, intent records and signals."""

    def __init__(
        self,
        settings: MemGuardSettings,
        kernel_manager: KernelManager,
        intents: IntentStore,
        events: EventSink,
        log: logging.Logger,
        agent: KernelAgent | None = None,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.intents = intents
        self.events = events
        self.log = log
        self.agent = agent
        self.on_kept: list[KeptListener] = []  # the record of an interrupt the kernel survived
        self.tasks: set[asyncio.Task[Any]] = set()
        self._oom_adjusted: set[int] = set()

    def steer_oom_killer(self, tick: Tick) -> None:
        """Tick listener: give every user workload (each kernel's processes and each
        terminal's) the configured oom_score_adj, so the OOM killer weighs a terminal's
        script like a kernel and takes either before the server (left at its own score)."""
        value = self.settings.oom_score_adj
        if value is None:
            return
        workload: set[int] = set()
        for kernel in tick.kernels.values():
            if kernel.memory is not None:
                workload.update(kernel.memory.pids)
        if tick.breakdown is not None:
            for terminal in tick.breakdown.terminals:
                workload.update(terminal.pids)
        workload.discard(os.getpid())
        for pid in workload - self._oom_adjusted:
            if set_oom_score_adj(pid, value):
                self._oom_adjusted.add(pid)
        self._oom_adjusted &= workload

    def spawn(self, coro: Any) -> None:
        """Run a step in the background; stop() waits for what is left."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _record_intent(self, action: Action, kind: str) -> int:
        reason = action_reason(action, self.settings.display_units)
        return await asyncio.to_thread(
            self.intents.record_intent, action.kernel_id, kind, action.trigger, reason, time.time()
        )

    async def carry_out(self, action: Action, tick: Tick) -> None:
        """Carry out one action (or only report it in dry-run mode)."""
        kid = action.kernel_id
        kernel = tick.kernels.get(kid)
        path = kernel.path if kernel is not None else None
        units = self.settings.display_units
        dry = self.settings.dry_run
        trigger = action.trigger
        base = {"kernel_id": kid, "path": path, "trigger": trigger.to_json()}
        reason = action_reason(action, units)
        if action.kind == "warn":
            self.log.warning("memguard: %s (%s)", reason, kid)
            # The warning names what holds the memory: the agent is asked (bounded) off the
            # tick's path, so the guard never waits for a kernel busy in native code.
            self.spawn(self._warn(action, base, kernel, tick))
            return
        if action.kind == "keep":
            self.log.warning("memguard: kept kernel %s with its variables: %s", kid, reason)
            for listener in self.on_kept:
                self.spawn(listener(kid, trigger))
            return
        if action.kind == "gpu_notify":
            self.log.warning("memguard: %s (%s)", reason, kid)
            culprit = dict(action.culprit or {})
            words = gpu_pressure_words(culprit, units)
            self.events.emit(
                "gpu_pressure", {**base, "message": words["summary"], **culprit, **words}
            )
            return
        if action.kind == "pressure":
            self.log.warning("memguard: memory pressure from outside the kernels: %s", reason)
            culprit = dict(action.culprit) if action.culprit else None
            usage = trigger.usage_bytes or 0
            self.events.emit(
                "memory_pressure",
                {
                    "usage_bytes": usage,
                    "limit_bytes": trigger.limit_bytes or 0,
                    "kernels_bytes": trigger.kernel_bytes or 0,
                    "outside_bytes": max(0, usage - (trigger.kernel_bytes or 0)),
                    "culprit": culprit,
                    "trigger": trigger.to_json(),
                    **pressure_words(trigger, culprit, units),
                },
            )
            return
        if action.kind == "cull":
            idle = kernel.idle_seconds if kernel is not None else 0.0
            self.log.warning(
                "memguard: %sculling kernel %s: %s", "(dry run) " if dry else "", kid, reason
            )
            if not dry:
                await self._record_intent(action, "cull")
            self.events.emit(
                "kernel_culled",
                {
                    **base,
                    "idle_seconds": float(idle),
                    "usage_bytes": trigger.kernel_bytes,
                    "reason": reason,
                    "dry_run": dry,
                    **cull_words(trigger, units),
                },
            )
            if not dry:
                self.spawn(self._shutdown(kid, now=False))
            return
        await self.halt_step(action, tick, dry)

    async def _warn(
        self, action: Action, base: dict[str, Any], kernel: KernelState | None, tick: Tick
    ) -> None:
        trigger, s = action.trigger, self.settings
        used = trigger.kernel_bytes or trigger.usage_bytes or 0
        limit = kernel.limit_bytes if kernel is not None else (trigger.limit_bytes or 0)
        # The kernel's lines as they apply now (its own, or where the shared budget's come
        # first): the stop the words promise is the one that comes.
        warn, halt, kill = (
            effective_lines(kernel, tick.budget, s)
            if kernel is not None
            else (
                int(s.warn_fraction * limit),
                int(s.halt_fraction * limit),
                int(s.kill_fraction * limit),
            )
        )
        variables = await self._variables(action.kernel_id)
        self.events.emit(
            "memory_warning",
            {
                **base,
                "usage_bytes": used,
                "limit_bytes": limit,
                "warn_bytes": warn,
                "halt_bytes": halt,
                "kill_bytes": kill,
                "fraction": round(used / limit, 4) if limit else 0.0,
                "variables": variables,
                **warning_words(trigger, variables, halt, s.display_units),
            },
        )

    async def _variables(self, kernel_id: str, timeout: float = 0.3) -> list[dict[str, Any]] | None:
        """The largest variables as the kernel's agent reports them now (None: no answer)."""
        if self.agent is None or not self.agent.connected(kernel_id):
            return None
        report = await self.agent.variables(kernel_id, limit=5, timeout=timeout)
        if report.status != "ok":
            return None
        return [v.to_json() for v in report.variables]

    def _recent_variables(self, kernel_id: str) -> list[dict[str, Any]] | None:
        """The largest variables from the agent's last answer, if it is fresh: an interrupt
        does not wait for a new one."""
        if self.agent is None:
            return None
        report = self.agent.recent_variables(kernel_id, max_age_s=RECENT_VARIABLES_S)
        return [v.to_json() for v in report.variables] if report is not None else None

    async def _note_variables(self, intent_id: int | None, kernel_id: str, timeout: float) -> None:
        """The variables at a halt, asked before any SIGTERM, kept with the intent (and so in
        the record of the kernel's end); ``intent_id`` None: the kernel's pending one."""
        variables = await self._variables(kernel_id, timeout=timeout)
        if variables is None:
            return
        if intent_id is None:
            intent = await asyncio.to_thread(self.intents.pending_intent, kernel_id, time.time())
            if intent is None:
                return
            intent_id = intent.id
        await asyncio.to_thread(
            self.intents.add_intent_evidence, intent_id, {"variables": variables}
        )

    async def halt_step(self, action: Action, tick: Tick, dry: bool) -> None:
        """One step of the halt escalation: interrupt/restart → shutdown → kill."""
        kid = action.kernel_id
        state = tick.kernels.get(kid)
        path = state.path if state is not None else None
        trigger = action.trigger
        units = self.settings.display_units
        reason = action_reason(action, units)
        base = {"kernel_id": kid, "path": path, "trigger": trigger.to_json(), "dry_run": dry}
        intent_id = None
        recent = self._recent_variables(kid)
        if action.first:
            if not dry:
                intent_id = await self._record_intent(
                    action, "admin_halt" if trigger.kind == "admin" else "halt"
                )
            self.events.emit(
                "kernel_halting",
                {
                    **base,
                    "usage_bytes": trigger.kernel_bytes or trigger.usage_bytes or 0,
                    "limit_bytes": trigger.limit_bytes or 0,
                    "reason": reason,
                    "action": action.kind,
                    "variables": recent,
                    **halting_words(action.kind, trigger, recent, units),
                },
            )
        self.log.warning(
            "memguard: %s%s kernel %s: %s", "(dry run) " if dry else "", action.kind, kid, reason
        )
        self.events.emit(
            "kernel_halted",
            {
                **base,
                "step": action.kind,
                "usage_bytes": trigger.kernel_bytes or trigger.usage_bytes,
                "limit_bytes": trigger.limit_bytes,
                **step_words(action.kind, trigger, units),
            },
        )
        if dry:
            return
        pids = state.pids if state is not None else ()
        kernel = find_kernel(self.km, kid)
        if kernel is None:
            return
        if action.kind == "interrupt":
            if self.agent is not None and self.agent.connected(kid):
                # The agent makes the interrupt say why (MemoryLimitInterrupt); then, the cell
                # stopped, it is asked which variables hold the memory (before any SIGTERM).
                message = interrupt_message(trigger, recent, units)
                await self.agent.arm_interrupt(kid, message)
            await self.km.interrupt_kernel(kid)
            if intent_id is not None:
                self.spawn(self._note_variables(intent_id, kid, timeout=1.0))
        elif action.kind == "restart":
            self.spawn(self.km.restart_kernel(kid, now=True))
        elif action.kind == "shutdown":
            # The variables, asked before the SIGTERM and kept with the intent (its record's).
            await self._note_variables(intent_id, kid, timeout=0.3)
            kernel.stop_restarter()
            exit_watch = open_exit_watch(state.pid if state is not None else None)
            signal_kernel(kernel, pids, signal.SIGTERM)
            self.spawn(self._finish(kid, pids, self.settings.shutdown_grace, exit_watch))
        elif action.kind == "kill":
            kernel.stop_restarter()
            signal_kernel(kernel, pids, signal.SIGKILL)
            self.spawn(self._shutdown(kid, now=True))

    async def _finish(
        self, kernel_id: str, pids: tuple[int, ...], grace: float, exit_watch: int | None = None
    ) -> None:
        """After SIGTERM: once the kernel has exited, or the grace is over, SIGKILL what is
        left of its process group and descendants, then remove it from the manager."""
        deadline = time.monotonic() + grace
        try:
            while time.monotonic() < deadline and await self._alive(kernel_id):
                if exit_watch is None:
                    await asyncio.sleep(EXIT_POLL_S)
                else:
                    left = deadline - time.monotonic()
                    await wait_exit(exit_watch, max(0.0, min(EXIT_RECHECK_S, left)))
        finally:
            if exit_watch is not None:
                os.close(exit_watch)
        kernel = find_kernel(self.km, kernel_id)
        if kernel is None:
            return  # already removed (the policy's kill step came first)
        signal_kernel(kernel, pids, signal.SIGKILL)
        await self._shutdown(kernel_id, now=True)

    async def _shutdown(self, kernel_id: str, now: bool) -> None:
        """Remove a kernel through the kernel manager (it cleans up ports and sessions)."""
        if find_kernel(self.km, kernel_id) is None:
            return
        try:
            await self.km.shutdown_kernel(kernel_id, now=now)
        except KeyError:
            pass
        except Exception:
            self.log.exception("memguard: shutting down kernel %s failed", kernel_id)

    async def admin_halt(
        self, kernel_id: str, tick: Tick, by: str, note: str | None, via: str = "api"
    ) -> None:
        """An admin's halt: intent, halting event, then shutdown → (grace) → kill."""
        state = tick.kernels.get(kernel_id)
        trigger = Trigger(
            "admin",
            by=by,
            note=note,
            via=via,
            usage_bytes=state.usage_bytes if state is not None else None,
            kernel_bytes=state.usage_bytes if state is not None else None,
            limit_bytes=state.limit_bytes if state is not None else None,
        )
        await self.halt_step(Action("shutdown", kernel_id, trigger, first=True), tick, dry=False)

    async def _alive(self, kernel_id: str) -> bool:
        kernel = find_kernel(self.km, kernel_id)
        return kernel is not None and bool(await kernel.is_alive())

    async def stop(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for the steps under way, so no intent or shutdown is cut off."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


async def stop_orphan(orphan: Orphan, start_ticks: int, grace: float) -> bool:
    """Stop a dead server's kernel (identified for certain by probe.orphans): SIGTERM to its
    process group, SIGKILL to what is left after ``grace``. Its identity is checked again
    before each signal; returns whether it is gone."""
    own_pgid = os.getpgrp()

    def send(signum: int) -> None:
        if not still_there(orphan, start_ticks):
            return
        if orphan.pgid == orphan.pid and orphan.pgid not in (own_pgid, 0, 1):
            try:
                os.killpg(orphan.pgid, signum)  # the kernel leads its own group: all of it
                return
            except OSError:
                pass
        try:
            os.kill(orphan.pid, signum)
        except OSError:
            pass

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and still_there(orphan, start_ticks):
        await asyncio.sleep(0.1)
    send(signal.SIGKILL)
    for _ in range(50):
        if not still_there(orphan, start_ticks):
            return True
        await asyncio.sleep(0.1)
    return False
