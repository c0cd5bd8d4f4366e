"""What one system call costs on this machine right after other work, the reference for the
kernel agent's cost per cell (benchmarks/agent.py): the hooks make a few system calls after the
cell's own code or ipykernel's message handling, never back to back.

    python benchmarks/cold_syscall.py

For each gap of pure-Python work before it: the first ``pread`` of /proc/self/statm, then a
second one right after it (median of 100, wall clock).
"""

from __future__ import annotations

import os
import statistics
import time


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        for gap in (0.0, 0.0002, 0.001, 0.004, 0.02):
            first, second = [], []
            for _ in range(100):
                spin(gap)
                a = time.perf_counter_ns()
                os.pread(fd, 4096, 0)
                b = time.perf_counter_ns()
                os.pread(fd, 4096, 0)
                c = time.perf_counter_ns()
                first.append(b - a)
                second.append(c - b)
            print(
                f"after {gap * 1e3:5.1f} ms of other work: first read "
                f"{statistics.median(first) / 1e3:5.1f} µs, the next "
                f"{statistics.median(second) / 1e3:4.1f} µs"
            )
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
