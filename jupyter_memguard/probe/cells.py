"""Per-cell memory records, for any kernel language, built from the kernel's iopub messages.

An execution is the span from the ``busy`` status of an ``execute_request`` (or its
``execute_input``) to the ``idle`` status of the same request; only executions that broadcast an
``execute_input`` (i.e. not ``silent`` ones) become cells. Times are the kernel's own (the
messages' header dates), as a cell that holds the GIL delays the kernel's iopub thread.

Memory: "before" is the last read taken while the kernel was idle (the previous cell's "after",
or a monitor sample since), not a read on ``busy``, which can arrive after the cell has already
allocated or freed. The peak is exact even for a cell shorter than a monitor tick: the kernel
process's high-water mark (``VmHWM``) is reset by writing ``5`` to ``/proc/PID/clear_refs`` when
each execution ends (and when a process is first seen), and read when the next one ends. Where
that write is refused (another user, not Linux, a remote kernel) the peak comes from the
monitor's samples, and the record says so (``peak_method``).

The iopub listener calls the ``on_*`` methods on the event loop; the monitor calls ``observe``,
possibly from its worker thread. Each costs tens of microseconds (a ``status`` read, a
``clear_refs`` write, the caller's ``read_memory``); no I/O happens under the lock.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..lifecycle import Died, Gone, LifecycleEvent, Restarted
from ..models import AgentView

CellStatus = Literal["running", "ok", "error", "interrupted", "halted", "kernel_died"]
CellSource = Literal["agent", "iopub"]
PeakMethod = Literal["vmhwm", "samples"]

HEAD_LINES = 5
HEAD_CHARS = 300
FIRST_LINE_CHARS = 1000  # "the full first line", but bounded against a pasted megabyte
TOP_KEPT = 20  # cells kept for top_kept, beyond the bounded history
MAX_LIVE = 16  # executions open at once (subshells); more means idles were lost

_BLANK_LINES = re.compile(r"(?:[ \t]*\r?\n)*")


@dataclass(frozen=True)
class CellRecord:
    """One execution of a cell and what it did to the kernel's memory."""

    msg_id: str  # the execute_request's msg_id: lets a frontend match the record to its cell
    execution_count: int | None
    code: str  # head: at most HEAD_LINES lines and HEAD_CHARS characters
    first_line: str  # the first non-blank line, whole (up to FIRST_LINE_CHARS), for notices
    started_at: float
    ended_at: float | None
    status: CellStatus
    memory_before_bytes: int | None
    memory_after_bytes: int | None  # while running: the memory now
    peak_bytes: int | None
    peak_method: PeakMethod
    ename: str | None = None  # the error's name when the cell raised
    # The kernel ran the next execution before this cell's end could be read (queued cells that
    # hold the GIL): before, after and peak may include part of the neighbouring cell.
    overlapped: bool = False
    source: CellSource = "iopub"  # where the boundaries came from (the kernel's agent: exact)

    @property
    def delta_bytes(self) -> int | None:
        """Memory the cell kept (after − before); negative when it freed some."""
        if self.memory_before_bytes is None or self.memory_after_bytes is None:
            return None
        return self.memory_after_bytes - self.memory_before_bytes

    @property
    def peak_above_start_bytes(self) -> int | None:
        """The cell's own peak above where it started (not the kernel's peak)."""
        if self.memory_before_bytes is None or self.peak_bytes is None:
            return None
        return max(0, self.peak_bytes - self.memory_before_bytes)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_count": self.execution_count,
            "code": self.code,
            "first_line": self.first_line,
            "msg_id": self.msg_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "ename": self.ename,
            "memory_before_bytes": self.memory_before_bytes,
            "memory_after_bytes": self.memory_after_bytes,
            "peak_bytes": self.peak_bytes,
            "peak_method": self.peak_method,
            "delta_bytes": self.delta_bytes,
            "peak_above_start_bytes": self.peak_above_start_bytes,
            "duration_s": self.duration_s,
            "overlapped": self.overlapped,
            "source": self.source,
        }


def code_head(code: str) -> tuple[str, str]:
    """(head, first line) of a cell's code, from its first non-blank line on; both bounded."""
    start = _BLANK_LINES.match(code).end()  # type: ignore[union-attr]  # always matches
    end = code.find("\n", start)
    first = code[start : end if end >= 0 else len(code)].rstrip()[:FIRST_LINE_CHARS]
    head = code[start : start + HEAD_CHARS]
    cut = -1
    for _ in range(HEAD_LINES):
        cut = head.find("\n", cut + 1)
        if cut < 0:
            break
    if cut >= 0:
        head = head[:cut]
    return head.rstrip(), first


def read_hwm_rss(pid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) of one process in bytes, or None when gone (a zombie has neither)."""
    try:
        with open(f"{proc}/{pid}/status", "rb") as handle:
            text = b"\n" + handle.read()
        values = []
        for key in (b"\nVmHWM:", b"\nVmRSS:"):
            at = text.find(key)
            if at < 0:
                return None
            values.append(int(text[at + len(key) : text.index(b"\n", at + 1)].split()[0]) * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return values[0], values[1]


def reset_hwm(pid: int, proc: Path = Path("/proc")) -> bool:
    """Reset the process's VmHWM to its current RSS; False if not allowed (or not Linux)."""
    try:
        fd = os.open(f"{proc}/{pid}/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, b"5")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


@dataclass
class _Live:
    """An execution under way."""

    msg_id: str
    started_at: float
    pid: int | None
    before: int | None
    hwm: bool  # VmHWM was reset before the cell started and not since
    overlapped: bool = False
    neighbour: str | None = None  # the record whose late end read serves as "before"
    seen_peak: int = 0  # max of the samples (and VmHWM folds) taken while it ran
    has_input: bool = False
    execution_count: int | None = None
    code: str = ""
    first_line: str = ""
    ename: str | None = None
    source: CellSource = "iopub"


@dataclass
class _Kernel:
    keep: int
    done: deque[CellRecord] = field(init=False)
    live: dict[str, _Live] = field(default_factory=dict)
    top: list[CellRecord] = field(default_factory=list)  # this process's cells that kept most
    last_tree: int | None = None  # last memory the monitor sampled or we read
    # (read at, bytes) of the last execution's end, and samples taken while idle since then
    ended: tuple[float, int] | None = None
    ended_msg_id: str | None = None  # the record whose "after" that read is
    idle_samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=8))
    reset_pid: int | None = None  # the pid whose VmHWM was last reset at an idle point
    no_clear_refs: int | None = None  # the pid whose clear_refs we may not write
    hwm_seen: int = 0  # the kernel process's VmHWM as read before each reset (this process)
    agent: bool = False  # its agent reports the cells: the iopub view of them is ignored

    def __post_init__(self) -> None:
        self.done = deque(maxlen=self.keep)

    def begin(self, live: _Live) -> None:
        """A cell under way; the oldest goes when MAX_LIVE are (replies that never came)."""
        while len(self.live) >= MAX_LIVE:
            self.live.pop(next(iter(self.live)))
        self.live[live.msg_id] = live


class CellTracker:
    """Keeps the last ``keep`` cell records of each kernel, in memory."""

    def __init__(
        self,
        read_memory: Callable[[str], int | None],
        pid_of: Callable[[str], int | None],
        proc: Path = Path("/proc"),
        keep: int = 200,
        clock: Callable[[], float] = time.time,
        record_code: bool = True,
    ) -> None:
        self.read_memory = read_memory
        self.pid_of = pid_of
        self.proc = proc
        self.keep = keep
        self.clock = clock
        self.record_code = record_code  # False: counts and sizes only, no code kept anywhere
        self._kernels: dict[str, _Kernel] = {}
        self._lock = threading.Lock()

    # --- from the iopub listener (event loop) -------------------------------------------------

    def on_busy(self, kernel_id: str, msg_id: str, at: float | None = None) -> None:
        """An execute_request started (``at``: the kernel's own time for it, if known)."""
        with self._lock:
            kernel = self._kernel(kernel_id)
            if msg_id in kernel.live or kernel.agent:
                return
            now = self.clock() if at is None else at
            before, neighbour = self._before(kernel, now)
            settled = (kernel.reset_pid, kernel.no_clear_refs)
        pid = self._pid(kernel_id)
        first = pid is not None and pid not in settled  # the first cell seen of this process
        fresh = self._memory(kernel_id) if first or before is None else None
        if before is None:
            before = fresh
        if first and pid is not None:
            self._reset(kernel_id, pid, fresh)
        with self._lock:
            kernel = self._kernel(kernel_id)
            hwm = pid is not None and kernel.reset_pid == pid
            kernel.begin(
                _Live(
                    msg_id,
                    now,
                    pid,
                    before,
                    hwm,
                    seen_peak=before or 0,
                    overlapped=neighbour is not None,
                    neighbour=neighbour or None,  # "" (a silent execution's end): none
                )
            )

    def on_execute_input(
        self,
        kernel_id: str,
        msg_id: str,
        execution_count: int | None,
        code: str,
        at: float | None = None,
    ) -> None:
        """The request is a cell (not a silent execution): note what it runs."""
        with self._lock:
            if self._kernel(kernel_id).agent:
                return
            known = msg_id in self._kernel(kernel_id).live
        if not known:  # its busy was missed (we subscribed late, or a kernel sends it first)
            self.on_busy(kernel_id, msg_id, at)
        head, first = code_head(code) if self.record_code else ("", "")
        with self._lock:
            kernel = self._kernel(kernel_id)
            live = kernel.live.get(msg_id)
            if live is not None:
                live.has_input = True
                live.execution_count = execution_count
                live.code, live.first_line = head, first
                if live.neighbour is not None:  # only now: a silent execution marks nothing
                    self._mark_overlapped(kernel, live.neighbour)

    def on_error(self, kernel_id: str, msg_id: str, ename: str) -> None:
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            live = kernel.live.get(msg_id) if kernel and not kernel.agent else None
            if live is not None:
                live.ename = ename

    def on_idle(self, kernel_id: str, msg_id: str, at: float | None = None) -> CellRecord | None:
        """The request ended: close its record (None for a silent execution or an unknown one).

        VmHWM is read for this cell, then reset for the next one: resetting here rather than at
        the next cell's start means a late ``busy`` cannot cut off the start of that cell's peak.
        """
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            live = kernel.live.get(msg_id) if kernel and not kernel.agent else None
            if live is None:
                return None
        now = self.clock() if at is None else at
        after = self._memory(kernel_id)
        read_at = self.clock()
        pid = self._pid(kernel_id)
        own_mark = live.hwm  # the mark read below is since a reset before this cell started
        status = self._reset(kernel_id, pid, after) if pid is not None else None
        if not live.has_input:
            with self._lock:
                kernel.live.pop(msg_id, None)
                if after is not None and not kernel.live:
                    kernel.ended, kernel.ended_msg_id = (read_at, after), None
                    kernel.idle_samples.clear()
            return None
        peak = max(live.seen_peak, live.before or 0, after or 0)
        method: PeakMethod = "samples"
        if own_mark and status is not None and pid == live.pid:
            # VmHWM covers the kernel process only; its children count as they are now.
            peak = max(peak, status[0] + max(0, (after or 0) - status[1]))
            method = "vmhwm"
        if live.ename is None:
            outcome: CellStatus = "ok"
        elif live.ename == "KeyboardInterrupt":
            outcome = "interrupted"
        else:
            outcome = "error"
        record = self._record(live, now, outcome, after, peak or None, method)
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            if kernel is None or kernel.live.pop(msg_id, None) is None:
                return None  # forgotten, restarted or died meanwhile
            if after is not None and not kernel.live:
                kernel.ended, kernel.ended_msg_id = (read_at, after), msg_id
                kernel.idle_samples.clear()
            self._finish(kernel, record)
        return record

    # --- from the kernel's agent: boundaries reported from inside the kernel, exact -----------

    def use_agent(self, kernel_id: str, on: bool) -> None:
        """The kernel's agent connected (its cells come from it from now on) or was lost (back
        to the iopub view; a cell it had opened stays open until the kernel's end closes it)."""
        with self._lock:
            self._kernel(kernel_id).agent = on

    def source(self, kernel_id: str) -> CellSource | None:
        """Where this kernel's cell records come from now (None: not known to the tracker)."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
        if kernel is None:
            return None
        return "agent" if kernel.agent else "iopub"

    def agent_view(self, kernel_id: str) -> AgentView | None:
        """What the kernel's agent said of its cells, for the Tick (None: no agent)."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            if kernel is None or not kernel.agent:
                return None
            running = any(live.source == "agent" for live in kernel.live.values())
            last = next((r for r in reversed(kernel.done) if r.source == "agent"), None)
        if last is None:
            return AgentView(running)
        return AgentView(running, last.ended_at, last.status, last.memory_after_bytes)

    def agent_cell_started(
        self,
        kernel_id: str,
        msg_id: str,
        execution_count: int | None,
        code: str,
        before: int | None,
        at: float,
        pid: int | None,
    ) -> None:
        """pre_run_cell: the cell is known before its code runs (the agent reset VmHWM)."""
        head, first = code_head(code) if self.record_code else ("", "")
        with self._lock:
            kernel = self._kernel(kernel_id)
            kernel.begin(
                _Live(
                    msg_id,
                    at,
                    pid,
                    before,
                    hwm=True,
                    seen_peak=before or 0,
                    has_input=True,
                    execution_count=execution_count,
                    code=head,
                    first_line=first,
                    source="agent",
                )
            )
            kernel.reset_pid = pid  # the agent's reset: VmHWM is this cell's own from here

    def agent_cell_ended(
        self,
        kernel_id: str,
        msg_id: str,
        status: CellStatus,
        ename: str | None,
        after: int | None,
        peak: int | None,
        at: float,
    ) -> CellRecord | None:
        """post_run_cell: the cell's end, its memory after and its own peak (VmHWM)."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            live = kernel.live.pop(msg_id, None) if kernel else None
            if kernel is None or live is None:
                return None
            live.ename = ename
            top = max(live.seen_peak, live.before or 0, after or 0, peak or 0) or None
            record = self._record(live, at, status, after, top, "vmhwm")
            if after is not None and not kernel.live:
                kernel.ended, kernel.ended_msg_id = (at, after), msg_id
                kernel.idle_samples.clear()
            self._finish(kernel, record)
        return record

    # --- from the monitor and the termination recorder ----------------------------------------

    def observe(self, kernel_id: str, tree_bytes: int, at: float) -> None:
        """A monitor sample of the kernel's tree memory (any thread; ``pid_of`` is called).

        While the kernel runs nothing, the sample is the baseline for the next cell's "before",
        and the first sample of a process resets its VmHWM, so that its first cell's peak is
        its own. While a cell runs, the sample and the kernel's VmHWM (one ``status`` read)
        raise its peak, so a cell whose kernel dies keeps the peak up to the last sample.
        """
        with self._lock:
            kernel = self._kernel(kernel_id)
            kernel.last_tree = tree_bytes
            idle = not kernel.live
            if idle:
                kernel.idle_samples.append((at, tree_bytes))
            reset_pid, refused = kernel.reset_pid, kernel.no_clear_refs
            pids = {live.pid for live in kernel.live.values() if live.hwm}
        if idle:
            pid = self._pid(kernel_id)
            if pid is not None and pid != reset_pid and pid != refused:
                self._reset(kernel_id, pid, tree_bytes)
            return
        peak = tree_bytes
        if len(pids) == 1 and (pid := pids.pop()) is not None:
            status = read_hwm_rss(pid, self.proc)
            if status is not None:
                peak = max(peak, status[0] + max(0, tree_bytes - status[1]))
        with self._lock:
            for live in kernel.live.values():
                if at >= live.started_at:
                    live.seen_peak = max(live.seen_peak, peak)

    def cells(self, kernel_id: str, include_running: bool = False) -> list[CellRecord]:
        """The kernel's finished cells, newest first (the running one first, if asked)."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            records = list(reversed(kernel.done)) if kernel else []
        if include_running:
            running = self.running(kernel_id)
            if running is not None:
                records.insert(0, running)
        return records

    def running_brief(self, kernel_id: str) -> dict[str, Any] | None:
        """The running cell without reading anything (for the heartbeat): its count, its first
        line, when it started and the memory before it."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            lives = [live for live in kernel.live.values() if live.has_input] if kernel else []
            if not lives:
                return None
            live = lives[-1]
            return {
                "msg_id": live.msg_id,
                "execution_count": live.execution_count,
                "first_line": live.first_line[:200],
                "started_at": live.started_at,
                "memory_before_bytes": live.before,
            }

    def running(self, kernel_id: str) -> CellRecord | None:
        """The running cell as it stands now: memory now, peak so far (a fresh VmHWM read)."""
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            lives = [live for live in kernel.live.values() if live.has_input] if kernel else []
            if not lives:
                return None
            live = replace(lives[-1])
        now_bytes = self._memory(kernel_id)
        peak = max(live.seen_peak, live.before or 0, now_bytes or 0)
        method: PeakMethod = "samples"
        if live.hwm and live.pid is not None:
            status = read_hwm_rss(live.pid, self.proc)
            if status is not None:
                peak = max(peak, status[0] + max(0, (now_bytes or 0) - status[1]))
                method = "vmhwm"
        return self._record(live, None, "running", now_bytes, peak or None, method)

    def top_kept(
        self, kernel_id: str, n: int = 3, include_overlapped: bool = False
    ) -> list[CellRecord]:
        """The cells of the kernel's current process that kept the most memory (delta > 0).

        Overlapped cells are left out unless asked for: their delta may be their neighbour's.
        """
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            top = kernel.top if kernel else []
            return [r for r in top if include_overlapped or not r.overlapped][:n]

    def kernel_died(self, kernel_id: str, at: float) -> CellRecord | None:
        """Close the cells that were running when the kernel died; return the newest of them.

        The process is gone, so there is no memory after and no final VmHWM: the peak is the
        highest the monitor (and resets) saw.
        """
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            if kernel is None:
                return None
            return self._close_all(kernel, at)

    def restarted(self, kernel_id: str) -> None:
        """A new kernel process: close what ran in the old one, start a new baseline.

        Past cells stay in the history; ``top_kept`` starts over, as the memory they kept is gone.
        """
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            if kernel is None:
                return
            self._close_all(kernel, self.clock())
            kernel.top.clear()
            kernel.last_tree = kernel.reset_pid = kernel.no_clear_refs = None
            kernel.ended = kernel.ended_msg_id = None
            kernel.idle_samples.clear()
            kernel.hwm_seen = 0

    def forget(self, kernel_id: str) -> None:
        with self._lock:
            self._kernels.pop(kernel_id, None)

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        """A kernel's process died (its running cells end there), was replaced (a new
        baseline), or the kernel left (its records go with it)."""
        kernel_id = event.life.kernel_id
        if isinstance(event, Died):
            self.kernel_died(kernel_id, event.at)
        elif isinstance(event, Restarted):
            self.restarted(kernel_id)
        elif isinstance(event, Gone):
            self.forget(kernel_id)

    def hwm_seen(self, kernel_id: str) -> int:
        """The kernel process's highest VmHWM read before a reset (since its last restart).

        Resetting VmHWM per cell hides the process's lifetime peak from anyone reading
        ``/proc/PID/status``; a monitor that reports that peak folds this value in.
        """
        with self._lock:
            kernel = self._kernels.get(kernel_id)
            return kernel.hwm_seen if kernel else 0

    # --- internals --------------------------------------------------------------------------

    def _before(self, kernel: _Kernel, start: float) -> tuple[int | None, str | None]:
        """The memory before an execution that started at ``start`` (kernel time), and, if its
        start overlapped the previous execution's end read, that one's msg_id ("" if silent).

        A cell can run before the kernel's iopub thread gets the GIL to announce it, so a read
        on ``busy`` may already include what it allocated or freed. The truer "before" is the
        last read taken while the kernel was idle and before ``start``. If the previous cell's
        end was itself read after ``start`` (queued cells), no read falls between the two: that
        read is used for both (so the deltas still add up) and both records say so.
        """
        if kernel.ended is not None and kernel.ended[0] > start:
            return kernel.ended[1], kernel.ended_msg_id or ""
        samples = [value for read_at, value in kernel.idle_samples if read_at <= start]
        if samples:
            return samples[-1], None
        return (kernel.ended[1] if kernel.ended is not None else None), None

    @staticmethod
    def _mark_overlapped(kernel: _Kernel, msg_id: str) -> None:
        if not msg_id:
            return
        for index in range(len(kernel.done) - 1, -1, -1):
            if kernel.done[index].msg_id == msg_id:
                kernel.done[index] = replace(kernel.done[index], overlapped=True)
                break
        kernel.top = [r for r in kernel.top if r.msg_id != msg_id] + [
            replace(r, overlapped=True) for r in kernel.top if r.msg_id == msg_id
        ]
        kernel.top.sort(key=lambda r: r.delta_bytes or 0, reverse=True)

    def _kernel(self, kernel_id: str) -> _Kernel:
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            kernel = self._kernels[kernel_id] = _Kernel(self.keep)
        return kernel

    def _pid(self, kernel_id: str) -> int | None:
        try:
            return self.pid_of(kernel_id)
        except Exception:  # the kernel is being removed
            return None

    def _memory(self, kernel_id: str) -> int | None:
        try:
            value = self.read_memory(kernel_id)
        except Exception:
            value = None
        if value is None:
            with self._lock:
                kernel = self._kernels.get(kernel_id)
                value = kernel.last_tree if kernel else None
        return value

    def _reset(self, kernel_id: str, pid: int, tree: int | None) -> tuple[int, int] | None:
        """Read the process's (VmHWM, VmRSS), then reset VmHWM; what it held goes to open cells."""
        with self._lock:
            refused = self._kernel(kernel_id).no_clear_refs == pid
        status = read_hwm_rss(pid, self.proc)
        done = not refused and status is not None and reset_hwm(pid, self.proc)
        with self._lock:
            kernel = self._kernel(kernel_id)
            if status is not None:
                kernel.hwm_seen = max(kernel.hwm_seen, status[0])
            if status is not None and kernel.reset_pid == pid:  # the mark is since our last reset
                mark = status[0] + max(0, (tree or 0) - status[1])
                for live in kernel.live.values():
                    live.seen_peak = max(live.seen_peak, mark)
            kernel.reset_pid = pid if done else None
            if not done:  # the mark is no longer the open cells' own
                for live in kernel.live.values():
                    live.hwm = False
                if status is not None:
                    kernel.no_clear_refs = pid
        return status

    @staticmethod
    def _record(
        live: _Live,
        ended_at: float | None,
        status: CellStatus,
        after: int | None,
        peak: int | None,
        method: PeakMethod,
    ) -> CellRecord:
        return CellRecord(
            msg_id=live.msg_id,
            execution_count=live.execution_count,
            code=live.code,
            first_line=live.first_line,
            started_at=live.started_at,
            ended_at=ended_at,
            status=status,
            memory_before_bytes=live.before,
            memory_after_bytes=after,
            peak_bytes=peak,
            peak_method=method,
            ename=live.ename,
            overlapped=live.overlapped,
            source=live.source,
        )

    def _close_all(self, kernel: _Kernel, at: float) -> CellRecord | None:
        newest = None
        for live in kernel.live.values():
            if live.has_input:
                peak = max(live.seen_peak, live.before or 0) or None
                newest = self._record(live, at, "kernel_died", None, peak, "samples")
                self._finish(kernel, newest)
        kernel.live.clear()
        return newest

    @staticmethod
    def _finish(kernel: _Kernel, record: CellRecord) -> None:
        kernel.done.append(record)
        delta = record.delta_bytes
        if delta is not None and delta > 0:
            kernel.top.append(record)
            kernel.top.sort(key=lambda r: r.delta_bytes or 0, reverse=True)
            del kernel.top[TOP_KEPT:]
