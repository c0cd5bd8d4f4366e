"""One owner of a kernel's life: the only module that hears jupyter_server about its kernels.

What it hears:
  * jupyter_server's ``kernel_actions`` events: ``start``, ``restart``, ``shutdown``;
  * each kernel's restarter callbacks: ``restart`` (the process died; a new one follows) and
    ``dead`` (the restarter gave up), with the exit status read before jupyter_client drops it;
  * the kernels already there when memguard starts, and kernels that leave the manager (or get
    a new process) without an event: ``reconcile``, called by the monitor before each pass;
  * the server's own stop.
What it publishes, in order, to every subscriber: one typed event per change of one kernel
identity (its id and generation: a restart begins a new generation). Everything downstream
(the monitor, the cell records, the iopub listeners, the guard's state, the recorder) learns of
kernels from here and from nowhere else.

``orphaned`` kernels (left running by a server that died) are announced by the server-death
examination at start (forensics.sessions) through ``announce``: they never were this server's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from .probe.proctree import read_stat
from .probe.server import (
    KernelManager,
    ServerKernel,
    connection_file,
    find_kernel,
    kernel_ids,
    kernel_pgid,
    kernel_pid,
    kernel_returncode,
)

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
AUTO_RESTART_WINDOW_S = 60.0  # a restart this soon after a death is the restarter's own


@dataclass(frozen=True)
class KernelLife:
    """One kernel identity: a kernel id and one of its processes (its generation)."""

    kernel_id: str
    name: str
    generation: int  # 0 at start, +1 at each restart (by a user, memguard or the restarter)
    pid: int | None  # None: no local process (a remote or gateway kernel), or not yet known
    pgid: int | None
    started_at: float
    connection_file: str | None = None
    pid_start_ticks: int | None = None  # with the pid, names the process for certain

    @property
    def remote(self) -> bool:
        return self.pid is None


@dataclass(frozen=True)
class Started:
    """A kernel is known from now on (started, or already running when memguard started)."""

    life: KernelLife
    at: float
    before_memguard: bool = False


@dataclass(frozen=True)
class Restarted:
    """The same kernel id goes on with a new process. ``by``: "restarter" after a death (its
    Died came first), "request" through jupyter_server (a user, an API client, or memguard:
    an intent tells), "unknown" when only a new pid was noticed."""

    life: KernelLife
    previous: KernelLife
    by: Literal["restarter", "request", "unknown"]
    at: float


@dataclass(frozen=True)
class Died:
    """The kernel's process ended unexpectedly (a restarter callback, on the event loop).

    ``final``: the restarter gave up; no new process follows and the kernel will leave."""

    life: KernelLife
    returncode: int | None
    final: bool
    at: float


GoneCause = Literal["shutdown", "culled_by_jupyter_server", "died", "vanished", "server_stop"]


@dataclass(frozen=True)
class Gone:
    """The kernel left this server. ``cause``: "shutdown" (a shutdown request through
    jupyter_server: a user, an API client, or memguard), "culled_by_jupyter_server" (its idle
    culler, told by the culler's own call), "died" (after a final Died), "vanished" (it left
    the manager without an event memguard saw), "server_stop" (the server is stopping)."""

    life: KernelLife
    cause: GoneCause
    at: float
    culler_timeout_s: float | None = None  # culled: jupyter_server's cull_idle_timeout then


@dataclass(frozen=True)
class Orphaned:
    """A kernel left running by a server of this journal that died; identified for certain
    (pid, start time, a connection file in this server's runtime directory, a kernel id the
    journal knows). ``session_id``: the dead server's session row."""

    life: KernelLife
    path: str | None
    session_id: int
    at: float


LifecycleEvent = Started | Restarted | Died | Gone | Orphaned
Subscriber = Callable[[LifecycleEvent], None]


def _start_ticks(pid: int | None) -> int | None:
    fields = read_stat(pid) if pid is not None else None
    return fields.start_ticks if fields is not None else None


class Lifecycle:
    """Every kernel's identity from its start to its end, published as typed events."""

    def __init__(self, kernel_manager: KernelManager, log: logging.Logger) -> None:
        self.km = kernel_manager
        self.log = log
        self._lives: dict[str, KernelLife] = {}
        self._subscribers: list[Subscriber] = []
        self._registered: set[str] = set()  # kernel ids whose restarter callbacks are ours
        self._deaths: dict[str, float] = {}  # kernel id → when its process died (monotonic)
        self._finished: set[str] = set()  # a final Died was published: only Gone may follow
        self._culling: set[str] = set()  # jupyter_server's culler is shutting these down
        self._restarting: set[str] = set()  # a watched restart_kernel call is under way
        self._emits = False  # the manager's kernels emit kernel_actions (set at start)
        self._stopping = False
        self._event_logger: Any = None

    # ------------------------------------------------------------------ subscribing
    def subscribe(self, subscriber: Subscriber) -> None:
        """Hear every event from now on, after the subscribers before (call at wiring time)."""
        self._subscribers.append(subscriber)

    def _publish(self, event: LifecycleEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                self.log.exception("memguard: a lifecycle subscriber failed on %s", event)

    # ------------------------------------------------------------------ reading
    def life(self, kernel_id: str) -> KernelLife | None:
        """The kernel's current identity (None: not a kernel of this server now)."""
        return self._lives.get(kernel_id)

    def lives(self) -> dict[str, KernelLife]:
        return dict(self._lives)

    def kernel_of_pid(self, pid: int) -> str | None:
        """The kernel whose process this is (its current generation), if any."""
        return next((k for k, life in self._lives.items() if life.pid == pid), None)

    # ------------------------------------------------------------------ wiring
    def start(self, event_logger: Any) -> None:
        """Listen to jupyter_server and know the kernels already running."""
        self._event_logger = event_logger
        if event_logger is not None:
            event_logger.add_listener(schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action)
        self._watch_culler()
        self._emits = self._emits_kernel_actions()
        if not self._emits:
            self._watch_requests()
        for kernel_id in kernel_ids(self.km):
            self._started(kernel_id, before_memguard=True)

    async def stop(self, timeout: float = 5.0) -> None:
        """The server is stopping: every kernel still here ends with it.

        jupyter_server's events reach listeners through tasks: those already under way (a
        shutdown requested a moment before the stop) are heard first, so that their end is
        recorded as what it was."""
        gather = getattr(self._event_logger, "gather_listeners", None)
        if gather is not None:
            try:
                await asyncio.wait_for(gather(), timeout)
            except Exception:
                pass
        self.reconcile()  # kernels that left without an event we saw
        self._stopping = True
        if self._event_logger is not None:
            try:
                self._event_logger.remove_listener(
                    schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action
                )
            except Exception:
                pass
        now = time.time()
        live = set(kernel_ids(self.km))
        for kernel_id in live:  # also a restarted process no reconcile has seen yet
            self._refresh(kernel_id)
        for kernel_id, life in list(self._lives.items()):
            if kernel_id in live and kernel_id not in self._finished:
                self._publish(Gone(life, "server_stop", now))
        self._lives.clear()

    def announce(self, event: Orphaned) -> None:
        """A kernel of a dead server (found by forensics at start): tell the subscribers."""
        self._publish(event)

    # ------------------------------------------------------------------ the kernel manager
    def reconcile(self) -> None:
        """Match what the manager holds now: kernels that came or left without an event, and
        processes replaced without one (the old synchronous MappingKernelManager emits none)."""
        if self._stopping:
            return
        live = kernel_ids(self.km)
        for kernel_id in live:
            if kernel_id not in self._lives:
                self._started(kernel_id)
            else:
                self._refresh(kernel_id)
        now = time.time()
        for kernel_id in [k for k in self._lives if k not in live]:
            life = self._lives.pop(kernel_id)
            self._forget_and_publish(
                kernel_id, life, "died" if kernel_id in self._finished else "vanished", now
            )

    def _identity(self, kernel_id: str, kernel: ServerKernel, generation: int) -> KernelLife:
        pid = kernel_pid(kernel)
        return KernelLife(
            kernel_id=kernel_id,
            name=getattr(kernel, "kernel_name", "") or "",
            generation=generation,
            pid=pid,
            pgid=kernel_pgid(kernel),
            started_at=time.time(),
            connection_file=connection_file(kernel),
            pid_start_ticks=_start_ticks(pid),
        )

    def _started(self, kernel_id: str, before_memguard: bool = False) -> None:
        kernel = find_kernel(self.km, kernel_id)
        if kernel is None or kernel_id in self._lives:
            return
        life = self._identity(kernel_id, kernel, 0)
        self._lives[kernel_id] = life
        self._register(kernel_id, kernel)
        self._publish(Started(life, time.time(), before_memguard))

    def _refresh(self, kernel_id: str) -> None:
        """A kernel whose process changed without an event: a restart seen late."""
        kernel = find_kernel(self.km, kernel_id)
        life = self._lives.get(kernel_id)
        if kernel is None or life is None:
            return
        pid = kernel_pid(kernel)
        if pid is not None and life.pid is None and life.generation == 0 and not life.remote:
            self._lives[kernel_id] = replace(
                life, pid=pid, pgid=kernel_pgid(kernel), pid_start_ticks=_start_ticks(pid)
            )  # the process became known after the start event
        elif pid is not None and pid != life.pid:
            by = self._restart_seen_late(kernel_id)
            if by is not None:
                self._restarted(kernel_id, kernel, by)

    def _restart_seen_late(self, kernel_id: str) -> str | None:
        """Who replaced a kernel's process that a reconcile found changed, or None to wait
        for jupyter_server's own word.

        After a death it is the restarter (its kernel_actions event may still be on its way,
        or never heard: the server is stopping). A watched restart call under way is a
        request. Otherwise, where the manager emits kernel_actions, its "restart" event says
        it (a restart emits it once done): nothing is claimed before. Without events and
        without a call seen, who did it is not known, and the record says so."""
        died_at = self._deaths.get(kernel_id)
        if died_at is not None and time.monotonic() - died_at < AUTO_RESTART_WINDOW_S:
            self._deaths.pop(kernel_id, None)
            return "restarter"
        if kernel_id in self._restarting:
            return "request"
        return None if self._emits else "unknown"

    def _restarted(self, kernel_id: str, kernel: ServerKernel, by: str) -> None:
        previous = self._lives.get(kernel_id)
        if previous is None:
            self._started(kernel_id)
            return
        life = self._identity(kernel_id, kernel, previous.generation + 1)
        self._lives[kernel_id] = life
        self._finished.discard(kernel_id)
        self._publish(Restarted(life, previous, by, time.time()))  # type: ignore[arg-type]

    def _register(self, kernel_id: str, kernel: ServerKernel) -> None:
        if kernel_id in self._registered:
            return
        for event in ("restart", "dead"):
            kernel.add_restart_callback(
                lambda kid=kernel_id, ev=event: self._on_death(kid, ev == "dead"), event
            )
        self._registered.add(kernel_id)

    def _forget_and_publish(
        self, kernel_id: str, life: KernelLife, cause: GoneCause, now: float | None = None
    ) -> None:
        timeout = None
        if kernel_id in self._culling:
            cause = "culled_by_jupyter_server"
            timeout = float(getattr(self.km, "cull_idle_timeout", 0) or 0)
        self._forget(kernel_id)
        self._publish(Gone(life, cause, time.time() if now is None else now, timeout))

    def _forget(self, kernel_id: str) -> None:
        self._registered.discard(kernel_id)
        self._deaths.pop(kernel_id, None)
        self._finished.discard(kernel_id)
        self._culling.discard(kernel_id)

    # ------------------------------------------------------------------ jupyter_server's words
    def _on_death(self, kernel_id: str, final: bool) -> None:
        """Restarter callback: the process died (before the restarter replaces it)."""
        if self._stopping:
            return
        kernel = find_kernel(self.km, kernel_id)
        life = self._lives.get(kernel_id)
        if life is None:
            return
        if kernel is not None:
            pid = kernel_pid(kernel)  # the process that died, not a guess
            if pid is not None and pid != life.pid:
                life = replace(life, pid=pid, pid_start_ticks=None)
        returncode = kernel_returncode(kernel) if kernel is not None else None
        self._deaths[kernel_id] = time.monotonic()
        if final:
            self._finished.add(kernel_id)
        self._publish(Died(life, returncode, final, time.time()))

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """jupyter_server's kernel_actions event (its success only)."""
        action, kernel_id = data.get("action"), data.get("kernel_id")
        if self._stopping or data.get("status") != "success" or not kernel_id:
            return
        if action == "start":
            self._started(kernel_id)
        elif action == "restart":
            kernel = find_kernel(self.km, kernel_id)
            if kernel is None:
                return
            died_at = self._deaths.pop(kernel_id, None)
            life = self._lives.get(kernel_id)
            if life is not None and life.generation > 0 and kernel_pid(kernel) == life.pid:
                return  # a reconcile saw this process after a death: the restarter's, told
            recent = died_at is not None and time.monotonic() - died_at < AUTO_RESTART_WINDOW_S
            self._restarted(kernel_id, kernel, "restarter" if recent else "request")
        elif action == "shutdown":
            life = self._lives.pop(kernel_id, None)
            if life is None:
                return
            self._forget_and_publish(kernel_id, life, "shutdown")

    def _emits_kernel_actions(self) -> bool:
        """Whether the manager's kernels are jupyter_server's ServerKernelManager (whose
        start, restart and shutdown emit ``kernel_actions``); the old synchronous
        MappingKernelManager's IOLoopKernelManager emits nothing."""
        from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

        name = getattr(self.km, "kernel_manager_class", "")
        try:
            from traitlets.utils.importstring import import_item

            cls = import_item(name) if isinstance(name, str) else name
            return isinstance(cls, type) and issubclass(cls, ServerKernelManager)
        except Exception:
            return False

    def _watch_requests(self) -> None:
        """Without ``kernel_actions``, hear the manager's own start, restart and shutdown
        calls (through the REST API, the culler, or memguard): a request is then told apart
        from a death, as the events would."""

        def wrap(name: str, after: Callable[[str], None]) -> None:
            original = getattr(self.km, name, None)
            if original is None or getattr(original, "_memguard_watched", False):
                return

            async def call(*args: Any, **kwargs: Any) -> Any:
                asked = kwargs.get("kernel_id") or (args[0] if args else None)
                restarting = name == "restart_kernel" and isinstance(asked, str)
                if restarting:
                    self._restarting.add(asked)
                try:
                    result = original(*args, **kwargs)
                    if hasattr(result, "__await__"):
                        result = await result
                finally:
                    if restarting:
                        self._restarting.discard(asked)
                kernel_id = kwargs.get("kernel_id") or (args[0] if args else result)
                if isinstance(kernel_id, str) and not self._stopping:
                    after(kernel_id if name != "start_kernel" else str(result))
                return result

            call._memguard_watched = True  # type: ignore[attr-defined]
            setattr(self.km, name, call)

        def restarted(kernel_id: str) -> None:
            kernel = find_kernel(self.km, kernel_id)
            life = self._lives.get(kernel_id)
            if life is not None and kernel is not None and kernel_pid(kernel) == life.pid:
                return  # a reconcile during the call saw the new process, as a request
            if kernel is not None:
                self._restarted(kernel_id, kernel, "request")

        def shut_down(kernel_id: str) -> None:
            life = self._lives.pop(kernel_id, None)
            if life is not None:
                self._forget_and_publish(kernel_id, life, "shutdown")

        try:
            wrap("start_kernel", self._started)
            wrap("restart_kernel", restarted)
            wrap("shutdown_kernel", shut_down)
        except Exception:
            self.log.debug("memguard: cannot watch the kernel manager's calls", exc_info=True)

    def _watch_culler(self) -> None:
        """Know jupyter_server's own idle culler by its own call: while its
        ``cull_kernel_if_idle`` runs for a kernel, a shutdown of that kernel is the culler's."""
        original = getattr(self.km, "cull_kernel_if_idle", None)
        if original is None or getattr(original, "_memguard_watched", False):
            return

        async def cull_kernel_if_idle(kernel_id: str) -> Any:
            self._culling.add(kernel_id)
            try:
                result = original(kernel_id)
                if hasattr(result, "__await__"):
                    result = await result
                return result
            finally:
                if kernel_id in kernel_ids(self.km):
                    self._culling.discard(kernel_id)  # not culled this time

        cull_kernel_if_idle._memguard_watched = True  # type: ignore[attr-defined]
        try:
            self.km.cull_kernel_if_idle = cull_kernel_if_idle  # type: ignore[attr-defined]
        except Exception:
            self.log.debug("memguard: cannot watch jupyter_server's culler", exc_info=True)
