"""The memory budget: cgroup v2/v1 limits, usage and OOM counters, host total, configured limit.

Everything here reads files only. ``root`` lets tests point the readers at a fake tree
(``root/proc/self/cgroup``, ``root/proc/self/mountinfo``, ``root/sys/fs/cgroup/...``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..models import Budget
from .kept_files import MAX_KEPT, KeptFiles

# cgroup v1 reports "no limit" as a huge page-aligned number close to 2**63.
_V1_UNLIMITED = 1 << 62


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    return parse_int(_read_text(path))


def parse_int(text: str | bytes | None) -> int | None:
    """A cgroup file's one number; None when unreadable, malformed or "max" (no limit)."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None  # "max" among them


def parse_keyed(text: str | None) -> dict[str, int]:
    """Parse "key value" lines (memory.events, memory.stat, oom_control, vmstat)."""
    result: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def pick(text: str | None, *keys: str) -> dict[str, int]:
    """The given "key value" lines of a long keyed file (memory.stat: ~40 lines), found without
    parsing the others: read every tick for every kernel, so it is kept cheap."""
    found: dict[str, int] = {}
    if not text:
        return found
    text = "\n" + text
    for key in keys:
        at = text.find(f"\n{key} ")
        if at < 0:
            continue
        value = text[
            at + len(key) + 2 : text.find("\n", at + 1) if text.find("\n", at + 1) > 0 else None
        ]
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse /proc/meminfo into bytes."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            factor = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            result[name.strip()] = int(parts[0]) * factor
    return result


@dataclass(frozen=True)
class CgroupMount:
    """A cgroup filesystem mount: its mount point, the hierarchy path it shows, its version."""

    mount_point: str
    root: str
    version: int
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """Find cgroup v1 and v2 mounts in /proc/self/mountinfo."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype == "cgroup2":
            mounts.append(CgroupMount(fields[4], fields[3], 2, frozenset()))
        elif fstype == "cgroup":
            options = frozenset(rfields[2].split(","))
            mounts.append(CgroupMount(fields[4], fields[3], 1, options))
    return mounts


def parse_proc_cgroup(text: str) -> tuple[str | None, str | None]:
    """Return (v2 path, v1 memory path) from /proc/self/cgroup."""
    v2_path = v1_memory = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_memory = path
    return v2_path, v1_memory


def _cgroup_dir(root: Path, mount: CgroupMount, path: str) -> Path:
    """Map a hierarchy path from /proc/self/cgroup to a directory under the mount."""
    relative = os.path.relpath(path, mount.root) if mount.root != "/" else path.lstrip("/")
    if relative.startswith(".."):
        relative = ""  # namespaced: we only see our own subtree, mounted at its root
    candidate = root / mount.mount_point.lstrip("/") / relative
    return candidate if candidate.is_dir() else root / mount.mount_point.lstrip("/")


@dataclass(frozen=True)
class CgroupReading:
    """The tightest memory limit of a cgroup hierarchy and the figures that go with it."""

    version: int
    path: str
    limit_bytes: int | None
    usage_bytes: int | None
    working_set_bytes: int | None
    oom_kill_count: int | None


def _ancestors(directory: Path, top: Path) -> list[Path]:
    chain = [directory]
    while directory != top and top in directory.parents:
        directory = directory.parent
        chain.append(directory)
    return chain


def read_cgroup_v2(directory: Path, top: Path, counters: bool = True) -> CgroupReading | None:
    """Read a v2 cgroup: the smallest memory.max among it and its ancestors."""
    if not (directory / "memory.current").exists():
        return None
    limit_dir, limit = directory, None
    for level in _ancestors(directory, top):
        value = _read_int(level / "memory.max")
        if value is not None and (limit is None or value < limit):
            limit, limit_dir = value, level
    usage = _read_int(limit_dir / "memory.current")
    stat = parse_keyed(_read_text(limit_dir / "memory.stat"))
    working = None if usage is None else max(0, usage - stat.get("inactive_file", 0))
    events = parse_keyed(_read_text(limit_dir / "memory.events")) if counters else {}
    return CgroupReading(2, str(limit_dir), limit, usage, working, events.get("oom_kill"))


def read_cgroup_v1(directory: Path, top: Path, counters: bool = True) -> CgroupReading | None:
    """Read a v1 memory cgroup: the smallest limit_in_bytes among it and its ancestors."""
    if not (directory / "memory.usage_in_bytes").exists():
        return None
    limit_dir, limit = directory, None
    for level in _ancestors(directory, top):
        value = _read_int(level / "memory.limit_in_bytes")
        if value is not None and value < _V1_UNLIMITED and (limit is None or value < limit):
            limit, limit_dir = value, level
    usage = _read_int(limit_dir / "memory.usage_in_bytes")
    stat = parse_keyed(_read_text(limit_dir / "memory.stat"))
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    working = None if usage is None else max(0, usage - inactive)
    kills = _v1_oom_kills(limit_dir) if counters else None
    return CgroupReading(1, str(limit_dir), limit, usage, working, kills)


def _v1_oom_kills(directory: Path) -> int | None:
    """OOM kills in a v1 memory cgroup and the cgroups below it (memguard's per-kernel ones).

    cgroup v1 counts a kill in the victim's own cgroup, not in the one whose limit was hit.
    """
    total = parse_keyed(_read_text(directory / "memory.oom_control")).get("oom_kill")
    if total is None:
        return None
    try:
        children = [entry.path for entry in os.scandir(directory) if entry.is_dir()]
    except OSError:
        children = []
    for child in children:
        total += _v1_oom_kills(Path(child)) or 0
    return total


def find_cgroup(root: Path = Path("/"), counters: bool = True) -> CgroupReading | None:
    """Locate this process's memory cgroup (v2 preferred, then v1) and read it (its OOM
    counter too, unless ``counters`` is False: on v1 that is a file per cgroup below it)."""
    mountinfo = _read_text(root / "proc/self/mountinfo") or ""
    proc_cgroup = _read_text(root / "proc/self/cgroup") or ""
    v2_path, v1_path = parse_proc_cgroup(proc_cgroup)
    readings: list[CgroupReading] = []
    for mount in parse_mountinfo(mountinfo):
        top = root / mount.mount_point.lstrip("/")
        if mount.version == 2 and v2_path is not None:
            reading = read_cgroup_v2(_cgroup_dir(root, mount, v2_path), top, counters)
        elif mount.version == 1 and "memory" in mount.controllers and v1_path is not None:
            reading = read_cgroup_v1(_cgroup_dir(root, mount, v1_path), top, counters)
        else:
            continue
        if reading is not None:
            readings.append(reading)
    if not readings:
        return None
    limited = [r for r in readings if r.limit_bytes is not None]
    if limited:
        return min(limited, key=lambda r: r.limit_bytes or 0)
    return readings[0]


def _oom_kill_line(text: str) -> int | None:
    """The machine-wide OOM kill counter in /proc/vmstat's text (kernel ≥ 4.13): vmstat has
    ~170 lines and is read every tick, so the one line is found and nothing else parsed."""
    at = text.find("\noom_kill ") + 1 if not text.startswith("oom_kill ") else 0
    if at == 0 and not text.startswith("oom_kill "):
        return None
    value = text[at + len("oom_kill ") :].split("\n", 1)[0].strip()
    return int(value) if value.isdigit() else None


def read_budget(
    configured_limit: int | None = None,
    tree_rss_bytes: int = 0,
    root: Path = Path("/"),
    spawner_limit: int | None = None,
) -> Budget:
    """Work out the effective memory budget: the smallest limit that applies (one read)."""
    return BudgetReader(configured_limit, spawner_limit, root).read(tree_rss_bytes)


# On ties prefer the most specific source (config, then an enforced cgroup, then the
# spawner's MEM_LIMIT, then the host).
_SPECIFICITY = {"config": 0, "cgroup_v2": 1, "cgroup_v1": 1, "spawner_mem_limit": 2, "host": 3}


def _meminfo_kb(text: str, key: str) -> int | None:
    at = text.find(f"\n{key}:") if not text.startswith(f"{key}:") else -1
    if at < 0 and not text.startswith(f"{key}:"):
        return None
    value = text[at + len(key) + 2 :].split("\n", 1)[0].split()
    return int(value[0]) * 1024 if value and value[0].isdigit() else None


def _meminfo_figures(text: str) -> tuple[int, int]:
    """(MemTotal, MemTotal - MemAvailable) from /proc/meminfo's text (two lines of its ~55)."""
    total = _meminfo_kb(text, "MemTotal") or 0
    available = _meminfo_kb(text, "MemAvailable")
    if available is None:
        available = _meminfo_kb(text, "MemFree") or 0
    return total, total - available


class BudgetReader:
    """The budget, read every tick with as few file reads as it takes.

    Candidates: the configured limit (usage = ``tree_rss_bytes``, the RSS of this server and
    its kernels), the cgroup limit (usage = working set: current minus inactive file cache),
    the limit a JupyterHub spawner passed in MEM_LIMIT (usage as for the configured limit;
    nothing enforces it but memguard), and the host total (usage = MemTotal - MemAvailable).

    Where the cgroup is and which ancestor holds the limit is worked out once and again every
    ``refresh_s`` (a limit can be resized in place); a read in between costs the usage, the
    stat and the machine-wide OOM counter. The cgroup's own OOM counter (on v1 a sum over the
    cgroups below, one file each) is summed again only when the machine-wide one moved.
    The files read at every tick are kept open (probe.kept_files): the kernel formats them
    afresh at each read, and the open and close were most of a read's cost.
    """

    def __init__(
        self,
        configured_limit: int | None = None,
        spawner_limit: int | None = None,
        root: Path = Path("/"),
        refresh_s: float = 10.0,
    ) -> None:
        self.configured = configured_limit
        self.spawner = spawner_limit
        self.root = root
        self.refresh_s = refresh_s
        self._located_at = -1e9
        self._cgroup: CgroupReading | None = None
        self._host_total = 0
        self._oom: tuple[int | None, int | None] = (None, None)  # (system count, cgroup count)
        # Only the real /proc and /sys files are formatted at each read (a fake tree's are not).
        self._files = KeptFiles(max_kept=MAX_KEPT if root == Path("/") else 0)

    def _text(self, path: Path) -> str | None:
        data = self._files.read(str(path), 65536)
        return data.decode("utf-8", "replace") if data is not None else None

    def _locate(self) -> None:
        located = find_cgroup(self.root, counters=False)  # counted apart, when they move
        if located is None or self._cgroup is None or located.path != self._cgroup.path:
            self._oom = (None, None)  # another cgroup: its OOM counter is summed afresh
            self._files.clear()
        self._cgroup = located
        self._located_at = time.monotonic()

    def close(self) -> None:
        """Close the files kept open (the monitor is stopping)."""
        self._files.close()

    def _cgroup_usage(self) -> int | None:
        """The limiting cgroup's working set now (current minus inactive file cache)."""
        cgroup = self._cgroup
        if cgroup is None or cgroup.limit_bytes is None:
            return None
        directory = Path(cgroup.path)
        if cgroup.version == 2:
            text = self._text(directory / "memory.current")
            inactive_key = "inactive_file"
        else:
            text = self._text(directory / "memory.usage_in_bytes")
            inactive_key = "total_inactive_file"
        usage = parse_int(text)
        if usage is None:
            return None
        inactive = pick(self._text(directory / "memory.stat"), inactive_key).get(inactive_key, 0)
        return max(0, usage - inactive)

    def usage(self) -> int:
        """The budget's usage now, as the last full read measured it (its source's figure)."""
        cgroup = self._cgroup_usage()
        if cgroup is not None:
            return cgroup
        return _meminfo_figures(self._text(self.root / "proc/meminfo") or "")[1]

    def _oom_kills(self, system: int | None) -> int | None:
        cgroup = self._cgroup
        if cgroup is None:
            return None
        last_system, last_count = self._oom
        if system is not None and system == last_system and last_count is not None:
            return last_count  # no OOM kill anywhere on the machine since the last sum
        count = oom_kills_at(cgroup.path, cgroup.version)
        self._oom = (system, count)
        return count

    def read(self, tree_rss_bytes: int = 0) -> Budget:
        if time.monotonic() - self._located_at >= self.refresh_s:
            self._locate()
        host_total, host_used = _meminfo_figures(self._text(self.root / "proc/meminfo") or "")
        candidates: list[tuple[int, str, int, str]] = []
        if host_total:
            candidates.append((host_total, "host", host_used, "host_meminfo"))
        cgroup = self._cgroup
        if cgroup is not None and cgroup.limit_bytes is not None:
            usage = self._cgroup_usage() or 0
            source = "cgroup_v2" if cgroup.version == 2 else "cgroup_v1"
            candidates.append((cgroup.limit_bytes, source, usage, f"{source}_working_set"))
        if self.spawner:
            candidates.append(
                (self.spawner, "spawner_mem_limit", tree_rss_bytes, "server_tree_rss")
            )
        if self.configured:
            candidates.append((self.configured, "config", tree_rss_bytes, "server_tree_rss"))
        if not candidates:
            raise RuntimeError("no memory limit could be determined (no /proc/meminfo?)")
        limit, source, usage, usage_source = min(
            candidates, key=lambda c: (c[0], _SPECIFICITY[c[1]])
        )
        system = _oom_kill_line(self._text(self.root / "proc/vmstat") or "")
        return Budget(
            limit_bytes=limit,
            limit_source=source,  # type: ignore[arg-type]
            usage_bytes=usage,
            usage_source=usage_source,
            host_total_bytes=host_total,
            cgroup_version=cgroup.version if cgroup else None,
            cgroup_path=cgroup.path if cgroup else None,
            oom_kill_count=self._oom_kills(system),
            system_oom_kill_count=system,
            candidates={c[1]: c[0] for c in candidates},
        )


def read_memory_stat(cgroup_dir: str) -> dict[str, int]:
    """A cgroup's memory.stat (v1 or v2), parsed; empty when unreadable."""
    return parse_keyed(_read_text(Path(cgroup_dir) / "memory.stat"))


def read_meminfo(root: Path = Path("/")) -> dict[str, int]:
    """/proc/meminfo in bytes; empty when unreadable."""
    return parse_meminfo(_read_text(root / "proc/meminfo") or "")


def own_v1_memory_cgroup(root: Path = Path("/")) -> Path | None:
    """This process's cgroup v1 memory directory, or None (no v1 memory controller)."""
    mountinfo = _read_text(root / "proc/self/mountinfo") or ""
    _, v1_path = parse_proc_cgroup(_read_text(root / "proc/self/cgroup") or "")
    if v1_path is None:
        return None
    for mount in parse_mountinfo(mountinfo):
        if mount.version == 1 and "memory" in mount.controllers:
            directory = _cgroup_dir(root, mount, v1_path)
            if (directory / "memory.usage_in_bytes").exists():
                return directory
    return None


def oom_kills_at(cgroup_dir: str | None, version: int | None) -> int | None:
    """The OOM kill counter of one cgroup directory now (v1: with the cgroups below it; v2:
    ``memory.events``), or None when that cgroup is gone or unreadable."""
    if not cgroup_dir or version not in (1, 2):
        return None
    directory = Path(cgroup_dir)
    if not directory.is_dir():
        return None
    if version == 1:
        return _v1_oom_kills(directory)
    return parse_keyed(_read_text(directory / "memory.events")).get("oom_kill")
