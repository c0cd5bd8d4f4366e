"""What the kernel agent costs inside the kernel, and how fast it answers.

* Cost per cell: N cells run in a real ipykernel kernel started through memguard's
  provisioner; the agent counts its own time in pre_run_cell + post_run_cell (perf_counter_ns,
  both hooks together, including the /proc reads, the VmHWM reset and the sends) and reports
  it in its ``stats`` reply: median, p95, max. Also the same two hooks called back to back
  in one cell (warm caches): the code's own cost without the cold start of real cells.
* Variables: round trip of ``AgentChannel.variables`` (server clock) and the agent's own time
  per request (from ``stats``), for 10 / 1,000 / 10,000 names, plus tracemalloc's peak inside
  the kernel during one request; and the same with one large DataFrame with an object column
  (sampled, so its size does not matter).

  python benchmarks/agent.py --cells 500 --requests 20 --dataframe-mib 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets.config import Config

from jupyter_memguard.agent import AgentChannel, AgentEvent, install, uninstall
from jupyter_memguard.agent.install import default_socket_path
from jupyter_memguard.agent.provisioner import PROVISIONER_NAME

WARM_HOOKS = """\
def _warm(calls):
    import sys, threading, types
    agent = sys.modules["jupyter_memguard_agent"]._agent
    info = types.SimpleNamespace(raw_cell="pass")
    result = types.SimpleNamespace(error_before_exec=None, error_in_exec=None)
    own = agent.running.pop(threading.get_ident())  # this cell's own
    costs = []
    for _ in range(calls):
        agent.pre_run_cell(info)
        agent.post_run_cell(result)
        costs.append(agent.costs[-1])
    agent.running[threading.get_ident()] = own
    print(" ".join(map(str, costs)))
_warm(CALLS)
del _warm
"""


def ensure_entry_point() -> None:
    """An editable install older than the entry point still finds the provisioner."""
    group = KernelProvisionerFactory.GROUP_NAME
    if not entry_points(group=group, name=PROVISIONER_NAME):
        KernelProvisionerFactory.provisioners.setdefault(
            PROVISIONER_NAME,
            EntryPoint(
                PROVISIONER_NAME, "jupyter_memguard.agent.provisioner:AgentProvisioner", group
            ),
        )


def figures(values_ns: list[int]) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {
        "median_us": round(statistics.median(ordered) / 1000, 1),
        "p95_us": round(ordered[int(len(ordered) * 0.95) - 1] / 1000, 1),
        "max_us": round(ordered[-1] / 1000, 1),
    }


def ms(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
    }


class Bench:
    def __init__(self, runtime: Path) -> None:
        ensure_entry_point()
        self.socket_path = default_socket_path(str(runtime))
        self.config = Config()
        self.setup = install(self.config, self.socket_path)
        self.mkm = AsyncMultiKernelManager(config=self.config, connection_dir=str(runtime))
        self.events: list[AgentEvent] = []
        self.channel = AgentChannel(
            self.socket_path, logging.getLogger("bench"), self.pid_of, self.events.append
        )

    def pid_of(self, kernel_id: str) -> int | None:
        try:
            return self.mkm.get_kernel(kernel_id).provisioner.pid
        except KeyError:
            return None

    async def run(self, args: argparse.Namespace) -> dict[str, object]:
        await self.channel.start()
        kernel_id = await self.mkm.start_kernel(kernel_name="python3")
        client = self.mkm.get_kernel(kernel_id).client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        deadline = time.monotonic() + 60
        while not self.channel.connected(kernel_id):
            assert time.monotonic() < deadline, "the agent did not connect"
            await asyncio.sleep(0.05)

        async def run(code: str) -> str:
            """Execute a cell; what it printed."""
            out: list[str] = []

            def hook(msg: dict) -> None:
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])

            reply = await client.execute_interactive(code, timeout=600, output_hook=hook)
            assert reply["content"]["status"] == "ok", reply["content"]
            return "".join(out)

        results: dict[str, object] = {}
        try:
            for label, code in (("pass", "pass"), ("2000 chars", "x = 1  # " + "c" * 1990)):
                before = await self.channel.stats(kernel_id)
                for _ in range(args.cells):
                    await run(code)
                after = await self.channel.stats(kernel_id)
                assert before is not None and after is not None
                costs = list(after.costs_ns)[-args.cells :]
                results[f"cost per cell, {label}"] = figures(costs) | {"cells": len(costs)}

            # The same hooks called back to back inside one cell: the code's own cost, warm
            # (real cells add the cold start of each syscall after the kernel was idle).
            out = await run(WARM_HOOKS.replace("CALLS", str(args.cells)))
            results["cost per call pair, hooks back to back (warm)"] = figures(
                [int(x) for x in out.split()]
            ) | {"calls": args.cells}

            for names in (10, 1_000, 10_000):
                await run(
                    "for _n in list(globals()):\n    if _n.startswith('name'): del globals()[_n]\n"
                    f"for _n in range({names}):\n    globals()[f'name{{_n}}'] = [_n] * 10"
                )
                results[f"variables, {names} names"] = await self.variables(kernel_id, run, args)

            await run(
                "import numpy as np, pandas as pd\n"
                f"_rows = {args.dataframe_mib} * 2**20 // 80\n"
                "big = pd.DataFrame({'n': np.arange(_rows),"
                " 's': pd.Series([f'{i:040d}' for i in range(_rows)], dtype=object)})"
            )
            report = await self.channel.variables(kernel_id, limit=10, timeout=30)
            top = report.variables[0]
            results[f"variables, DataFrame of ~{args.dataframe_mib} MiB"] = await self.variables(
                kernel_id, run, args
            ) | {"largest": f"{top.name} {top.bytes / 2**20:.0f} MiB {top.qualifier}"}
        finally:
            client.stop_channels()
            await self.mkm.shutdown_all(now=True)
            await self.channel.stop()
            uninstall(self.setup)
        return results

    async def variables(self, kernel_id: str, run, args: argparse.Namespace) -> dict[str, object]:
        before = await self.channel.stats(kernel_id)
        rounds = []
        for _ in range(args.requests):
            started = time.perf_counter()
            report = await self.channel.variables(kernel_id, limit=10, timeout=30)
            rounds.append(time.perf_counter() - started)
            assert report.status == "ok", report.reason
        after = await self.channel.stats(kernel_id)
        assert before is not None and after is not None
        inside = (after.request_ns - before.request_ns) / max(1, after.requests - before.requests)
        await run("import tracemalloc; tracemalloc.start()")
        await self.channel.variables(kernel_id, limit=10, timeout=30)
        peak = int(await run("print(tracemalloc.get_traced_memory()[1]); tracemalloc.stop()"))
        return ms(rounds) | {
            "agent_ms_per_request": round(inside / 1e6, 2),
            "kernel_peak_mib": round(peak / 2**20, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--dataframe-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runtime:
        results = asyncio.run(Bench(Path(runtime)).run(args))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
