"""How fast and how reliably memguard stops a runaway kernel before the kernel OOM killer does.

Runs a real jupyter_server with memguard inside a memory-limited cgroup (tests/lab.py; root and
a cgroup memory controller needed), and for each allocation speed starts a fresh kernel per run
that allocates (bytearray chunks of 32 MiB, every page touched) until something stops it.
Reports per speed:
  * the fraction of runs halted by memguard before the OOM killer (verdict
    ``halted_by_memguard`` in the journal and the cgroup's ``oom_kill`` counter unchanged),
  * the time from the cgroup's working set crossing the halt line (logged by the allocator per
    32 MiB chunk, the crossing inside a chunk estimated at the measured rate) to memguard's
    kernel_halting event and to the kernel's recorded end (median, p95),
  * the peak as a fraction of the limit (the larger of the allocator's logged working set and
    memguard's recorded peak; both sampled, so a lower bound),
  * whether the server survived;
  * the reference for the end: a plain process holding as much memory (the limit's halt
    line) SIGKILLed, until it has exited. Exiting frees the memory, which takes time (about
    0.1 s per GiB on the machine these figures come from); no guard ends a kernel faster.
Then the server's CPU use with N idle kernels over a period, with memguard on and off.

    python benchmarks/oom_reaction.py                       # 20 runs at 1 and 2 GB/s, 2 GiB
    python benchmarks/oom_reaction.py --runs 5 --idle-seconds 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import cgroups
from tests.lab import EventStream, GiB, Lab, MiB, allocate_code, execute, lab_server, warm_memory
from tests.servers import ServerProcess

HALT_FRACTION = 0.9  # memguard's default halt_fraction (the benchmark uses the defaults)
CHUNK = 32 * MiB


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def read_log(path: Path) -> tuple[float, list[tuple[float, int]]]:
    """(start time, [(time, cgroup working set)]) from the allocator's log."""
    started, samples = 0.0, []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "start":
            started = float(parts[1])
        elif parts[0] != "deadline":
            samples.append((float(parts[0]), int(parts[1])))
    return started, samples


def crossing_time(samples: list[tuple[float, int]], line: float, rate: float) -> float | None:
    """When the working set crossed ``line``: logged, or extrapolated from the last sample.

    The allocator logs once per 32 MiB chunk, and memguard usually stops it inside the chunk
    that crosses the line; the crossing is then estimated at the run's measured rate.
    """
    for (t0, w0), (t1, w1) in itertools.pairwise(samples):
        if w1 >= line:
            return t0 + (t1 - t0) * (line - w0) / max(1, w1 - w0) if w0 < line else t0
    if not samples or rate <= 0:
        return None
    t_last, w_last = samples[-1]
    return t_last + max(0.0, line - w_last) / rate


def one_run(lab: Lab, events: EventStream, rate: float, index: int) -> dict[str, Any]:
    kernel_id = lab.kernel(f"runaway-{index}.ipynb")
    oom_before = lab.group.oom_kills()
    log = lab.logs / f"alloc-{int(rate)}-{index}.log"
    execute(lab.server, kernel_id, allocate_code(log, lab.group.path, rate=rate, chunk=CHUNK))
    record = lab.wait_termination(kernel_id, timeout=60)
    started, samples = read_log(log)
    achieved = CHUNK * len(samples) / max(1e-3, (samples[-1][0] if samples else started) - started)
    crossed = crossing_time(samples, HALT_FRACTION * lab.limit_bytes, achieved)
    halting = [
        e["_received_at"] for kind, e in events.memguard(kernel_id) if kind == "kernel_halting"
    ]
    peak = max([ws for _, ws in samples] + [record["evidence"].get("peak_rss_bytes") or 0])
    return {
        "verdict": record["verdict"],
        "oom_killer_fired": lab.group.oom_kills() > oom_before,
        "achieved_gb_per_s": round(achieved / 1e9, 2),
        "peak_fraction": round(peak / lab.limit_bytes, 3),
        "crossed_to_halting_s": (
            round(halting[0] - crossed, 3) if crossed is not None and halting else None
        ),
        "crossed_to_end_s": None if crossed is None else round(record["ended_at"] - crossed, 3),
        "server_alive": lab.server.alive(),
    }


def speed_series(
    rate: float, runs: int, limit: int, root: Path, agent: bool = True
) -> dict[str, Any]:
    results = []
    with (
        lab_server(
            limit, f"--MemGuard.kernel_agent={agent}", root=root, lifetime_s=60 + runs * 30
        ) as lab,
        EventStream(lab.server) as events,
    ):
        warm_memory(limit + GiB)
        for index in range(runs):
            result = one_run(lab, events, rate, index)
            results.append(result)
            print(json.dumps({"rate_gb_per_s": rate / 1e9, **result}), flush=True)
    halted = [
        r for r in results if r["verdict"] == "halted_by_memguard" and not r["oom_killer_fired"]
    ]
    stops = [r["crossed_to_halting_s"] for r in results if r["crossed_to_halting_s"] is not None]
    ends = [r["crossed_to_end_s"] for r in results if r["crossed_to_end_s"] is not None]
    return {
        "target_gb_per_s": rate / 1e9,
        "kernel_agent": agent,
        "runs": len(results),
        "achieved_gb_per_s_median": statistics.median(r["achieved_gb_per_s"] for r in results),
        "halted_before_oom_killer": f"{len(halted)}/{len(results)}",
        "crossed_to_halting_s": _spread(stops),
        "crossed_to_end_s": _spread(ends),
        "peak_fraction_max": max(r["peak_fraction"] for r in results),
        "peak_fraction_median": statistics.median(r["peak_fraction"] for r in results),
        "server_survived": all(r["server_alive"] for r in results),
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(percentile(values, 0.95), 3),
    }


def exit_floor(size: int, runs: int = 3) -> float:
    """Seconds from SIGKILL to the exit of a process holding ``size`` bytes (median)."""
    code = f"import time; x = bytearray({size}); print(flush=True); time.sleep(60)"
    times = []
    for _ in range(runs):
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert process.stdout is not None
        process.stdout.readline()
        started = time.monotonic()
        process.kill()
        process.wait()
        times.append(time.monotonic() - started)
    return round(statistics.median(times), 3)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(kernels: int, seconds: float, memguard: bool) -> dict[str, Any]:
    """CPU used by the server process (not its kernels) while N kernels sit idle."""
    server = ServerProcess(ready_path="api/status")
    if not memguard:  # the same server with the extension switched off
        server.command = [
            "--ServerApp.jpserver_extensions={'jupyter_memguard': False}"
            if arg.startswith("--ServerApp.jpserver_extensions")
            else arg
            for arg in server.command
        ]
    with server:
        ids = [server.start_kernel() for _ in range(kernels)]
        deadline = time.monotonic() + 60 + 5 * kernels
        while not all(server.connection_file(k).exists() for k in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("kernels did not start")
            time.sleep(0.5)
        time.sleep(10 + kernels)  # the same settling time with and without memguard
        before, started = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(server.pid) - before, time.monotonic() - started
    return {
        "memguard": memguard,
        "kernels": kernels,
        "seconds": round(wall, 1),
        "server_cpu_percent_of_one_core": round(100 * used / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per allocation speed")
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 2.0], help="GB/s")
    parser.add_argument("--limit-gib", type=float, default=2.0, help="cgroup memory limit")
    parser.add_argument(
        "--agent",
        choices=["on", "off", "both"],
        default="both",
        help="with the kernel agent (its report of the interrupted cell's end ends the wait), "
        "without it (interrupt_grace is waited out), or both",
    )
    parser.add_argument("--idle-kernels", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    reason = cgroups.unavailable_reason()
    if reason is not None:
        sys.exit(f"oom_reaction needs a memory cgroup: {reason}")
    limit = int(args.limit_gib * GiB)
    series = []
    agents = {"on": [True], "off": [False], "both": [True, False]}[args.agent]
    for agent in agents:
        for rate in args.rates:
            root = Path(tempfile.mkdtemp(prefix="memguard-oom-bench-"))
            series.append(speed_series(rate * 1e9, args.runs, limit, root, agent))
    floor = exit_floor(int(HALT_FRACTION * limit))
    idle = [idle_cpu(args.idle_kernels, args.idle_seconds, on) for on in (True, False)]
    print()
    print(
        f"| agent | target | achieved (median) | halted before the OOM killer | halt line → memguard "
        f"acts (median / p95) | halt line → kernel ended (median / p95) | peak / limit "
        f"(median / max) | server survived |  ({args.limit_gib:g} GiB cgroup)"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in series:
        stop, end = s["crossed_to_halting_s"] or {}, s["crossed_to_end_s"] or {}
        print(
            f"| {'on' if s['kernel_agent'] else 'off'} | {s['target_gb_per_s']:g} GB/s | {s['achieved_gb_per_s_median']} GB/s "
            f"| {s['halted_before_oom_killer']} "
            f"| {stop.get('median')} / {stop.get('p95')} s | {end.get('median')} / {end.get('p95')} s "
            f"| {s['peak_fraction_median']} / {s['peak_fraction_max']} | {s['server_survived']} |"
        )
    print()
    print(f"reference: a process holding the halt line's memory, SIGKILLed, exits in {floor} s")
    for r in idle:
        print(
            f"server CPU, {r['kernels']} idle kernels, {r['seconds']} s, memguard "
            f"{'on' if r['memguard'] else 'off'}: {r['server_cpu_percent_of_one_core']} % of one core"
        )
    if args.json:
        results = {"series": series, "exit_floor_s": floor, "idle": idle}
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
