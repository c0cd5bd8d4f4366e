"""Per-process memory figures read from /proc, summed over a kernel's process tree.

RSS comes from /proc/PID/statm (~20 µs a process). PSS and USS come from
/proc/PID/smaps_rollup, which costs about 12 ms per GiB, so only where asked. Which processes
make a kernel's tree is probe.proctree's job.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..models import ProcessTreeMemory

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def read_rss(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Resident set size of one process in bytes, or None if it is gone (or a zombie)."""
    try:
        with open(f"{proc}/{pid}/statm", "rb") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * PAGE_SIZE if pages else None  # a zombie has no pages: it has ended


def read_peak(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The process's own high-water mark (VmHWM) in bytes."""
    try:
        with open(f"{proc}/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def read_pss_uss(pid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(PSS, USS) of one process in bytes from smaps_rollup, or None if unreadable."""
    values: dict[bytes, int] = {}
    try:
        with open(f"{proc}/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(b":"):
                    values[parts[0][:-1]] = int(parts[1]) * 1024
    except (OSError, ValueError):
        return None
    if b"Pss" not in values:
        return None
    uss = values.get(b"Private_Clean", 0) + values.get(b"Private_Dirty", 0)
    return values[b"Pss"], uss


def read_pss_held(pid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(anonymous + shared-memory PSS, shared-memory PSS) of one process, from smaps_rollup:
    what it alone holds outside the page cache, each page shared with others divided among
    them. Its file pages (libraries, mapped files) are page cache, and counted there. Before
    Linux 5.8 (no Pss_Anon), its whole PSS."""
    values: dict[bytes, int] = {}
    try:
        with open(f"{proc}/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss"):
                    parts = line.split()
                    values[parts[0][:-1]] = int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if b"Pss_Anon" not in values:
        return (values[b"Pss"], 0) if b"Pss" in values else None
    shmem = values.get(b"Pss_Shmem", 0)
    return values[b"Pss_Anon"] + shmem, shmem


def sample_tree(
    pid: int,
    pids: Iterable[int],
    tracked_peak: int = 0,
    detail: bool = False,
    proc: Path = Path("/proc"),
    now: float | None = None,
    known_rss: Mapping[int, int] | None = None,
    read_hwm: bool = True,
    exact_bytes: int | None = None,
) -> ProcessTreeMemory | None:
    """Sum the memory of a kernel's process tree (``pids``: the kernel and its descendants, as
    probe.proctree walked them); None when the kernel process is gone.

    ``known_rss``: RSS just read by the tree walk (saves a statm read per process);
    ``read_hwm=False`` skips the VmHWM read for a tree that ran no code since the last sample;
    ``exact_bytes``: the kernel's own memory cgroup's figure, read at the same moment.
    """
    rss_total = root_rss = 0
    alive: list[int] = []
    for member in pids:
        rss = known_rss.get(member) if known_rss is not None else None
        if rss is None:
            rss = read_rss(member, proc)
        if rss:
            rss_total += rss
            alive.append(member)
            if member == pid:
                root_rss = rss
    if pid not in alive:
        return None
    hwm = (read_peak(pid, proc) or 0) if read_hwm else 0
    peak = max(tracked_peak, rss_total, hwm)
    pss = uss = None
    if detail:
        pss = uss = 0
        for member in alive:
            figures = read_pss_uss(member, proc)
            if figures:
                pss += figures[0]
                uss += figures[1]
    sampled_at = time.time() if now is None else now
    return ProcessTreeMemory(
        pid=pid,
        rss_bytes=rss_total,
        peak_bytes=peak,
        pids=tuple(alive),
        sampled_at=sampled_at,
        pss_bytes=pss,
        uss_bytes=uss,
        root_rss_bytes=root_rss,
        exact_bytes=exact_bytes,
        exact_at=sampled_at if exact_bytes is not None else None,
        exact_method="cgroup" if exact_bytes is not None else "pss",
    )


def tree_rss(pids: Iterable[int], proc: Path = Path("/proc")) -> int:
    """Sum of RSS over PIDs (gone ones count as zero)."""
    return sum(read_rss(p, proc) or 0 for p in pids)


@dataclass
class History:
    """A short ring buffer of (time, rss) samples of one kernel, with peak and growth rate."""

    size: int = 120
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    peak_bytes: int = 0
    changed_at: float | None = None  # when the figure last differed from the one before

    def add(self, when: float, rss: int) -> None:
        if not self.samples or self.samples[-1][1] != rss:
            self.changed_at = when
        self.samples.append((when, rss))
        while len(self.samples) > self.size:
            self.samples.popleft()
        self.peak_bytes = max(self.peak_bytes, rss)

    def growth_rate(self, window_s: float, now: float) -> float:
        """Bytes per second over the last ``window_s`` seconds (least-squares slope)."""
        if self.changed_at is not None and now - self.changed_at > window_s:
            return 0.0  # one figure all through the window (an idle kernel): flat
        recent = [(t, r) for t, r in self.samples if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        mean_t = sum(t for t, _ in recent) / len(recent)
        mean_r = sum(r for _, r in recent) / len(recent)
        spread = sum((t - mean_t) ** 2 for t, _ in recent)
        if spread <= 0:
            return 0.0
        return sum((t - mean_t) * (r - mean_r) for t, r in recent) / spread

    def as_list(self) -> list[list[float]]:
        return [[round(t, 3), r] for t, r in self.samples]
