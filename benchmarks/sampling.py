"""Sampling cost and REST latency with N real kernels.

Starts a real jupyter_server with memguard (and jupyter-resource-usage, when installed, as the
reference), starts N ipykernel kernels, then reports:
  * memguard's sampling pass per tick (measured in the server, /api/memguard/status),
  * GET /api/memguard/kernels latency,
  * GET /api/metrics/v1 latency (jupyter-resource-usage), in the same run,
  * the sampling pass again with ``--unrelated`` sleeping processes on the host that are no
    kernel's (a busy JupyterHub node): memguard walks only its kernels' trees, so they should
    cost nothing.

    python benchmarks/sampling.py --kernels 1 10 50 --unrelated 2000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A jupyter_server subprocess with memguard on."""

    def __init__(self, extra: list[str] | None = None) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.root = tempfile.mkdtemp(prefix="memguard-bench-")
        self.url = f"http://127.0.0.1:{self.port}/"
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ServerApp.allow_root=True",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.jpserver_extensions={'jupyter_memguard': True}",
            f"--MemGuard.journal_path={self.root}/journal.sqlite",
            *(extra or []),
        ]
        self.log = open(os.path.join(self.root, "server.log"), "w")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {self.log.name}")

    def request(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=120) as response:
            text = response.read()
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request(path)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def latency(server: Server, path: str, repeat: int) -> dict[str, float] | None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            server.get(path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }


def sampling_cost(server: Server, ticks: int) -> dict[str, float]:
    costs, seen = [], set()
    deadline = time.monotonic() + 60
    while len(costs) < ticks and time.monotonic() < deadline:
        status = server.get("api/memguard/status")
        if status["last_tick_at"] not in seen:
            seen.add(status["last_tick_at"])
            costs.append(status["last_sample_cost_seconds"] * 1000)
        time.sleep(0.05)
    costs.sort()
    return {
        "median_ms": round(statistics.median(costs), 3),
        "p95_ms": round(costs[int(len(costs) * 0.95) - 1], 3),
    }


FORKER = """
import os, signal, sys
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        signal.pause()
        os._exit(0)
print("ready", flush=True)
signal.pause()
"""


class UnrelatedProcesses:
    """N sleeping processes that belong to no kernel (in their own session, killed together)."""

    def __init__(self, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORKER, str(count)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("could not start the unrelated processes")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def host_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def run(kernel_count: int, repeat: int, unrelated: int = 0) -> dict[str, Any]:
    server = Server(["--MemGuard.poll_interval=0.2"])
    try:
        for _ in range(kernel_count):
            server.request("api/kernels", "POST", {"name": "python3"})
        # Let the kernels start and settle.
        deadline = time.monotonic() + 30 + kernel_count * 3
        while time.monotonic() < deadline:
            kernels = server.get("api/memguard/kernels")["kernels"]
            if len(kernels) == kernel_count and all(
                k["execution_state"] == "idle" for k in kernels
            ):
                break
            time.sleep(1)
        kernels = server.get("api/memguard/kernels")["kernels"]
        baseline_processes = host_processes()
        cost = sampling_cost(server, 20)
        busy_host = None
        if unrelated:
            others = UnrelatedProcesses(unrelated)
            try:
                busy_host = {
                    "unrelated": unrelated,
                    "host_processes": host_processes(),
                    "sampling_per_tick": sampling_cost(server, 20),
                }
                busy_host["ratio"] = round(
                    busy_host["sampling_per_tick"]["median_ms"] / cost["median_ms"], 2
                )
            finally:
                others.stop()
        return {
            "kernels": kernel_count,
            "host_processes": baseline_processes,
            "sampling_per_tick": cost,
            "with_unrelated": busy_host,
            "sampling_per_kernel_us": round(cost["median_ms"] * 1000 / kernel_count, 1),
            "memguard_kernels": latency(server, "api/memguard/kernels", repeat),
            "resource_usage_metrics": latency(server, "api/metrics/v1", repeat),
            "total_kernel_rss_mb": round(
                sum((k["memory"] or {}).get("rss_bytes", 0) for k in kernels) / 2**20
            ),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--repeat", type=int, default=50, help="requests per endpoint")
    parser.add_argument(
        "--unrelated", type=int, default=0, help="also measure with this many unrelated processes"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = []
    for count in args.kernels:
        result = run(count, args.repeat, args.unrelated)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print(
        "| kernels | sampling / tick (median) | with unrelated processes (ratio) | per kernel "
        "| GET /api/memguard/kernels (median / p95) | GET /api/metrics/v1 (median / p95) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        ref = r["resource_usage_metrics"]
        ref_text = f"{ref['median_ms']} / {ref['p95_ms']} ms" if ref else "not installed"
        mg = r["memguard_kernels"]
        busy = r["with_unrelated"]
        busy_text = (
            f"{busy['sampling_per_tick']['median_ms']} ms with {busy['unrelated']} "
            f"(×{busy['ratio']})"
            if busy
            else "-"
        )
        print(
            f"| {r['kernels']} | {r['sampling_per_tick']['median_ms']} ms | {busy_text} "
            f"| {r['sampling_per_kernel_us']} µs "
            f"| {mg['median_ms']} / {mg['p95_ms']} ms | {ref_text} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
