"""Why a kernel ended: classify a termination from its facts (pure, no I/O)."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from ..models import Confidence, OomKill, Verdict
from ..probe.gpu_oom import GpuOomError
from ..units import Units, human_bytes


@dataclass(frozen=True)
class TerminationFacts:
    """Everything known about one kernel's end, gathered by the watcher."""

    kernel_id: str
    pid: int | None
    pids: tuple[int, ...] = ()
    returncode: int | None = None
    intent: str | None = None
    intent_reason: str | None = None
    trigger: dict[str, Any] | None = None  # memguard's structured reason (Trigger.to_json())
    user_action: str | None = None
    server_shutdown: bool = False
    oom_kills: tuple[OomKill, ...] = ()
    cgroup_oom_kill_before: int | None = None
    cgroup_oom_kill_after: int | None = None
    system_oom_kill_before: int | None = None
    system_oom_kill_after: int | None = None
    last_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    limit_bytes: int | None = None
    limit_source: str | None = None
    near_limit_fraction: float = 0.9
    gpu_last_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    gpu_oom_errors: tuple[dict[str, Any], ...] = ()  # GpuOomError.to_json(), recent first last
    units: Units = "binary"  # of the figures in the explanation (settings.display_units)
    running_cell: dict[str, Any] | None = None  # CellRecord.to_json() of the cell it ran
    top_cells: tuple[dict[str, Any], ...] = ()  # the cells that kept the most memory
    recent_cells: tuple[dict[str, Any], ...] = ()  # the last cells, newest first
    history: tuple[tuple[float, int], ...] = ()  # its last memory samples (time, bytes)
    idle_kernels: tuple[dict[str, Any], ...] = ()  # other kernels idle with memory then
    # The kernel's own memory cgroup (guard.kernel_cgroups), where it has one:
    kernel_cgroup_path: str | None = None
    kernel_cgroup_limit_bytes: int | None = None
    kernel_cgroup_oom_kill_before: tuple[int, int] | None = None  # (kills, own limit hits)
    kernel_cgroup_oom_kill_after: tuple[int, int] | None = None
    variables: tuple[dict[str, Any], ...] = ()  # the largest variables (its agent), at a halt
    # memguard's own stop that was under way when something else ended the kernel first (an
    # intent's kind: "halt", "admin_halt", "cull"), and its reason:
    under_way: str | None = None
    under_way_reason: str | None = None


@dataclass(frozen=True)
class Classification:
    """A verdict with its confidence, a one-line explanation and the evidence."""

    verdict: Verdict
    confidence: Confidence
    explanation: str
    evidence: dict[str, Any]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _rose(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after > before


def _usage_phrase(facts: TerminationFacts, killed_holding: int | None = None) -> str:
    used = facts.last_rss_bytes if facts.last_rss_bytes is not None else facts.peak_rss_bytes
    if killed_holding is not None and (used is None or killed_holding > used):
        used = killed_holding  # the last sample came before what it allocated since
    if used is None or not facts.limit_bytes:
        return ""
    source = f" ({facts.limit_source.replace('_', ' ')})" if facts.limit_source else ""
    units = facts.units
    return f": it used {human_bytes(used, units)} of a {human_bytes(facts.limit_bytes, units)} limit{source}"


def _oom_usage_phrase(facts: TerminationFacts, matched: OomKill | None, contained: bool) -> str:
    """At an OOM kill, the kernel log's figure (what the victim held as it was killed) and its
    own cgroup's limit are exact, where the last sample may be seconds old: a one-shot
    allocation can reach the limit between two ticks."""
    held = matched.anon_rss_bytes if matched is not None else None
    own = facts.kernel_cgroup_limit_bytes
    if contained:
        text = ": it reached its own limit"
        text += f" of {human_bytes(own, facts.units)}" if own else ""
        if held is not None:
            text += f" (its process held {human_bytes(held, facts.units)} as it was killed)"
        return text
    return _usage_phrase(facts, held)


def _evidence(facts: TerminationFacts, matched: OomKill | None) -> dict[str, Any]:
    code = facts.returncode
    return {
        "exit_signal": signal_name(-code) if code is not None and code < 0 else None,
        "exit_code": code if code is not None and code >= 0 else None,
        "last_rss_bytes": facts.last_rss_bytes,
        "peak_rss_bytes": facts.peak_rss_bytes,
        "limit_bytes": facts.limit_bytes,
        "limit_source": facts.limit_source,
        "oom_kill_before": facts.cgroup_oom_kill_before,
        "oom_kill_after": facts.cgroup_oom_kill_after,
        "system_oom_kill_before": facts.system_oom_kill_before,
        "system_oom_kill_after": facts.system_oom_kill_after,
        "kmsg_lines": [oom.raw for oom in facts.oom_kills],
        "matched_pid": matched.pid if matched else None,
        "intent": facts.intent,
        "intent_reason": facts.intent_reason,
        "trigger": facts.trigger,
        "gpu_last_bytes": facts.gpu_last_bytes,
        "gpu_peak_bytes": facts.gpu_peak_bytes,
        "gpu_oom_errors": list(facts.gpu_oom_errors),
        "running_cell": facts.running_cell,
        "top_cells": list(facts.top_cells),
        "recent_cells": list(facts.recent_cells),
        "history": [[round(t, 3), b] for t, b in facts.history],
        "idle_kernels": list(facts.idle_kernels),
        "kernel_cgroup_path": facts.kernel_cgroup_path,
        "kernel_cgroup_limit_bytes": facts.kernel_cgroup_limit_bytes,
        "kernel_cgroup_oom_kill_before": facts.kernel_cgroup_oom_kill_before,
        "kernel_cgroup_oom_kill_after": facts.kernel_cgroup_oom_kill_after,
        "contained": _contained(facts, matched),
        "variables": list(facts.variables),
        "under_way": facts.under_way,
        "under_way_reason": facts.under_way_reason,
    }


_UNDER_WAY = {"halt": "halt it", "admin_halt": "halt it", "cull": "shut it down as idle"}


def _under_way_phrase(facts: TerminationFacts) -> str:
    """' memguard had begun to halt it (…), but this came first.' or ''."""
    if facts.under_way is None:
        return ""
    why = f" ({facts.under_way_reason})" if facts.under_way_reason else ""
    what = _UNDER_WAY.get(facts.under_way, "stop it")
    return f" memguard had begun to {what}{why}, but this came first."


def _contained(facts: TerminationFacts, matched: OomKill | None) -> bool:
    """The OOM kill happened at the kernel's own memory cgroup's limit: the kernel log's
    summary names that cgroup as the one whose limit was hit, or both its kill counter and its
    limit-hit counter rose. The rest of the server was spared."""
    name = (facts.kernel_cgroup_path or "").rstrip("/").rsplit("/", 1)[-1]
    if matched is not None and matched.oom_memcg and name:
        return matched.oom_memcg.rstrip("/").endswith(name)
    before, after = facts.kernel_cgroup_oom_kill_before, facts.kernel_cgroup_oom_kill_after
    if before is None or after is None:
        return False
    return after[0] > before[0] and after[1] > before[1]


def describe_gpu_oom(error: dict[str, Any], units: Units = "binary") -> str:
    """'PyTorch OutOfMemoryError, tried to allocate 2.1 GB' style, from GpuOomError.to_json()."""
    wanted = error.get("requested_bytes")
    tried = f", tried to allocate {human_bytes(wanted, units)}" if wanted else ""
    return f"{error.get('library')} {error.get('error_name')}{tried}"


def _gpu_oom_phrase(facts: TerminationFacts) -> str:
    """' It had hit a GPU out-of-memory error before it ended (…).' or ''."""
    if not facts.gpu_oom_errors:
        return ""
    return (
        " It had hit a GPU out-of-memory error before it ended "
        f"({describe_gpu_oom(facts.gpu_oom_errors[-1], facts.units)})."
    )


def classify(facts: TerminationFacts) -> Classification:
    """Decide why a kernel ended; a plain kill -9 with headroom is never called OOM."""
    pids = set(facts.pids) | ({facts.pid} if facts.pid else set())
    matched = next((oom for oom in facts.oom_kills if oom.pid in pids), None)
    evidence = _evidence(facts, matched)

    def result(verdict: Verdict, confidence: Confidence, text: str) -> Classification:
        return Classification(verdict, confidence, text + _under_way_phrase(facts), evidence)

    usage = _usage_phrase(facts)
    gpu = _gpu_oom_phrase(facts)
    if facts.intent in ("halt", "admin_halt"):
        why = f" ({facts.intent_reason})" if facts.intent_reason else ""
        who = (
            "at an administrator's request"
            if facts.intent == "admin_halt"
            else "before the system ran out of memory"
        )
        return result(
            "halted_by_memguard",
            "confirmed",
            f"The kernel was halted by memguard {who}{why}{usage}.",
        )
    if facts.intent == "cull":
        why = f" ({facts.intent_reason})" if facts.intent_reason else ""
        return result(
            "culled_idle",
            "confirmed",
            f"The kernel was shut down by memguard because it was idle{why}.",
        )
    if facts.intent == "server_cull":
        return result(
            "culled_idle",
            "confirmed",
            "The kernel was shut down by jupyter_server's idle culler "
            "(c.MappingKernelManager.cull_idle_timeout), told by the culler's own call.",
        )
    if facts.user_action == "shutdown":
        return result("user_shutdown", "confirmed", "The kernel was shut down on request.")
    if facts.user_action == "restart":
        return result("user_restart", "confirmed", "The kernel was restarted on request.")
    if facts.server_shutdown:
        return result(
            "server_shutdown", "confirmed", "The kernel ended because the Jupyter server shut down."
        )
    if matched is not None:
        who = "the kernel" if matched.pid == facts.pid else f"its process {matched.pid}"
        where = " inside its own memory cgroup" if evidence["contained"] else ""
        held = _oom_usage_phrase(facts, matched, evidence["contained"])
        return result(
            "oom_killed",
            "confirmed",
            f"The kernel was killed by the system's out-of-memory killer{where} (the kernel log "
            f"names {who}){held}.",
        )
    code = facts.returncode
    if code == -signal.SIGKILL and evidence["contained"]:
        return result(
            "oom_killed",
            "confirmed",
            "The kernel was killed (SIGKILL) while the out-of-memory counter of its own memory "
            f"cgroup rose{_oom_usage_phrase(facts, None, True)}, and was stopped there.",
        )
    if code == -signal.SIGKILL:
        if _rose(facts.cgroup_oom_kill_before, facts.cgroup_oom_kill_after) or _rose(
            facts.system_oom_kill_before, facts.system_oom_kill_after
        ):
            return result(
                "oom_killed",
                "high",
                f"The kernel was killed (SIGKILL) while the out-of-memory kill counter rose: "
                f"it was almost certainly killed by the out-of-memory killer{usage}.",
            )
        used = max(facts.last_rss_bytes or 0, facts.peak_rss_bytes or 0)
        if facts.limit_bytes and used >= facts.near_limit_fraction * facts.limit_bytes:
            return result(
                "oom_killed",
                "medium",
                f"The kernel was killed (SIGKILL) close to its memory limit: likely out of memory{usage}.",
            )
        return result(
            "killed_externally",
            "high",
            "The kernel was killed with SIGKILL by another process; there is no sign that "
            "memory was the cause." + gpu,
        )
    if code is not None and code < 0:
        name = signal_name(-code)
        return result("crashed", "confirmed", f"The kernel crashed with signal {name}.{gpu}")
    if code is not None:
        return result("exited", "confirmed", f"The kernel process exited with code {code}.{gpu}")
    return result("unknown", "low", f"The kernel ended, and no evidence says why.{gpu}")


def classify_kept(facts: TerminationFacts, memory_after: int | None) -> Classification:
    """memguard interrupted a cell at the stop line and kept the kernel: it ran nothing more,
    stayed under its kill line, and the shared budget had room (its own quota was hit)."""
    evidence = {**_evidence(facts, None), "memory_after_bytes": memory_after}
    now = f" It holds {human_bytes(memory_after, facts.units)} now." if memory_after else ""
    return Classification(
        "interrupted_kept",
        "confirmed",
        "memguard interrupted the running cell at the kernel's stop line and kept the kernel, "
        f"with its variables: it was under its kill line and the server had room.{now}",
        evidence,
    )


def classify_child_oom(
    kernel_id: str,
    oom: OomKill,
    kernel_rss_bytes: int | None = None,
    limit_bytes: int | None = None,
    limit_source: str | None = None,
    kernel_cgroup_path: str | None = None,
    units: Units = "binary",
) -> Classification:
    """A child process of a kernel was OOM-killed while the kernel itself survived."""
    name = f" ({oom.process_name})" if oom.process_name else ""
    own = (kernel_cgroup_path or "").rstrip("/").rsplit("/", 1)[-1]
    contained = bool(own and oom.oom_memcg and oom.oom_memcg.rstrip("/").endswith(own))
    size = f", using {human_bytes(oom.anon_rss_bytes, units)}" if oom.anon_rss_bytes else ""
    evidence = {
        "exit_signal": "SIGKILL",
        "exit_code": None,
        "last_rss_bytes": kernel_rss_bytes,
        "peak_rss_bytes": None,
        "limit_bytes": limit_bytes,
        "limit_source": limit_source,
        "kmsg_lines": [oom.raw],
        "matched_pid": oom.pid,
        "child_pid": oom.pid,
        "child_anon_rss_bytes": oom.anon_rss_bytes,
        "kernel_cgroup_path": kernel_cgroup_path,
        "contained": contained,
    }
    where = " at the kernel's own memory limit" if contained else ""
    return Classification(
        "child_oom_killed",
        "confirmed",
        f"A child process {oom.pid}{name} of the kernel was killed by the out-of-memory killer"
        f"{where}{size}; the kernel itself is still running.",
        evidence,
    )


def _gpu_phrase(kernel_gpu: dict[str, Any] | None, units: Units = "binary") -> str:
    if not kernel_gpu or not kernel_gpu.get("devices"):
        return ""
    parts = [
        f"{human_bytes(d['used_bytes'], units)} of {human_bytes(d['total_bytes'], units)} on GPU {d['index']}"
        f" ({d['name']})"
        for d in kernel_gpu["devices"]
    ]
    return " It held " + ", ".join(parts) + "."


def classify_gpu_oom(
    oom: GpuOomError,
    kernel_gpu: dict[str, Any] | None = None,
    kernel_rss_bytes: int | None = None,
    limit_bytes: int | None = None,
    limit_source: str | None = None,
    units: Units = "binary",
) -> Classification:
    """A cell of the kernel failed with a GPU out-of-memory error; the kernel survived."""
    error = oom.to_json()
    evidence = {
        "exit_signal": None,
        "exit_code": None,
        "last_rss_bytes": kernel_rss_bytes,
        "peak_rss_bytes": None,
        "limit_bytes": limit_bytes,
        "limit_source": limit_source,
        "gpu_oom": error,
        "gpu": kernel_gpu,
        "gpu_last_bytes": kernel_gpu.get("used_bytes") if kernel_gpu else None,
    }
    return Classification(
        "gpu_out_of_memory",
        "confirmed",
        f"A cell failed with a GPU out-of-memory error ({describe_gpu_oom(error, units)}); the kernel itself is "
        f"still running.{_gpu_phrase(kernel_gpu, units)}",
        evidence,
    )


@dataclass(frozen=True)
class ServerDeathFacts:
    """What is known of one kernel of a server that stopped abruptly (read at the next start)."""

    kernel: dict[str, Any]  # the kernel as the dead server's last heartbeat gave it
    budget: dict[str, Any]  # the budget then
    heartbeat_at: float | None
    heartbeat_interval_s: float
    session_started_at: float
    same_boot: bool
    oom_kill_before: int | None = None  # the budget's cgroup OOM counter at the heartbeat
    oom_kill_after: int | None = None  # ... and now (None: that cgroup is gone or unreadable)
    halt_fraction: float = 0.9
    kill_fraction: float = 0.95
    left_running: bool = False  # its process outlived the server
    orphan_pid: int | None = None
    orphan_bytes: int | None = None
    orphan_action: str | None = None  # "stopped" | "kept" | "could not stop"


def _racing(kernel: dict[str, Any], facts: ServerDeathFacts) -> bool:
    """Whether the kernel's growth would have reached its kill line before the next heartbeat."""
    used, limit = kernel.get("used_bytes"), kernel.get("limit_bytes")
    growth = kernel.get("growth_bytes_per_s") or 0
    if not isinstance(used, int) or not isinstance(limit, int) or limit <= 0 or growth <= 0:
        return False
    return used + growth * facts.heartbeat_interval_s >= facts.kill_fraction * limit


def classify_server_death(facts: ServerDeathFacts) -> Classification:
    """The server stopped without its clean stop: why, as far as the evidence goes.

    "The whole container ran out of memory" only where the evidence points there: the
    container's OOM counter rose (readable when the same cgroup is still there), or, where the
    counters cannot be read any more (a new container), the last heartbeat had the budget near
    its limit or a kernel racing toward it. A counter that is readable and did not move rules
    the OOM killer out; with nothing to go on, the cause is unknown.
    """
    budget, kernel = facts.budget, facts.kernel
    usage, limit = budget.get("usage_bytes"), budget.get("limit_bytes")
    near = isinstance(usage, int) and isinstance(limit, int) and limit > 0
    near = near and usage >= facts.halt_fraction * limit
    racing = _racing(kernel, facts)
    readable = facts.oom_kill_before is not None and facts.oom_kill_after is not None
    counted = readable and facts.oom_kill_after > facts.oom_kill_before  # type: ignore[operator]
    if counted:
        cause, confidence = "container_oom_counted", "high"
        why = "the container's out-of-memory counter rose: it ran out of memory"
    elif not readable and (near or racing):
        cause, confidence = "container_oom", "medium"
        why = (
            "its last heartbeat had the memory close to the limit: most likely the whole "
            "container ran out of memory and was killed"
        )
    else:
        cause, confidence = "unknown", "low"
        why = (
            "the container's out-of-memory counter did not move, so it was not the OOM killer"
            if readable
            else "nothing recorded says why"
        )
    evidence = {
        "cause": cause,
        "last_heartbeat_at": facts.heartbeat_at,
        "session_started_at": facts.session_started_at,
        "same_boot": facts.same_boot,
        "path": kernel.get("path"),
        "used_bytes": kernel.get("used_bytes"),
        "last_rss_bytes": kernel.get("used_bytes"),
        "limit_bytes": kernel.get("limit_bytes"),
        "growth_bytes_per_s": kernel.get("growth_bytes_per_s"),
        "execution_state": kernel.get("execution_state"),
        "running_cell": kernel.get("running_cell"),
        "budget_usage_bytes": usage,
        "budget_limit_bytes": limit,
        "budget_limit_source": budget.get("limit_source"),
        "near_limit": near,
        "racing": racing,
        "oom_kill_before": facts.oom_kill_before,
        "oom_kill_after": facts.oom_kill_after,
        "left_running": facts.left_running,
        "orphan_pid": facts.orphan_pid,
        "orphan_bytes": facts.orphan_bytes,
        "orphan_action": facts.orphan_action,
    }
    return Classification(
        "server_died", confidence, f"The Jupyter server stopped abruptly: {why}.", evidence
    )
