"""Kernel process trees without scanning the host, a slow host scan, and exact tree figures.

Every tick the monitor needs each kernel's tree. Scanning all of /proc for that costs ~17 µs per
process on the host, so it grows with processes that have nothing to do with Jupyter. Instead
``walk_tree`` follows ``/proc/PID/task/TID/children`` down from the kernel (10-20 µs per thread
read), and only ``scan_host`` (run every few seconds in a worker thread) looks at everything: it
finds work that escaped a kernel's tree (``escaped_members``) and feeds the budget breakdown.

Everything here is a read of ``proc`` (a fake tree in tests). Processes come and go while we
read: a process that vanished is skipped, never an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from .kept_files import MAX_KEPT, KeptFiles
from .proc import PAGE_SIZE, read_pss_held, read_pss_uss

PROC = Path("/proc")
CMDLINE_CHARS = 80


# --- reading one process ------------------------------------------------------------------


@dataclass(frozen=True)
class StatFields:
    """The fields of /proc/PID/stat that memguard uses."""

    pid: int
    name: str
    state: str
    ppid: int
    pgid: int
    sid: int
    minflt: int
    majflt: int
    start_ticks: int
    rss_pages: int
    cpu_ticks: int = 0  # utime + stime of the whole process (all its threads)


def parse_stat(data: bytes) -> StatFields | None:
    """Parse a /proc/PID/stat line; None if it is malformed.

    The command name may contain spaces and parentheses, so the fixed fields are taken after
    the *last* ')'.
    """
    open_at, close_at = data.find(b"("), data.rfind(b")")
    if open_at < 0 or close_at < open_at:
        return None
    fields = data[close_at + 2 :].split()
    if len(fields) < 22:
        return None
    try:
        return StatFields(
            pid=int(data[:open_at]),
            name=data[open_at + 1 : close_at].decode("utf-8", "replace"),
            state=fields[0].decode("ascii", "replace"),
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            minflt=int(fields[7]),
            majflt=int(fields[9]),
            start_ticks=int(fields[19]),
            rss_pages=int(fields[21]),
            cpu_ticks=int(fields[11]) + int(fields[12]),
        )
    except ValueError:
        return None


def read_stat(pid: int, proc: Path = PROC) -> StatFields | None:
    """One process's stat fields, or None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            return parse_stat(handle.read())
    except OSError:
        return None


def read_children(pid: int, proc: Path = PROC) -> list[int]:
    """Direct children of a process: the union of every thread's ``children`` file.

    A child's parent is the *thread* that forked it (ipykernel runs code on more than one
    thread), so reading only ``task/PID/children`` would miss children.
    """
    try:
        tids = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tids:
        try:
            with open(f"{proc}/{pid}/task/{tid}/children", "rb") as handle:
                data = handle.read()
        except OSError:
            continue  # the thread ended while we looked
        for word in data.split():
            if word.isdigit():
                children.append(int(word))
    return children


@lru_cache(maxsize=8)
def _children_files_supported(proc: str) -> bool:
    try:
        numeric = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        numeric = []
    for name in ["self", *numeric]:
        try:
            tids = os.listdir(f"{proc}/{name}/task")
        except OSError:
            continue
        if tids:
            return os.path.exists(f"{proc}/{name}/task/{tids[0]}/children")
    return False


def children_files_supported(proc: Path = PROC) -> bool:
    """Whether this kernel has ``/proc/PID/task/TID/children`` (CONFIG_PROC_CHILDREN).

    Decided once per ``proc`` root (it is a property of the running kernel). When False,
    ``walk_tree`` falls back to one full scan of /proc per call; a caller that walks many
    kernels per tick should then use ``walk_trees``, which shares that scan.
    """
    return _children_files_supported(str(proc))


def _children_by_scan(proc: Path) -> dict[int, list[int]]:
    """Parent → children from one pass over /proc/*/stat (the fallback; costs the whole host)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return children
    for name in entries:
        fields = read_stat(int(name), proc)
        if fields is not None:
            children.setdefault(fields.pid, [])
            children.setdefault(fields.ppid, []).append(fields.pid)
    return children


def _walk(
    root: int, children_of: Mapping[int, Sequence[int]] | None, proc: Path
) -> tuple[int, ...]:
    """Depth-first from root; ``visited`` guards against cycles that PID reuse can fake."""
    order = [root]
    visited = {root}
    stack = [root]
    while stack:
        pid = stack.pop()
        kids = read_children(pid, proc) if children_of is None else children_of.get(pid, ())
        for child in kids:
            if child not in visited:
                visited.add(child)
                order.append(child)
                stack.append(child)
    return tuple(order)


def walk_tree(pid: int, proc: Path = PROC) -> tuple[int, ...]:
    """The PID and all its descendants at any depth; () if the PID is gone.

    Costs one ``children`` read per thread in the tree, independent of the rest of the host.
    The kernel documents these files as exact only for stopped tasks: a child forked while we
    read may be missed until the next tick, which sampling tolerates. Zombies may be included
    (their RSS reads as nothing), and so may a child that ended mid-walk. Without children
    files this does a full /proc scan.
    """
    return walk_trees((pid,), proc).get(pid, ())


def walk_trees(roots: Iterable[int], proc: Path = PROC) -> dict[int, tuple[int, ...]]:
    """``walk_tree`` for several roots; without children files they share one /proc scan."""
    roots = list(roots)
    children_of = None if children_files_supported(proc) else _children_by_scan(proc)
    trees: dict[int, tuple[int, ...]] = {}
    for root in roots:
        alive = os.path.isdir(f"{proc}/{root}/task") if children_of is None else root in children_of
        if alive:
            trees[root] = _walk(root, children_of, proc)
    return trees


class TreeWalker:
    """Each kernel's tree, re-walked only when something in it may have changed.

    A walk reads every thread's ``children`` file (~10 µs each; an idle ipykernel has 13
    threads), which made the walk the largest cost of a tick. A process that ran no code since
    the last walk cannot have forked, and one that ended changes the tree: so a tree is reused
    while each of its processes shows the same start time, CPU time and RSS in ``stat`` (one
    read each), and the same count of minor page faults: CPU time is counted in clock ticks, so
    a fork shorter than a tick might not show in it, but a forked process faults on its first
    writes to pages it now shares copy-on-write. A tree is also re-walked at least every
    ``max_age_s``, and whenever the caller says it must be (a busy kernel). That age is only
    a net (the host scan also finds escaped work every few seconds): at 30 s, 20 idle kernels
    cost one walk (~0.4 ms) in nearly every tick, a fifth of the tick.

    Each process's ``stat`` is kept open (probe.kept_files) and parsed only when its text
    changed: an idle process's reads are the same bytes. Only the real /proc's files are
    tied to their process (a fake tree's are plain files), so only they are kept.

    A root the caller calls ``still`` (its kernel's memory cgroup charged and freed nothing
    since the last read: no fork, no exit, no growth) keeps its tree without those reads, for
    at most ``still_s`` since they were last made. They cost more than the rest of an idle
    kernel's tick: ``stat`` sums every thread's times, and after a tick's sleep each of those
    threads is a cache miss.
    """

    def __init__(self, proc: Path = PROC, max_age_s: float = 120.0, still_s: float = 10.0) -> None:
        self.proc = proc
        self.max_age_s = max_age_s
        self.still_s = still_s
        self._known: dict[int, tuple[float, tuple[int, ...], tuple[tuple[int, ...], ...]]] = {}
        self._checked: dict[int, float] = {}  # root → when its stat files were last read
        self._files = KeptFiles(max_kept=MAX_KEPT if proc == PROC else 0)
        # pid → (its stat text at the last read, the signature and RSS parsed from it)
        self._stat: dict[int, tuple[bytes, tuple[int, ...], int]] = {}
        self.rss: dict[int, int] = {}  # RSS (bytes) of each process read by the last call
        self.unchanged: set[int] = set()  # roots whose tree ran no code since the last call

    def _signature(self, pids: Iterable[int]) -> tuple[tuple[int, ...], ...] | None:
        signature = []
        for pid in pids:
            path = f"{self.proc}/{pid}/stat"
            data = self._files.read(path)
            last = self._stat.get(pid)
            if data is not None and last is not None and last[0] == data:
                signature.append(last[1])
                self.rss[pid] = last[2]
                continue
            fields = parse_stat(data) if data else None
            if fields is None:
                self._files.forget([path])  # kept open only while its text is in _stat
                return None  # a process ended: the tree changed
            mark = (fields.start_ticks, fields.cpu_ticks, fields.rss_pages, fields.minflt)
            self._stat[pid] = (data, mark, fields.rss_pages * PAGE_SIZE)
            signature.append(mark)
            self.rss[pid] = fields.rss_pages * PAGE_SIZE
        return tuple(signature)

    def trees(
        self,
        roots: Iterable[int],
        must_walk: Collection[int] = (),
        now: float | None = None,
        still: Collection[int] = (),
    ) -> dict[int, tuple[int, ...]]:
        """Each live root's tree (root first); gone roots are absent."""
        now = time.monotonic() if now is None else now
        roots = list(roots)
        self.rss, self.unchanged = {}, set()
        result: dict[int, tuple[int, ...]] = {}
        to_walk = []
        for root in roots:
            known = self._known.get(root)
            if known is not None and root not in must_walk and now - known[0] < self.max_age_s:
                _, pids, signature = known
                if root in still and now - self._checked.get(root, -1e9) < self.still_s:
                    read = [self._stat.get(pid) for pid in pids]
                    if None not in read:
                        result[root] = pids
                        self.unchanged.add(root)
                        self.rss.update((pid, entry[2]) for pid, entry in zip(pids, read) if entry)
                        continue
                self._checked[root] = now
                if self._signature(pids) == signature:
                    result[root] = pids
                    self.unchanged.add(root)
                    continue
            to_walk.append(root)
        for root, pids in walk_trees(to_walk, self.proc).items():
            signature = self._signature(pids)
            if signature is not None:
                self._known[root] = (now, pids, signature)
                self._checked[root] = now
            else:
                self._known.pop(root, None)  # a process ended mid-read: walk it again next time
            result[root] = pids
        for root in [r for r in self._known if r not in result]:
            del self._known[root]
        for root in [r for r in self._checked if r not in self._known]:
            del self._checked[root]
        alive = {pid for pids in result.values() for pid in pids}
        gone = [pid for pid in self._stat if pid not in alive]
        self._files.forget(f"{self.proc}/{pid}/stat" for pid in gone)
        for pid in gone:
            del self._stat[pid]
        return result

    def close(self) -> None:
        """Close the files kept open (the monitor is stopping)."""
        self._files.close()
        self._stat.clear()


# --- the slow host scan --------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    """One process as the host scan saw it."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    uid: int
    name: str
    cmdline: str
    rss_bytes: int
    cgroup: str | None
    state: str
    start_ticks: int


@dataclass(frozen=True)
class HostScan:
    """Every process on the host (or in our PID namespace) at one moment."""

    processes: Mapping[int, ProcInfo]
    taken_at: float
    duration_s: float
    _children: Mapping[int, tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        children: dict[int, list[int]] = {}
        for info in self.processes.values():
            children.setdefault(info.ppid, []).append(info.pid)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    def children(self, pid: int) -> tuple[int, ...]:
        """Direct children as of the scan."""
        return self._children.get(pid, ())

    def descendants(self, pid: int, stop: Collection[int] = ()) -> tuple[int, ...]:
        """The PID (if scanned) and its descendants, not descending into PIDs in ``stop``."""
        if pid not in self.processes:
            return ()
        order = [pid]
        visited = {pid}
        stack = [pid]
        while stack:
            for child in self.children(stack.pop()):
                if child not in visited and child not in stop:
                    visited.add(child)
                    order.append(child)
                    stack.append(child)
        return tuple(order)


def memory_cgroup(text: str) -> str | None:
    """The memory cgroup path from a /proc/PID/cgroup text.

    A controller lives in one hierarchy only, so a v1 line listing ``memory`` wins; otherwise
    the v2 ``0::`` path. (On hybrid hosts the ``0::`` line is present even though memory is in
    v1, so "v2 first" would name the wrong cgroup.)
    """
    unified = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep:
            continue
        if hierarchy == "0" and controllers == "":
            unified = path.strip()
        elif "memory" in controllers.split(","):
            return path.strip()
    return unified


def _read_bytes(path: str, limit: int = -1) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _short_cmdline(raw: bytes | None) -> str:
    if not raw:
        return ""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    return text if len(text) <= CMDLINE_CHARS else text[: CMDLINE_CHARS - 1] + "…"


def scan_host(proc: Path = PROC, cgroups: bool = True) -> HostScan:
    """One pass over /proc: identity, owner, command, RSS and memory cgroup of every process.

    Costs several reads per process (~50 µs: stat, cmdline, cgroup, an fstat), so it belongs
    in a worker thread every few seconds, not in the tick. RSS comes from the ``rss`` field of
    ``stat``, the same counter ``statm`` shows, saving a read. ``cgroups=False`` skips the
    costliest read when the budget is the host's. Processes without memory (kernel threads,
    zombies) get no cmdline or cgroup. Reading ``cmdline`` takes the target's mmap lock and
    can stall briefly on a process that is busy mapping memory.
    """
    started = time.perf_counter()
    taken_at = time.time()
    processes: dict[int, ProcInfo] = {}
    try:
        names = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        names = []
    for name in names:
        base = f"{proc}/{name}"
        raw_stat = _read_bytes(f"{base}/stat")
        fields = parse_stat(raw_stat) if raw_stat else None
        if fields is None:
            continue  # gone
        try:
            uid = os.stat(base).st_uid
        except OSError:
            continue
        cmdline, cgroup = "", None
        if fields.rss_pages:
            cmdline = _short_cmdline(_read_bytes(f"{base}/cmdline", 4 * CMDLINE_CHARS))
            cgroup_text = _read_bytes(f"{base}/cgroup") if cgroups else None
            if cgroup_text:
                cgroup = memory_cgroup(cgroup_text.decode("utf-8", "replace"))
        processes[fields.pid] = ProcInfo(
            pid=fields.pid,
            ppid=fields.ppid,
            pgid=fields.pgid,
            sid=fields.sid,
            uid=uid,
            name=fields.name,
            cmdline=cmdline,
            rss_bytes=fields.rss_pages * PAGE_SIZE,
            cgroup=cgroup,
            state=fields.state,
            start_ticks=fields.start_ticks,
        )
    return HostScan(processes, taken_at, time.perf_counter() - started)


class _KnownPss(NamedTuple):
    """A process's last PSS figure and what it was read against."""

    start_ticks: int  # which process it was
    rss_bytes: int  # its RSS then
    read_at: float
    figures: tuple[int, int]  # (bytes it holds, of which shared memory)


class ProcessPss:
    """Each process's PSS outside the page cache (anonymous and shared memory: what it alone
    holds), re-read only for processes whose memory moved since.

    The budget's parts add up only when every page is counted once; summed RSS counts a
    shared page once per process that maps it (forked workers, a browser's processes, the
    same libraries everywhere). ``smaps_rollup`` costs ~12 ms per GiB, so a process is read
    again only when it is another process (its start time), its RSS moved by ``moved_bytes``
    or 2 % (what the scan already read), or its figure is ``max_age_s`` old; not for its page
    faults alone, which a running process (this server) makes all the time while its memory
    stays as it was. Each scan reads at most ``budget_bytes`` of RSS afresh, largest first: a
    process left over keeps its last figure (or its RSS, if it never had one) until a later
    scan. What this does not see: other processes starting or stopping to share its pages
    (its share moves a little). One instance per worker thread.
    """

    def __init__(
        self,
        proc: Path = PROC,
        budget_bytes: int = 4 * 2**30,
        moved_bytes: int = 4 * 2**20,
        max_age_s: float = 60.0,
    ) -> None:
        self.proc = proc
        self.budget_bytes = budget_bytes
        self.moved_bytes = moved_bytes
        self.max_age_s = max_age_s
        self._known: dict[int, _KnownPss] = {}
        self.fresh_reads = 0  # smaps_rollup reads in the last call

    def _still(self, info: ProcInfo, known: _KnownPss, now: float) -> bool:
        """Whether a process's last figure still holds."""
        moved = abs(info.rss_bytes - known.rss_bytes)
        return (
            known.start_ticks == info.start_ticks
            and moved < max(self.moved_bytes, known.rss_bytes // 50)
            and now - known.read_at < self.max_age_s
        )

    def of(self, processes: Iterable[ProcInfo]) -> dict[int, tuple[int, int]]:
        """pid → (bytes it holds, of which shared memory) for these processes; its RSS (and no
        shared memory) where smaps_rollup could not be read."""
        wanted = sorted(processes, key=lambda p: p.rss_bytes, reverse=True)
        result: dict[int, tuple[int, int]] = {}
        spent, self.fresh_reads = 0, 0
        now = time.monotonic()
        for info in wanted:
            known = self._known.get(info.pid)
            if known is not None and self._still(info, known, now):
                result[info.pid] = known.figures
                continue
            if spent + info.rss_bytes > self.budget_bytes:
                # This scan's reading budget is spent: its last figure, or its RSS for now.
                result[info.pid] = known.figures if known is not None else (info.rss_bytes, 0)
                continue
            figures = read_pss_held(info.pid, self.proc)
            spent += info.rss_bytes
            self.fresh_reads += 1
            if figures is None:
                result[info.pid] = (info.rss_bytes, 0)
                continue
            self._known[info.pid] = _KnownPss(info.start_ticks, info.rss_bytes, now, figures)
            result[info.pid] = figures
        alive = {p.pid for p in wanted}
        for pid in [p for p in self._known if p not in alive]:
            del self._known[pid]
        return result


# --- work that left a kernel's tree ----------------------------------------------------------


@dataclass(frozen=True)
class KernelRoot:
    """A kernel's root process, its session and group (None: as the scan saw the root), its tree."""

    pid: int
    sid: int | None = None
    pgid: int | None = None
    tree: tuple[int, ...] = ()


_NEVER = frozenset({0, 1, 2})  # the idle task, init, kthreadd


def escaped_members(
    kernels: Mapping[str, KernelRoot], scan: HostScan, server_pid: int | None = None
) -> dict[str, tuple[int, ...]]:
    """Processes that left each kernel's tree but stayed in its session or process group.

    ``!nohup job &`` whose shell exited, or a double-forked worker, is reparented to init (or
    a subreaper) but keeps the kernel's session and group: jupyter_client starts local kernels
    with ``setsid`` (sid == pgid == kernel pid), and the kernel never recycles those ids while
    any member lives. A session or group shared with the server, or claimed by two kernels,
    identifies nobody and is ignored. Never returns the server, init, a zombie, or a PID in any
    kernel's tree. A process that called ``setsid`` itself cannot be traced this way.
    """
    server = os.getpid() if server_pid is None else server_pid
    server_info = scan.processes.get(server)
    shared = {("sid", server_info.sid), ("pgid", server_info.pgid)} if server_info else set()
    in_trees: set[int] = set()
    claims: dict[tuple[str, int], set[str]] = {}
    for kernel_id, kernel in kernels.items():
        in_trees.update(kernel.tree)
        in_trees.add(kernel.pid)
        root = scan.processes.get(kernel.pid)
        sid = kernel.sid if kernel.sid is not None else (root.sid if root else None)
        pgid = kernel.pgid if kernel.pgid is not None else (root.pgid if root else None)
        for kind, value in (("sid", sid), ("pgid", pgid)):
            if value is not None and value not in _NEVER and (kind, value) not in shared:
                claims.setdefault((kind, value), set()).add(kernel_id)
    owner = {key: next(iter(ids)) for key, ids in claims.items() if len(ids) == 1}
    escaped: dict[str, list[int]] = {kernel_id: [] for kernel_id in kernels}
    if owner:
        for info in scan.processes.values():
            if info.pid in in_trees or info.pid == server or info.pid in _NEVER:
                continue
            if info.state == "Z":
                continue
            found = owner.get(("sid", info.sid)) or owner.get(("pgid", info.pgid))
            if found is not None:
                escaped[found].append(info.pid)
    return {kernel_id: tuple(sorted(pids)) for kernel_id, pids in escaped.items()}


# --- the exact figure -----------------------------------------------------------------------


def tree_pss_bytes(pids: Iterable[int], proc: Path = PROC) -> int | None:
    """PSS summed over a tree: each page shared among the tree's processes counts once.

    RSS summed over a tree counts a copy-on-write page once per process that maps it (400 MB
    and 4 forked children read as ~2 GB); PSS divides each page among its mappers, so over the
    whole tree it adds back up to one. Pages shared with processes outside the tree (libraries)
    count by the tree's share. None if no process of the tree could be read.

    Costs ~10 ms per GiB of RSS *summed over the tree* (the kernel walks every page table), so
    a 4 GiB parent with 4 copy-on-write children costs as much as 20 GiB: see ``TreePss``.
    """
    total = None
    for pid in pids:
        figures = read_pss_uss(pid, proc)
        if figures is not None:
            total = (total or 0) + figures[0]
    return total


@dataclass(frozen=True)
class PssReading:
    """A tree's exact memory and whether it was read now or reused."""

    bytes: int
    fresh: bool
    elapsed_s: float
    method: str = "pss"


Fingerprint = tuple[tuple[int, int, int, int, int], ...]


def tree_fingerprint(pids: Iterable[int], proc: Path = PROC) -> Fingerprint:
    """Per process (pid, start time, minor faults, major faults, RSS pages), from ``stat``.

    A tree's PSS changes only when one of its processes maps, unmaps or copies a page, and
    each of those is a fault or an RSS change in that process (a copy-on-write break is a
    minor fault in the writer, a swap-in a major one). A vanished PID reads as zeros.
    """
    prints = []
    for pid in pids:
        fields = read_stat(pid, proc)
        if fields is None:
            prints.append((pid, 0, 0, 0, 0))
        else:
            prints.append((pid, fields.start_ticks, fields.minflt, fields.majflt, fields.rss_pages))
    return tuple(prints)


class TreePss:
    """Exact tree figures that are re-read only for trees that changed since the last read.

    ``smaps_rollup`` is expensive (``tree_pss_bytes``); checking a tree's fingerprint costs
    ~13 µs per process. An idle kernel's figure is then nearly free; a kernel that is
    allocating pays the full read. What the check cannot see: processes outside the tree that
    start or stop sharing the tree's file or shmem pages, and KSM merging; both move PSS a
    little. One instance per worker thread (not thread-safe).
    """

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self._cache: dict[str, tuple[Fingerprint, int]] = {}

    def read(self, key: str, pids: Sequence[int]) -> PssReading | None:
        """The tree's PSS (key: e.g. the kernel id); None if none of its processes is readable."""
        started = time.perf_counter()
        fingerprint = tree_fingerprint(pids, self.proc)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == fingerprint:
            return PssReading(cached[1], False, time.perf_counter() - started)
        total = tree_pss_bytes(pids, self.proc)
        if total is None:
            self._cache.pop(key, None)
            return None
        self._cache[key] = (fingerprint, total)
        return PssReading(total, True, time.perf_counter() - started)

    def retain(self, keys: Collection[str]) -> None:
        """Forget trees whose keys are not in ``keys`` (kernels that ended)."""
        for key in [k for k in self._cache if k not in keys]:
            del self._cache[key]
