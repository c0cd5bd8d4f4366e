"""Which variables hold the memory, asked of real kernels over the real channel."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_memguard.agent.messages import Variable, VariablesReport

from .test_agent_support import AgentKernel, AgentWorld, MiB, proc_status, world

__all__ = ["world"]

TIMEOUT = 10.0  # the server's default is 0.3 s; a loaded test machine gets more


async def created(kernel: AgentKernel, code: str) -> int:
    """Run code that creates data; how much the kernel's RSS grew (the truth)."""
    await kernel.output("import gc; gc.collect()")
    before = proc_status(kernel.pid, "VmRSS")
    await kernel.output(code + "\nimport gc; gc.collect()")
    return proc_status(kernel.pid, "VmRSS") - before


def by_name(report: VariablesReport) -> dict[str, Variable]:
    assert report.status == "ok", report.reason
    return {v.name: v for v in report.variables}


def near(value: int, truth: int) -> bool:
    return abs(value - truth) <= 0.1 * truth


async def test_sizes_are_near_the_truth(world: AgentWorld) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("pandas")
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.output("import numpy as np, pandas as pd")
    truth = {
        "arr": await created(kernel, "arr = np.ones(25_000_000)"),
        "df": await created(
            kernel,
            "df = pd.DataFrame({'n': np.arange(1_000_000),"
            " 's': pd.Series([f'row {i:07d}' for i in range(1_000_000)], dtype=object)})",
        ),
        "lst": await created(kernel, "lst = [b'%05d' % i * 2000 for i in range(10_000)]"),
        "dct": await created(kernel, "dct = {i: b'%05d' % i * 4000 for i in range(5_000)}"),
        "blob": await created(kernel, "blob = b'x' * (80 * 2**20)"),
        "text": await created(kernel, "text = 'y' * (60 * 2**20)"),
    }
    assert all(t > 50 * MiB for t in truth.values()), truth
    report = await world.channel.variables(kernel.id, limit=20, timeout=TIMEOUT)
    found = by_name(report)
    for name, size in truth.items():
        assert near(found[name].bytes, size), (name, found[name], size)
    assert found["arr"].qualifier == "exact" and found["arr"].method == "nbytes"
    assert found["arr"].type == "numpy.ndarray" and found["df"].type == "pandas.DataFrame"
    assert found["df"].qualifier == "estimate"  # a million object cells: sampled
    assert found["lst"].qualifier == "exact" and found["dct"].qualifier == "exact"
    assert report.variables[0].name == "arr"  # 200 MB, the largest
    assert report.total_bytes is not None and report.total_bytes >= sum(truth.values()) * 0.9
    payload = report.to_json()
    assert list(payload) == [
        "kernel_id",
        "status",
        "reason",
        "taken_at",
        "total_bytes",
        "variables",
    ]
    assert list(payload["variables"][0]) == [  # type: ignore[index]
        "name",
        "type",
        "bytes",
        "qualifier",
        "method",
        "device",
        "note",
    ]

    # A small DataFrame's object columns are measured exactly (memory_usage(deep=True)).
    await kernel.output("small = pd.DataFrame({'s': ['abc' * 100] * 1000})")
    small = by_name(await world.channel.variables(kernel.id, limit=20, timeout=TIMEOUT))["small"]
    assert small.qualifier == "exact" and small.method == "memory_usage(deep=True)"


async def test_views_and_aliases_count_once(world: AgentWorld) -> None:
    pytest.importorskip("numpy")
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.output(
        "import numpy as np\nbase = np.ones((4000, 4000))\nhalf = base[::2]\nflat = base.reshape(-1)\n"
        "same = base\nraw = b'z' * (10 * 2**20)\nover_raw = np.frombuffer(raw, dtype=np.uint8)\n"
        "mv = memoryview(raw)"
    )
    report = await world.channel.variables(kernel.id, limit=20, timeout=TIMEOUT)
    found = by_name(report)
    assert found["base"].bytes == 4000 * 4000 * 8
    for view in ("half", "flat", "over_raw", "mv"):
        assert found[view].bytes == 0, found[view]
    assert "view of base" in (found["half"].note or "")
    assert "view of raw" in (found["over_raw"].note or "")
    assert found["same"].bytes == 0 and "same object as base" in (found["same"].note or "")
    assert report.total_bytes is not None
    assert report.total_bytes < 4000 * 4000 * 8 + 11 * MiB + MiB  # nothing counted twice


async def test_ten_thousand_names(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.output(
        "for _n in range(10_000):\n    globals()[f'name{_n}'] = [_n] * 10\n"
        "biggest = b'q' * (20 * 2**20)"
    )
    report = await world.channel.variables(kernel.id, limit=5, timeout=TIMEOUT)
    assert report.status == "ok" and len(report.variables) == 5
    assert report.variables[0].name == "biggest"
    assert all(v.name.startswith("name") for v in report.variables[1:])


async def test_deep_graph_stops_at_the_bound(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.output(
        "chain = None\nfor _i in range(1_000_000):\n    chain = (_i, chain)\n"
        "wide = [[i] for i in range(300_000)]"
    )
    found = by_name(await world.channel.variables(kernel.id, limit=10, timeout=TIMEOUT))
    for name in ("chain", "wide"):
        assert found[name].qualifier == "at_least", found[name]
        assert "bound" in (found[name].note or "")
        assert found[name].bytes > 0


async def test_machinery_is_left_out(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.run("import json\nimport os.path as osp\ndef fn():\n    pass\nclass K:\n    pass")
    await kernel.run("data = list(range(1000))")
    await kernel.run("data")  # Out[3], _3 and _ hold the same list
    await kernel.run("k = K()\nk.payload = b'p' * 100_000")
    found = by_name(await world.channel.variables(kernel.id, limit=50, timeout=TIMEOUT))
    assert set(found) == {"data", "k"}
    assert found["k"].bytes >= 100_000 and found["k"].type.endswith("K")


async def test_output_cache_is_reported(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.run("b'o' * (5 * 2**20)")  # held only by Out[1], _1 and _
    found = by_name(await world.channel.variables(kernel.id, limit=10, timeout=TIMEOUT))
    assert found["Out[1]"].bytes >= 5 * 2**20 and "output cache" in (found["Out[1]"].note or "")


async def test_kernel_memory_for_the_request_is_bounded(world: AgentWorld) -> None:
    """≤ 20 MiB of extra memory inside the kernel (tracemalloc's peak during the request)."""
    kernel = await world.kernel()
    await kernel.output(
        "for _n in range(10_000):\n    globals()[f'name{_n}'] = {'a': [_n] * 20, 'b': str(_n)}\n"
        "chain = None\nfor _i in range(1_000_000):\n    chain = (_i, chain)\n"
        "wide = {i: [i, str(i)] for i in range(500_000)}\n"
        "import tracemalloc; tracemalloc.start()"
    )
    report = await world.channel.variables(kernel.id, limit=100, timeout=30)
    assert report.status == "ok"
    peak = int(await kernel.output("print(tracemalloc.get_traced_memory()[1]); tracemalloc.stop()"))
    assert peak < 20 * MiB, peak


async def test_answers_while_a_pure_python_cell_runs(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.output("held = b'h' * (30 * 2**20)")
    msg_id = kernel.submit("import time\n_t = time.time()\nwhile time.time() - _t < 120:\n    pass")
    await kernel.started(msg_id)
    found = by_name(await world.channel.variables(kernel.id, timeout=TIMEOUT))
    assert found["held"].bytes >= 30 * 2**20
    await world.mkm.interrupt_kernel(kernel.id)
    assert (await kernel.ended(msg_id)).status == "interrupted"


async def test_busy_while_native_code_holds_the_gil(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    # sum() over a range runs in C without a bytecode boundary: the GIL is never released.
    msg_id = kernel.submit("sum(range(10**11))")
    await kernel.started(msg_id)
    await asyncio.sleep(0.2)
    report = await world.channel.variables(kernel.id, timeout=0.3)
    assert report.status == "busy" and "native code" in (report.reason or "")
    assert report.variables == () and report.total_bytes is None
    assert world.channel.connected(kernel.id)  # busy is not misbehaving
    await world.mkm.shutdown_kernel(kernel.id, now=True)


async def test_no_agent_is_unavailable(world: AgentWorld) -> None:
    report = await world.channel.variables("no-such-kernel")
    assert report.status == "unavailable" and report.reason
    assert report.to_json()["variables"] == []


async def test_torch_tensors(world: AgentWorld) -> None:
    pytest.importorskip("torch")
    kernel = await world.kernel()
    await kernel.output("import torch")
    truth = await created(kernel, "t = torch.ones(25_000_000)")
    await kernel.output("tv = t[1000:]\nparams = torch.nn.Linear(2000, 2000)")
    found = by_name(await world.channel.variables(kernel.id, limit=20, timeout=TIMEOUT))
    assert near(found["t"].bytes, truth) and found["t"].bytes == 25_000_000 * 4
    assert found["t"].device == "cpu" and found["t"].method == "storage"
    assert found["tv"].bytes == 0 and "view of t" in (found["tv"].note or "")
    assert near(found["params"].bytes, (2000 * 2000 + 2000) * 4)  # a Module's parameters
