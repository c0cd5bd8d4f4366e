"""Process-tree sampling against real processes, and the history ring buffer."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from jupyter_memguard.probe.proc import (
    History,
    read_pss_uss,
    read_rss,
    sample_tree,
)
from jupyter_memguard.probe.proctree import walk_tree

MiB = 2**20

TREE = """
import subprocess, sys, time
x = bytearray(b'\\x01') * (60 * 2**20)
child = subprocess.Popen([sys.executable, '-c',
    "import subprocess, sys, time\\n"
    "y = bytearray(b'\\\\x01') * (40 * 2**20)\\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; z = bytearray(b\\"\\\\\\\x01\\") * (30 * 2**20); time.sleep(60)'])\\n"
    "time.sleep(60)"])
print('ready', flush=True)
time.sleep(60)
"""


def test_tree_of_grandchildren_is_summed():
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tree = walk_tree(parent.pid)
            sample = sample_tree(parent.pid, tree)
            if len(tree) == 3 and sample.rss_bytes > 130 * MiB:
                break
            time.sleep(0.2)
        assert len(tree) == 3, tree
        assert sample.pids[0] == parent.pid and len(sample.children) == 2
        assert sample.rss_bytes >= 130 * MiB
        assert sample.peak_bytes >= sample.rss_bytes
        assert sample.pss_bytes is None
        detailed = sample_tree(parent.pid, walk_tree(parent.pid), detail=True)
        assert 0 < detailed.uss_bytes <= detailed.pss_bytes <= detailed.rss_bytes
    finally:
        for pid in reversed(walk_tree(parent.pid)):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        parent.wait()


def test_gone_process():
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(done.stdout)
    assert read_rss(pid) is None and read_pss_uss(pid) is None
    assert sample_tree(pid, walk_tree(pid)) is None


def test_own_process():
    assert read_rss(os.getpid()) > 10 * MiB
    assert os.getpid() in walk_tree(os.getppid())


def test_history_growth_and_ring():
    history = History(size=5)
    for t in range(10):
        history.add(float(t), 1000 + 100 * t)
    assert len(history.samples) == 5 and history.samples[0][0] == 5.0
    assert history.peak_bytes == 1900
    assert abs(history.growth_rate(10, now=9) - 100) < 1e-6
    assert history.growth_rate(0.5, now=9) == 0.0  # one sample in the window
    assert history.as_list()[-1] == [9.0, 1900]


def test_the_host_scan_is_made_often_under_pressure_and_seldom_while_nothing_moved():
    from jupyter_memguard.guard.monitor import (
        HOST_SCAN_INTERVAL_S,
        PRESSED_SCAN_INTERVAL_S,
        QUIET_SCAN_INTERVAL_S,
        host_scan_interval,
    )
    from jupyter_memguard.models import Budget

    MiB = 2**20
    budget = Budget(2048 * MiB, "cgroup_v1", 400 * MiB, "test", 0)
    kernels = {"a": None, "b": None}
    assert host_scan_interval(budget, 0.8, None, kernels) == HOST_SCAN_INTERVAL_S  # never made
    quiet = (410 * MiB, frozenset(kernels))  # 10 MiB ago: nothing moved
    assert host_scan_interval(budget, 0.8, quiet, kernels) == QUIET_SCAN_INTERVAL_S
    # A kernel came (or went), or the usage moved by 64 MiB: as often as before.
    assert host_scan_interval(budget, 0.8, quiet, {"a": None}) == HOST_SCAN_INTERVAL_S
    moved = (300 * MiB, frozenset(kernels))
    assert host_scan_interval(budget, 0.8, moved, kernels) == HOST_SCAN_INTERVAL_S
    # Over the warn line: every second, whatever moved.
    pressed = Budget(2048 * MiB, "cgroup_v1", 1700 * MiB, "test", 0)
    assert host_scan_interval(pressed, 0.8, (1700 * MiB, frozenset(kernels)), kernels) == (
        PRESSED_SCAN_INTERVAL_S
    )
    assert PRESSED_SCAN_INTERVAL_S < HOST_SCAN_INTERVAL_S < QUIET_SCAN_INTERVAL_S
