"""The one wording of everything memguard says, in plain words: the CLI, the REST records, the
events and the JupyterLab notices all show these texts as they are.

Pure: figures in (a record's evidence, an action's trigger, an event's payload), words out:
  * ``headline``: what happened, in a few words (a verdict's comes from ``models.VERDICTS``);
  * ``summary``: what happened, what it means, what to do, naming the cell and the variables;
  * ``advice``: one line that fits the evidence, or None when the evidence supports none.
Verdict names and confidence words stay in the evidence (Details, the API), not here. Nothing
here parses reason text: the words come from structured triggers and evidence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .models import VERDICTS, Action, Trigger, VerdictInfo
from .units import Units, human_bytes

LOST = "Its variables are lost."
RESTART = "Restart the kernel to go on."
LESS_DATA = "Restart the kernel and run your cells again with less data."

Evidence = Mapping[str, Any]


# --------------------------------------------------------------------------- small phrases
def _size(value: Any, units: Units) -> str:
    return human_bytes(value, units) if isinstance(value, (int, float)) else "an unknown amount"


def _shorten(code: str, limit: int = 60) -> str:
    return code if len(code) <= limit else code[: limit - 1] + "…"


def _seconds(value: float) -> str:
    if value < 1:
        return "less than a second"
    if value < 90:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"


def _percent(part: int | None, whole: int | None) -> str:
    return f"{part / whole:.0%}" if part is not None and whole else "?%"


def _growth(cell: Mapping[str, Any]) -> int | None:
    """How far the cell took memory above where it started (its peak, else its end)."""
    before = cell.get("memory_before_bytes")
    top = cell.get("peak_bytes")
    top = top if top is not None else cell.get("memory_after_bytes")
    if isinstance(before, int) and isinstance(top, int):
        return top - before
    return None


def cell_label(cell: Mapping[str, Any] | None) -> str:
    """'cell [7]', or 'a cell' when its execution count is not known."""
    count = (cell or {}).get("execution_count")
    return f"cell [{count}]" if count is not None else "a cell"


def cell_phrase(cell: Mapping[str, Any] | None, units: Units = "binary") -> str:
    """' while running cell [7] (`df = pd.read_csv("big.csv")`), which grew memory by
    3.6 GiB in 4 s' or ''. Without recorded code (record_code = False): ' while running
    cell [7]'."""
    if not cell:
        return ""
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
    return f" while running {cell_label(cell)}{code}{growth}"


NAMED_FLOOR = 1 << 20  # a variable smaller than this is not worth naming ...
NAMED_SHARE = 0.1  # ... nor one under this share of the largest


def _worth_naming(variables: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The host-memory variables that hold a real part of it (a GPU tensor's bytes are not
    what fills the kernel's RAM; `a = 1` is not what to free), largest first."""
    held = [v for v in variables or () if isinstance(v.get("bytes"), int) and not _on_gpu(v)]
    held.sort(key=lambda v: v["bytes"], reverse=True)
    if not held:
        return []
    floor = max(NAMED_FLOOR, int(held[0]["bytes"] * NAMED_SHARE))
    return [v for v in held if v["bytes"] >= floor]


def variables_phrase(variables: Sequence[Mapping[str, Any]] | None, units: Units = "binary") -> str:
    """'Most of it is in `df` (DataFrame, 1.2 GiB) and `x` (list, at least 400 MiB).' or ''."""
    named = _worth_naming(variables)[:3]
    if not named:
        return ""
    parts = []
    for v in named:
        qualifier = {"at_least": "at least ", "estimate": "about "}.get(
            v.get("qualifier") or "", ""
        )
        parts.append(
            f"`{v['name']}` ({v.get('type') or 'object'}, {qualifier}{_size(v['bytes'], units)})"
        )
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"Most of it is in {listing}."


def _on_gpu(variable: Mapping[str, Any]) -> bool:
    device = variable.get("device")
    return isinstance(device, str) and device not in ("", "cpu")


def del_hint(variables: Sequence[Mapping[str, Any]] | None) -> str | None:
    """'`del df, x`' for the largest host-memory variables, or None."""
    names = [v["name"] for v in _worth_naming(variables)][:2]
    return f"`del {', '.join(names)}`" if names else None


# --------------------------------------------------------------------------- who asked
_HEX_ID = re.compile(r"^[0-9a-f]{16,}$")


def _named(by: str | None) -> str | None:
    """A person's name, or None for jupyter_server's anonymous ids (a token's user)."""
    return by if by and not _HEX_ID.match(by) else None


def _admin_headline(t: Trigger | None, prefix: str = "Kernel stopped") -> str:
    if t is not None and t.via == "panel":
        return f"{prefix} from the Memory panel"
    name = _named(t.by) if t is not None else None
    return f"{prefix} by {name}" if name else f"{prefix} by an administrator"


def _admin_who(t: Trigger | None) -> str:
    name = _named(t.by) if t is not None else None
    if t is not None and t.via == "panel":
        return f"{name} (from the Memory panel)" if name else "Someone, from the Memory panel,"
    return name or "An administrator"


# --------------------------------------------------------------------------- verdicts
def verdict_info(verdict: str) -> VerdictInfo:
    """The verdict's entry in the one table (an unknown name reads as 'unknown')."""
    return VERDICTS.get(verdict) or VERDICTS["unknown"]


def headline(verdict: str, evidence: Evidence | None = None) -> str:
    """What happened, in a few words."""
    trigger = Trigger.from_json((evidence or {}).get("trigger"))
    if verdict == "halted_by_memguard" and trigger is not None and trigger.kind == "admin":
        return _admin_headline(trigger)
    if verdict == "culled_idle" and trigger is not None and trigger.kind == "jupyter_server_culler":
        return "Kernel shut down by the server: it was idle"
    return verdict_info(verdict).headline


def _figures(evidence: Evidence, units: Units) -> str:
    used = evidence.get("last_rss_bytes") or evidence.get("peak_rss_bytes")
    limit = evidence.get("limit_bytes")
    return f" It used {_size(used, units)} of its {_size(limit, units)} limit." if used else ""


def _halted(evidence: Evidence, units: Units) -> str:
    cell = cell_phrase(evidence.get("running_cell"), units)
    trigger = Trigger.from_json(evidence.get("trigger"))
    if trigger is not None and trigger.kind == "admin":
        why = f" ({trigger.note})" if trigger.note else ""
        return f"{_admin_who(trigger)} stopped the kernel{cell}{why}. {LOST} {RESTART}"
    held = variables_phrase(evidence.get("variables"), units)
    held = f" {held}" if held else ""
    if trigger is not None and trigger.kind == "budget":
        return (
            f"memguard stopped the kernel{cell}, because the memory of this server was almost "
            f"full and stopping it relieved that.{_figures(evidence, units)}{held} {LOST} "
            f"{LESS_DATA}"
        )
    return (
        f"memguard stopped the kernel{cell}, before the system ran out of memory."
        f"{_figures(evidence, units)}{held} {LOST} {LESS_DATA}"
    )


def _kept(evidence: Evidence, units: Units) -> str:
    cell = evidence.get("running_cell")
    label = cell_label(cell)
    first = str((cell or {}).get("first_line") or "").strip()
    code = f" (`{_shorten(first)}`)" if first else ""
    trigger = Trigger.from_json(evidence.get("trigger"))
    over = ""
    if trigger is not None and trigger.usage_bytes and trigger.line_bytes:
        over = (
            f" when the kernel used {_size(trigger.usage_bytes, units)}, over its stop line "
            f"({_size(trigger.line_bytes, units)} of its {_size(trigger.limit_bytes, units)} "
            "limit)"
        )
    now = evidence.get("memory_after_bytes")
    holds = f" It holds {_size(now, units)} now." if isinstance(now, int) else ""
    held = variables_phrase(evidence.get("variables"), units)
    hint = del_hint(evidence.get("variables"))
    free = f" Free memory before you go on: {hint}." if hint else " Free memory before you go on."
    return (
        f"memguard stopped {label}{code}{over}. The kernel is still running, with its "
        f"variables.{holds}{(' ' + held) if held else ''}{free}"
    )


def _culled(evidence: Evidence, units: Units) -> str:
    trigger = Trigger.from_json(evidence.get("trigger"))
    kind = trigger.kind if trigger is not None else "idle"
    if kind == "jupyter_server_culler":
        idle = trigger.idle_seconds if trigger is not None else None
        timeout = trigger.timeout_seconds if trigger is not None else None
        after = f" after {_seconds(idle)} idle" if isinstance(idle, (int, float)) else ""
        setting = (
            f" (c.MappingKernelManager.cull_idle_timeout = {timeout:.0f} s)"
            if isinstance(timeout, (int, float))
            else ""
        )
        return (
            f"The Jupyter server's idle culler shut the kernel down{after}{setting}. {LOST} "
            f"{RESTART}"
        )
    reason = {
        "gpu_pressure": "another notebook needed the GPU memory it held while idle",
        "idle_pressure": "memory was short and it was idle",
    }.get(kind, "it was idle for a long time")
    return f"memguard shut the kernel down because {reason}. {LOST} {RESTART}"


def _oom(evidence: Evidence, units: Units) -> str:
    cell = cell_phrase(evidence.get("running_cell"), units)
    if evidence.get("contained"):
        limit = evidence.get("kernel_cgroup_limit_bytes")
        return (
            f"The kernel reached its own memory limit ({_size(limit, units)}){cell}, and the "
            "system stopped it there, before it could take the memory of the whole server. "
            f"{LOST} {LESS_DATA}"
        )
    return (
        f"The system ran out of memory and ended the kernel{cell}.{_figures(evidence, units)} "
        f"{LOST} {LESS_DATA}"
    )


def _server_died(evidence: Evidence, units: Units) -> str:
    at = evidence.get("last_heartbeat_at")
    when = (
        f" at {time.strftime('%H:%M', time.localtime(at))}" if isinstance(at, (int, float)) else ""
    )
    path = evidence.get("path")
    whose = f"the kernel of {path}" if path else "this kernel"
    used, limit = evidence.get("used_bytes"), evidence.get("budget_limit_bytes")
    use = ""
    if isinstance(used, int):
        of = f" of {_size(limit, units)}" if isinstance(limit, int) else ""
        use = f" used {_size(used, units)}{of}"
    cell = evidence.get("running_cell")
    running = f" in {cell_label(cell)}" if cell else ""
    cause = {
        "container_oom": " Most likely the whole container ran out of memory and was stopped "
        "with everything in it (the kernel's memory was close to the limit).",
        "container_oom_counted": " The container ran out of memory and was stopped with "
        "everything in it: its out-of-memory counter rose.",
    }.get(str(evidence.get("cause")), " Nothing recorded says why.")
    left = ""
    if evidence.get("left_running"):
        size = evidence.get("orphan_bytes")
        held = f", holding {_size(size, units)}" if isinstance(size, int) else ""
        left = (
            " Its kernel kept running without a server"
            f"{held}; memguard stopped it at the next start."
            if evidence.get("orphan_action") == "stopped"
            else f" Its kernel is still running without a server{held}."
        )
    return f"The server stopped abruptly{when} while {whose}{use}{running}.{cause}{left} {LOST} {RESTART}"


def _killed(evidence: Evidence, units: Units) -> str:
    cell = cell_phrase(evidence.get("running_cell"), units)
    return (
        f"Another process killed the kernel (SIGKILL){cell}. Nothing suggests memory was "
        f"the cause. {LOST} {RESTART}"
    )


def _crashed(evidence: Evidence, units: Units) -> str:
    signal = evidence.get("exit_signal") or "a signal"
    cell = cell_phrase(evidence.get("running_cell"), units)
    return (
        f"The kernel crashed with {signal}{cell}: a bug in the kernel or in a library it uses, "
        f"not a memory limit. {LOST} {RESTART}"
    )


def _exited(evidence: Evidence, units: Units) -> str:
    cell = cell_phrase(evidence.get("running_cell"), units)
    return (
        f"The kernel process exited with code {evidence.get('exit_code')}{cell}. If this "
        "happens each time it starts, the kernel's installation is broken: ask whoever set it up."
    )


def _child_oom(evidence: Evidence, units: Units) -> str:
    what = (
        "The kernel reached its own memory limit, and the system ended"
        if evidence.get("contained")
        else "The system ran out of memory and ended"
    )
    return (
        f"{what} process {evidence.get('child_pid')}, which the kernel had started. The kernel "
        "itself is still running, with its variables."
    )


def _gpu_oom(evidence: Evidence, units: Units) -> str:
    return (
        "A cell asked for more GPU memory than was free. The kernel is still running; free GPU "
        "memory (delete tensors you no longer need) or use smaller batches."
    )


def _unknown(evidence: Evidence, units: Units) -> str:
    cell = cell_phrase(evidence.get("running_cell"), units)
    return f"The kernel ended and nothing says why{cell}. {LOST} {RESTART}"


def _quiet(verdict: str) -> Callable[[Evidence, Units], str]:
    return lambda evidence, units: f"{verdict_info(verdict).headline}."


SUMMARIES: Mapping[str, Callable[[Evidence, Units], str]] = {
    "halted_by_memguard": _halted,
    "interrupted_kept": _kept,
    "culled_idle": _culled,
    "user_shutdown": _quiet("user_shutdown"),
    "user_restart": _quiet("user_restart"),
    "oom_killed": _oom,
    "killed_externally": _killed,
    "crashed": _crashed,
    "exited": _exited,
    "server_shutdown": _quiet("server_shutdown"),
    "server_died": _server_died,
    "child_oom_killed": _child_oom,
    "gpu_out_of_memory": _gpu_oom,
    "unknown": _unknown,
}


def summary(verdict: str, evidence: Evidence, units: Units = "binary") -> str:
    """What happened, what it means, what to do: plain words, evidence figures only."""
    return SUMMARIES.get(verdict, _unknown)(evidence, units)


def advice(verdict: str, evidence: Evidence, units: Units = "binary") -> str | None:
    """One line of advice that the evidence supports, or None."""
    trigger = Trigger.from_json(evidence.get("trigger"))
    if verdict not in ("halted_by_memguard", "oom_killed") or (
        trigger is not None and trigger.kind == "admin"
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
    hint = del_hint(evidence.get("variables"))
    kept = sum(max(0, c.get("delta_bytes") or 0) for c in evidence.get("top_cells") or ())
    if isinstance(limit, int) and limit > 0 and kept > limit / 2:
        return (
            f"Earlier cells kept {human_bytes(kept, units)}: delete large variables you no "
            f"longer need ({hint or '`del df`'}), or restart the kernel now and then."
        )
    if hint:
        return f"Free memory you no longer need before it fills again: {hint}."
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


def describe(record: Mapping[str, Any], units: Units = "binary") -> dict[str, Any]:
    """The words of a journal record (its to_json()): headline, summary, advice, severity,
    and whether the kernel survived."""
    verdict = str(record.get("verdict") or "unknown")
    evidence = record.get("evidence") or {}
    info = verdict_info(verdict)
    return {
        "headline": headline(verdict, evidence),
        "summary": summary(verdict, evidence, units),
        "advice": advice(verdict, evidence, units),
        "severity": info.severity,
        "survived": info.survived,
    }


def vocabulary() -> dict[str, dict[str, Any]]:
    """The verdict table as the API serves it."""
    return {
        name: {
            "severity": info.severity,
            "survived": info.survived,
            "headline": info.headline,
            "quiet": info.quiet,
        }
        for name, info in VERDICTS.items()
    }


# --------------------------------------------------------------------------- actions
def _line_phrase(trigger: Trigger, units: Units) -> str:
    return (
        f"over {_percent(trigger.line_bytes, trigger.limit_bytes)} of its "
        f"{_size(trigger.limit_bytes, units)} limit"
    )


def action_reason(action: Action, units: Units = "binary") -> str:
    """One line for the server's log (and the intent's reason column) from the action's trigger."""
    t = action.trigger
    culprit = action.culprit or {}
    if action.kind == "pressure":
        return pressure_text(t, culprit, units)
    if action.kind == "gpu_notify":
        return gpu_text(culprit, units)
    if t.kind == "kernel_limit":
        return f"kernel uses {_size(t.usage_bytes, units)}, {_line_phrase(t, units)}"
    if t.kind == "budget":
        return (
            f"memory budget exhausted: {_size(t.usage_bytes, units)} of "
            f"{_size(t.limit_bytes, units)} in use; stopping this kernel "
            f"({_size(t.kernel_bytes, units)}) relieves it"
        )
    if t.kind == "idle":
        return (
            f"kernel idle for {t.idle_seconds or 0:.0f} s (timeout {t.timeout_seconds or 0:.0f} s)"
        )
    if t.kind == "idle_pressure":
        return (
            f"memory pressure: {_size(t.usage_bytes, units)} of {_size(t.limit_bytes, units)} in "
            f"use; culling the largest idle kernel ({_size(t.kernel_bytes, units)})"
        )
    if t.kind == "gpu_pressure":
        return (
            f"GPU pressure: another notebook's cell ran out of memory on GPU {t.device_index}; "
            f"this idle kernel held {_size(t.kernel_bytes, units)} there"
        )
    if t.kind == "admin":
        return f"halted by an administrator ({t.by or 'unknown user'})"
    return t.kind


def pressure_text(t: Trigger, culprit: Mapping[str, Any], units: Units = "binary") -> str:
    """Pressure from outside the kernels, its figures consistent: the outside part is the
    usage minus the kernels' part, both read at the same moment."""
    if culprit:
        terminal = culprit.get("terminal")
        where = f", terminal {terminal}" if terminal else ""
        return (
            f"A process outside your notebooks, `{culprit.get('cmdline') or culprit.get('name')}` "
            f"(pid {culprit.get('pid')}{where}), uses {_size(culprit.get('bytes'), units)} of the "
            f"{_size(t.limit_bytes, units)} limit"
        )
    outside = (t.usage_bytes or 0) - (t.kernel_bytes or 0)
    return (
        f"Memory outside your notebooks fills the budget: {_size(t.usage_bytes, units)} of "
        f"{_size(t.limit_bytes, units)} in use, {_size(max(0, outside), units)} of it outside "
        "the kernels"
    )


def gpu_text(culprit: Mapping[str, Any], units: Units = "binary") -> str:
    holders = culprit.get("holders") or []

    def state(h: Mapping[str, Any]) -> str:
        if h.get("culled"):
            return "shut down"
        return "idle" if h.get("idle") else "running"

    names = ", ".join(
        f"{h.get('path') or str(h.get('kernel_id'))[:8]} ({_size(h.get('bytes'), units)}, {state(h)})"
        for h in holders
    )
    culled = any(h.get("culled") for h in holders)
    verb = "held it; the idle ones were shut down to make room" if culled else "hold it"
    return f"On GPU {culprit.get('device')} ({culprit.get('device_name')}), {names} {verb}"


# --------------------------------------------------------------------------- events
Words = dict[str, Any]


def _words(headline_: str, summary_: str, severity: str, advice_: str | None = None) -> Words:
    return {"headline": headline_, "summary": summary_, "advice": advice_, "severity": severity}


def warning_words(
    t: Trigger, variables: Sequence[Mapping[str, Any]] | None, stop_bytes: int | None, units: Units
) -> Words:
    """memory_warning: the kernel crossed its warn line (its own, or it is the kernel the
    shared budget's stop would fall on)."""
    stop = f"; memguard stops it at {_size(stop_bytes, units)}" if stop_bytes else ""
    held = variables_phrase(variables, units)
    hint = del_hint(variables)
    if t.kind == "budget":
        uses = (
            f"This server's memory is filling up ({_size(t.usage_bytes, units)} of "
            f"{_size(t.limit_bytes, units)}), most of it this kernel's "
            f"({_size(t.kernel_bytes, units)}){stop}."
        )
    else:
        uses = f"It uses {_size(t.usage_bytes, units)} of its {_size(t.limit_bytes, units)}{stop}."
    text = f"{uses}{(' ' + held) if held else ''}"
    todo = f"Save your work, or free memory: {hint}." if hint else "Save your work, or free memory."
    return _words("Kernel memory is high", text, "warning", todo)


def halting_words(
    step: str, t: Trigger, variables: Sequence[Mapping[str, Any]] | None, units: Units
) -> Words:
    """kernel_halting: memguard begins to stop a kernel (its first step)."""
    held = variables_phrase(variables, units)
    held = f" {held}" if held else ""
    if t.kind == "admin":
        return _words(
            _admin_headline(t, "Stopping the kernel"),
            f"{_admin_who(t)} asked memguard to stop this kernel.",
            "error",
        )
    if t.kind == "budget":
        why = (
            f"The server's memory is almost full ({_size(t.usage_bytes, units)} of "
            f"{_size(t.limit_bytes, units)}), and stopping this kernel "
            f"({_size(t.kernel_bytes, units)}) relieves it."
        )
    else:
        why = (
            f"The kernel uses {_size(t.usage_bytes, units)}, over its stop line "
            f"({_size(t.line_bytes, units)} of its {_size(t.limit_bytes, units)} limit)."
        )
    kept = (
        " memguard is interrupting the running cell; the kernel keeps its variables if it then "
        "runs nothing, stays under its kill line and the server has room, else it is shut down."
    )
    then = {
        "interrupt": kept
        if t.kind == "kernel_limit"
        else " memguard is interrupting the running cell; if the memory stays this high, the "
        "kernel will be shut down.",
        "restart": " memguard is restarting the kernel.",
        "shutdown": " memguard is shutting the kernel down.",
        "kill": " memguard is killing the kernel: memory is nearly exhausted.",
    }.get(step, "")
    return _words("Stopping the kernel: memory limit", f"{why}{held}{then}", "error")


STEP_HEADLINES = {
    "interrupt": "Interrupting the running cell",
    "restart": "Restarting the kernel",
    "shutdown": "Shutting the kernel down",
    "kill": "Killing the kernel",
}


def step_words(step: str, t: Trigger, units: Units) -> Words:
    """kernel_halted: one step of the escalation was taken."""
    text = f"{STEP_HEADLINES.get(step, step)} (memory: {_size(t.kernel_bytes or t.usage_bytes, units)})."
    return _words(STEP_HEADLINES.get(step, step), text, "error")


def cull_words(t: Trigger, units: Units) -> Words:
    """kernel_culled: memguard is shutting an idle kernel down."""
    evidence = {"trigger": t.to_json()}
    return _words("Shutting down an idle kernel", _culled(evidence, units), "info")


def pressure_words(t: Trigger, culprit: Mapping[str, Any] | None, units: Units) -> Words:
    """memory_pressure: the memory outside the kernels fills the budget; no kernel is stopped."""
    text = pressure_text(t, culprit or {}, units) + "."
    todo = (
        "Stop that program, or ask your administrator for more memory."
        if culprit
        else "Close programs you no longer need, or ask your administrator for more memory."
    )
    return _words("Memory is short, outside your notebooks", text, "warning", todo)


def gpu_pressure_words(culprit: Mapping[str, Any], units: Units) -> Words:
    """gpu_pressure: a cell ran out of GPU memory that other notebooks hold."""
    return _words(
        "GPU memory is full",
        gpu_text(culprit, units) + ".",
        "warning",
        "Shut down the notebooks you no longer need, or use smaller batches.",
    )


def interrupt_message(
    t: Trigger, variables: Sequence[Mapping[str, Any]] | None, units: Units
) -> str:
    """The text of the MemoryLimitInterrupt raised in the stopped cell."""
    held = variables_phrase(variables, units)
    held = f" {held}" if held else ""
    if t.kind == "budget":
        return (
            f"memguard stopped this cell: this server's memory was almost full "
            f"({_size(t.usage_bytes, units)} of its {_size(t.limit_bytes, units)} limit); this "
            f"kernel used {_size(t.kernel_bytes, units)}.{held}"
        )
    return (
        f"memguard stopped this cell: the kernel used {_size(t.kernel_bytes or t.usage_bytes, units)}, "
        f"over its stop line ({_size(t.line_bytes, units)} of its {_size(t.limit_bytes, units)} "
        f"limit).{held}"
    )
