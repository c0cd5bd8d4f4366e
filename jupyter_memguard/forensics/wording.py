"""One wording of each termination, in plain words, shared by the CLI and the JupyterLab notices.

Pure: a journal record (verdict, evidence, explanation) in, three texts out:
  * ``headline``: what happened, in a few words ("Kernel stopped: out of memory");
  * ``summary``: what happened, what it means, what to do, with the cell that was running;
  * ``advice``: one line that fits the evidence, or None when the evidence supports none.
Verdict names and confidence words stay in the evidence (Details, the API), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..units import Units, human_bytes

LOST = "Its variables are lost."
RESTART = "Restart the kernel to go on."
QUIET = ("user_shutdown", "user_restart", "server_shutdown")

HEADLINES = {
    "halted_by_memguard": "Kernel stopped: it ran out of memory",
    "oom_killed": "Kernel stopped: the system ran out of memory",
    "culled_idle": "Kernel shut down: it was idle",
    "killed_externally": "Kernel stopped: another process killed it",
    "crashed": "Kernel crashed",
    "exited": "Kernel exited",
    "child_oom_killed": "A process started by the kernel ran out of memory",
    "gpu_out_of_memory": "A cell ran out of GPU memory",
    "user_shutdown": "Kernel shut down",
    "user_restart": "Kernel restarted",
    "server_shutdown": "Kernel ended with the server",
    "unknown": "Kernel stopped",
}


def _size(value: Any, units: Units) -> str:
    return human_bytes(value, units) if isinstance(value, (int, float)) else "an unknown amount"


def cell_phrase(cell: Mapping[str, Any] | None, units: Units = "binary") -> str:
    """' while running cell [7] (`df = pd.read_csv("big.csv")`), which grew memory by
    3.6 GiB in 4 s' or ''."""
    if not cell:
        return ""
    count = cell.get("execution_count")
    label = f"cell [{count}]" if count is not None else "a cell"
    first = str(cell.get("first_line") or cell.get("code") or "").strip().splitlines()
    code = f" (`{_shorten(first[0])}`)" if first else ""
    growth = ""
    grew = _growth(cell)
    started, ended = cell.get("started_at"), cell.get("ended_at")
    if grew is not None and grew >= 1 << 20:
        took = ""
        if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
            took = f" in {_seconds(ended - started)}"
        growth = f", which grew memory by {human_bytes(grew, units)}{took}"
    return f" while running {label}{code}{growth}"


def _shorten(code: str, limit: int = 60) -> str:
    return code if len(code) <= limit else code[: limit - 1] + "…"


def _seconds(value: float) -> str:
    if value < 1:
        return "less than a second"
    if value < 90:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"


def headline(verdict: str, evidence: Mapping[str, Any] | None = None) -> str:
    """What happened, in a few words."""
    if verdict == "halted_by_memguard" and (evidence or {}).get("intent") == "admin_halt":
        return "Kernel stopped by an administrator"
    return HEADLINES.get(verdict, HEADLINES["unknown"])


def summary(verdict: str, evidence: Mapping[str, Any], units: Units = "binary") -> str:
    """What happened, what it means, what to do: plain words, evidence figures only."""
    cell = cell_phrase(evidence.get("running_cell"), units)
    used = evidence.get("last_rss_bytes") or evidence.get("peak_rss_bytes")
    limit = evidence.get("limit_bytes")
    figures = f" It used {_size(used, units)} of its {_size(limit, units)} limit." if used else ""
    if verdict == "halted_by_memguard":
        if evidence.get("intent") == "admin_halt":
            return f"An administrator stopped the kernel{cell}. {LOST} {RESTART}"
        return (
            f"memguard stopped the kernel{cell}, before the system ran out of memory."
            f"{figures} {LOST} Restart the kernel and run your cells again with less data."
        )
    if verdict == "oom_killed":
        return (
            f"The system ran out of memory and ended the kernel{cell}.{figures} {LOST} "
            "Restart the kernel and run your cells again with less data."
        )
    if verdict == "culled_idle":
        why = evidence.get("intent_reason") or ""
        if "GPU" in why:
            reason = "another notebook needed the GPU memory it held while idle"
        elif "pressure" in why:
            reason = "memory was short and it was idle"
        else:
            reason = "it was idle for a long time"
        return f"memguard shut the kernel down because {reason}. {LOST} {RESTART}"
    if verdict == "killed_externally":
        return (
            f"Another process killed the kernel (SIGKILL){cell}. Nothing suggests memory was "
            f"the cause. {LOST} {RESTART}"
        )
    if verdict == "crashed":
        signal = evidence.get("exit_signal") or "a signal"
        return (
            f"The kernel crashed with {signal}{cell}: a bug in the kernel or in a library it "
            f"uses, not a memory limit. {LOST} {RESTART}"
        )
    if verdict == "exited":
        code = evidence.get("exit_code")
        return (
            f"The kernel process exited with code {code}{cell}. If this happens each time it "
            "starts, the kernel's installation is broken: ask whoever set it up."
        )
    if verdict == "child_oom_killed":
        pid = evidence.get("child_pid")
        return (
            f"The system ran out of memory and ended process {pid}, which the kernel had "
            "started. The kernel itself is still running, with its variables."
        )
    if verdict == "gpu_out_of_memory":
        return (
            "A cell asked for more GPU memory than was free. The kernel is still running; "
            "free GPU memory (delete tensors you no longer need) or use smaller batches."
        )
    if verdict in QUIET:
        return f"{headline(verdict)}."
    return f"The kernel ended and nothing says why{cell}. {LOST} {RESTART}"


def advice(verdict: str, evidence: Mapping[str, Any], units: Units = "binary") -> str | None:
    """One line of advice that the evidence supports, or None."""
    if verdict not in ("halted_by_memguard", "oom_killed") or evidence.get("intent") == (
        "admin_halt"
    ):
        return None
    limit = evidence.get("limit_bytes")
    cell = evidence.get("running_cell") or {}
    growth = _growth(cell)
    if isinstance(limit, int) and limit > 0 and growth is not None and growth > limit / 2:
        return (
            "One cell took more than half of the limit: load or process the data in chunks, "
            "stream it from disk, or use smaller data types."
        )
    kept = sum(max(0, c.get("delta_bytes") or 0) for c in evidence.get("top_cells") or ())
    if isinstance(limit, int) and limit > 0 and kept > limit / 2:
        return (
            f"Earlier cells kept {human_bytes(kept, units)}: delete large variables you no "
            "longer need (`del df`), or restart the kernel now and then."
        )
    idle = evidence.get("idle_kernels") or []
    if idle:
        total = sum(k.get("bytes") or 0 for k in idle)
        notebooks = "notebook holds" if len(idle) == 1 else "notebooks hold"
        return f"{len(idle)} idle {notebooks} {human_bytes(total, units)}: shut them down."
    if evidence.get("limit_source") in ("cgroup_v1", "cgroup_v2", "spawner_mem_limit"):
        return (
            "The limit is your container's: ask your administrator for a larger resource "
            "class, or work with less data."
        )
    return None


def _growth(cell: Mapping[str, Any]) -> int | None:
    """How far the cell took memory above where it started (its peak, else its end)."""
    before = cell.get("memory_before_bytes")
    top = cell.get("peak_bytes")
    top = top if top is not None else cell.get("memory_after_bytes")
    if isinstance(before, int) and isinstance(top, int):
        return top - before
    return None


def describe(record: Mapping[str, Any], units: Units = "binary") -> dict[str, Any]:
    """headline, summary and advice of a journal record (its to_json())."""
    verdict = str(record.get("verdict") or "unknown")
    evidence = record.get("evidence") or {}
    return {
        "headline": headline(verdict, evidence),
        "summary": summary(verdict, evidence, units),
        "advice": advice(verdict, evidence, units),
    }
