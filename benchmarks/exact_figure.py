"""What the exact figure (PSS summed over a kernel's tree) costs, against the cheap RSS sum.

Builds real process trees and times, in this process:
  * a 4 GiB parent with 4 forked children that share its pages copy-on-write (as
    multiprocessing with fork, DataLoader workers or joblib do);
  * 5 processes of 0.8 GiB each, nothing shared;
  * the same readings again with the tree unchanged (the TreePss cache).

    python benchmarks/exact_figure.py [--gib 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from jupyter_memguard.probe.proc import tree_rss
from jupyter_memguard.probe.proctree import TreePss, tree_pss_bytes, walk_tree

SHARED = """
import os, sys, time
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


def measure(code: str, gib: float, label: str) -> dict[str, object]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(gib)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=4.0, help="memory of the tree")
    args = parser.parse_args()
    for code, label in ((SHARED, "shared copy-on-write"), (SEPARATE, "separate")):
        print(json.dumps(measure(code, args.gib, label)), flush=True)


if __name__ == "__main__":
    main()
