"""The shared vocabulary of memguard: budget, samples, the per-tick snapshot, actions, verdicts.

All frozen: a stage reads the Tick the stage before it published and never reaches back. This
module imports nothing of memguard's stages (probe, guard, forensics, views): they import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, Protocol

LimitSource = Literal["config", "cgroup_v2", "cgroup_v1", "spawner_mem_limit", "host"]


@dataclass(frozen=True)
class Budget:
    """The memory budget this server lives in: the smallest limit that applies, and its usage."""

    limit_bytes: int
    limit_source: LimitSource
    usage_bytes: int
    usage_source: str
    host_total_bytes: int
    cgroup_version: int | None = None
    cgroup_path: str | None = None
    oom_kill_count: int | None = None
    system_oom_kill_count: int | None = None
    candidates: dict[str, int] = field(default_factory=dict)
    # What lies outside the kernels (the server, terminals, other processes, caches), from
    # reads consistent with the kernels' own (None: not worked out, e.g. a test's budget).
    outside_bytes: int | None = None

    @property
    def headroom_bytes(self) -> int:
        """Bytes left before the limit (never negative)."""
        return max(0, self.limit_bytes - self.usage_bytes)

    @property
    def usage_fraction(self) -> float:
        """Usage as a fraction of the limit."""
        return self.usage_bytes / self.limit_bytes if self.limit_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headroom_bytes"] = self.headroom_bytes
        data["usage_fraction"] = round(self.usage_fraction, 4)
        return data


@dataclass(frozen=True)
class ProcessTreeMemory:
    """Memory of one kernel's process tree at one instant."""

    pid: int
    rss_bytes: int
    peak_bytes: int
    pids: tuple[int, ...]
    sampled_at: float
    pss_bytes: int | None = None
    uss_bytes: int | None = None
    source: str = "proc"  # "proc": read from /proc here; "usage_request": the kernel said so
    exact_bytes: int | None = None  # each page counted once (PSS summed over the tree)
    exact_at: float | None = None  # when the exact figure was read (it may be a few s old)
    exact_method: str = "pss"  # "pss" (summed over the tree) or "cgroup" (the kernel's own)
    root_rss_bytes: int = 0  # the kernel process's own RSS

    @cached_property
    def decision_bytes(self) -> int:
        """The kernel's memory with each page counted once, as well as it is known (worked
        out once per sample: every stage of a tick asks for it, several times per kernel).

        The kernel's own memory cgroup, where it has one: its anonymous and shared memory, each
        page once (its file pages are page cache, which the system reclaims). Else, for a tree
        of several processes, PSS summed over the tree (forked workers share their parent's
        pages copy-on-write, and summed RSS would count them once per process), never less than
        the kernel process's own RSS; else the RSS sum, an upper bound.
        """
        if self.exact_bytes is not None and self.exact_method == "cgroup":
            return min(self.rss_bytes, self.exact_bytes)
        if self.exact_bytes is not None:
            return min(self.rss_bytes, max(self.exact_bytes, self.root_rss_bytes))
        return self.rss_bytes

    @property
    def method(self) -> str:
        """How ``decision_bytes`` was measured: 'rss', 'pss' or 'usage_request'."""
        if self.source == "usage_request":
            return "usage_request"
        return self.exact_method if self.exact_bytes is not None else "rss"

    @property
    def children(self) -> tuple[int, ...]:
        """Descendant PIDs (the kernel process itself excluded)."""
        return tuple(p for p in self.pids if p != self.pid)


@dataclass(frozen=True)
class AgentView:
    """What a kernel's agent said, as of a tick: whether a cell runs, and how the last ended."""

    running: bool  # a cell is running (its start came, its end not yet)
    last_end_at: float | None = None  # when the last cell ended (the kernel's clock)
    last_end_status: str | None = None  # ok | error | interrupted | halted
    memory_after_bytes: int | None = None  # the kernel's memory right after that end


@dataclass(frozen=True)
class KernelState:
    """One kernel as one tick saw it: identity, activity, limit, memory. Immutable.

    ``memory`` is None while the kernel cannot be measured (no local process, not sampled yet,
    its process has ended); ``unavailable_reason`` says why.
    """

    kernel_id: str
    name: str = ""
    pid: int | None = None
    pgid: int | None = None
    pids: tuple[int, ...] = ()
    path: str | None = None
    started_at: float = 0.0
    execution_state: str = "idle"
    idle_seconds: float = 0.0
    connections: int = 0
    protected: bool = False
    limit_bytes: int = 0
    limit_source: str = ""
    memory: ProcessTreeMemory | None = None
    unavailable_reason: str | None = None
    growth_bytes_per_s: float = 0.0
    peak_bytes: int = 0
    gpu: dict[str, Any] | None = None
    history: tuple[tuple[float, int], ...] = ()
    cells_source: str | None = None  # where its cell records come from: "agent" | "iopub"
    agent: AgentView | None = None  # None: no agent in this kernel (its cells from iopub)

    @cached_property
    def usage_bytes(self) -> int | None:
        """The figure the guard decides on (None: not measured)."""
        return self.memory.decision_bytes if self.memory is not None else None

    @property
    def busy(self) -> bool:
        """Running code. 'starting' or 'unknown' is not busy: such a kernel runs nothing."""
        return self.execution_state == "busy"


@dataclass(frozen=True)
class Holder:
    """One owner's share of the budget: a kernel, the server, a terminal, an orphaned kernel."""

    kind: str  # "kernel" | "server" | "terminal" | "orphan"
    key: str  # kernel id, "server", terminal name
    bytes: int
    pids: tuple[int, ...]
    method: str  # how ``bytes`` was counted: "pss", "rss", "cgroup", "decision"


@dataclass(frozen=True)
class OtherProcess:
    """A process in the budget outside the kernels and the server (``terminal``: the name of
    the terminal it runs in, if any)."""

    pid: int
    name: str
    cmdline: str
    user: str
    bytes: int
    terminal: str | None = None


@dataclass(frozen=True)
class Breakdown:
    """The budget's usage split by holder.

    ``unattributed_bytes`` is usage minus everything attributed, clamped at 0: kernel memory
    (slab, page tables, sockets), processes newer than the scan, and anything else no reading
    here explains. ``overcounted_bytes`` is the opposite excess (parts counted by RSS count
    shared pages once per process; with PSS the parts add up).
    """

    usage_bytes: int
    scope: str  # "host" or the cgroup path
    scanned_at: float
    kernels: tuple[Holder, ...]
    server: Holder
    terminals: tuple[Holder, ...]
    others: tuple[OtherProcess, ...]  # the top few by memory
    others_bytes: int  # all other processes together
    others_count: int
    page_cache_bytes: int
    shmem_bytes: int
    unowned_source: str
    unattributed_bytes: int
    overcounted_bytes: int
    largest_outside: tuple[OtherProcess, ...] = ()  # biggest processes outside the kernels
    orphans: tuple[Holder, ...] = ()  # kernels left running by a server that died
    others_method: str = "rss"  # "pss" when the other processes' pages are counted once

    @property
    def attributed_bytes(self) -> int:
        holders = (*self.kernels, self.server, *self.terminals, *self.orphans)
        return (
            sum(h.bytes for h in holders)
            + self.others_bytes
            + self.page_cache_bytes
            + self.shmem_bytes
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["attributed_bytes"] = self.attributed_bytes
        return data


@dataclass(frozen=True)
class GpuDevice:
    """One device's memory, and what each kernel of this server holds on it."""

    index: int
    name: str
    used_bytes: int
    total_bytes: int
    kernels: tuple[tuple[str, int], ...] = ()  # (kernel id, bytes), largest first

    @property
    def free_bytes(self) -> int:
        return max(0, self.total_bytes - self.used_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "used_bytes": self.used_bytes,
            "total_bytes": self.total_bytes,
            "free_bytes": self.free_bytes,
            "kernels": [{"kernel_id": k, "bytes": b} for k, b in self.kernels],
        }


@dataclass(frozen=True)
class OomKill:
    """One OOM-killer victim, as the kernel log reported it."""

    pid: int
    process_name: str | None
    anon_rss_bytes: int | None
    total_vm_bytes: int | None
    constraint: str | None
    memcg: str | None  # the victim's memory cgroup
    raw: str
    oom_memcg: str | None = None  # the cgroup whose limit was hit (the summary line names it)


@dataclass(frozen=True)
class Tick:
    """Everything one monitor pass saw, published whole: the one input of every later stage."""

    number: int
    at: float
    budget: Budget
    kernels: Mapping[str, KernelState]
    interval_s: float = 0.0
    sample_cost_s: float = 0.0
    breakdown: Breakdown | None = None  # who holds the budget (from the last host scan)
    gpu_devices: tuple[GpuDevice, ...] = ()  # each GPU's memory and its kernels' share

    def __post_init__(self) -> None:
        if not isinstance(self.kernels, MappingProxyType):
            object.__setattr__(self, "kernels", MappingProxyType(dict(self.kernels)))

    @property
    def kernels_usage_bytes(self) -> int:
        return sum(k.usage_bytes or 0 for k in self.kernels.values())


ActionKind = Literal[
    "warn", "interrupt", "restart", "shutdown", "kill", "cull", "pressure", "gpu_notify", "keep"
]
TriggerKind = Literal[
    "kernel_limit",
    "budget",
    "idle",
    "idle_pressure",
    "admin",
    "outside",
    "gpu_pressure",
    "jupyter_server_culler",
]
Line = Literal["warn", "halt", "kill"]


@dataclass(frozen=True)
class Trigger:
    """Why memguard acts, as figures: stored with each intent, sent with each event, and the
    only input of the words that explain it (nobody parses reason text)."""

    kind: TriggerKind
    line: Line | None = None  # the line crossed
    usage_bytes: int | None = None  # what was measured (the kernel's, or the budget's usage)
    limit_bytes: int | None = None  # the limit the line is a fraction of
    line_bytes: int | None = None  # the line itself, in bytes
    idle_seconds: float | None = None
    timeout_seconds: float | None = None
    by: str | None = None  # who asked (an admin's name)
    device_index: int | None = None  # GPU pressure: the device
    requested_bytes: int | None = None  # GPU pressure: what the failing cell asked for
    kernel_bytes: int | None = None  # the kernel's own figure (what stopping it gives back)
    note: str | None = None  # an admin's own words, shown as they are
    via: str | None = None  # where an admin's halt came from: "panel" (the Memory panel), "api"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Trigger | None:
        """The trigger stored in the journal (None for none, or one this version cannot read)."""
        if not isinstance(data, Mapping) or data.get("kind") not in TRIGGER_KINDS:
            return None
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


TRIGGER_KINDS = frozenset(TriggerKind.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Action:
    """One thing the guard decided to do to one kernel (or to announce), with why.

    ``first``: the first step of an escalation (memguard writes its intent before it); the
    runner keeps no state of its own.
    """

    kind: ActionKind
    kernel_id: str  # "" for an announcement about no kernel (pressure from outside)
    trigger: Trigger
    first: bool = False
    culprit: Mapping[str, Any] | None = None  # 'pressure': the process outside the kernels

    @property
    def usage_bytes(self) -> int | None:
        return self.trigger.usage_bytes

    @property
    def limit_bytes(self) -> int | None:
        return self.trigger.limit_bytes

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["trigger"] = self.trigger.to_json()
        return data


@dataclass(frozen=True)
class Intent:
    """memguard's note, written before it signals a kernel, of what it is about to do and why.

    The death that follows is then attributed to memguard and never to the OOM killer."""

    id: int
    kernel_id: str
    kind: str  # "halt" | "admin_halt" | "cull"
    trigger: Trigger | None
    reason: str  # the log line, for people reading the journal
    created_at: float
    consumed_at: float | None
    evidence: dict[str, Any] | None = None  # learnt while acting (e.g. the largest variables)


class EventSink(Protocol):
    """Where announcements go (the server's event bus): one payload per event kind."""

    def emit(self, kind: str, data: dict[str, Any]) -> None: ...


Verdict = Literal[
    "halted_by_memguard",
    "interrupted_kept",
    "culled_idle",
    "user_shutdown",
    "user_restart",
    "oom_killed",
    "killed_externally",
    "crashed",
    "exited",
    "server_shutdown",
    "server_died",
    "child_oom_killed",
    "gpu_out_of_memory",
    "unknown",
]
Confidence = Literal["confirmed", "high", "medium", "low"]
Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class VerdictInfo:
    """What one verdict means for its user: the one definition the server serves, the CLI
    prints and the UI shows (its summary is worded from the evidence by ``wording``)."""

    name: Verdict
    severity: Severity
    survived: bool  # the kernel is still running, with its variables
    headline: str
    quiet: bool = False  # the user did it, or expects it: no notice


VERDICTS: Mapping[str, VerdictInfo] = MappingProxyType(
    {
        v.name: v
        for v in (
            VerdictInfo("halted_by_memguard", "error", False, "Kernel stopped: memory almost full"),
            VerdictInfo(
                "interrupted_kept",
                "warning",
                True,
                "Cell stopped at its memory limit; variables kept",
            ),
            VerdictInfo("culled_idle", "info", False, "Kernel shut down: it was idle"),
            VerdictInfo("user_shutdown", "info", False, "Kernel shut down", quiet=True),
            VerdictInfo("user_restart", "info", False, "Kernel restarted", quiet=True),
            VerdictInfo("oom_killed", "error", False, "Kernel stopped: it ran out of memory"),
            VerdictInfo(
                "killed_externally", "error", False, "Kernel stopped: another process killed it"
            ),
            VerdictInfo("crashed", "error", False, "Kernel crashed"),
            VerdictInfo("exited", "error", False, "Kernel exited"),
            VerdictInfo(
                "server_shutdown", "info", False, "Kernel ended with the server", quiet=True
            ),
            VerdictInfo("server_died", "error", False, "The server stopped abruptly"),
            VerdictInfo(
                "child_oom_killed",
                "warning",
                True,
                "A process started by the kernel ran out of memory",
            ),
            VerdictInfo("gpu_out_of_memory", "warning", True, "A cell ran out of GPU memory"),
            VerdictInfo("unknown", "error", False, "Kernel stopped unexpectedly"),
        )
    }
)
