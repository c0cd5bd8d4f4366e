"""A memory cgroup per kernel, where the machine allows: its charge counts each page once.

The exact figure of a kernel's tree (PSS summed over its processes) makes the kernel walk
every page table of every process: 239 ms for a 4 GiB parent with 4 copy-on-write children.
A memory cgroup charges each page once, to the first process that touched it, so reading the
cgroup of a kernel (and of everything it forks) costs one file read (~40 µs) whatever its size.

Where: cgroup v1 with the memory controller writable (as root, or with a delegated
subtree). The kernel's cgroup is made under the server's own, so every limit above still
applies to it; charges move with the kernel (``move_charge_at_immigrate``), so its first
megabytes are counted too. cgroup v2 forbids processes in a cgroup whose children have
controllers (the server's own), so there memguard keeps to PSS. The figure is the kernel's
anonymous and shared memory (``total_rss`` + ``total_shmem``): what only it can give back;
page cache, which the system reclaims, is not held against it.

Making the cgroup and moving the kernel there is an action on the kernel's process, so this
lives in guard/; the monitor only reads ``usage``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ..lifecycle import Gone, LifecycleEvent, Restarted, Started
from ..probe.kept_files import KeptFiles
from ..probe.limits import own_v1_memory_cgroup, parse_int, parse_keyed, pick
from ..units import human_bytes

PREFIX = "memguard-kernel-"
LIMIT_STEP = 16 * 2**20  # a kernel's cgroup limit is rewritten only when it moves this much,
LIMIT_STEP_FRACTION = 0.02  # ... or this fraction of it, whichever is larger
USAGE_REREAD_S = 60.0  # memory.stat is re-read at least this often, changed or not
USAGE_REUSE_BELOW = 0.5  # ... and every time above this fraction of the kernel's own limit
STALE_AFTER_S = 60.0  # a kernel cgroup this old, found at start, is no live server's new one
V2_BRAKE = 0.97  # cgroup v2: memory.high at this fraction of memory.max slows a runaway first


def limit_files(version: int, limit: int) -> list[tuple[str, str]]:
    """The files that hold a kernel's cgroup to ``limit`` bytes, in the order to write them.

    v1: ``memory.limit_in_bytes``. v2: ``memory.oom.group = 1`` (an OOM in it ends the kernel
    and its children together, nothing outside), ``memory.max``, and ``memory.high`` a little
    below as a brake (reclaim and throttling before the kill).
    """
    if version == 1:
        return [("memory.limit_in_bytes", str(limit))]
    return [
        ("memory.oom.group", "1"),
        ("memory.max", str(limit)),
        ("memory.high", str(int(limit * V2_BRAKE))),
    ]


class KernelCgroups:
    """Creates, fills, reads and removes one memory cgroup per local kernel."""

    def __init__(self, enabled: bool, log: logging.Logger, parent: Path | None = None) -> None:
        self.log = log
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._dirs: dict[str, Path] = {}  # kernel id → its cgroup
        self._members: dict[str, int] = {}  # kernel id → the pid moved there last
        self._limits: dict[str, int] = {}  # kernel id → the limit written last
        self._shmem: dict[str, int] = {}  # kernel id → shared memory at its last usage read
        # kernel id → (the cgroup's charge counter, when, the usage) at its last memory.stat
        self._usage: dict[str, tuple[int, float, int]] = {}
        self._counters = KeptFiles()  # each cgroup's charge counter, kept open
        self._counter_paths: dict[str, str] = {}  # kernel id → the path of that counter
        self._last_counter: dict[str, int] = {}  # kernel id → the counter at its last read
        self._charge_still: set[str] = set()  # kernels whose counter that read did not move
        self.version = 1
        self._leftover: set[Path] = set()  # cgroups to remove once their processes are gone
        self.parent = (
            parent if parent is not None else (own_v1_memory_cgroup() if enabled else None)
        )
        if not enabled:
            self.reason = "turned off (c.MemGuard.kernel_cgroups = False)"
        elif self.parent is None:
            self.reason = "no cgroup v1 memory controller for this server (PSS is used)"
        elif not os.access(self.parent, os.W_OK):
            self.reason = f"{self.parent} is not writable (PSS is used)"
            self.parent = None
        if self.parent is not None:
            self._remove_stale(self.parent)

    def _remove_stale(self, parent: Path, min_age_s: float = STALE_AFTER_S) -> None:
        """Kernels' cgroups left by a server that died (SIGKILL, a container killed whole).
        The empty ones go now; one that still holds processes (a kernel left behind, which the
        orphan check stops or reports) goes once it is empty, at a later release. A cgroup
        younger than ``min_age_s`` may be another server's, made a moment before it moves its
        kernel in: it is left alone."""
        now = time.time()
        try:
            entries = [e for e in os.scandir(parent) if e.name.startswith(PREFIX) and e.is_dir()]
        except OSError:
            return
        for entry in entries:
            try:
                if now - entry.stat().st_mtime < min_age_s:
                    continue
                os.rmdir(entry.path)
            except FileNotFoundError:
                continue
            except OSError:
                self._leftover.add(Path(entry.path))  # processes still in it

    @property
    def available(self) -> bool:
        return self.parent is not None

    def adopt(self, kernel_id: str, pid: int) -> bool:
        """Move a kernel process into its cgroup (made on first use); True when it is there."""
        if self.parent is None:
            return False
        with self._lock:
            if self._members.get(kernel_id) == pid:
                return True
            directory = self._dirs.get(kernel_id) or self.parent / f"{PREFIX}{kernel_id}"
            try:
                directory.mkdir(exist_ok=True)
                try:  # charges follow the process (not on every kernel; then usage starts now)
                    (directory / "memory.move_charge_at_immigrate").write_text("3")
                except OSError:
                    pass
                (directory / "cgroup.procs").write_text(str(pid))
            except OSError as error:
                self.log.warning("memguard: cannot use a memory cgroup per kernel: %s", error)
                self.reason = f"cannot move a kernel into its cgroup: {error} (PSS is used)"
                self.parent = None
                return False
            self._dirs[kernel_id] = directory
            self._members[kernel_id] = pid
            self._last_counter.pop(kernel_id, None)  # a new process: nothing is known still
            self._charge_still.discard(kernel_id)
            return True

    def set_limit(self, kernel_id: str, limit: int) -> bool:
        """Hold the kernel's cgroup to ``limit`` bytes (past its kill line: see
        policy.containment_limit): an allocation faster than any poll then ends inside the
        kernel's cgroup, never in the container. Written only when it moved by LIMIT_STEP;
        False when refused (then the container's own limit is the only one)."""
        with self._lock:
            directory = self._dirs.get(kernel_id)
            last = self._limits.get(kernel_id)
            step = max(LIMIT_STEP, int(limit * LIMIT_STEP_FRACTION))
            if directory is None or (last is not None and abs(last - limit) < step):
                return directory is not None
            try:
                for name, value in limit_files(self.version, limit):
                    (directory / name).write_text(value)
            except OSError as error:
                # EBUSY: usage above the new limit could not be reclaimed; keep the old one.
                self.log.debug(
                    "memguard: cannot limit %s to %s: %s", directory, human_bytes(limit), error
                )
                return False
            self._limits[kernel_id] = limit
            return True

    def limit_of(self, kernel_id: str) -> int | None:
        """The limit last written to the kernel's cgroup, if any."""
        return self._limits.get(kernel_id)

    def path_of(self, kernel_id: str) -> str | None:
        directory = self._dirs.get(kernel_id)
        return str(directory) if directory is not None else None

    def oom_counters(self, kernel_id: str) -> tuple[int, int] | None:
        """(OOM kills of its processes, times its own limit was hit) in the kernel's cgroup.

        A kill alone does not say whose limit it was (cgroup v1 counts a kill in the victim's
        own cgroup even when the container's limit was hit); both rising together do."""
        directory = self._dirs.get(kernel_id)
        if directory is None:
            return None
        try:
            if self.version == 1:
                kills = parse_keyed((directory / "memory.oom_control").read_text()).get("oom_kill")
                hits: int | None = int((directory / "memory.failcnt").read_text().strip())
            else:
                events = parse_keyed((directory / "memory.events.local").read_text())
                kills, hits = events.get("oom_kill"), events.get("oom")
        except (OSError, ValueError):
            return None
        if kills is None or hits is None:
            return None
        return kills, hits

    def usage(self, kernel_id: str, now: float | None = None) -> int | None:
        """The kernel's anonymous and shared memory, each page once (worker thread).

        ``memory.stat`` is the costly read of a tick (the kernel formats some 40 counters, on
        v1 with hierarchy totals); the cgroup's charge counter (one number) says whether
        anything was charged or freed since the last one, so an idle kernel costs that small
        read. It is read anyway every USAGE_REREAD_S, and always near the cgroup's own limit:
        there the charge can stay put while reclaim turns memory into page cache and back.
        The counter moves in steps of the per-CPU charge batch (256 KiB), so an unmoved one
        may hide that much."""
        directory = self._dirs.get(kernel_id)
        if directory is None:
            return None
        now = time.monotonic() if now is None else now
        counter = self._charge_counter(kernel_id, directory)
        if counter is not None and self._last_counter.get(kernel_id) == counter:
            self._charge_still.add(kernel_id)
        else:
            self._charge_still.discard(kernel_id)
        if counter is not None:
            self._last_counter[kernel_id] = counter
        last = self._usage.get(kernel_id)
        limit = self._limits.get(kernel_id)
        if (
            counter is not None
            and last is not None
            and last[0] == counter
            and now - last[1] < USAGE_REREAD_S
            and (limit is None or counter < USAGE_REUSE_BELOW * limit)
        ):
            return last[2]
        try:
            stat = pick((directory / "memory.stat").read_text(), "total_rss", "total_shmem")
        except OSError:
            return None
        if "total_rss" not in stat:
            return None
        self._shmem[kernel_id] = stat.get("total_shmem", 0)
        usage = stat["total_rss"] + stat.get("total_shmem", 0)
        if counter is not None:
            self._usage[kernel_id] = (counter, now, usage)
        return usage

    def charge_still(self, kernel_id: str) -> bool:
        """Whether the kernel's last ``usage`` read found its charge counter where the read
        before had left it: nothing in the kernel's cgroup allocated, freed or forked (a new
        process charges its page tables and its first pages) beyond the charge batch."""
        return kernel_id in self._charge_still

    def _charge_counter(self, kernel_id: str, directory: Path) -> int | None:
        """The cgroup's charged bytes (memory.usage_in_bytes, or memory.current): one number
        that moves with any charge or uncharge, page cache included."""
        path = self._counter_paths.get(kernel_id)
        if path is None:
            path = self._counter_paths[kernel_id] = _counter_path(directory, self.version)
        return parse_int(self._counters.read(path, 64))

    def shmem_of(self, kernel_id: str) -> int:
        """The shared memory in the kernel's last ``usage`` (for the budget's breakdown)."""
        return self._shmem.get(kernel_id, 0)

    def status_json(self) -> dict[str, object]:
        return {"available": self.available, "reason": self.reason}

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        """A kernel's process goes into its cgroup as soon as it is started (or restarted), so
        its very first sample, a REST request's included, is its cgroup's figure and its first
        megabytes are charged there; a kernel that left takes its cgroup with it."""
        if isinstance(event, (Started, Restarted)):
            if event.life.pid is not None:  # a remote kernel has no local process
                self.adopt(event.life.kernel_id, event.life.pid)
        elif isinstance(event, Gone):
            self.release(event.life.kernel_id)

    def release(self, kernel_id: str) -> None:
        """The kernel is gone: remove its cgroup (now, or once its last process has ended)."""
        with self._lock:
            directory = self._dirs.pop(kernel_id, None)
            self._members.pop(kernel_id, None)
            self._limits.pop(kernel_id, None)
            self._shmem.pop(kernel_id, None)
            self._usage.pop(kernel_id, None)
            self._counter_paths.pop(kernel_id, None)
            self._last_counter.pop(kernel_id, None)
            self._charge_still.discard(kernel_id)
            if directory is not None:
                self._counters.forget([_counter_path(directory, self.version)])
                self._leftover.add(directory)
            for leftover in list(self._leftover):
                try:
                    leftover.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue  # processes still in it: try again at the next release
                self._leftover.discard(leftover)

    def close(self) -> None:
        """The server is stopping (before its kernels are shut down): move every process back
        to the server's cgroup, then remove the kernels' cgroups (their charges go up too)."""
        if self.parent is None:
            return
        with self._lock:
            directories = [*self._dirs.values(), *self._leftover]
            self._dirs.clear()
            self._members.clear()
            self._limits.clear()
            self._leftover = set(directories)
        self._counters.close()
        for directory in directories:
            try:
                pids = (directory / "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    (self.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # it ended meanwhile
        self.release("")


def _counter_path(directory: Path, version: int) -> str:
    return f"{directory}/{'memory.usage_in_bytes' if version == 1 else 'memory.current'}"
