"""Kernel process trees, the host scan, escaped work, the budget breakdown and tree PSS.

Edge cases run against a fake /proc built in tmp_path; the rest against real processes and a
real ipykernel kernel (started with jupyter_client's AsyncKernelManager, no server).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_memguard.probe.breakdown import (
    Owners,
    Unowned,
    breakdown,
    in_cgroup,
    unowned_from_meminfo,
    unowned_from_memory_stat,
    user_name,
)
from jupyter_memguard.probe.proc import PAGE_SIZE, read_rss
from jupyter_memguard.probe.proctree import (
    HostScan,
    KernelRoot,
    ProcInfo,
    TreePss,
    TreeWalker,
    children_files_supported,
    escaped_members,
    memory_cgroup,
    parse_stat,
    read_children,
    scan_host,
    tree_pss_bytes,
    walk_tree,
    walk_trees,
)

MB = 10**6
MiB = 2**20


# --- a fake /proc ------------------------------------------------------------------------


def fake_process(
    proc: Path,
    pid: int,
    ppid: int,
    name: str = "python3",
    *,
    sid: int | None = None,
    pgid: int | None = None,
    state: str = "S",
    rss_pages: int = 100,
    minflt: int = 0,
    utime: int = 1,
    threads: dict[int, list[int]] | None = None,
    children_files: bool = True,
    cmdline: bytes = b"python3\0-m\0thing\0",
    cgroup: str = "12:memory:/jobs\n0::/\n",
    pss_kib: int | None = None,
) -> Path:
    """Write /proc/PID the way the kernel shows it (only the files memguard reads)."""
    base = proc / str(pid)
    (base / "task").mkdir(parents=True)
    fields = [state, ppid, pgid if pgid is not None else pid, sid if sid is not None else pid]
    fields += [0, -1, 4194304, minflt, 0, 0, 0, utime, 1, 0, 0, 20, 0, len(threads or {pid: []})]
    fields += [0, 1000 + pid, 123456, rss_pages, 18446744073709551615, 1, 1, 0, 0]
    (base / "stat").write_text(f"{pid} ({name}) " + " ".join(map(str, fields)) + "\n")
    (base / "statm").write_text(f"1000 {rss_pages} 10 1 0 50 0\n")
    (base / "cmdline").write_bytes(cmdline)
    (base / "cgroup").write_text(cgroup)
    for tid, kids in (threads or {pid: []}).items():
        (base / "task" / str(tid)).mkdir()
        if children_files:
            text = "".join(f"{k} " for k in kids)
            (base / "task" / str(tid) / "children").write_text(text)
    if pss_kib is not None:
        (base / "smaps_rollup").write_text(
            f"00400000-7fff [rollup]\nRss: {pss_kib * 2} kB\nPss: {pss_kib} kB\n"
            f"Private_Clean: 0 kB\nPrivate_Dirty: {pss_kib // 2} kB\n"
        )
    return base


def test_parse_stat_with_spaces_and_parentheses_in_the_name():
    line = b"42 (my (odd) name) S 7 40 41 0 -1 0 5 0 6 0 0 0 0 0 20 0 3 0 999 1 77 0\n"
    fields = parse_stat(line)
    assert fields is not None
    assert (fields.pid, fields.name, fields.state, fields.ppid, fields.pgid, fields.sid) == (
        42,
        "my (odd) name",
        "S",
        7,
        40,
        41,
    )
    assert (fields.minflt, fields.majflt, fields.start_ticks, fields.rss_pages) == (5, 6, 999, 77)
    assert parse_stat(b"42 (truncated) S 7") is None
    assert parse_stat(b"garbage") is None


def test_walk_follows_every_threads_children_file(tmp_path: Path):
    # 100 forked 200 from its main thread and 300 from another thread; 300 forked 400.
    fake_process(tmp_path, 100, 1, threads={100: [200], 101: [300], 102: []})
    fake_process(tmp_path, 200, 100, "worker ) x")
    fake_process(tmp_path, 300, 100, threads={300: [400]})
    fake_process(tmp_path, 400, 300)
    fake_process(tmp_path, 500, 1)  # unrelated
    assert children_files_supported(tmp_path)
    assert sorted(read_children(100, tmp_path)) == [200, 300]
    assert sorted(walk_tree(100, tmp_path)) == [100, 200, 300, 400]
    assert walk_tree(100, tmp_path)[0] == 100
    assert walk_tree(300, tmp_path) == (300, 400)
    assert walk_tree(999, tmp_path) == ()  # gone
    assert walk_trees([100, 500, 999], tmp_path) == {
        100: walk_tree(100, tmp_path),
        500: (500,),
    }


def test_tree_walker_rewalks_only_trees_that_may_have_changed(tmp_path: Path):
    import shutil

    fake_process(tmp_path, 100, 1, threads={100: [200]})
    fake_process(tmp_path, 200, 100)
    walker = TreeWalker(tmp_path, max_age_s=2.0)
    assert walker.trees([100], now=0.0) == {100: (100, 200)}
    # A child appears while no process of the tree ran (impossible for real; shows the reuse).
    (tmp_path / "100" / "task" / "100" / "children").write_text("200 300 ")
    fake_process(tmp_path, 300, 100)
    assert walker.trees([100], now=0.5) == {100: (100, 200)}
    # The parent used CPU (it may have forked): walked again.
    shutil.rmtree(tmp_path / "100")
    fake_process(tmp_path, 100, 1, utime=7, threads={100: [200, 300]})
    assert sorted(walker.trees([100], now=1.0)[100]) == [100, 200, 300]
    # The parent faulted pages, in less than a clock tick of CPU (a fork): walked again.
    (tmp_path / "100" / "task" / "100" / "children").write_text("200 300 400 ")
    fake_process(tmp_path, 400, 100)
    assert walker.trees([100], now=1.1) == {100: (100, 200, 300)}  # unchanged: reused
    shutil.rmtree(tmp_path / "100")
    fake_process(tmp_path, 100, 1, utime=7, minflt=5, threads={100: [200, 300, 400]})
    assert sorted(walker.trees([100], now=1.2)[100]) == [100, 200, 300, 400]
    shutil.rmtree(tmp_path / "400")
    (tmp_path / "100" / "task" / "100" / "children").write_text("200 300 ")
    # A process of the tree ended: walked again.
    shutil.rmtree(tmp_path / "300")
    (tmp_path / "100" / "task" / "100" / "children").write_text("200 ")
    assert walker.trees([100], now=1.5) == {100: (100, 200)}
    # Never older than max_age_s, and always walked when the caller says so (busy kernels).
    (tmp_path / "100" / "task" / "100" / "children").write_text("")
    assert walker.trees([100], now=1.6, must_walk={100}) == {100: (100,)}
    (tmp_path / "100" / "task" / "100" / "children").write_text("200 ")
    assert walker.trees([100], now=3.7) == {100: (100, 200)}  # 2.1 s after the last walk
    assert walker.trees([999], now=3.0) == {}


def test_a_still_tree_is_kept_without_reading_its_processes_for_still_s(tmp_path: Path):
    """A root the caller calls still (its cgroup's charge did not move) keeps its tree and
    its RSS without a stat read, for at most still_s since the last read; never when it must
    be walked (busy)."""
    import shutil

    fake_process(tmp_path, 100, 1, rss_pages=10, threads={100: [200]})
    fake_process(tmp_path, 200, 100, rss_pages=20)
    walker = TreeWalker(tmp_path, max_age_s=60.0, still_s=5.0)
    assert walker.trees([100], now=0.0) == {100: (100, 200)}
    page = walker.rss[100] // 10
    # The child ended and the parent changed; a still root is not read again...
    shutil.rmtree(tmp_path / "200")
    shutil.rmtree(tmp_path / "100")
    fake_process(tmp_path, 100, 1, rss_pages=11, utime=3, threads={100: []})
    assert walker.trees([100], now=1.0, still={100}) == {100: (100, 200)}
    assert walker.rss == {100: 10 * page, 200: 20 * page} and walker.unchanged == {100}
    # ... a root not called still is, and so is a busy one ...
    assert walker.trees([100], now=1.5) == {100: (100,)}
    assert walker.rss == {100: 11 * page}
    (tmp_path / "100" / "task" / "100" / "children").write_text("300 ")
    fake_process(tmp_path, 300, 100)
    assert walker.trees([100], now=2.0, still={100}) == {100: (100,)}  # read at 1.5
    assert walker.trees([100], now=2.1, still={100}, must_walk={100}) == {100: (100, 300)}
    # ... and a still one too, once still_s has passed since its last read.
    shutil.rmtree(tmp_path / "300")
    (tmp_path / "100" / "task" / "100" / "children").write_text("")
    assert walker.trees([100], now=7.0, still={100}) == {100: (100, 300)}  # 4.9 s after 2.1
    assert walker.trees([100], now=7.2, still={100}) == {100: (100,)}  # 5.1 s: read, walked


def test_walk_survives_vanished_children_and_cycles(tmp_path: Path):
    # 600 lists 601, which ended before we read it; 700 and 701 list each other (PID reuse).
    fake_process(tmp_path, 600, 1, threads={600: [601, 602]})
    fake_process(tmp_path, 602, 600)
    fake_process(tmp_path, 700, 1, threads={700: [701]})
    fake_process(tmp_path, 701, 700, threads={701: [700, 701]})
    assert sorted(walk_tree(600, tmp_path)) == [600, 601, 602]  # 601: the RSS read drops it
    assert sorted(walk_tree(700, tmp_path)) == [700, 701]
    # a thread directory with no children file (the thread ended mid-read) is skipped
    (tmp_path / "602" / "task" / "603").mkdir()
    assert sorted(walk_tree(600, tmp_path)) == [600, 601, 602]


def test_walk_without_children_files_falls_back_to_one_scan(tmp_path: Path):
    for pid, ppid in [(100, 1), (200, 100), (300, 200), (400, 1)]:
        fake_process(tmp_path, pid, ppid, children_files=False)
    (tmp_path / "450").mkdir()  # listed, then gone before its stat could be read
    (tmp_path / "self").symlink_to(tmp_path / "100")
    assert not children_files_supported(tmp_path)
    assert sorted(walk_tree(100, tmp_path)) == [100, 200, 300]
    assert walk_tree(450, tmp_path) == ()
    assert walk_trees([100, 400], tmp_path) == {100: walk_tree(100, tmp_path), 400: (400,)}


def test_scan_reads_identity_command_memory_and_cgroup(tmp_path: Path):
    fake_process(tmp_path, 10, 1, "bash", sid=10, pgid=10, cmdline=b"-bash\0", rss_pages=50)
    fake_process(
        tmp_path,
        11,
        10,
        "my (tool) x",
        sid=10,
        pgid=11,
        cmdline=b"python\0-c\0" + b"x" * 200 + b"\0",
        cgroup="0::/user.slice/jobs\n",
    )
    fake_process(tmp_path, 12, 11, state="Z", rss_pages=0, cmdline=b"")
    (tmp_path / "13").mkdir()  # vanished: directory listed, files gone
    fake_process(tmp_path, 14, 1, cgroup="")
    os.chown(tmp_path / "11", 54321, 54321)
    scan = scan_host(tmp_path)
    assert sorted(scan.processes) == [10, 11, 12, 14]
    bash, tool = scan.processes[10], scan.processes[11]
    assert (bash.name, bash.cmdline, bash.sid, bash.pgid, bash.uid) == ("bash", "-bash", 10, 10, 0)
    assert bash.rss_bytes == 50 * PAGE_SIZE and bash.cgroup == "/jobs"
    assert tool.name == "my (tool) x" and tool.uid == 54321 and tool.pgid == 11
    assert tool.cmdline.startswith("python -c xxx") and len(tool.cmdline) == 80
    assert tool.cgroup == "/user.slice/jobs"
    assert scan.processes[12].state == "Z" and scan.processes[14].cgroup is None
    assert scan.children(10) == (11,) and scan.descendants(10) == (10, 11, 12)
    assert scan.descendants(10, stop={11}) == (10,) and scan.descendants(13) == ()
    assert scan.duration_s >= 0 and scan.taken_at > 0
    assert all(p.cgroup is None for p in scan_host(tmp_path, cgroups=False).processes.values())


def test_memory_cgroup_prefers_the_hierarchy_that_has_memory():
    hybrid = "5:cpu,cpuacct:/a\n4:memory:/process_api/x\n0::/\n"
    assert memory_cgroup(hybrid) == "/process_api/x"
    assert memory_cgroup("0::/user.slice/u.service\n") == "/user.slice/u.service"
    assert memory_cgroup("3:cpu:/a\n") is None and memory_cgroup("") is None


# --- escapes and breakdown on a synthetic scan ----------------------------------------------


def info(pid: int, ppid: int, *, sid: int, pgid: int | None = None, **kw: Any) -> ProcInfo:
    values: dict[str, Any] = {
        "uid": 0,
        "name": f"p{pid}",
        "cmdline": f"cmd {pid}",
        "rss_bytes": 10 * MB,
        "cgroup": "/jobs",
        "state": "S",
        "start_ticks": 1,
    }
    values.update(kw)
    return ProcInfo(pid=pid, ppid=ppid, pgid=pgid if pgid is not None else sid, sid=sid, **values)


def synthetic_scan() -> HostScan:
    """A server (50) with two kernels (100, 200), a terminal (300), escapes and strangers."""
    procs = [
        info(1, 0, sid=1, name="init"),
        info(50, 1, sid=40, name="jupyter-lab", rss_bytes=150 * MB),
        info(51, 50, sid=40, name="node"),  # a server helper
        info(100, 50, sid=100, rss_bytes=500 * MB),  # kernel A
        info(101, 100, sid=100, rss_bytes=400 * MB),  # its fork
        info(102, 1, sid=100, name="sleep", rss_bytes=5 * MB),  # nohup escape of A
        info(103, 1, sid=100, pgid=103, name="daemon"),  # double fork + setpgid, same session
        info(104, 1, sid=100, state="Z", rss_bytes=0),  # zombie escape
        info(200, 50, sid=200, rss_bytes=300 * MB),  # kernel B
        info(201, 200, sid=100),  # in B's tree but A's session: B keeps it
        info(300, 50, sid=300, name="bash"),  # terminal
        info(301, 300, sid=300, name="vim"),
        info(302, 1, sid=300, name="escaped-from-terminal"),
        info(400, 1, sid=400, name="postgres", uid=999, rss_bytes=800 * MB, cgroup="/other"),
        info(401, 1, sid=401, name="redis", rss_bytes=200 * MB),
        info(402, 1, sid=402, name="tiny", rss_bytes=1 * MB),
        info(2, 0, sid=0, name="kthreadd", rss_bytes=0),
        info(3, 2, sid=0, name="kworker", rss_bytes=0),
    ]
    return HostScan({p.pid: p for p in procs}, taken_at=1000.0, duration_s=0.001)


def test_escaped_members_follow_session_and_group():
    scan = synthetic_scan()
    kernels = {
        "A": KernelRoot(100, tree=(100, 101)),  # sid/pgid from the scan
        "B": KernelRoot(200, sid=200, pgid=200, tree=(200, 201)),
    }
    assert escaped_members(kernels, scan, server_pid=50) == {"A": (102, 103), "B": ()}


def test_escaped_members_never_claims_shared_or_ambiguous_sessions():
    scan = synthetic_scan()
    # a kernel that shares the server's session (no setsid) identifies nothing by it
    shared = {"K": KernelRoot(51, tree=(51,))}
    assert escaped_members(shared, scan, server_pid=50) == {"K": ()}
    # two kernels claiming the same session: ambiguous, nobody gets it
    twins = {"A": KernelRoot(100, tree=(100, 101)), "C": KernelRoot(999, sid=100, pgid=100)}
    assert escaped_members(twins, scan, server_pid=50) == {"A": (), "C": ()}
    # init, the server and kthreads are never returned, even with a session that matches
    odd = {"Z": KernelRoot(7, sid=1, pgid=0)}
    assert escaped_members(odd, scan, server_pid=50) == {"Z": ()}
    # the root is gone from the scan and no ids were given: nothing to follow
    assert escaped_members({"G": KernelRoot(777)}, scan, server_pid=50) == {"G": ()}


def test_breakdown_attributes_every_holder_on_the_host():
    scan = synthetic_scan()
    owners = Owners(
        server_pid=50,
        kernels={"A": (100, 101, 102, 103), "B": (200, 201)},
        terminals={"terminal-1": 300},
        kernel_bytes={"A": 520 * MB},
    )
    result = breakdown(
        scan, owners, usage_bytes=3000 * MB, unowned=Unowned(100 * MB, 20 * MB, "meminfo"), top=2
    )
    kernels = {h.key: h for h in result.kernels}
    assert kernels["A"].bytes == 520 * MB and kernels["A"].method == "pss"
    assert kernels["B"].bytes == 310 * MB and kernels["B"].method == "rss"
    assert kernels["B"].pids == (200, 201)
    assert result.server.pids == (50, 51) and result.server.bytes == 160 * MB
    (terminal,) = result.terminals
    assert terminal.pids == (300, 301, 302) and terminal.bytes == 30 * MB
    assert [(o.pid, o.name, o.user) for o in result.others] == [
        (400, "postgres", user_name(999)),
        (401, "redis", "root"),
    ]
    # init (10 MB) + postgres + redis + tiny; zombies, kthreads and owned pids excluded
    assert result.others_count == 4 and result.others_bytes == 1011 * MB
    assert result.scope == "host" and result.scanned_at == 1000.0
    attributed = (520 + 310 + 160 + 30 + 1011 + 100 + 20) * MB
    assert result.attributed_bytes == attributed
    assert result.unattributed_bytes == 3000 * MB - attributed
    assert result.overcounted_bytes == 0
    data = json.loads(json.dumps(result.to_json()))
    assert data["kernels"][0]["key"] == "A" and data["others"][0]["cmdline"] == "cmd 400"
    assert data["attributed_bytes"] == attributed and data["unowned_source"] == "meminfo"


def test_breakdown_in_a_cgroup_ignores_processes_outside_it():
    scan = synthetic_scan()
    owners = Owners(server_pid=50, kernels={"A": (100, 101)}, terminals={})
    result = breakdown(scan, owners, usage_bytes=1000 * MB, cgroup_path="/jobs/")
    assert result.scope == "/jobs/"
    assert 400 not in [o.pid for o in result.others]  # postgres lives in /other
    # the RSS sums exceed the usage: reported as overcounted, the remainder clamps at 0
    assert result.unattributed_bytes == 0
    assert result.overcounted_bytes == result.attributed_bytes - 1000 * MB > 0
    outside = breakdown(scan, Owners(50, kernels={"X": (400,)}), 1, cgroup_path="/jobs")
    assert outside.kernels == ()


def test_cgroup_scope_and_unowned_helpers():
    assert in_cgroup("/jobs", "/jobs") and in_cgroup("/jobs/a", "/jobs")
    assert not in_cgroup("/jobsx", "/jobs") and not in_cgroup(None, "/")
    assert in_cgroup("/anything", "/") and not in_cgroup("/../host.slice", "/")
    v2 = {"file": 900, "shmem": 100, "inactive_file": 300, "active_file": 500}
    assert unowned_from_memory_stat(v2) == Unowned(500, 100, "cgroup")
    v1 = {"total_cache": 900, "total_shmem": 100, "total_inactive_file": 900}
    assert unowned_from_memory_stat(v1, "cgroup_v1") == Unowned(0, 100, "cgroup_v1")
    meminfo = {"Cached": 5000, "Shmem": 1000, "Inactive(file)": 1500}
    assert unowned_from_meminfo(meminfo) == Unowned(2500, 1000, "meminfo")
    assert user_name(0) == "root" and user_name(54321) in ("54321", user_name(54321))


def test_tree_pss_cache_rereads_only_changed_trees(tmp_path: Path):
    fake_process(tmp_path, 100, 1, threads={100: [101]}, pss_kib=1000)
    fake_process(tmp_path, 101, 100, pss_kib=500)
    assert tree_pss_bytes([100, 101], tmp_path) == 1500 * 1024
    assert tree_pss_bytes([999], tmp_path) is None
    cache = TreePss(tmp_path)
    first = cache.read("k", [100, 101])
    assert first is not None and first.fresh and first.bytes == 1500 * 1024
    # the figure changed but no process faulted or changed RSS: the cached figure stands
    fake_rollup = tmp_path / "101" / "smaps_rollup"
    fake_rollup.write_text(fake_rollup.read_text().replace("Pss: 500", "Pss: 700"))
    again = cache.read("k", [100, 101])
    assert again is not None and not again.fresh and again.bytes == 1500 * 1024
    # a fault in one process (a copy-on-write break) invalidates the tree
    stat = tmp_path / "101" / "stat"
    stat.write_text(stat.read_text().replace(" 4194304 0 ", " 4194304 9 "))
    changed = cache.read("k", [100, 101])
    assert changed is not None and changed.fresh and changed.bytes == 1700 * 1024
    cache.retain(set())
    assert cache.read("k", [100, 101]).fresh  # type: ignore[union-attr]
    assert cache.read("gone", [999]) is None


# --- real processes ---------------------------------------------------------------------------


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[Any]]]:
    """Popen objects a test starts; each is killed with its whole tree afterwards."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for process in started:
        kill_all(list(reversed(walk_tree(process.pid))))
        process.kill()
        process.wait(timeout=10)


def wait_until(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def wait_for_tree(pid: int, size: int, timeout: float = 10) -> tuple[int, ...]:
    """walk_tree(pid) once it has at least ``size`` members (processes start asynchronously)."""
    deadline = time.monotonic() + timeout
    tree = walk_tree(pid)
    while len(tree) < size and time.monotonic() < deadline:
        time.sleep(0.05)
        tree = walk_tree(pid)
    return tree


GRANDCHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, '-c', 'import subprocess, time; '
                  'subprocess.Popen(["sleep", "60"]); time.sleep(60)'])
time.sleep(60)
"""


def test_walk_tree_of_real_child_and_grandchild(spawned: list[subprocess.Popen[Any]]):
    assert children_files_supported()  # this machine's kernel has them (see NOTES.md)
    root = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
    spawned.append(root)
    tree = wait_for_tree(root.pid, 3)
    assert tree and tree[0] == root.pid and len(tree) == 3, walk_tree(root.pid)
    scan = scan_host()
    assert sorted(scan.descendants(root.pid)) == sorted(tree)
    assert [scan.processes[p].name for p in tree].count("sleep") == 1


def test_scan_host_sees_this_process():
    scan = scan_host()
    me = scan.processes[os.getpid()]
    assert me.ppid == os.getppid() and me.pgid == os.getpgid(0) and me.sid == os.getsid(0)
    assert me.uid == os.getuid() and me.name and me.cmdline
    assert me.rss_bytes > 10 * MiB and abs(me.rss_bytes - (read_rss(os.getpid()) or 0)) < 50 * MiB
    with open("/proc/self/cgroup") as handle:
        assert me.cgroup == memory_cgroup(handle.read())
    assert 1 in scan.processes or len(scan.processes) > 1


def test_reads_survive_processes_that_come_and_go(spawned: list[subprocess.Popen[Any]]):
    churn = subprocess.Popen(["sh", "-c", "while :; do sleep 0.01 & sleep 0.005; done"])
    spawned.append(churn)
    cache = TreePss()
    rounds, sizes = 0, set()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        tree = walk_tree(churn.pid)
        sizes.add(len(tree))
        tree_pss_bytes(tree)
        cache.read("churn", tree)
        escaped_members({"c": KernelRoot(churn.pid, tree=tree)}, scan_host())
        rounds += 1
    assert rounds > 3 and max(sizes) > 1


COW = """
import os, sys, time
data = bytearray(b"\\x01") * (400 * 10**6)
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
print(" ".join(map(str, children)), flush=True)
sys.stdin.readline()  # then dirty 100 MB: copy-on-write copies them into the parent
data[: 100 * 10**6] = b"\\x02" * (100 * 10**6)
print("written", flush=True)
time.sleep(60)
"""


def test_forked_workers_do_not_multiply_a_tree(spawned: list[subprocess.Popen[Any]]):
    root = subprocess.Popen(
        [sys.executable, "-c", COW], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    spawned.append(root)
    assert root.stdout is not None and root.stdin is not None
    children = [int(p) for p in root.stdout.readline().split()]
    tree = walk_tree(root.pid)
    assert sorted(tree) == sorted([root.pid, *children])
    rss = sum(read_rss(p) or 0 for p in tree)
    assert rss >= 5 * 390 * MB
    pss = tree_pss_bytes(tree)
    assert pss is not None and 390 * MB <= pss <= 600 * MB
    cache = TreePss()
    first = cache.read("k", tree)
    second = cache.read("k", tree)
    assert first and second and first.fresh and not second.fresh
    assert second.bytes == first.bytes and second.elapsed_s < first.elapsed_s
    root.stdin.write("go\n")
    root.stdin.flush()
    assert root.stdout.readline().strip() == "written"
    third = cache.read("k", tree)  # the parent faulted: re-read, and 100 MB more
    assert third and third.fresh and third.bytes - first.bytes >= 95 * MB


# --- a real ipykernel kernel ---------------------------------------------------------------------


class Kernel:
    """A local ipykernel kernel started by jupyter_client, as jupyter_server starts them."""

    def __init__(self) -> None:
        from jupyter_client.manager import AsyncKernelManager

        self.loop = asyncio.new_event_loop()
        self.manager = AsyncKernelManager(kernel_name="python3")
        self.loop.run_until_complete(self.manager.start_kernel())
        self.client = self.manager.client()
        self.client.start_channels()
        self.loop.run_until_complete(self.client.wait_for_ready(timeout=60))
        self.pid: int = self.manager.provisioner.pid  # type: ignore[union-attr]

    def run(self, code: str) -> str:
        """Run a cell; return its stdout."""
        output: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                output.append(msg["content"]["text"])

        reply = self.loop.run_until_complete(
            self.client.execute_interactive(code, timeout=30, output_hook=hook)
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(output)

    def close(self) -> None:
        session = [p.pid for p in scan_host().processes.values() if p.sid == self.pid]
        self.client.stop_channels()
        try:
            self.loop.run_until_complete(self.manager.shutdown_kernel(now=True))
        finally:
            kill_all(session)  # escaped work outlives the kernel otherwise
            self.loop.close()


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    handle = Kernel()
    try:
        yield handle
    finally:
        handle.close()


def test_kernel_started_in_its_own_session(kernel: Kernel):
    me = scan_host().processes[kernel.pid]
    assert me.sid == me.pgid == kernel.pid


def test_walk_tree_of_a_kernel_counts_what_its_cells_start(kernel: Kernel):
    pid = kernel.run(
        "import subprocess, sys\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import subprocess, time; "
        'subprocess.Popen(["sleep", "60"]); time.sleep(60)\'])\n'
        "print(worker.pid)"
    )
    worker = int(pid)
    tree = wait_for_tree(kernel.pid, 3)
    assert tree and tree[0] == kernel.pid and worker in tree and len(tree) >= 3, tree
    kernel.run("worker.kill(); worker.wait()")


def test_walk_tree_finds_children_forked_by_a_kernel_thread(kernel: Kernel):
    out = kernel.run(
        "import subprocess, threading, time\n"
        "started = threading.Event()\n"
        "def spawn():\n"
        "    global threaded\n"
        "    threaded = subprocess.Popen(['sleep', '60'])\n"
        "    started.set()\n"
        "    time.sleep(60)\n"
        "threading.Thread(target=spawn, daemon=True).start()\n"
        "started.wait(10)\n"
        "print(threaded.pid, threading.get_native_id())"
    )
    child, main_tid = map(int, out.split())
    main_children = read_children_file(kernel.pid, main_tid)
    assert child not in main_children  # its parent is the other thread
    assert child in walk_tree(kernel.pid)
    kernel.run("threaded.kill(); threaded.wait()")


def read_children_file(pid: int, tid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{tid}/children") as handle:
        return [int(word) for word in handle.read().split()]


def test_nohup_escape_is_found_through_the_session(kernel: Kernel):
    out = kernel.run(
        "import subprocess\n"
        "print(subprocess.run('nohup sleep 61 >/dev/null 2>&1 & echo $!', shell=True,"
        " capture_output=True, text=True).stdout)"
    )
    sleeper = int(out.split()[0])
    try:
        assert wait_until(lambda: os.path.exists(f"/proc/{sleeper}"))
        tree = walk_tree(kernel.pid)
        assert sleeper not in tree
        scan = scan_host()
        assert scan.processes[sleeper].sid == kernel.pid
        escaped = escaped_members({"k": KernelRoot(kernel.pid, tree=tree)}, scan)
        assert sleeper in escaped["k"]
        assert os.getpid() not in escaped["k"] and 1 not in escaped["k"]
        assert not set(escaped["k"]) & set(tree)
    finally:
        kill_all([sleeper])


def test_a_kept_stat_file_reads_fresh_and_ends_with_its_process():
    from jupyter_memguard.probe.kept_files import KeptFiles

    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass\ntime.sleep(60)",
        ]
    )
    files = KeptFiles()
    path = f"/proc/{burner.pid}/stat"
    try:
        first = parse_stat(files.read(path) or b"")
        time.sleep(0.6)
        later = parse_stat(files.read(path) or b"")
        assert first is not None and later is not None and len(files) == 1
        assert later.cpu_ticks > first.cpu_ticks  # formatted afresh at each read
    finally:
        burner.kill()
        burner.wait()
    assert files.read(path) is None and len(files) == 0  # reaped: never a later process
    files.close()
    assert files.read(f"/proc/{os.getpid()}/stat") is not None and len(files) == 0


def test_process_pss_is_read_again_only_when_the_process_or_its_memory_moved():
    """A real process: its smaps_rollup is read once, not again for page faults alone (a
    running server makes them all the time), again when its RSS moved or it is another
    process, or its figure is old."""
    from dataclasses import replace

    from jupyter_memguard.probe.proctree import ProcessPss

    me = scan_host().processes[os.getpid()]
    pss = ProcessPss(max_age_s=3600)
    first = pss.of([me])
    assert pss.fresh_reads == 1 and first[me.pid][0] > 0
    assert pss.of([replace(me, rss_bytes=me.rss_bytes + 4096)]) == first
    assert pss.fresh_reads == 0  # one page more: the last figure holds
    pss.of([replace(me, rss_bytes=me.rss_bytes + 64 * 2**20)])
    assert pss.fresh_reads == 1  # 64 MiB more: read again
    pss.of([replace(me, start_ticks=me.start_ticks + 1)])
    assert pss.fresh_reads == 1  # another process given the same pid
    old = ProcessPss(max_age_s=0)
    old.of([me])
    old.of([me])
    assert old.fresh_reads == 1  # its figure is old: read again
