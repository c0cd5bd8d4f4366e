"""Why a kernel ended: parse kernel OOM log lines and classify a termination (pure, no I/O)."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any

from ..models import Confidence, Verdict
from ..probe.gpu_oom import GpuOomError
from ..units import Units, human_bytes

_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_DMESG_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s*")
_KILLED = re.compile(
    r"(?:(?P<scope>Memory cgroup out of memory|Out of memory(?: \(oom_kill_allocating_task\))?):\s*)?"
    r"Kill(?:ed)? process (?P<pid>\d+) \((?P<name>[^)]*)\)"
    r"(?P<rest>.*)$"
)
_KB_FIELD = re.compile(r"(?P<key>total-vm|anon-rss|file-rss|shmem-rss):(?P<kb>\d+)kB")
_OOM_KILL = re.compile(r"oom-kill:(?P<fields>\S+)")


@dataclass(frozen=True)
class OomKill:
    """One OOM-killer victim, as the kernel log reported it."""

    pid: int
    process_name: str | None
    anon_rss_bytes: int | None
    total_vm_bytes: int | None
    constraint: str | None
    memcg: str | None
    raw: str


def _strip(line: str) -> str:
    line = line.strip()
    line = _KMSG_PREFIX.sub("", line, count=1)
    return _DMESG_PREFIX.sub("", line, count=1)


def parse_oom_line(line: str) -> OomKill | None:
    """Parse an OOM-killer line (modern, pre-4.19, cgroup, oom-kill summary); None otherwise."""
    text = _strip(line)
    summary = _OOM_KILL.search(text)
    if summary:
        fields = dict(
            part.split("=", 1) for part in summary.group("fields").split(",") if "=" in part
        )
        if "pid" not in fields or not fields["pid"].isdigit():
            return None
        return OomKill(
            pid=int(fields["pid"]),
            process_name=fields.get("task"),
            anon_rss_bytes=None,
            total_vm_bytes=None,
            constraint=fields.get("constraint"),
            memcg=fields.get("task_memcg") or fields.get("oom_memcg"),
            raw=text,
        )
    match = _KILLED.search(text)
    if not match:
        return None
    # "Kill process … or sacrifice child" (pre-4.19) and "Killed process …" both name the victim,
    # but a bare "Killed process" is only accepted with its memory figures, so that unrelated
    # messages that happen to say "killed process" are not taken for the OOM killer.
    rest = match.group("rest")
    sizes = {m.group("key"): int(m.group("kb")) * 1024 for m in _KB_FIELD.finditer(rest)}
    if match.group("scope") is None and not sizes and "sacrifice child" not in rest:
        return None
    constraint = (
        "CONSTRAINT_MEMCG" if (match.group("scope") or "").startswith("Memory cgroup") else None
    )
    return OomKill(
        pid=int(match.group("pid")),
        process_name=match.group("name"),
        anon_rss_bytes=sizes.get("anon-rss"),
        total_vm_bytes=sizes.get("total-vm"),
        constraint=constraint,
        memcg=None,
        raw=text,
    )


@dataclass(frozen=True)
class TerminationFacts:
    """Everything known about one kernel's end, gathered by the watcher."""

    kernel_id: str
    pid: int | None
    pids: tuple[int, ...] = ()
    returncode: int | None = None
    intent: str | None = None
    intent_reason: str | None = None
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


def _usage_phrase(facts: TerminationFacts) -> str:
    used = facts.last_rss_bytes if facts.last_rss_bytes is not None else facts.peak_rss_bytes
    if used is None or not facts.limit_bytes:
        return ""
    source = f" ({facts.limit_source.replace('_', ' ')})" if facts.limit_source else ""
    units = facts.units
    return f": it used {human_bytes(used, units)} of a {human_bytes(facts.limit_bytes, units)} limit{source}"


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
        "gpu_last_bytes": facts.gpu_last_bytes,
        "gpu_peak_bytes": facts.gpu_peak_bytes,
        "gpu_oom_errors": list(facts.gpu_oom_errors),
        "running_cell": facts.running_cell,
        "top_cells": list(facts.top_cells),
        "recent_cells": list(facts.recent_cells),
        "history": [[round(t, 3), b] for t, b in facts.history],
        "idle_kernels": list(facts.idle_kernels),
    }


def describe_gpu_oom(error: dict[str, Any]) -> str:
    """'PyTorch OutOfMemoryError, tried to allocate 2.1 GB' style, from GpuOomError.to_json()."""
    wanted = error.get("requested_bytes")
    tried = f", tried to allocate {human_bytes(wanted)}" if wanted else ""
    return f"{error.get('library')} {error.get('error_name')}{tried}"


def _gpu_oom_phrase(facts: TerminationFacts) -> str:
    """' It had hit a GPU out-of-memory error before it ended (…).' or ''."""
    if not facts.gpu_oom_errors:
        return ""
    return (
        " It had hit a GPU out-of-memory error before it ended "
        f"({describe_gpu_oom(facts.gpu_oom_errors[-1])})."
    )


def classify(facts: TerminationFacts) -> Classification:
    """Decide why a kernel ended; a plain kill -9 with headroom is never called OOM."""
    pids = set(facts.pids) | ({facts.pid} if facts.pid else set())
    matched = next((oom for oom in facts.oom_kills if oom.pid in pids), None)
    evidence = _evidence(facts, matched)

    def result(verdict: Verdict, confidence: Confidence, text: str) -> Classification:
        return Classification(verdict, confidence, text, evidence)

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
        return result(
            "oom_killed",
            "confirmed",
            f"The kernel was killed by the system's out-of-memory killer (the kernel log names {who}){usage}.",
        )
    code = facts.returncode
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


def classify_child_oom(
    kernel_id: str,
    oom: OomKill,
    kernel_rss_bytes: int | None = None,
    limit_bytes: int | None = None,
    limit_source: str | None = None,
) -> Classification:
    """A child process of a kernel was OOM-killed while the kernel itself survived."""
    name = f" ({oom.process_name})" if oom.process_name else ""
    size = f", using {human_bytes(oom.anon_rss_bytes)}" if oom.anon_rss_bytes else ""
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
    }
    return Classification(
        "child_oom_killed",
        "confirmed",
        f"A child process {oom.pid}{name} of the kernel was killed by the out-of-memory killer{size}; "
        "the kernel itself is still running.",
        evidence,
    )


def _gpu_phrase(kernel_gpu: dict[str, Any] | None) -> str:
    if not kernel_gpu or not kernel_gpu.get("devices"):
        return ""
    parts = [
        f"{human_bytes(d['used_bytes'])} of {human_bytes(d['total_bytes'])} on GPU {d['index']}"
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
        f"A cell failed with a GPU out-of-memory error ({describe_gpu_oom(error)}); the kernel itself is "
        f"still running.{_gpu_phrase(kernel_gpu)}",
        evidence,
    )
