"""What the exact figure (PSS summed over a kernel's tree) costs, against the cheap RSS sum.

Builds real process trees and times, in this process:
  * a 4 GiB parent with 4 forked children that share its pages copy-on-write (as
    multiprocessing with fork, DataLoader workers or joblib do);
  * 5 processes of 0.8 GiB each, nothing shared;
  * the same readings again with the tree unchanged (the TreePss cache);
  * where the machine allows (root, cgroup v1 memory controller), the same shared tree in a
    memory cgroup of its own, as memguard puts each kernel: one file read.

    python benchmarks/exact_figure.py [--gib 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time

from jupyter_memguard.guard.kernel_cgroups import KernelCgroups
from jupyter_memguard.probe.proc import tree_rss
from jupyter_memguard.probe.proctree import TreePss, tree_pss_bytes, walk_tree

SHARED = """
import os, sys, time
sys.stdin.readline()  # allocate once in place (its own cgroup, when measured so)
data = bytearray(b"\\x01") * int(float(sys.argv[1]) * 2**30)
for _ in range(4):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""

SEPARATE = """
import os, sys, time
sys.stdin.readline()
size = int(float(sys.argv[1]) * 2**30 / 5)
for _ in range(4):
    if os.fork() == 0:
        data = bytearray(b"\\x02") * size
        time.sleep(600)
        os._exit(0)
data = bytearray(b"\\x01") * size
time.sleep(2)
print("ready", flush=True)
time.sleep(600)
"""


def measure(code: str, gib: float, label: str, cgroups: KernelCgroups | None = None) -> dict:
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(gib)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if cgroups is not None:
            cgroups.adopt(label, process.pid)
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while len(pids := walk_tree(process.pid)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        cold = []
        for _ in range(5):
            started = time.perf_counter()
            pss = tree_pss_bytes(pids)
            cold.append(time.perf_counter() - started)
        if cgroups is not None:
            reads = []
            for _ in range(100):
                started = time.perf_counter()
                own = cgroups.usage(label)
                reads.append(time.perf_counter() - started)
            return {
                "tree": f"{label}, in its own memory cgroup",
                "processes": len(pids),
                "rss_sum_gib": round(tree_rss(pids) / 2**30, 2),
                "cgroup_gib": round((own or 0) / 2**30, 2),
                "exact_ms_median": round(statistics.median(reads) * 1000, 3),
            }
        cache = TreePss()
        cache.read(label, pids)
        warm = []
        for _ in range(20):
            started = time.perf_counter()
            cache.read(label, pids)
            warm.append(time.perf_counter() - started)
        return {
            "tree": label,
            "processes": len(pids),
            "rss_sum_gib": round(tree_rss(pids) / 2**30, 2),
            "pss_gib": round((pss or 0) / 2**30, 2),
            "exact_ms_median": round(statistics.median(cold) * 1000, 1),
            "unchanged_tree_ms_median": round(statistics.median(warm) * 1000, 3),
        }
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if cgroups is not None:
            time.sleep(0.5)
            cgroups.release(label)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=4.0, help="memory of the tree")
    args = parser.parse_args()
    for code, label in ((SHARED, "shared copy-on-write"), (SEPARATE, "separate")):
        print(json.dumps(measure(code, args.gib, label)), flush=True)
    cgroups = KernelCgroups(True, logging.getLogger("benchmark"))
    if cgroups.available:
        print(json.dumps(measure(SHARED, args.gib, "shared", cgroups)), flush=True)
    else:
        print(json.dumps({"cgroup": f"not measured: {cgroups.reason}"}))


if __name__ == "__main__":
    main()
