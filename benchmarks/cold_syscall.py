"""What one system call costs on this machine right after other work, the reference for the
kernel agent's cost per cell (benchmarks/agent.py): the hooks make a few system calls after the
cell's own code or ipykernel's message handling, never back to back.

    python benchmarks/cold_syscall.py

First, for each gap of pure-Python work before it: the first ``pread`` of /proc/self/statm,
then a second one right after it (median of 100, wall clock). Then each call the hooks make,
after 5 ms of other work and right after another system call (so only that call's own path is
cold): the first call and the one right after it, median of 60, and the sum of the first
calls, which no code making those calls can go below on this machine.
"""

from __future__ import annotations

import _signal  # the agent's way: without signal.signal's enum conversions
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def first_and_next(call: Callable[[], object], gap: float, runs: int) -> tuple[float, float]:
    first, second = [], []
    for _ in range(runs):
        spin(gap)
        os.getpid()  # another system call just before: the cold part is this call's own
        a = time.perf_counter_ns()
        call()
        b = time.perf_counter_ns()
        call()
        c = time.perf_counter_ns()
        first.append(b - a)
        second.append(c - b)
    return statistics.median(first) / 1e3, statistics.median(second) / 1e3


def gaps() -> None:
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        for gap in (0.0, 0.0002, 0.001, 0.004, 0.02):
            first, second = first_and_next(lambda: os.pread(fd, 4096, 0), gap, 100)
            print(
                f"after {gap * 1e3:5.1f} ms of other work: first read "
                f"{first:5.1f} µs, the next {second:4.1f} µs"
            )
    finally:
        os.close(fd)


def hook_calls() -> None:
    statm = os.open("/proc/self/statm", os.O_RDONLY)
    status = os.open("/proc/self/status", os.O_RDONLY)
    clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
    ours, server = socket.socketpair()

    def serve() -> None:  # the server's side: blocked in recv, as memguard's reader is
        while server.recv(65536):
            pass

    threading.Thread(target=serve, daemon=True).start()
    handler = signal.getsignal(signal.SIGINT)
    calls = {
        "sigaction (the cell's SIGINT handler)": lambda: _signal.signal(signal.SIGINT, handler),
        "pread /proc/self/statm (RSS at the start)": lambda: os.pread(statm, 4096, 0),
        "send to a reader blocked in recv": lambda: ours.send(b"x" * 200),
        "pwrite /proc/self/clear_refs (VmHWM reset)": lambda: os.pwrite(clear_refs, b"5", 0),
        "pread /proc/self/status (RSS and VmHWM at the end)": lambda: os.pread(status, 4096, 0),
    }
    total = 0.0
    print("\nafter 5 ms of other work, each call the hooks make (median of 60):")
    try:
        for name, call in calls.items():
            first, second = first_and_next(call, 0.005, 60)
            total += first
            print(f"  {name:52s} first {first:5.1f} µs, the next {second:4.1f} µs")
        print(f"  sum of the first calls (the second send not counted): {total:.0f} µs")
    finally:
        ours.close()
        for fd in (statm, status, clear_refs):
            os.close(fd)


if __name__ == "__main__":
    gaps()
    hook_calls()
