"""Memory-limited cgroups for tests (v2 where its memory controller is on, else v1; root only)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")


def _v2_root() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            mount = Path(left.split()[4])
            controllers = (mount / "cgroup.controllers").read_text().split()
            if "memory" in controllers:
                return mount
    return None


def unavailable_reason() -> str | None:
    """Why a memory-limited cgroup cannot be made here, or None if it can."""
    if os.geteuid() != 0:
        return "creating a memory cgroup needs root"
    if _v2_root() is None and not (V1_ROOT / "memory.limit_in_bytes").exists():
        return "no cgroup v2 memory controller and no cgroup v1 memory hierarchy"
    if _v2_root() is None and not os.access(V1_ROOT, os.W_OK):
        return "the cgroup v1 memory hierarchy is not writable"
    return None


@dataclass
class MemoryCgroup:
    """A cgroup we created with a memory limit."""

    path: Path
    version: int

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def procs(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def oom_kills(self) -> int:
        """OOM kills in this cgroup and below it: v2's memory.events is hierarchical; v1 counts
        a kill in the victim's own cgroup (memguard puts each kernel in one of its own)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        count = 0
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                count = int(value)
        if self.version == 1:
            for child in (p for p in self.path.iterdir() if p.is_dir()):
                count += MemoryCgroup(child, 1).oom_kills()
        return count


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[MemoryCgroup]:
    """Create a cgroup limited to ``limit_bytes`` (no swap); kill what is left in it at exit."""
    name = f"memguard-test-{uuid.uuid4().hex[:8]}"
    v2 = _v2_root()
    if v2 is not None:
        path, version = v2 / name, 2
        path.mkdir()
        (path / "memory.max").write_text(str(limit_bytes))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
    else:
        path, version = V1_ROOT / name, 1
        path.mkdir()
        (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        with contextlib.suppress(OSError):
            (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        with contextlib.suppress(OSError):
            (path / "memory.swappiness").write_text("0")
    group = MemoryCgroup(path, version)
    try:
        yield group
    finally:
        remove(group)


def remove(group: MemoryCgroup) -> None:
    """SIGKILL what is left in the cgroup and in any cgroup below it (memguard puts each kernel
    in a cgroup of its own under the server's), then remove them all, deepest first."""
    children = [p for p in group.path.iterdir() if p.is_dir()] if group.path.is_dir() else []
    for child in children:
        remove(MemoryCgroup(child, group.version))
    for _ in range(50):
        try:
            pids = group.procs()
        except FileNotFoundError:
            return
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for _ in range(50):
        try:
            group.path.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.1)
