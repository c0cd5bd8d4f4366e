"""Budget detection on fake cgroup v1/v2 trees and on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_memguard.probe.limits import find_cgroup, read_budget
from jupyter_memguard.units import parse_size

GiB = 1024**3
MEMINFO = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_v2(root: Path, limit: str, parent_limit: str = "max") -> None:
    write(root, "proc/meminfo", MEMINFO)
    write(root, "proc/vmstat", "nr_free_pages 100\noom_kill 7\n")
    write(root, "proc/self/cgroup", "0::/user.slice/jupyter\n")
    write(
        root, "proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
    )
    base = "sys/fs/cgroup/user.slice"
    write(root, f"{base}/memory.max", parent_limit + "\n")
    write(root, f"{base}/memory.current", str(3 * GiB))
    write(root, f"{base}/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    write(root, f"{base}/memory.stat", "anon 100\ninactive_file 0\n")
    write(root, f"{base}/jupyter/memory.max", limit + "\n")
    write(root, f"{base}/jupyter/memory.current", str(GiB))
    write(root, f"{base}/jupyter/memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n")
    write(root, f"{base}/jupyter/memory.stat", "anon 100\ninactive_file 104857600\n")


def fake_v1(root: Path, limit: int) -> None:
    write(root, "proc/meminfo", MEMINFO)
    write(root, "proc/self/cgroup", "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    write(
        root,
        "proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
    )
    base = "sys/fs/cgroup/memory"
    write(root, f"{base}/memory.limit_in_bytes", "9223372036854771712\n")
    write(root, f"{base}/memory.usage_in_bytes", str(5 * GiB))
    write(root, f"{base}/docker/abc/memory.limit_in_bytes", f"{limit}\n")
    write(root, f"{base}/docker/abc/memory.usage_in_bytes", str(GiB))
    write(root, f"{base}/docker/abc/memory.stat", "cache 10\ntotal_inactive_file 52428800\n")
    write(
        root,
        f"{base}/docker/abc/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    )
    (root / "sys/fs/cgroup/unified").mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1234, 1234),
        ("1234", 1234),
        ("4G", 4 * GiB),
        ("4GiB", 4 * GiB),
        ("4GB", 4 * 10**9),
        ("512MiB", 512 * 1024**2),
        ("1.5 GB", 1_500_000_000),
        ("100k", 102400),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "4X", "four gigs", "-1G", -5, "1.2.3G", True])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_cgroup_v2_limit_and_counters(tmp_path):
    fake_v2(tmp_path, str(2 * GiB))
    budget = read_budget(root=tmp_path)
    assert budget.limit_bytes == 2 * GiB and budget.limit_source == "cgroup_v2"
    assert budget.usage_bytes == GiB - 100 * 1024**2  # working set: current - inactive_file
    assert budget.oom_kill_count == 1 and budget.system_oom_kill_count == 7
    assert budget.cgroup_version == 2
    assert budget.candidates == {"host": 16_000_000 * 1024, "cgroup_v2": 2 * GiB}


def test_cgroup_v2_parent_limit_applies(tmp_path):
    fake_v2(tmp_path, "max", parent_limit=str(3 * GiB))
    reading = find_cgroup(tmp_path)
    assert reading is not None and reading.limit_bytes == 3 * GiB
    assert reading.path.endswith("user.slice")
    assert reading.oom_kill_count == 2


def test_cgroup_v1_limit_and_counters(tmp_path):
    fake_v1(tmp_path, 1536 * 1024**2)
    budget = read_budget(root=tmp_path)
    assert budget.limit_source == "cgroup_v1" and budget.limit_bytes == 1536 * 1024**2
    assert budget.usage_bytes == GiB - 50 * 1024**2
    assert budget.oom_kill_count == 3 and budget.cgroup_version == 1


def test_cgroup_v1_unlimited_falls_back_to_host(tmp_path):
    fake_v1(tmp_path, 9223372036854771712)
    budget = read_budget(root=tmp_path)
    assert budget.limit_source == "host" and budget.limit_bytes == 16_000_000 * 1024
    assert budget.usage_bytes == (16_000_000 - 12_000_000) * 1024
    assert budget.oom_kill_count == 3  # the counter is still read


def test_configured_limit_wins_when_smallest(tmp_path):
    fake_v2(tmp_path, str(2 * GiB))
    budget = read_budget(configured_limit=GiB, tree_rss_bytes=300, root=tmp_path)
    assert (budget.limit_bytes, budget.limit_source, budget.usage_bytes) == (GiB, "config", 300)
    larger = read_budget(configured_limit=8 * GiB, root=tmp_path)
    assert larger.limit_source == "cgroup_v2"


def test_namespaced_cgroup_path(tmp_path):
    # Inside a container the mount root is our own cgroup and /proc/self/cgroup says "/".
    fake_v2(tmp_path, str(2 * GiB))
    (tmp_path / "proc/self/cgroup").write_text("0::/\n")
    mount = "30 23 0:26 /user.slice/jupyter /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    (tmp_path / "proc/self/mountinfo").write_text(mount)
    # The mount now shows the jupyter cgroup at its root.
    for name in ("memory.max", "memory.current", "memory.events", "memory.stat"):
        (tmp_path / "sys/fs/cgroup" / name).write_text(
            (tmp_path / "sys/fs/cgroup/user.slice/jupyter" / name).read_text()
        )
    budget = read_budget(root=tmp_path)
    assert budget.limit_bytes == 2 * GiB and budget.limit_source == "cgroup_v2"


def test_real_machine_budget():
    budget = read_budget()
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(meminfo.split("MemTotal:")[1].split()[0])
    assert budget.host_total_bytes == total_kb * 1024
    assert 0 < budget.limit_bytes <= budget.host_total_bytes
    assert 0 < budget.usage_bytes < budget.limit_bytes
    assert budget.limit_source in ("cgroup_v2", "cgroup_v1", "host")


def test_spawner_mem_limit_counts_and_an_enforced_cgroup_wins_a_tie(tmp_path):
    fake_v2(tmp_path, str(2 * GiB))
    budget = read_budget(tree_rss_bytes=500, root=tmp_path, spawner_limit=GiB)
    assert (budget.limit_bytes, budget.limit_source, budget.usage_bytes) == (
        GiB,
        "spawner_mem_limit",
        500,
    )
    assert budget.candidates["spawner_mem_limit"] == GiB
    tie = read_budget(root=tmp_path, spawner_limit=2 * GiB)
    assert tie.limit_source == "cgroup_v2"
    config = read_budget(configured_limit=GiB, root=tmp_path, spawner_limit=GiB)
    assert config.limit_source == "config"


def test_a_kernels_own_cgroup_limit_is_rewritten_only_when_it_moves(tmp_path):
    import logging

    from jupyter_memguard.guard.kernel_cgroups import KernelCgroups, limit_files

    assert limit_files(1, 1000 * 2**20) == [("memory.limit_in_bytes", str(1000 * 2**20))]
    v2 = dict(limit_files(2, 1000 * 2**20))
    assert v2["memory.oom.group"] == "1" and v2["memory.max"] == str(1000 * 2**20)
    assert int(v2["memory.high"]) < 1000 * 2**20  # a brake a little below the kill

    # A fake v1 parent: the kernel's cgroup made there, its limit written, rewritten only when
    # it moved enough.
    parent = tmp_path / "memory"
    parent.mkdir()
    cgroups = KernelCgroups(True, logging.getLogger("test"), parent=parent)
    (parent / "memguard-kernel-k").mkdir()
    (parent / "memguard-kernel-k" / "cgroup.procs").write_text("")
    assert cgroups.adopt("k", 12345)
    limit = parent / "memguard-kernel-k" / "memory.limit_in_bytes"
    assert cgroups.set_limit("k", 900 * 2**20) and limit.read_text() == str(900 * 2**20)
    assert cgroups.set_limit("k", 905 * 2**20) and limit.read_text() == str(900 * 2**20)
    assert cgroups.set_limit("k", 700 * 2**20) and limit.read_text() == str(700 * 2**20)
    assert cgroups.limit_of("k") == 700 * 2**20
    assert cgroups.set_limit("other", 2**30) is False  # no cgroup of its own


def test_a_kernel_is_placed_in_its_cgroup_at_its_start_and_restart():
    """Real v1 cgroups: the lifecycle's Started and Restarted move the kernel's process into
    its cgroup at once (not at the next tick), and Gone removes the cgroup."""
    import logging
    import subprocess
    import time

    from jupyter_memguard.guard.kernel_cgroups import PREFIX, KernelCgroups
    from jupyter_memguard.lifecycle import Gone, KernelLife, Restarted, Started

    from . import cgroups

    if cgroups.unavailable_reason() is not None or cgroups._v2_root() is not None:
        pytest.skip(f"needs a v1 memory hierarchy: {cgroups.unavailable_reason() or 'v2 here'}")

    def in_its_cgroup(pid: int) -> bool:
        return f"/{PREFIX}k\n" in Path(f"/proc/{pid}/cgroup").read_text()

    with cgroups.memory_cgroup(2**30) as server:
        first, second = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"])
        try:
            kernel_cgroups = KernelCgroups(True, logging.getLogger("test"), parent=server.path)
            life = KernelLife("k", "python3", 0, first.pid, first.pid, time.time())
            kernel_cgroups.on_lifecycle(Started(life, time.time()))
            assert in_its_cgroup(first.pid) and not in_its_cgroup(second.pid)
            assert kernel_cgroups.usage("k") is not None  # its figure: the cgroup's, at once
            again = KernelLife("k", "python3", 1, second.pid, second.pid, time.time())
            kernel_cgroups.on_lifecycle(Restarted(again, life, "request", time.time()))
            assert in_its_cgroup(second.pid)
            # A kernel with no local process (remote) is never placed.
            remote = KernelLife("r", "python3", 0, None, None, time.time())
            kernel_cgroups.on_lifecycle(Started(remote, time.time()))
            assert not (server.path / f"{PREFIX}r").exists()
        finally:
            first.kill(), second.kill()
            first.wait(), second.wait()
        kernel_cgroups.on_lifecycle(Gone(again, "shutdown", time.time()))
        for _ in range(50):
            kernel_cgroups.release("")
            if not (server.path / f"{PREFIX}k").exists():
                break
            time.sleep(0.1)
        assert not (server.path / f"{PREFIX}k").exists()


def test_kernel_cgroups_left_by_a_dead_server_are_removed_at_start():
    """Real v1 cgroups: a server SIGKILLed leaves its kernels' cgroups behind."""
    import logging
    import os
    import subprocess
    import time

    from jupyter_memguard.guard.kernel_cgroups import PREFIX, KernelCgroups

    from . import cgroups

    if cgroups.unavailable_reason() is not None or cgroups._v2_root() is not None:
        pytest.skip(f"needs a v1 memory hierarchy: {cgroups.unavailable_reason() or 'v2 here'}")
    with cgroups.memory_cgroup(2**30) as server:
        old_empty, old_busy, fresh = (server.path / f"{PREFIX}{n}" for n in ("a", "b", "c"))
        for directory in (old_empty, old_busy, fresh):
            directory.mkdir()
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            (old_busy / "cgroup.procs").write_text(str(sleeper.pid))  # a kernel left behind
            for directory in (old_empty, old_busy):
                os.utime(directory, (time.time() - 3600,) * 2)
            kernel_cgroups = KernelCgroups(True, logging.getLogger("test"), parent=server.path)
            assert not old_empty.exists()  # the dead server's, empty: gone
            assert fresh.exists()  # maybe another server's, made a moment ago: left alone
            assert old_busy.exists()  # still holds a process: removed once it is empty
            sleeper.kill()
            sleeper.wait()
            for _ in range(50):
                kernel_cgroups.release("")
                if not old_busy.exists():
                    break
                time.sleep(0.1)
            assert not old_busy.exists()
        finally:
            sleeper.kill()


def test_a_kernel_cgroups_charge_says_whether_anything_in_it_moved():
    """Real v1 cgroups: a sleeping process leaves the charge counter still; a fork in it moves
    it (the child's page tables and copied pages are charged), so the tree is read again."""
    import logging
    import signal
    import subprocess
    import sys
    import time

    from jupyter_memguard.guard.kernel_cgroups import KernelCgroups

    from . import cgroups

    if cgroups.unavailable_reason() is not None or cgroups._v2_root() is not None:
        pytest.skip(f"needs a v1 memory hierarchy: {cgroups.unavailable_reason() or 'v2 here'}")
    forker = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: os.fork() or None)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(60)\n"
    )
    with cgroups.memory_cgroup(2**30) as server:
        process = subprocess.Popen([sys.executable, "-c", forker], stdout=subprocess.PIPE)
        try:
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
            kernel_cgroups = KernelCgroups(True, logging.getLogger("test"), parent=server.path)
            assert kernel_cgroups.adopt("k", process.pid)
            kernel_cgroups.usage("k")
            assert not kernel_cgroups.charge_still("k")  # the first read: nothing to compare
            for _ in range(20):  # charges of the move itself may still settle
                time.sleep(0.1)
                kernel_cgroups.usage("k")
                if kernel_cgroups.charge_still("k"):
                    break
            assert kernel_cgroups.charge_still("k")
            process.send_signal(signal.SIGUSR1)
            time.sleep(0.5)  # the child runs: its copy-on-write pages are charged
            kernel_cgroups.usage("k")
            assert not kernel_cgroups.charge_still("k")
            assert kernel_cgroups.charge_still("other") is False  # no cgroup of its own
        finally:
            subprocess.run(["pkill", "-KILL", "-P", str(process.pid)], check=False)
            process.kill()
            process.wait()
            kernel_cgroups.release("k")
