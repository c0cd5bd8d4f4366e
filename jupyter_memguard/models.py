"""Plain data shared by every part of memguard: samples, snapshots, actions, terminations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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

    @property
    def children(self) -> tuple[int, ...]:
        """Descendant PIDs (the kernel process itself excluded)."""
        return tuple(p for p in self.pids if p != self.pid)


@dataclass(frozen=True)
class KernelView:
    """What the policy knows about one kernel: memory, activity and protection."""

    kernel_id: str
    rss_bytes: int | None
    growth_bytes_per_s: float = 0.0
    idle_seconds: float = 0.0
    execution_state: str = "idle"
    connections: int = 0
    protected: bool = False
    path: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The input of one policy decision: time, budget and every kernel."""

    now: float
    budget_limit_bytes: int
    budget_usage_bytes: int
    kernels: tuple[KernelView, ...]


ActionKind = Literal["warn", "interrupt", "restart", "shutdown", "kill", "cull"]


@dataclass(frozen=True)
class Action:
    """One thing the monitor should do to one kernel, with why."""

    kind: ActionKind
    kernel_id: str
    reason: str
    trigger: Literal["kernel_limit", "budget", "idle", "idle_pressure", "admin"]
    usage_bytes: int | None = None
    limit_bytes: int | None = None

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
