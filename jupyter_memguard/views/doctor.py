"""`jupyter memguard doctor`: which mode memguard runs in here, and what follows from it.

``diagnose`` is pure (facts in, checks in plain words out); the same checks are served under
``/api/memguard/status`` → ``doctor``, and the CLI prints them, from a running server or, with
none, from this machine as a server started now would see it (``gather``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..models import Budget
from ..settings import MemGuardSettings
from ..units import Units, human_bytes

State = Literal["ok", "warning", "info"]
PSI_PATH = "/proc/pressure/memory"


@dataclass(frozen=True)
class Check:
    topic: str
    state: State
    text: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorFacts:
    """What the checks look at (gathered by the server, or by ``gather`` without one)."""

    budget: Budget
    guard_enabled: bool
    dry_run: bool
    warn_fraction: float
    halt_fraction: float
    kill_fraction: float
    kernel_cgroups: bool
    kernel_cgroups_reason: str | None
    oom_group: int | None  # the budget cgroup's memory.oom.group (v2), None: not there
    psi: bool
    kmsg: bool
    kmsg_reason: str | None
    gpu_devices: int
    gpu_reason: str | None
    agent: bool | None  # None: this memguard has no agent to say anything about
    agent_reason: str | None
    orphan_kernels: str
    units: Units = "binary"


SOURCES = {
    "config": "configured (c.MemGuard.memory_limit)",
    "cgroup_v2": "the container's (cgroup v2)",
    "cgroup_v1": "the container's (cgroup v1)",
    "spawner_mem_limit": "JupyterHub's MEM_LIMIT (nothing else enforces it: memguard does)",
    "host": "the whole machine's (no container limit found)",
}


def read_oom_group(cgroup_path: str | None, version: int | None) -> int | None:
    """``memory.oom.group`` of a v2 cgroup (1: one OOM kills every process in it)."""
    if version != 2 or not cgroup_path:
        return None
    try:
        return int((Path(cgroup_path) / "memory.oom.group").read_text().strip())
    except (OSError, ValueError):
        return None


def psi_readable(path: str = PSI_PATH) -> bool:
    return os.access(path, os.R_OK)


def diagnose(f: DoctorFacts) -> list[Check]:
    """The checks, in plain words, each saying what follows for the kernels and the server."""
    b, u = f.budget, f.units
    checks: list[Check] = []
    where = f" at {b.cgroup_path}" if b.cgroup_path and b.limit_source.startswith("cgroup") else ""
    checks.append(
        Check(
            "limit",
            "info" if b.limit_source == "host" else "ok",
            f"Memory limit: {human_bytes(b.limit_bytes, u)}, {SOURCES.get(b.limit_source, b.limit_source)}"
            f"{where}; {human_bytes(b.usage_bytes, u)} in use."
            + (
                " Set c.MemGuard.memory_limit to hold this server to less."
                if b.limit_source == "host"
                else ""
            ),
        )
    )
    if b.cgroup_version is None:
        checks.append(
            Check("cgroup", "info", "No memory cgroup: the machine's own memory is the budget.")
        )
    else:
        checks.append(
            Check(
                "cgroup", "ok", f"cgroup v{b.cgroup_version} memory controller ({b.cgroup_path})."
            )
        )
    if not f.guard_enabled:
        checks.append(
            Check(
                "guard",
                "warning",
                "Guard off: memguard tracks and records, but never stops a kernel.",
            )
        )
    else:
        dry = (
            " Dry run: it reports what it would do and never signals a kernel." if f.dry_run else ""
        )
        checks.append(
            Check(
                "guard",
                "warning" if f.dry_run else "ok",
                f"Guard on: it warns at {f.warn_fraction:.0%} of a kernel's limit, stops the kernel "
                f"at {f.halt_fraction:.0%} and kills it at {f.kill_fraction:.0%}.{dry}",
            )
        )
    if f.kernel_cgroups:
        checks.append(
            Check(
                "kernel_cgroups",
                "ok",
                "Each kernel has a memory cgroup of its own, limited halfway between its kill "
                "line and its limit: an allocation faster than any poll ends inside it, not in "
                "the whole container; its memory is counted once per page from one file.",
            )
        )
    else:
        checks.append(
            Check(
                "kernel_cgroups",
                "warning",
                f"No memory cgroup per kernel ({f.kernel_cgroups_reason or 'not available'}): "
                "forked workers are counted by PSS, and a one-shot allocation is stopped only by "
                "the container's own limit.",
            )
        )
    if f.oom_group == 1:
        contained = (
            " Kernels in their own cgroups are stopped there first."
            if f.kernel_cgroups
            else " memguard halts a kernel before it, but a one-shot allocation can still take "
            "everything."
        )
        checks.append(
            Check(
                "oom_group",
                "warning",
                "memory.oom.group = 1 (Kubernetes sets it on every container): one kernel's "
                f"out-of-memory kill ends every process in the container, this server too.{contained}",
            )
        )
    elif b.cgroup_version == 2:
        checks.append(
            Check(
                "oom_group",
                "ok",
                "memory.oom.group = 0: the OOM killer ends one process, not the container.",
            )
        )
    elif b.cgroup_version == 1:
        checks.append(
            Check(
                "oom_group",
                "info",
                "cgroup v1: the OOM killer ends one process at a time; memguard makes the kernels "
                "its first choice (oom_score_adj), never the server.",
            )
        )
    checks.append(
        Check("psi", "ok", "Memory pressure (PSI) is readable at /proc/pressure/memory.")
        if f.psi
        else Check("psi", "info", "No memory pressure (PSI) file: stalls are not visible.")
    )
    checks.append(
        Check(
            "kmsg",
            "ok",
            "The kernel log (/dev/kmsg) is readable: OOM kills are confirmed by its lines.",
        )
        if f.kmsg
        else Check(
            "kmsg",
            "warning",
            f"The kernel log is not readable ({f.kmsg_reason}): an OOM kill is told by the "
            "OOM counters, with less certainty.",
        )
    )
    checks.append(
        Check("gpu", "ok", f"NVML: {f.gpu_devices} GPU(s); GPU memory is counted per kernel.")
        if f.gpu_devices
        else Check("gpu", "info", f"No GPU figures ({f.gpu_reason or 'no GPU'}).")
    )
    if f.agent is not None:
        checks.append(
            Check(
                "agent",
                "ok",
                "The kernel agent loads into ipykernel kernels: cell boundaries and variables "
                "come from inside the kernel.",
            )
            if f.agent
            else Check(
                "agent",
                "warning",
                f"No kernel agent ({f.agent_reason}): cells are told from the kernels' messages, "
                "which a cell holding the GIL delays; no variables.",
            )
        )
    checks.append(
        Check(
            "orphans",
            "info",
            "Kernels left running by a server that died are stopped at start, with a record each."
            if f.orphan_kernels == "stop"
            else "Kernels left running by a server that died are kept and shown as such.",
        )
    )
    return checks


def doctor_json(facts: DoctorFacts) -> dict[str, Any]:
    return {"checks": [c.to_json() for c in diagnose(facts)]}


def facts_of(
    settings: MemGuardSettings,
    budget: Budget,
    kernel_cgroups: tuple[bool, str | None],
    kmsg: tuple[bool, str | None],
    gpu: tuple[int, str | None],
    agent: tuple[bool | None, str | None] = (None, None),
) -> DoctorFacts:
    """The doctor's facts from what a server (or ``gather``) knows: (available, reason) pairs."""
    return DoctorFacts(
        budget=budget,
        guard_enabled=settings.guard_enabled,
        dry_run=settings.dry_run,
        warn_fraction=settings.warn_fraction,
        halt_fraction=settings.halt_fraction,
        kill_fraction=settings.kill_fraction,
        kernel_cgroups=kernel_cgroups[0],
        kernel_cgroups_reason=kernel_cgroups[1],
        oom_group=read_oom_group(budget.cgroup_path, budget.cgroup_version),
        psi=psi_readable(),
        kmsg=kmsg[0],
        kmsg_reason=None if kmsg[0] else kmsg[1],
        gpu_devices=gpu[0],
        gpu_reason=gpu[1],
        agent=agent[0],
        agent_reason=agent[1],
        orphan_kernels=settings.orphan_kernels,
        units=settings.display_units,
    )


def gather() -> DoctorFacts:
    """The facts as a server started here now, with the default settings, would see them."""
    import logging

    from ..app import MemGuard  # the traits' defaults: one definition of each setting
    from ..guard.kernel_cgroups import KernelCgroups
    from ..probe.gpu import GpuReader
    from ..probe.kmsg import KmsgReader
    from ..probe.limits import read_budget
    from ..settings import resolve_settings

    raw = {name: t.default() for name, t in MemGuard.class_own_traits(config=True).items()}
    settings = resolve_settings(raw)
    budget = read_budget(
        settings.memory_limit_bytes, spawner_limit=settings.spawner_mem_limit_bytes
    )
    cgroups = KernelCgroups(settings.kernel_cgroups, logging.getLogger("jupyter_memguard"))
    kmsg = KmsgReader(settings.kmsg_path)
    kmsg.close()
    gpu = GpuReader()
    return facts_of(
        settings,
        budget,
        (cgroups.available, cgroups.reason),
        (kmsg.reason == "", kmsg.reason or None),
        (gpu.device_count if gpu.available else 0, gpu.reason),
    )
