"""What memguard costs while nothing happens: N idle kernels, its whole overhead, its heartbeat.

Starts a real jupyter_server with N real ipykernel kernels, twice: with memguard and with the
extension switched off (the reference: the same server doing only its own work). Reports
  * the server process's CPU over ``--seconds``, both ways, and memguard's overhead (the
    difference) in % of one core;
  * memguard's pass per tick (CPU of the event loop and of the worker thread), at N and at
    ``--baseline`` kernels, and the cost of each further idle kernel (the slope);
  * the heartbeat: how many were written and the CPU each took.

    python benchmarks/idle.py --kernels 20 --baseline 2 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import ServerProcess


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def started(kernels: int, memguard: bool) -> ServerProcess:
    server = ServerProcess(ready_path="api/status")
    if not memguard:  # the same server with the extension switched off
        server.command = [
            "--ServerApp.jpserver_extensions={'jupyter_memguard': False}"
            if arg.startswith("--ServerApp.jpserver_extensions")
            else arg
            for arg in server.command
        ]
    server.start()
    ids = [server.start_kernel() for _ in range(kernels)]
    deadline = time.monotonic() + 60 + 5 * kernels
    while not all(server.connection_file(k).exists() for k in ids):
        if time.monotonic() > deadline:
            raise RuntimeError("kernels did not start")
        time.sleep(0.5)
    time.sleep(15 + kernels / 2)  # settle: imports done, first host scans made
    return server


def tick_costs(server: ServerProcess, ticks: int = 20) -> dict[str, float]:
    """memguard's CPU per pass, loop and thread (median, p95) over ``ticks`` passes."""
    costs, seen = [], set()
    deadline = time.monotonic() + 120
    while len(costs) < ticks and time.monotonic() < deadline:
        status = server.get("api/memguard/status")
        if status["tick"] not in seen:
            seen.add(status["tick"])
            costs.append(status["last_tick_cost_seconds"] * 1000)
        time.sleep(0.3)
    costs.sort()
    return {
        "median_ms": round(statistics.median(costs), 3),
        "p95_ms": round(costs[max(0, int(len(costs) * 0.95) - 1)], 3),
    }


def idle_cpu(kernels: int, seconds: float, memguard: bool) -> dict[str, Any]:
    server = started(kernels, memguard)
    try:
        before, begun = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(server.pid) - before, time.monotonic() - begun
        result: dict[str, Any] = {
            "memguard": memguard,
            "kernels": kernels,
            "seconds": round(wall, 1),
            "server_cpu_percent_of_one_core": round(100 * used / wall, 3),
        }
        if memguard:
            result["tick"] = tick_costs(server)
            session = server.get("api/memguard/status")["server_session"]
            beats = session["heartbeats"]
            result["heartbeats"] = beats
            result["heartbeat_cpu_ms_each"] = (
                round(1000 * session["heartbeat_cpu_seconds"] / beats, 3) if beats else None
            )
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=2, help="kernels for the slope's start")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    on = idle_cpu(args.kernels, args.seconds, memguard=True)
    off = idle_cpu(args.kernels, args.seconds, memguard=False)
    few = started(args.baseline, memguard=True)
    try:
        few_tick = tick_costs(few)
    finally:
        few.stop()
    slope_us = (
        1000 * (on["tick"]["median_ms"] - few_tick["median_ms"]) / (args.kernels - args.baseline)
    )
    overhead = round(
        on["server_cpu_percent_of_one_core"] - off["server_cpu_percent_of_one_core"], 3
    )
    results = {
        "with_memguard": on,
        "without_memguard": off,
        "memguard_overhead_percent_of_one_core": overhead,
        "tick_at_baseline": {"kernels": args.baseline, **few_tick},
        "tick_cost_per_idle_kernel_us": round(slope_us, 1),
    }
    print(json.dumps(results, indent=2))
    print()
    print(
        f"| {args.kernels} idle kernels, {on['seconds']:.0f} s | server CPU with memguard | "
        "without (reference) | memguard's overhead | pass per tick (median / p95) | "
        "per idle kernel | heartbeat |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| | {on['server_cpu_percent_of_one_core']} % | {off['server_cpu_percent_of_one_core']} % "
        f"| **{overhead} %** of one core | {on['tick']['median_ms']} / {on['tick']['p95_ms']} ms "
        f"(at {args.baseline}: {few_tick['median_ms']} ms) | {slope_us:.0f} µs "
        f"| {on['heartbeats']} written, {on['heartbeat_cpu_ms_each']} ms CPU each |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
