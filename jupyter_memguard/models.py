"""The shared vocabulary of memguard: budget, samples, the per-tick snapshot, actions.

All frozen: a stage reads the Tick the stage before it published and never reaches back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .probe.breakdown import Breakdown
    from .probe.gpu import GpuDevice

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

    @property
    def decision_bytes(self) -> int:
        """The kernel's memory with each page counted once, as well as it is known.

        One process: its RSS. Several: the exact figure where measured (PSS over the tree, or
        the kernel's own memory cgroup: forked workers share their parent's pages copy-on-write,
        and summed RSS would count them once per process), never less than the kernel process's
        own RSS; else the RSS sum, an upper bound.
        """
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

    @property
    def usage_bytes(self) -> int | None:
        """The figure the guard decides on (None: not measured)."""
        return self.memory.decision_bytes if self.memory is not None else None

    @property
    def busy(self) -> bool:
        """Running code. 'starting' or 'unknown' is not busy: such a kernel runs nothing."""
        return self.execution_state == "busy"


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
    "warn", "interrupt", "restart", "shutdown", "kill", "cull", "pressure", "gpu_notify"
]


@dataclass(frozen=True)
class Action:
    """One thing the monitor should do to one kernel, with why."""

    kind: ActionKind
    kernel_id: str
    reason: str
    trigger: Literal[
        "kernel_limit", "budget", "idle", "idle_pressure", "admin", "outside", "gpu_pressure"
    ]
    usage_bytes: int | None = None
    limit_bytes: int | None = None
    culprit: Mapping[str, Any] | None = None  # 'pressure': the process outside the kernels

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Verdict = Literal[
    "halted_by_memguard",
    "culled_idle",
    "user_shutdown",
    "user_restart",
    "oom_killed",
    "killed_externally",
    "crashed",
    "exited",
    "server_shutdown",
    "child_oom_killed",
    "gpu_out_of_memory",
    "unknown",
]
Confidence = Literal["confirmed", "high", "medium", "low"]
