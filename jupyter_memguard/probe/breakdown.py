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
) -> Breakdown:
    """Split ``usage_bytes`` among kernels, the server, terminals, other processes, no process.

    ``cgroup_path`` (the budget's memory cgroup as written in /proc/PID/cgroup, not its sysfs
    directory): only processes in that subtree count, since a container's budget is not charged
    for host processes. Without it the scope is the host.

    Server, terminals and others are charged their RSS sums (cheap; shared pages count once
    per process, so these overstate). Kernels are charged ``owners.kernel_bytes`` where given.
    Precedence when a pid could belong to two holders: kernels, then terminals, then the server.
    """
    procs = scan.processes

    def in_scope(pid: int) -> bool:
        if cgroup_path is None:
            return True
        info = procs.get(pid)
        return info is not None and in_cgroup(info.cgroup, cgroup_path)

    def rss(pids: Collection[int]) -> int:
        return sum(procs[p].rss_bytes for p in pids if p in procs)

    claimed: set[int] = set()
    kernels = []
    for kernel_id, pids in owners.kernels.items():
        scanned = [p for p in pids if p in procs]
        if cgroup_path is not None and scanned and not any(in_scope(p) for p in scanned):
            continue  # the whole kernel lives outside this budget
        members = tuple(p for p in pids if p not in claimed and (p not in procs or in_scope(p)))
        claimed.update(members)
        if kernel_id in owners.kernel_bytes:
            figure, method = owners.kernel_bytes[kernel_id], owners.kernel_method
        else:
            figure, method = rss(members), "rss"
        kernels.append(Holder("kernel", kernel_id, figure, members, method))

    orphans = []
    for kernel_id, root in owners.orphans.items():
        if root not in procs:
            continue  # it has ended
        members = tuple(p for p in (root, *scan.descendants(root, stop=claimed)) if in_scope(p))
        claimed.update(members)
        orphans.append(Holder("orphan", kernel_id, rss(members), members, "rss"))

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
        terminals.append(Holder("terminal", name, rss(members), members, "rss"))

    stop = claimed | terminal_roots
    server_pids = tuple(p for p in scan.descendants(owners.server_pid, stop=stop) if in_scope(p))
    claimed.update(server_pids)
    server = Holder("server", "server", rss(server_pids), server_pids, "rss")

    rest = [
        info
        for info in procs.values()
        if info.pid not in claimed
        and info.rss_bytes > 0
        and info.state != "Z"
        and in_scope(info.pid)
    ]
    rest.sort(key=lambda info: info.rss_bytes, reverse=True)
    others = tuple(
        OtherProcess(info.pid, info.name, info.cmdline, user_name(info.uid), info.rss_bytes)
        for info in rest[:top]
    )
    others_bytes = sum(info.rss_bytes for info in rest)
    # The processes that could be the cause when kernels are not: terminals' and others'.
    in_terminals = [
        OtherProcess(
            info.pid, info.name, info.cmdline, user_name(info.uid), info.rss_bytes, holder.key
        )
        for holder in terminals
        for info in (procs[p] for p in holder.pids if p in procs)
        if info.rss_bytes > 0
    ]
    largest = sorted((*in_terminals, *others), key=lambda o: o.bytes, reverse=True)[:top]

    attributed = (
        sum(h.bytes for h in (*kernels, server, *terminals, *orphans))
        + others_bytes
        + unowned.page_cache_bytes
        + unowned.shmem_bytes
    )
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
        page_cache_bytes=unowned.page_cache_bytes,
        shmem_bytes=unowned.shmem_bytes,
        unowned_source=unowned.source,
        unattributed_bytes=max(0, usage_bytes - attributed),
        overcounted_bytes=max(0, attributed - usage_bytes),
        largest_outside=tuple(largest),
        orphans=tuple(orphans),
    )
