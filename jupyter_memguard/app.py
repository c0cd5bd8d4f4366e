"""MemGuard: the jupyter_server extension app (configuration, validation, wiring)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, TraitError, Unicode, Union

from .agent import (
    AgentChannel,
    AgentEvent,
    AgentHello,
    AgentLost,
    AgentSetup,
    CellEnded,
    CellStarted,
    VariablesReport,
    uninstall,
)
from .forensics.journal import TerminationRecord, default_journal_path
from .lifecycle import Gone, LifecycleEvent
from .models import Tick
from .probe.cells import CellRecord
from .probe.gpu_oom import GpuOomError
from .probe.proc import tree_rss
from .settings import ConfigValueError, MemGuardSettings, resolve_settings
from .units import human_bytes
from .views.doctor import DoctorFacts, doctor_json, facts_of
from .views.source import TerminationQuery

if TYPE_CHECKING:
    from .probe.server import KernelManager


class MemGuardConfigError(SystemExit):
    """Raised to stop the server when memguard's configuration is invalid.

    jupyter_server logs and swallows ordinary exceptions from extensions; a bad memory
    setting must not leave a server running unguarded, so this is a SystemExit.
    """


class MemGuard(ExtensionApp):
    """Per-kernel memory tracking, OOM guard and kernel-death forensics."""

    name = "jupyter_memguard"
    load_other_extensions = True

    # --- the budget and sampling
    memory_limit = Union(
        [Int(), Unicode()],
        default_value="",
        help="Memory budget for this server and its kernels, in bytes or as '4G', '512MiB', "
        "'1.5GB'. Empty: detect (cgroup v2 memory.max, cgroup v1 memory.limit_in_bytes, the "
        "MEM_LIMIT a JupyterHub spawner sets, host total). The effective budget is the smallest "
        "limit that applies.",
    ).tag(config=True)
    kernel_memory_limit = Union(
        [Int(), Unicode()],
        default_value="",
        help="Limit for one kernel's process tree: bytes, a size like '2G', or a percentage of "
        "the budget like '50%'. Empty: the budget applies to each kernel.",
    ).tag(config=True)
    poll_interval = Float(
        2.0, help="Slowest sampling interval (seconds), used with plenty of headroom."
    ).tag(config=True)
    min_poll_interval = Float(
        0.05, help="Fastest sampling interval (seconds), used near the limit."
    ).tag(config=True)
    history_length = Int(120, help="Samples kept per kernel for the history and sparkline.").tag(
        config=True
    )
    growth_window = Float(10.0, help="Seconds of history used to compute the growth rate.").tag(
        config=True
    )
    remote_usage_interval = Float(
        5.0,
        help="Seconds between usage_request messages to a kernel without a local process "
        "(remote provisioner, gateway).",
    ).tag(config=True)
    remote_usage_timeout = Float(
        2.0,
        help="Seconds to wait for a usage_reply; a kernel that does not answer is shown as "
        "not supported.",
    ).tag(config=True)
    max_growth_rate = Union(
        [Int(), Unicode()],
        default_value="2GiB",
        help="Fastest allocation rate (per second) the adaptive interval must keep up with.",
    ).tag(config=True)

    # --- the guard
    guard_enabled = Bool(
        True, help="Halt kernels that exceed their limit (False: only track)."
    ).tag(config=True)
    warn_fraction = Float(0.8, help="Fraction of the limit at which a memory_warning is sent.").tag(
        config=True
    )
    halt_fraction = Float(0.9, help="Fraction of the limit at which a kernel is halted.").tag(
        config=True
    )
    kill_fraction = Float(
        0.95, help="Fraction of the limit at which a kernel is killed at once."
    ).tag(config=True)
    min_headroom = Union(
        [Int(), Unicode()],
        default_value="100MiB",
        help="Free memory floor of the budget; below it the budget counts as exhausted.",
    ).tag(config=True)
    action = Unicode(
        "interrupt", help="First halt step: 'interrupt' (then shutdown, then kill) or 'restart'."
    ).tag(config=True)
    interrupt_grace = Float(
        2.0, help="Seconds after the interrupt before the kernel is shut down."
    ).tag(config=True)
    shutdown_grace = Float(3.0, help="Seconds after SIGTERM before SIGKILL.").tag(config=True)
    idle_timeout = Float(
        0.0, help="Cull kernels idle for this many seconds (0: never by age)."
    ).tag(config=True)
    cull_busy = Bool(False, help="Allow culling busy kernels.").tag(config=True)
    cull_connected = Bool(True, help="Allow culling kernels with open connections.").tag(
        config=True
    )
    cull_under_pressure = Bool(
        True,
        help="Under memory pressure, cull idle kernels (largest first) before halting a busy one.",
    ).tag(config=True)
    runaway_horizon = Float(
        10.0,
        help="Under pressure, idle kernels are not culled while a kernel's growth would reach "
        "the halt line within this many seconds anyway: the runaway is halted, bystanders "
        "are spared (0: always cull first).",
    ).tag(config=True)
    dry_run = Bool(False, help="Decide and report (events, log), but never signal a kernel.").tag(
        config=True
    )
    protected_kernels = List(
        Unicode(), default_value=[], help="Kernel ids or kernel spec names the guard never acts on."
    ).tag(config=True)
    oom_score_adj = Int(
        500,
        allow_none=True,
        help="oom_score_adj given to each kernel so the OOM killer takes a kernel, not the "
        "server. None: leave as is.",
    ).tag(config=True)

    # --- the journal and forensics
    journal_path = Unicode(
        "", help="SQLite journal file. Empty: <jupyter data dir>/memguard/journal.sqlite."
    ).tag(config=True)
    journal_max_rows = Int(10000, help="Terminations kept in the journal.").tag(config=True)
    journal_max_days = Float(90.0, help="Days terminations are kept in the journal.").tag(
        config=True
    )
    detect_gpu_oom = Bool(
        True,
        help="Listen to each kernel's errors and record GPU out-of-memory errors (PyTorch, CuPy, "
        "TensorFlow, JAX, CUDA) with the kernel's GPU memory, as evidence.",
    ).tag(config=True)
    use_spawner_mem_limit = Bool(
        True,
        help="Count the MEM_LIMIT a JupyterHub spawner sets (Spawner.mem_limit) as a limit, "
        "so memguard enforces it where no container does.",
    ).tag(config=True)
    gpu_relief = Unicode(
        "notify",
        help="When a cell fails with a GPU out-of-memory error while other idle kernels of this "
        "server hold memory on that GPU: 'off'; 'notify' tells the failing kernel's user which "
        "notebooks hold how much; 'cull' also culls the largest idle holders until the request "
        "fits (never a busy or protected kernel).",
    ).tag(config=True)
    kernel_cgroups = Bool(
        True,
        help="Put each local kernel in a memory cgroup of its own, under the server's, where "
        "the machine allows (cgroup v1 memory controller writable): its memory with each page "
        "counted once then costs one file read. Elsewhere (or False) memguard reads PSS.",
    ).tag(config=True)
    display_units = Unicode(
        "binary",
        help="Units of the figures memguard writes (notices, journal, CLI): 'binary' (MiB, GiB: "
        "a configured '600M' reads back as '600 MiB') or 'decimal' (MB, GB).",
    ).tag(config=True)
    kmsg_path = Unicode("/dev/kmsg", help="Kernel log device read for OOM-killer lines.").tag(
        config=True
    )
    kernel_agent = Bool(
        True,
        help="Load memguard's agent into each ipykernel kernel this server starts (through its "
        "kernel provisioner): exact cell boundaries (Run All, a cell holding the GIL, a kernel "
        "killed mid-cell), the variables that hold the memory, and an interrupt that says why "
        "(MemoryLimitInterrupt). False: every kernel is watched from outside (iopub) only.",
    ).tag(config=True)
    record_code = Bool(
        True,
        help="Keep the first lines of each cell in the journal and the cell records (the "
        "notices then say which code ran). False: only the execution count and the sizes "
        "('cell [7]'), for servers where cells may hold secrets.",
    ).tag(config=True)
    heartbeat_interval = Float(
        5.0,
        help="Seconds between two records of the server's state in the journal (each kernel's "
        "memory, notebook and running cell, the budget), so that a server that dies abruptly "
        "(a crash, or a whole container killed on one kernel's OOM) is explained at its next "
        "start. Twice a second while memory is near a line.",
    ).tag(config=True)
    orphan_kernels = Unicode(
        "stop",
        help="Kernels left running by a server of this journal that died, found at start "
        "(identified for certain: pid, start time, a connection file in this runtime "
        "directory): 'stop' stops them, with a record each; 'keep' only reports them (in "
        "/api/memguard/status and the budget breakdown).",
    ).tag(config=True)

    resolved: MemGuardSettings | None = None
    agent_setup: AgentSetup | None = None

    @property
    def config_in_force(self) -> MemGuardSettings:
        """The validated settings (they exist once the extension is linked)."""
        assert self.resolved is not None, "memguard's settings are resolved at link time"
        return self.resolved

    def raw_settings(self) -> dict[str, Any]:
        names = [n for n, t in self.class_own_traits().items() if t.metadata.get("config")]
        return {name: getattr(self, name) for name in names}

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        from .forensics.privacy import UnsafeJournalLocation, check_location

        try:
            super()._link_jupyter_server_extension(serverapp)
            self.resolved = resolve_settings(self.raw_settings())
            journal = Path(self.resolved.journal_path or default_journal_path())
            try:
                check_location(journal)
            except UnsafeJournalLocation as error:
                raise ConfigValueError("journal_path", str(error)) from None
            self.agent_setup = self._install_agent(serverapp)
        except (TraitError, ConfigValueError) as error:
            message = f"jupyter-memguard: invalid configuration: {error}"
            serverapp.log.critical(message)
            raise MemGuardConfigError(message) from None

    def _install_agent(self, serverapp: Any) -> AgentSetup | None:
        """Before jupyter_server makes its kernel manager: memguard's provisioner becomes the
        default one, so that ipykernel kernels start with the agent (none if an admin chose
        another default provisioner: then the reason is in /status)."""
        from .agent import default_socket_path, install

        assert self.resolved is not None
        if not self.resolved.kernel_agent:
            return None
        return install(serverapp.config, default_socket_path(str(serverapp.runtime_dir)))

    def initialize_settings(self) -> None:
        """Wire the stages along the data flow: lifecycle → monitor → policy → actions;
        lifecycle and ticks → deaths → recorder; everything → the views' read-only interface."""
        from .forensics.deaths import Deaths
        from .forensics.recorder import Recorder, open_journal
        from .forensics.sessions import ServerSessions
        from .guard.actions import ActionRunner
        from .guard.kernel_cgroups import KernelCgroups
        from .guard.monitor import Monitor
        from .lifecycle import Lifecycle
        from .probe.cells import CellTracker
        from .probe.iopub import IopubListener
        from .probe.server import find_kernel, kernel_pid, terminal_roots
        from .views.events import EventEmitter
        from .views.metrics import MetricsUpdater

        assert self.serverapp is not None and self.resolved is not None
        if not self.resolved.journal_path:
            self.resolved = replace(self.resolved, journal_path=str(default_journal_path()))
        settings = self.resolved
        serverapp = self.serverapp
        # The Protocols in probe/server.py say what memguard uses of jupyter_server's managers.
        km = cast("KernelManager", serverapp.kernel_manager)
        self.event_logger = getattr(serverapp, "event_logger", None)
        self.events = EventEmitter(self.event_logger, self.log)
        self.journal = open_journal(settings, self.log)
        self.lifecycle = Lifecycle(km, self.log)
        self.cgroups_per_kernel = KernelCgroups(settings.kernel_cgroups, self.log)
        self.agent: AgentChannel | None = None
        setup = self.agent_setup
        if setup is not None and setup.enabled:
            self.agent = AgentChannel(
                setup.socket_path,
                self.log,
                pid_of=lambda kid: kernel_pid(find_kernel(km, kid)),
                on_event=self._on_agent_event,
            )
        self.runner = ActionRunner(
            settings, km, self.journal, self.events, self.log, agent=self.agent
        )
        self.monitor = Monitor(
            settings,
            km,
            serverapp.session_manager,
            self.lifecycle,
            self.log,
            act=self.runner.carry_out,
            terminals=lambda: terminal_roots(serverapp),
            exact_of=self.cgroups_per_kernel.usage,
            still_of=self.cgroups_per_kernel.charge_still,
            shmem_of=self.cgroups_per_kernel.shmem_of,
            cells_of=lambda kid: (self.cells.source(kid), self.cells.agent_view(kid)),
        )
        self.cells = CellTracker(
            self._cell_memory, self._cell_pid, record_code=settings.record_code
        )
        self.recorder = Recorder(
            self.journal, self.events, self.log, self.monitor.path_of, settings.display_units
        )
        self.deaths = Deaths(
            settings,
            self.journal,
            self.recorder,
            self.log,
            first_tick=self.monitor.latest,
            read_budget=self.monitor.read_budget_now,
            cells=self.cells,
            containment=self.cgroups_per_kernel,
        )
        self.sessions = ServerSessions(
            settings,
            self.journal,
            self.recorder,
            self.lifecycle,
            self.log,
            runtime_dir=str(serverapp.runtime_dir),
            running_cell=self.cells.running_brief,
        )
        on_error = self.deaths.on_kernel_error if settings.detect_gpu_oom else None
        self.iopub = IopubListener(km, on_error, self.log, cells=self.cells)
        self.metrics = MetricsUpdater()
        # Everyone below learns of kernels from the lifecycle, in this order: the deaths read
        # a kernel's cells before the cell records close them.
        for subscriber in (
            self.monitor.on_lifecycle,
            self.deaths.on_lifecycle,
            self.cells.on_lifecycle,
            self.iopub.on_lifecycle,
            self.cgroups_per_kernel.on_lifecycle,
        ):
            self.lifecycle.subscribe(subscriber)
        if self.agent is not None:
            self.lifecycle.subscribe(self._forget_agent)
        self.monitor.on_tick.extend(
            [
                self._place_kernels,
                self.runner.steer_oom_killer,
                self._observe_cells,
                self.deaths.on_tick,
                self.sessions.on_tick,
                self.metrics.on_tick,
            ]
        )
        self.deaths.on_gpu_oom.append(self._relieve_gpu)
        self.runner.on_kept.append(self.deaths.record_kept)
        self.recorder.on_recorded.append(self.metrics.count_termination)
        self.settings["memguard_view"] = ServerView(self)
        if settings.spawner_mem_limit_problem:
            self.log.warning("memguard: %s", settings.spawner_mem_limit_problem)
        budget = self.monitor.latest.budget
        self.log.info(
            "memguard: budget %s from %s; guard %s%s",
            human_bytes(budget.limit_bytes, settings.display_units),
            budget.limit_source,
            "on" if settings.guard_enabled else "off",
            " (dry run)" if settings.dry_run else "",
        )

    def _forget_agent(self, event: LifecycleEvent) -> None:
        if isinstance(event, Gone) and self.agent is not None:
            self.agent.forget(event.life.kernel_id)

    def _on_agent_event(self, event: AgentEvent) -> None:
        """A kernel's agent spoke (on the event loop): its cells, exact, into the cell records.
        The memory of a cell is the kernel process's (the agent's reading) plus its children's
        (read here); the peak, the process's VmHWM during the cell plus its children's."""
        kernel_id = event.kernel_id
        if isinstance(event, AgentHello):
            self.cells.use_agent(kernel_id, True)
        elif isinstance(event, AgentLost):
            self.cells.use_agent(kernel_id, False)
        elif isinstance(event, CellStarted):
            children = self._children_memory(kernel_id)
            before = None if event.rss_bytes is None else event.rss_bytes + children
            msg_id = event.msg_id or f"agent-{event.pid}-{event.execution_count}-{event.at}"
            self.cells.agent_cell_started(
                kernel_id, msg_id, event.execution_count, event.code, before, event.at, event.pid
            )
        elif isinstance(event, CellEnded):
            children = self._children_memory(kernel_id)
            after = None if event.rss_bytes is None else event.rss_bytes + children
            peak = None if event.hwm_bytes is None else event.hwm_bytes + children
            msg_id = event.msg_id or self._agent_msg_id(kernel_id, event)
            self.cells.agent_cell_ended(
                kernel_id, msg_id, event.status, event.ename, after, peak, event.at
            )
            if kernel_id in self.monitor.halting():
                # The interrupted cell ended: decide now, and again the moment the kernel is
                # idle (its traceback has then reached the notebook), waiting for no tick.
                self.monitor.wake()
                self.iopub.when_idle(kernel_id, self.monitor.wake)

    def _agent_msg_id(self, kernel_id: str, event: CellEnded) -> str:
        """The open cell an end without a msg_id closes (the agent could not read one)."""
        prefix = f"agent-{event.pid}-{event.execution_count}-"
        running = self.cells.running(kernel_id)
        if running is not None and running.msg_id.startswith(prefix):
            return running.msg_id
        return prefix

    def _children_memory(self, kernel_id: str) -> int:
        """The RSS of the kernel's children now (the agent measures only its own process)."""
        state = self.monitor.latest.kernels.get(kernel_id)
        if state is None or state.memory is None:
            return 0
        children = state.memory.children
        return tree_rss(children) if children else 0

    async def _relieve_gpu(self, kernel_id: str, oom: GpuOomError) -> None:
        """A cell ran out of GPU memory: tell its user who holds the GPU, or make room."""
        from .guard.gpu_relief import gpu_relief

        tick = self.monitor.latest
        for action in gpu_relief(
            tick, self.config_in_force, kernel_id, oom.device_index, oom.requested_bytes
        ):
            await self.runner.carry_out(action, tick)

    def _place_kernels(self, tick: Tick) -> None:
        """Each local kernel process into its own memory cgroup (where the machine allows),
        held past its kill line while the guard acts (guard.policy.containment_limit)."""
        from .guard.policy import containment_limit

        cgroups, s = self.cgroups_per_kernel, self.config_in_force
        if not cgroups.available:
            return
        contain = s.guard_enabled and not s.dry_run
        for kernel_id, state in tick.kernels.items():
            if state.pid is None or state.memory is None:
                continue
            if cgroups.adopt(kernel_id, state.pid) and contain and not state.protected:
                cgroups.set_limit(kernel_id, containment_limit(state, tick.budget, s))

    def _cell_memory(self, kernel_id: str) -> int | None:
        """A kernel's memory now, for a cell's before/after (a statm read per process)."""
        state = self.monitor.latest.kernels.get(kernel_id)
        if state is None or state.pid is None:
            return None
        return tree_rss(state.pids or (state.pid,)) or None

    def _cell_pid(self, kernel_id: str) -> int | None:
        life = self.lifecycle.life(kernel_id)
        return life.pid if life is not None else None

    def _observe_cells(self, tick: Tick) -> None:
        for kernel_id, state in tick.kernels.items():
            if state.memory is not None:
                self.cells.observe(kernel_id, state.memory.rss_bytes, state.memory.sampled_at)

    def initialize_handlers(self) -> None:
        from .views.handlers import handlers

        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.agent is not None:
            try:
                await self.agent.start()  # listening before the first kernel starts
            except OSError as error:
                self.log.warning("memguard: the kernel agent's socket failed: %s", error)
                self.agent_setup = replace(self.agent_setup, enabled=False, reason=str(error))
                uninstall(self.agent_setup)
                self.agent = self.runner.agent = None
        await self.deaths.start()
        await self.sessions.start()  # a previous server that died: its records, its orphans
        self.lifecycle.start(self.event_logger)
        await self.monitor.start()

    async def stop_extension(self) -> None:
        """The server stops: record its kernels' end, wait for the records under way, then
        close the journal (nothing written before the stop is lost)."""
        monitor = getattr(self, "monitor", None)
        if monitor is None:
            return
        await monitor.stop()
        await self.lifecycle.stop()
        await self.runner.stop()
        left = await self.recorder.drain()
        if left:
            self.log.warning("memguard: %d records were still being written at stop", left)
        await self.deaths.stop()
        if self.agent is not None:
            await self.agent.stop()
        if self.agent_setup is not None:
            uninstall(self.agent_setup)
        self.iopub.close()
        self.cgroups_per_kernel.close()
        await self.sessions.stop()
        await asyncio.to_thread(self.journal.close)


class ServerView:
    """The views' read-only interface (views.source.MemGuardView) over the running stages."""

    def __init__(self, app: MemGuard) -> None:
        self._settings = app.config_in_force
        self._monitor = app.monitor
        self._lifecycle = app.lifecycle
        self._cells = app.cells
        self._journal = app.journal
        self._runner = app.runner
        self._app_agent = lambda: (app.agent, app.agent_setup)
        self._status = {
            "journal": app.deaths.status_json,
            "iopub": app.iopub.status_json,
            "gpu": lambda: self._monitor.gpu.status_json(),
            "kernel_cgroups": app.cgroups_per_kernel.status_json,
            "server_session": app.sessions.status_json,
            "orphans": lambda: list(app.sessions.orphans),
            "last_tick_cost_seconds": lambda: round(self._monitor.last_tick_cost_s, 6),
            "doctor": lambda: doctor_json(self._doctor_facts(app)),
            "agent": lambda: {
                "enabled": self._agent is not None,
                "reason": None if self._agent is not None else self._agent_reason,
                **(self._agent.status_json() if self._agent is not None else {}),
            },
        }

    def _doctor_facts(self, app: MemGuard) -> DoctorFacts:
        gpu, kmsg, cgroups = self._monitor.gpu, app.deaths.kernel_log, app.cgroups_per_kernel
        return facts_of(
            self._settings,
            self._monitor.latest.budget,
            (cgroups.available, cgroups.reason),
            (kmsg.available, kmsg.reason),
            (gpu.device_count if gpu.available else 0, gpu.reason),
            (self._agent is not None, None if self._agent is not None else self._agent_reason),
        )

    @property
    def settings(self) -> MemGuardSettings:
        return self._settings

    def latest(self) -> Tick:
        return self._monitor.latest

    async def sample(self, detail: bool = False) -> Tick:
        return await self._monitor.sample(detail=detail)

    async def current_paths(self) -> dict[str, str]:
        return await self._monitor.current_paths()

    def halting(self) -> frozenset[str]:
        return self._monitor.halting()

    def knows(self, kernel_id: str) -> bool:
        return (
            kernel_id in self._monitor.latest.kernels
            or self._lifecycle.life(kernel_id) is not None
            or kernel_id in self._monitor.km
        )

    def cells(self, kernel_id: str) -> list[CellRecord]:
        return self._cells.cells(kernel_id, include_running=True)

    async def terminations(self, query: TerminationQuery) -> tuple[list[TerminationRecord], int]:
        return await asyncio.to_thread(self._journal.terminations, **asdict(query))

    @property
    def _agent(self) -> AgentChannel | None:
        return self._app_agent()[0]

    @property
    def _agent_reason(self) -> str | None:
        setup = self._app_agent()[1]
        if setup is None:
            return "turned off (c.MemGuard.kernel_agent = False)"
        return setup.reason

    async def variables(self, kernel_id: str) -> dict[str, Any]:
        if self._agent is None:
            reason = self._agent_reason or "the kernel agent is off"
            return VariablesReport(
                kernel_id, "unavailable", reason, time.time(), None, ()
            ).to_json()
        return (await self._agent.variables(kernel_id)).to_json()

    def status_parts(self) -> dict[str, Any]:
        return {name: part() for name, part in self._status.items()}

    async def halt(self, kernel_id: str, by: str, note: str | None, via: str = "api") -> None:
        tick = await self._monitor.sample()
        self._runner.spawn(self._runner.admin_halt(kernel_id, tick, by, note, via))


def default_settings(**changes: Any) -> MemGuardSettings:
    """The settings of a MemGuard configured only with ``changes`` (trait names; for tests)."""
    traits = MemGuard.class_own_traits(config=True)
    raw = {name: trait.default() for name, trait in traits.items()}
    unknown = set(changes) - set(raw)
    if unknown:
        raise KeyError(f"not MemGuard settings: {sorted(unknown)}")
    raw.update(changes)
    return resolve_settings(raw, environ={})
