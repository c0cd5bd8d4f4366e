"""The server's own death: a heartbeat while it runs, an examination at the next start.

Each server start is a session row in the journal (its pid and start time, boot, host and
runtime directory). While it runs, a heartbeat every few seconds (twice a second while memory
is near a line) writes its state: each kernel's id, notebook, process, memory, limit, growth
and running cell, and the budget with its OOM counter. A clean stop marks the session stopped.

At start, a session that never stopped, whose server is not running any more, is examined:
  * one ``server_died`` record per kernel it had, with its last facts and the likely cause
    (forensics.classify.classify_server_death);
  * its kernels still running without a server (probe.orphans, identified for certain) are
    stopped (``orphan_kernels = "stop"``) or kept and shown (``"keep"``).
A session on another host, or one whose server still runs (two servers on one journal), is
never touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..guard.actions import stop_orphan
from ..lifecycle import KernelLife, Lifecycle, Orphaned
from ..models import Tick
from ..probe.limits import oom_kills_at
from ..probe.orphans import LeftKernel, Orphan, identify
from ..probe.proctree import read_stat
from ..settings import MemGuardSettings
from .classify import ServerDeathFacts, classify_server_death
from .journal import Journal, ServerSession
from .kernel_log import BOOT_ID
from .recorder import Recorder

PRESSED_HEARTBEAT_S = 0.5  # the heartbeat's interval while memory is near a line
OTHER_HOST_STALE_S = 300.0  # a session of another host is taken for dead after this silence


@dataclass
class DeadKernel:
    """A kernel of a dead server, as the recorder takes it."""

    life: KernelLife
    path: str | None


def heartbeat_state(
    tick: Tick,
    lives: dict[str, KernelLife],
    running_cell: Callable[[str], dict[str, Any] | None],
    interval_s: float,
) -> dict[str, Any]:
    """The small record of the server's state the heartbeat writes (pure)."""
    budget = tick.budget
    kernels = []
    for kernel_id, state in tick.kernels.items():
        life = lives.get(kernel_id)
        kernels.append(
            {
                "id": kernel_id,
                "name": state.name,
                "path": state.path,
                "pid": state.pid,
                "pid_start_ticks": life.pid_start_ticks if life is not None else None,
                "connection_file": life.connection_file if life is not None else None,
                "started_at": state.started_at,
                "used_bytes": state.usage_bytes,
                "limit_bytes": state.limit_bytes,
                "growth_bytes_per_s": round(state.growth_bytes_per_s),
                "execution_state": state.execution_state,
                "running_cell": running_cell(kernel_id),
            }
        )
    return {
        "at": tick.at,
        "interval_s": interval_s,
        "budget": {
            "limit_bytes": budget.limit_bytes,
            "usage_bytes": budget.usage_bytes,
            "limit_source": budget.limit_source,
            "cgroup_version": budget.cgroup_version,
            "cgroup_path": budget.cgroup_path,
            "oom_kill_count": budget.oom_kill_count,
            "system_oom_kill_count": budget.system_oom_kill_count,
        },
        "kernels": kernels,
    }


def _pressed(tick: Tick, settings: MemGuardSettings) -> bool:
    budget = tick.budget
    if budget.usage_bytes >= settings.warn_fraction * budget.limit_bytes:
        return True
    return any(
        (k.usage_bytes or 0) >= settings.warn_fraction * k.limit_bytes
        for k in tick.kernels.values()
        if k.limit_bytes
    )


class ServerSessions:
    """This server's session and heartbeat; the examination of sessions that never stopped."""

    def __init__(
        self,
        settings: MemGuardSettings,
        journal: Journal,
        recorder: Recorder,
        lifecycle: Lifecycle,
        log: logging.Logger,
        runtime_dir: str,
        running_cell: Callable[[str], dict[str, Any] | None],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.recorder = recorder
        self.lifecycle = lifecycle
        self.log = log
        self.runtime_dir = runtime_dir
        self.running_cell = running_cell
        self.session_id: int | None = None
        self.orphans: list[dict[str, Any]] = []  # what the examination found, for /status
        self.heartbeats = 0
        self.heartbeat_seconds = 0.0  # worker-thread time spent writing heartbeats
        self._last_beat = -1e9
        self._writing = False
        stat = read_stat(os.getpid())
        self._start_ticks = stat.start_ticks if stat is not None else None
        self._hostname = socket.gethostname()

    # ------------------------------------------------------------------ this server
    async def start(self) -> None:
        """Open this server's session, then examine the ones that never stopped."""
        self.session_id = await asyncio.to_thread(
            self.journal.start_session,
            os.getpid(),
            self._start_ticks,
            BOOT_ID,
            self._hostname,
            self.runtime_dir,
            time.time(),
        )
        try:
            await self.examine()
        except Exception:
            self.log.exception("memguard: examining the previous server sessions failed")

    def on_tick(self, tick: Tick) -> None:
        """Write the heartbeat when it is due (in a worker thread; one at a time)."""
        if self.session_id is None or self._writing:
            return
        every = (
            PRESSED_HEARTBEAT_S
            if _pressed(tick, self.settings)
            else self.settings.heartbeat_interval
        )
        now = time.monotonic()
        if now - self._last_beat < every:
            return
        self._last_beat = now
        state = heartbeat_state(tick, self.lifecycle.lives(), self.running_cell, every)
        self._writing = True
        self.recorder.track(self._beat(state))

    async def _beat(self, state: dict[str, Any]) -> None:
        try:
            took = await asyncio.to_thread(self._write_beat, state)
            self.heartbeats += 1
            self.heartbeat_seconds += took
        except Exception:
            self.log.exception("memguard: could not write the heartbeat")
        finally:
            self._writing = False

    def _write_beat(self, state: dict[str, Any]) -> float:
        started = time.thread_time()
        assert self.session_id is not None
        self.journal.heartbeat(self.session_id, time.time(), state)
        return time.thread_time() - started

    async def stop(self) -> None:
        """A clean stop: the next start has nothing to examine."""
        if self.session_id is not None:
            await asyncio.to_thread(self.journal.stop_session, self.session_id, time.time())

    def status_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "heartbeats": self.heartbeats,
            "heartbeat_interval_s": self.settings.heartbeat_interval,
            "heartbeat_cpu_seconds": round(self.heartbeat_seconds, 6),
        }

    # ------------------------------------------------------------------ the dead ones
    async def examine(self) -> None:
        """Record and clean up after every session of this journal whose server died."""
        sessions = await asyncio.to_thread(self.journal.unfinished_sessions, self.session_id)
        for session in sessions:
            if self._still_running(session):
                continue
            await self._examine(session)
            await asyncio.to_thread(self.journal.mark_examined, session.id, time.time())

    def _same_machine(self, session: ServerSession) -> bool:
        return session.hostname == self._hostname and session.boot_id == BOOT_ID

    def _still_running(self, session: ServerSession) -> bool:
        """Another server on this journal that is alive (or might be, on another host)."""
        if session.hostname != self._hostname:
            last = session.heartbeat_at or session.started_at
            return time.time() - last < OTHER_HOST_STALE_S
        if session.boot_id != BOOT_ID:
            return False  # the machine restarted since
        stat = read_stat(session.pid)
        return stat is not None and stat.start_ticks == session.pid_start_ticks

    async def _examine(self, session: ServerSession) -> None:
        state = session.state or {}
        kernels = state.get("kernels") or []
        budget = state.get("budget") or {}
        same = self._same_machine(session)
        before = budget.get("oom_kill_count")
        after = (
            oom_kills_at(budget.get("cgroup_path"), budget.get("cgroup_version")) if same else None
        )
        self.log.warning(
            "memguard: the server of a previous session (pid %s, started %s) stopped abruptly "
            "with %d kernels; recording them",
            session.pid,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(session.started_at)),
            len(kernels),
        )
        for kernel in kernels:
            orphan = self._orphan(kernel) if same else None
            action = None
            if orphan is not None:
                action = await self._handle_orphan(orphan, kernel, session)
            facts = ServerDeathFacts(
                kernel=kernel,
                budget=budget,
                heartbeat_at=session.heartbeat_at,
                heartbeat_interval_s=float(
                    state.get("interval_s") or self.settings.heartbeat_interval
                ),
                session_started_at=session.started_at,
                same_boot=session.boot_id == BOOT_ID,
                oom_kill_before=before if isinstance(before, int) else None,
                oom_kill_after=after if isinstance(before, int) else None,
                halt_fraction=self.settings.halt_fraction,
                kill_fraction=self.settings.kill_fraction,
                left_running=orphan is not None,
                orphan_pid=orphan.pid if orphan is not None else None,
                orphan_bytes=orphan.rss_bytes if orphan is not None else None,
                orphan_action=action,
            )
            life = KernelLife(
                kernel_id=str(kernel.get("id")),
                name=str(kernel.get("name") or ""),
                generation=0,
                pid=kernel.get("pid"),
                pgid=None,
                started_at=float(kernel.get("started_at") or session.started_at),
            )
            subject = DeadKernel(life, kernel.get("path"))
            ended = session.heartbeat_at or session.started_at
            await self.recorder.record(subject, classify_server_death(facts), ended_at=ended)

    def _orphan(self, kernel: dict[str, Any]) -> Orphan | None:
        left = LeftKernel(
            kernel_id=str(kernel.get("id")),
            pid=kernel.get("pid"),
            pid_start_ticks=kernel.get("pid_start_ticks"),
            connection_file=kernel.get("connection_file"),
        )
        return identify(left, self.runtime_dir)

    async def _handle_orphan(
        self, orphan: Orphan, kernel: dict[str, Any], session: ServerSession
    ) -> str:
        start_ticks = int(kernel["pid_start_ticks"])
        path = kernel.get("path")
        if self.settings.orphan_kernels == "stop":
            gone = await stop_orphan(orphan, start_ticks, self.settings.shutdown_grace)
            action = "stopped" if gone else "could not stop"
            if gone:
                self._remove_connection_file(kernel.get("connection_file"))
        else:
            action = "kept"
            life = KernelLife(
                orphan.kernel_id,
                str(kernel.get("name") or ""),
                0,
                orphan.pid,
                orphan.pgid,
                float(kernel.get("started_at") or session.started_at),
                kernel.get("connection_file"),
                start_ticks,
            )
            self.lifecycle.announce(Orphaned(life, path, session.id, time.time()))
        self.log.warning(
            "memguard: kernel %s (pid %d, %s) was left running by a server that died: %s",
            orphan.kernel_id,
            orphan.pid,
            path or "no notebook",
            action,
        )
        self.orphans.append(
            {
                "kernel_id": orphan.kernel_id,
                "pid": orphan.pid,
                "path": path,
                "bytes": orphan.rss_bytes,
                "action": action,
                "session_id": session.id,
                "found_at": time.time(),
            }
        )
        return action

    def _remove_connection_file(self, path: str | None) -> None:
        """The stopped kernel's connection file (in this server's runtime directory)."""
        if not path:
            return
        try:
            os.unlink(path)
        except OSError:
            pass
