"""Kernels left running by a server that died: found for certain, or not at all.

jupyter_client starts a local kernel in a session of its own, so a SIGKILL of the server leaves
its kernels running. A process is taken for such a kernel only when every one of these holds:
  * its pid and its start time (``/proc/PID/stat`` field 22, on this boot) are those the dead
    server's last heartbeat recorded for the kernel;
  * its command line names that kernel's connection file;
  * the connection file lies in this server's runtime directory and is named after the
    kernel id (``kernel-<id>.json``), a kernel id the journal knows.
Anything less certain (a reused pid, another boot, another host, another runtime directory) is
never touched. Reads only; stopping one is guard.actions' job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .proc import tree_rss
from .proctree import PROC, read_stat, walk_tree


@dataclass(frozen=True)
class LeftKernel:
    """What a dead server's last heartbeat said of one kernel's process."""

    kernel_id: str
    pid: int | None
    pid_start_ticks: int | None
    connection_file: str | None


@dataclass(frozen=True)
class Orphan:
    """A kernel process of a dead server, identified for certain, with its tree's memory."""

    kernel_id: str
    pid: int
    pgid: int
    pids: tuple[int, ...]
    rss_bytes: int


def _cmdline(pid: int, proc: Path) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _inside(path: str, directory: str) -> bool:
    try:
        return Path(path).resolve().parent == Path(directory).resolve()
    except OSError:
        return False


def identify(left: LeftKernel, runtime_dir: str, proc: Path = PROC) -> Orphan | None:
    """The still-running process of a dead server's kernel, when its identity is certain."""
    if left.pid is None or left.pid_start_ticks is None or not left.connection_file:
        return None
    if left.pid in (os.getpid(), 0, 1):
        return None
    name = Path(left.connection_file).name
    if name != f"kernel-{left.kernel_id}.json" or not _inside(left.connection_file, runtime_dir):
        return None
    stat = read_stat(left.pid, proc)
    if stat is None or stat.start_ticks != left.pid_start_ticks or stat.state == "Z":
        return None
    if left.connection_file not in _cmdline(left.pid, proc):
        return None
    pids = walk_tree(left.pid, proc)
    return Orphan(left.kernel_id, left.pid, stat.pgid, pids, tree_rss(pids, proc))


def still_there(orphan: Orphan, start_ticks: int, proc: Path = PROC) -> bool:
    """Whether the orphan's own process is still the one identified (same start time)."""
    stat = read_stat(orphan.pid, proc)
    return stat is not None and stat.start_ticks == start_ticks and stat.state != "Z"
