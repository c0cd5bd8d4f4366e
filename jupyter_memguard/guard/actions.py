"""Carrying out the policy's actions on real kernels: events, intent records, signals.

Safety rules: an intent is written before any signal; only the process group and the
descendants of a kernel of this server are ever signalled; never this server's own
process or process group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from ..models import Action, Tick
from ..probe.server import KernelManager, ServerKernel, find_kernel
from ..settings import MemGuardSettings
from ..views.events import EventEmitter

PROC = Path("/proc")


class IntentStore(Protocol):
    """Where intents go before memguard signals a kernel (the journal)."""

    def record_intent(self, kernel_id: str, kind: str, reason: str, now: float) -> int: ...


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
        events: EventEmitter,
        log: logging.Logger,
    ) -> None:
        self.settings = settings
        self.km = kernel_manager
        self.intents = intents
        self.events = events
        self.log = log
        self.halting: set[str] = set()
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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _record_intent(self, kernel_id: str, kind: str, reason: str) -> None:
        await asyncio.to_thread(self.intents.record_intent, kernel_id, kind, reason, time.time())

    def forget(self, kernel_id: str) -> None:
        self.halting.discard(kernel_id)

    async def carry_out(self, action: Action, tick: Tick) -> None:
        """Carry out one action (or only report it in dry-run mode)."""
        kid = action.kernel_id
        kernel = tick.kernels.get(kid)
        path = kernel.path if kernel is not None else None
        dry = self.settings.dry_run
        base = {"kernel_id": kid, "path": path}
        if action.kind == "warn":
            fraction = (action.usage_bytes or 0) / action.limit_bytes if action.limit_bytes else 0.0
            self.log.warning("memguard: %s (%s)", action.reason, kid)
            self.events.emit(
                "memory_warning",
                {
                    **base,
                    "usage_bytes": action.usage_bytes or 0,
                    "limit_bytes": action.limit_bytes or 0,
                    "fraction": round(fraction, 4),
                    "trigger": action.trigger,
                },
            )
            return
        if action.kind == "gpu_notify":
            self.log.warning("memguard: %s (%s)", action.reason, kid)
            self.events.emit(
                "gpu_pressure",
                {
                    "kernel_id": kid,
                    "path": path,
                    "message": action.reason,
                    **(dict(action.culprit) if action.culprit else {}),
                },
            )
            return
        if action.kind == "pressure":
            self.log.warning(
                "memguard: memory pressure from outside the kernels: %s", action.reason
            )
            self.events.emit(
                "memory_pressure",
                {
                    "usage_bytes": action.usage_bytes or 0,
                    "limit_bytes": action.limit_bytes or 0,
                    "message": action.reason,
                    "culprit": dict(action.culprit) if action.culprit else None,
                },
            )
            return
        if action.kind == "cull":
            idle = kernel.idle_seconds if kernel is not None else 0.0
            self.log.warning(
                "memguard: %sculling kernel %s: %s", "(dry run) " if dry else "", kid, action.reason
            )
            if not dry:
                await self._record_intent(kid, "cull", action.reason)
            self.events.emit(
                "kernel_culled",
                {
                    **base,
                    "idle_seconds": float(idle),
                    "usage_bytes": action.usage_bytes,
                    "reason": action.reason,
                    "trigger": action.trigger,
                    "dry_run": dry,
                },
            )
            if not dry:
                self._spawn(self._shutdown(kid, now=False))
            return
        await self.halt_step(action, tick, dry)

    async def halt_step(self, action: Action, tick: Tick, dry: bool) -> None:
        """One step of the halt escalation: interrupt/restart → shutdown → kill."""
        kid = action.kernel_id
        state = tick.kernels.get(kid)
        path = state.path if state is not None else None
        if kid not in self.halting:
            self.halting.add(kid)
            if not dry:
                kind = "admin_halt" if action.trigger == "admin" else "halt"
                await self._record_intent(kid, kind, action.reason)
            self.events.emit(
                "kernel_halting",
                {
                    "kernel_id": kid,
                    "path": path,
                    "usage_bytes": action.usage_bytes or 0,
                    "limit_bytes": action.limit_bytes or 0,
                    "reason": action.reason,
                    "action": action.kind,
                    "trigger": action.trigger,
                    "dry_run": dry,
                },
            )
        self.log.warning(
            "memguard: %s%s kernel %s: %s",
            "(dry run) " if dry else "",
            action.kind,
            kid,
            action.reason,
        )
        self.events.emit(
            "kernel_halted",
            {
                "kernel_id": kid,
                "path": path,
                "step": action.kind,
                "usage_bytes": action.usage_bytes,
                "limit_bytes": action.limit_bytes,
                "dry_run": dry,
            },
        )
        if dry:
            return
        pids = state.pids if state is not None else ()
        kernel = find_kernel(self.km, kid)
        if kernel is None:
            return
        if action.kind == "interrupt":
            await self.km.interrupt_kernel(kid)
        elif action.kind == "restart":
            self._spawn(self.km.restart_kernel(kid, now=True))
        elif action.kind == "shutdown":
            kernel.stop_restarter()
            signal_kernel(kernel, pids, signal.SIGTERM)
            self._spawn(self._finish(kid, pids, self.settings.shutdown_grace))
        elif action.kind == "kill":
            kernel.stop_restarter()
            signal_kernel(kernel, pids, signal.SIGKILL)
            self._spawn(self._shutdown(kid, now=True))

    async def _finish(self, kernel_id: str, pids: tuple[int, ...], grace: float) -> None:
        """After SIGTERM: once the kernel has exited, or the grace is over, SIGKILL what is
        left of its process group and descendants, then remove it from the manager."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and await self._alive(kernel_id):
            await asyncio.sleep(0.05)
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

    async def admin_halt(self, kernel_id: str, tick: Tick, reason: str) -> None:
        """An admin's halt: intent, halting event, then shutdown → (grace) → kill."""
        state = tick.kernels.get(kernel_id)
        usage = state.usage_bytes if state is not None else None
        limit = state.limit_bytes if state is not None else None
        action = Action("shutdown", kernel_id, reason, "admin", usage, limit)
        await self.halt_step(action, tick, dry=False)

    async def _alive(self, kernel_id: str) -> bool:
        kernel = find_kernel(self.km, kernel_id)
        return kernel is not None and bool(await kernel.is_alive())
