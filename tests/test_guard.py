"""The guard on real kernels: warn, interrupt, shut down, kill; idle and pressure culling."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from .conftest import MiB, get_json, measured_by, wait_for

GROW_IN_FUNCTION = """
import time
def grow():
    chunks = []
    while True:
        chunks.append(bytearray(b'\\x01') * (5 * 2**20))
        time.sleep(0.02)
try:
    grow()
except KeyboardInterrupt:  # an uncaught one would keep grow()'s frame alive in the traceback
    print("interrupted")
"""

GROW_IGNORING_INTERRUPTS = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
chunks = []
while sum(map(len, chunks)) < {target}:
    chunks.append(bytearray(b'\\x01') * (5 * 2**20))
    time.sleep(0.02)
time.sleep(120)
"""


def kinds(memguard: Any, kernel_id: str) -> list[str]:
    """The memguard events emitted for one kernel, in order (halt steps by name)."""
    out = []
    for kind, data in memguard.events.emitted:
        if data.get("kernel_id") == kernel_id:
            out.append(f"halted:{data['step']}" if kind == "kernel_halted" else kind)
    return out


async def alive(jp_fetch: Any, kernel_id: str) -> bool:
    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    return any(k["id"] == kernel_id for k in kernels)


async def terminations(jp_fetch: Any, kernel_id: str) -> list[dict[str, Any]]:
    return (await get_json(jp_fetch, "terminations", kernel_id=kernel_id))["terminations"]


GUARD_CONFIG: dict[str, Any] = {
    "kernel_memory_limit": "400M",
    "poll_interval": 0.25,
    "min_poll_interval": 0.05,
    "interrupt_grace": 1.0,
    "shutdown_grace": 1.0,
}


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    return dict(GUARD_CONFIG)


async def test_interrupt_stops_a_runaway_cell(jp_fetch, memguard, start_kernel):
    bystander = await start_kernel()
    kernel = await start_kernel()
    outputs: list[str] = []
    reply = await kernel.client.execute_interactive(
        GROW_IN_FUNCTION,
        timeout=60,
        output_hook=lambda msg: outputs.append(msg["content"].get("text", "")),
    )
    # The interrupt unwound the cell and freed its memory: the kernel lives on.
    assert reply["content"]["status"] == "ok"
    assert "interrupted" in "".join(outputs)
    await asyncio.sleep(1.5)
    assert await alive(jp_fetch, kernel.id)
    assert await alive(jp_fetch, bystander.id)
    events = kinds(memguard, kernel.id)
    assert events[:3] == ["memory_warning", "kernel_halting", "halted:interrupt"], events
    assert "halted:shutdown" not in events and "halted:kill" not in events
    assert kinds(memguard, bystander.id) == []
    data = await get_json(jp_fetch, "kernels", kernel.id)
    assert data["memory"]["rss_bytes"] < data["halt_bytes"]


async def test_kernel_ignoring_interrupt_is_shut_down(jp_fetch, memguard, start_kernel):
    bystander = await start_kernel()
    kernel = await start_kernel()
    info = await get_json(jp_fetch, "kernels", kernel.id)
    # Settle between the halt and the kill thresholds, and ignore SIGINT.
    target = (info["halt_bytes"] + int(info["limit_bytes"] * 0.95)) // 2 - info["memory"][
        "used_bytes"
    ]
    kernel.submit(GROW_IGNORING_INTERRUPTS.format(target=target))
    server_pid = os.getpid()

    async def gone() -> bool:
        return not await alive(jp_fetch, kernel.id)

    await wait_for(gone, timeout=30)
    # The record is written, then announced, once the kernel has left the manager.
    records = await wait_for(lambda: terminations(jp_fetch, kernel.id))
    await wait_for(lambda: asyncio.sleep(0, "kernel_terminated" in kinds(memguard, kernel.id)))
    events = kinds(memguard, kernel.id)
    assert (
        events.index("kernel_halting")
        < events.index("halted:interrupt")
        < events.index("halted:shutdown")
    ), events
    assert events[-1] == "kernel_terminated"
    assert records[0]["verdict"] == "halted_by_memguard"
    assert records[0]["confidence"] == "confirmed"
    # The server and the other kernel are untouched.
    assert os.getpid() == server_pid and await alive(jp_fetch, bystander.id)
    assert (await bystander.run("print('still here')"))["content"]["status"] == "ok"


async def test_kill_fraction_kills_at_once(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    if memguard.cgroups_per_kernel.available:
        # Placed in its cgroup at its Started, which the lifecycle hears just after the start.
        await wait_for(lambda: measured_by(jp_fetch, kernel.id, "cgroup"))
    info = await get_json(jp_fetch, "kernels", kernel.id)
    jump = info["limit_bytes"] - info["memory"]["used_bytes"] + 20 * MiB
    # One allocation, its pages faulted in one call (MAP_POPULATE), as in test_oom_lab: a
    # bytearray written byte by byte under load is slow enough for a tick to see it midway,
    # and each tick keeps the kernel's cgroup limit 64 MiB above the usage it saw
    # (policy.containment_limit's floor), so the limit moves ahead of the allocation.
    kernel.submit(
        "import mmap, time\n"
        f"x = mmap.mmap(-1, {jump}, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS"
        " | mmap.MAP_POPULATE)\n"
        "time.sleep(120)"
    )
    records = await wait_for(lambda: terminations(jp_fetch, kernel.id), timeout=20)
    if memguard.cgroups_per_kernel.available and records[0]["verdict"] == "oom_killed":
        # The kernel's own cgroup is limited halfway between its kill line and its limit: one
        # allocation past that ends there, in the kernel's own cgroup, before any poll (and
        # the kernel restarts). Else a tick landed while the pages were being faulted in, past
        # the kill line and short of the cgroup's limit: memguard killed it at once (below).
        assert records[0]["evidence"]["contained"], records[0]
        return

    async def gone() -> bool:
        return not await alive(jp_fetch, kernel.id)

    await wait_for(gone, timeout=20)
    events = kinds(memguard, kernel.id)
    # Crossing kill_fraction skips the graces: no SIGTERM step (an interrupt may have come first
    # if a tick landed between halt and kill while the allocation was being written).
    assert "halted:kill" in events and "halted:shutdown" not in events, events
    records = await wait_for(lambda: terminations(jp_fetch, kernel.id))
    assert records[0]["verdict"] == "halted_by_memguard"


class TestDryRun:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {"kernel_memory_limit": "400M", "dry_run": True, "interrupt_grace": 0.5}

    async def test_dry_run_reports_but_never_acts(self, jp_fetch, memguard, start_kernel):
        kernel = await start_kernel()
        info = await get_json(jp_fetch, "kernels", kernel.id)
        jump = info["halt_bytes"] - info["memory"]["used_bytes"] + 10 * MiB
        await kernel.run(f"x = bytearray(b'\\x01') * {jump}")
        await wait_for(
            lambda: asyncio.sleep(0, "kernel_halting" in kinds(memguard, kernel.id)), timeout=10
        )
        await asyncio.sleep(3)
        assert await alive(jp_fetch, kernel.id)
        assert (await kernel.run("print(len(x))"))["content"]["status"] == "ok"
        halting = [d for k, d in memguard.events.emitted if k == "kernel_halting"]
        assert halting[0]["dry_run"] is True


class TestIdleCulling:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {"idle_timeout": 2.0}

    async def test_idle_kernel_is_culled(self, jp_fetch, memguard, start_kernel):
        kernel = await start_kernel(path="idle.ipynb")

        async def gone() -> bool:
            return not await alive(jp_fetch, kernel.id)

        await wait_for(gone, timeout=20)
        assert "kernel_culled" in kinds(memguard, kernel.id)
        records = await wait_for(lambda: terminations(jp_fetch, kernel.id))
        assert records[0]["verdict"] == "culled_idle"
        assert records[0]["path"] == "idle.ipynb"


class TestPressureCulling:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {"memory_limit": "1100M", "cull_under_pressure": True}

    async def test_largest_idle_kernel_goes_first(self, jp_fetch, memguard, start_kernel):
        big = await start_kernel()
        small = await start_kernel()
        busy = await start_kernel()
        await big.run("x = bytearray(b'\\x01') * (250 * 2**20)")
        await memguard.monitor.tick()
        budget = memguard.monitor.latest.budget
        # Push usage over warn (but under halt) with a busy kernel.
        push = int(budget.limit_bytes * 0.85) - budget.usage_bytes
        assert push > 0, budget
        busy.submit(f"import time; y = bytearray(b'\\x01') * {push}; time.sleep(60)")

        async def big_gone() -> bool:
            return not await alive(jp_fetch, big.id)

        try:
            await wait_for(big_gone, timeout=30)
        except AssertionError:
            m = memguard.monitor
            print("DEBUG tick", m.latest)
            raise
        await asyncio.sleep(1)
        assert await alive(jp_fetch, small.id)
        assert await alive(jp_fetch, busy.id)
        culled = [d for k, d in memguard.events.emitted if k == "kernel_culled"]
        assert [d["kernel_id"] for d in culled] == [big.id]
        assert culled[0]["trigger"]["kind"] == "idle_pressure"
