"""What per-cell tracking costs: event-loop time per cell, and what it adds to a tick.

* A real jupyter_server with memguard and one kernel runs N cells (each prints a line and
  allocates a little), with the kernel agent and without it; the listeners' own counters
  (/api/memguard/status → iopub, agent) give the event-loop seconds spent per cell (receive,
  filter, parse, cell bookkeeping, the memory reads at a cell's start and end).
* In process: what the monitor's per-tick cell bookkeeping (one ``observe`` per kernel)
  costs for K kernels, to set beside the sampling pass of benchmarks/sampling.py.

  python benchmarks/cells.py --cells 200 --kernels 10 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from jupyter_client.blocking import BlockingKernelClient
from sampling import Server  # benchmarks/sampling.py

from jupyter_memguard.probe.cells import CellTracker

CELL = "x = bytearray(1 << 20); print('cell done')"


def event_loop_per_cell(cells: int, agent: bool) -> dict[str, float]:
    server = Server(["--MemGuard.poll_interval=0.5", f"--MemGuard.kernel_agent={agent}"])
    try:
        kernel_id = server.request("api/kernels", "POST", {"name": "python3"})["id"]
        runtime = Path(server.root) / ".runtime"
        deadline = time.monotonic() + 60
        files = []
        while not files and time.monotonic() < deadline:
            files = list(
                Path("/").glob(f"root/.local/share/jupyter/runtime/kernel-{kernel_id}.json")
            )
            files += list(runtime.glob(f"kernel-{kernel_id}.json")) if runtime.exists() else []
            time.sleep(0.2)
        client = BlockingKernelClient(connection_file=str(files[0]))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.execute_interactive("1", timeout=30)
        time.sleep(1)
        status = server.get("api/memguard/status")
        before, agent_before = status["iopub"], status["agent"].get("callback_seconds", 0.0)
        for _ in range(cells):
            client.execute_interactive(CELL, timeout=30, output_hook=lambda msg: None)
        time.sleep(1)
        status = server.get("api/memguard/status")
        after, agent_after = status["iopub"], status["agent"].get("callback_seconds", 0.0)
        records = server.get(f"api/memguard/kernels/{kernel_id}/cells")["cells"]
        client.stop_channels()
        spent = after["callback_seconds"] - before["callback_seconds"]
        spent += agent_after - agent_before
        return {
            "kernel_agent": agent,
            "source": records[0]["source"] if records else None,
            "cells": cells,
            "recorded": len(records),
            "event_loop_ms_per_cell": round(spent * 1000 / cells, 3),
            "messages_per_cell": round(
                (after["messages_received"] - before["messages_received"]) / cells, 1
            ),
        }
    finally:
        server.stop()


def observe_per_tick(kernels: int, repeat: int = 2000) -> dict[str, float]:
    tracker = CellTracker(read_memory=lambda kid: 100 << 20, pid_of=lambda kid: None)
    ids = [f"kernel-{i}" for i in range(kernels)]
    times = []
    for n in range(repeat):
        started = time.perf_counter()
        for kid in ids:
            tracker.observe(kid, (100 << 20) + n, float(n))
        times.append(time.perf_counter() - started)
    return {"kernels": kernels, "observe_per_tick_ms": round(statistics.median(times) * 1000, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--kernels", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()
    for agent in (True, False):
        print(json.dumps(event_loop_per_cell(args.cells, agent)), flush=True)
    for count in args.kernels:
        print(json.dumps(observe_per_tick(count)), flush=True)


if __name__ == "__main__":
    main()
