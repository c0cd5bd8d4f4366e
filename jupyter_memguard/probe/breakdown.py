"""Who holds the memory budget: kernels, the server, terminals, other processes, no process.

Built from one ``HostScan`` so the guard can tell users what fills the budget and act only on
the cause: pressure from processes outside the kernels is named, never blamed on a kernel.
"""

from __future__ import annotations

import pwd
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from ..models import Breakdown, Holder, OtherProcess
from .proctree import HostScan


@dataclass(frozen=True)
class Owners:
    """Which processes belong to whom.

    ``kernels``: kernel id → its pids (tree and escaped members). ``terminals``: terminal name
    → the root pid of its shell (its descendants and session follow). The server is
    ``server_pid`` and its descendants that are neither kernels nor terminals.
    ``kernel_bytes``: exact figures for kernels (e.g. ``TreePss``), labelled ``kernel_method``;
    a kernel without one is charged its RSS sum.
    """

    server_pid: int
    kernels: Mapping[str, Collection[int]] = field(default_factory=dict)
    terminals: Mapping[str, int] = field(default_factory=dict)
    kernel_bytes: Mapping[str, int] = field(default_factory=dict)
    kernel_method: str = "pss"
    orphans: Mapping[str, int] = field(default_factory=dict)  # dead server's kernel → its pid
    kernel_shmem: Mapping[str, int] = field(default_factory=dict)  # shared memory in kernel_bytes


@dataclass(frozen=True)
class Unowned:
    """Memory in the budget that belongs to no process, as the caller measured it.

    ``page_cache_bytes``: file cache counted in the working set (active, not shmem);
    ``shmem_bytes``: shmem and tmpfs (pages mapped by processes also show in their RSS).
    """

    page_cache_bytes: int = 0
    shmem_bytes: int = 0
    source: str = ""


def unowned_from_memory_stat(stat: Mapping[str, int], source: str = "cgroup") -> Unowned:
    """From a parsed cgroup ``memory.stat`` (v2 keys, or v1 ``total_*`` keys).

    ``file`` (v2) and ``total_cache`` (v1) include shmem, so it is taken out once here: page
    cache in the working set = file − shmem − inactive_file.
    """

    def get(v2: str, v1: str) -> int:
        return stat.get(v2, stat.get(v1, 0))

    shmem = get("shmem", "total_shmem")
    cache = get("file", "total_cache")
    inactive = get("inactive_file", "total_inactive_file")
    return Unowned(max(0, cache - shmem - inactive), shmem, source)


def unowned_from_meminfo(meminfo: Mapping[str, int]) -> Unowned:
    """From a parsed /proc/meminfo in bytes (host budget): Cached − Shmem − Inactive(file)."""
    shmem = meminfo.get("Shmem", 0)
    cache = meminfo.get("Cached", 0) - shmem - meminfo.get("Inactive(file)", 0)
    return Unowned(max(0, cache), shmem, "meminfo")


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of a uid, or the uid as text (containers often lack a passwd entry)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def in_cgroup(path: str | None, root: str) -> bool:
    """Whether a memory cgroup path lies in the subtree ``root`` (paths as in /proc/PID/cgroup).

    Inside a cgroup namespace, processes outside it show paths starting with "/..": outside.
    """
    if path is None or "/.." in path:
        return False
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


def breakdown(
    scan: HostScan,
    owners: Owners,
    usage_bytes: int,
    cgroup_path: str | None = None,
    unowned: Unowned = Unowned(),
    top: int = 5,
    pss: Mapping[int, tuple[int, int]] | None = None,
) -> Breakdown:
    """Split ``usage_bytes`` among kernels, the server, terminals, other processes, no process.

    ``cgroup_path`` (the budget's memory cgroup as written in /proc/PID/cgroup, not its sysfs
    directory): only processes in that subtree count, since a container's budget is not charged
    for host processes. Without it the scope is the host.

    Server, terminals, orphans and others are charged each process's ``pss`` where given (each
    page counted once, so the parts add up to the usage), else its RSS (shared pages then count
    once per process: the parts overstate). Kernels are charged ``owners.kernel_bytes`` where
    given. Precedence when a pid could belong to two holders: kernels, orphans, terminals, the
    server.
    """
    procs = scan.processes

    def in_scope(pid: int) -> bool:
        if cgroup_path is None:
            return True
        info = procs.get(pid)
        return info is not None and in_cgroup(info.cgroup, cgroup_path)

    def own(pid: int) -> int:
        """A process's memory, each page once where PSS is known (``pss``), else its RSS."""
        if pss is not None and pid in pss:
            return pss[pid][0]
        return procs[pid].rss_bytes

    def rss(pids: Collection[int]) -> int:
        return sum(own(p) for p in pids if p in procs)

    method = "pss" if pss is not None else "rss"
    claimed: set[int] = set()
    kernels = []
    for kernel_id, pids in owners.kernels.items():
        scanned = [p for p in pids if p in procs]
        if cgroup_path is not None and scanned and not any(in_scope(p) for p in scanned):
            continue  # the whole kernel lives outside this budget
        members = tuple(p for p in pids if p not in claimed and (p not in procs or in_scope(p)))
        claimed.update(members)
        if kernel_id in owners.kernel_bytes:
            figure, counted = owners.kernel_bytes[kernel_id], owners.kernel_method
        else:
            figure, counted = rss(members), method
        kernels.append(Holder("kernel", kernel_id, figure, members, counted))

    orphans = []
    for kernel_id, root in owners.orphans.items():
        if root not in procs:
            continue  # it has ended
        members = tuple(p for p in (root, *scan.descendants(root, stop=claimed)) if in_scope(p))
        claimed.update(members)
        orphans.append(Holder("orphan", kernel_id, rss(members), members, method))

    terminals = []
    terminal_roots = set(owners.terminals.values())
    for name, root in owners.terminals.items():
        members_set = set(scan.descendants(root, stop=claimed))
        root_info = procs.get(root)
        if root_info is not None and root_info.sid == root:  # its own session: follow it
            members_set.update(
                p.pid for p in procs.values() if p.sid == root and p.pid not in claimed
            )
        members = tuple(sorted(p for p in members_set if in_scope(p)))
        claimed.update(members)
        terminals.append(Holder("terminal", name, rss(members), members, method))

    stop = claimed | terminal_roots
    server_pids = tuple(p for p in scan.descendants(owners.server_pid, stop=stop) if in_scope(p))
    claimed.update(server_pids)
    server = Holder("server", "server", rss(server_pids), server_pids, method)

    rest = [
        info
        for info in procs.values()
        if info.pid not in claimed
        and info.rss_bytes > 0
        and info.state != "Z"
        and in_scope(info.pid)
    ]
    rest.sort(key=lambda info: own(info.pid), reverse=True)
    others = tuple(
        OtherProcess(info.pid, info.name, info.cmdline, user_name(info.uid), own(info.pid))
        for info in rest[:top]
    )
    others_bytes = sum(own(info.pid) for info in rest)
    # The processes that could be the cause when kernels are not: terminals' and others'.
    in_terminals = [
        OtherProcess(
            info.pid, info.name, info.cmdline, user_name(info.uid), own(info.pid), holder.key
        )
        for holder in terminals
        for info in (procs[p] for p in holder.pids if p in procs)
        if info.rss_bytes > 0
    ]
    largest = sorted((*in_terminals, *others), key=lambda o: o.bytes, reverse=True)[:top]

    # Shared memory mapped by a process (or held by a kernel) is in that one's figure
    # already: the shared-memory part is what no process of this budget maps.
    mapped_shmem = sum(pss[p][1] for p in claimed | {i.pid for i in rest} if p in pss) if pss else 0
    mapped_shmem += sum(owners.kernel_shmem.values())
    shmem = max(0, unowned.shmem_bytes - mapped_shmem) if pss is not None else unowned.shmem_bytes
    processes = sum(h.bytes for h in (*kernels, server, *terminals, *orphans)) + others_bytes
    page_cache = unowned.page_cache_bytes
    if pss is not None:
        # File pages a kernel maps may be in its figure (RSS) and in the cache too: the cache
        # shown is at most what the processes leave of the usage, so nothing counts twice.
        page_cache = min(page_cache, max(0, usage_bytes - processes - shmem))
    attributed = processes + page_cache + shmem
    return Breakdown(
        usage_bytes=usage_bytes,
        scope="host" if cgroup_path is None else cgroup_path,
        scanned_at=scan.taken_at,
        kernels=tuple(kernels),
        server=server,
        terminals=tuple(terminals),
        others=others,
        others_bytes=others_bytes,
        others_count=len(rest),
        page_cache_bytes=page_cache,
        shmem_bytes=shmem,
        unowned_source=unowned.source,
        unattributed_bytes=max(0, usage_bytes - attributed),
        overcounted_bytes=max(0, attributed - usage_bytes),
        largest_outside=tuple(largest),
        orphans=tuple(orphans),
        others_method="pss" if pss is not None else "rss",
    )
