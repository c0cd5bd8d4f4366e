"""Per-cell memory through the server: the cells endpoint, and terminations that name the cell."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import FAST_HALT, MiB, get_json, wait_for

KEEP_300 = "kept = bytearray(b'\\x01') * (300 * 2**20)"
SPIKE_500 = "import time\nx = bytearray(b'\\x01') * (500 * 2**20)\ntime.sleep(0.2)\ndel x"
LEAK = """
import time
chunks = []
while True:
    chunks.append(bytearray(b'\\x01') * (5 * 2**20))
    time.sleep(0.02)
"""


async def cells(jp_fetch: Any, kernel_id: str) -> list[dict[str, Any]]:
    return (await get_json(jp_fetch, "kernels", kernel_id, "cells"))["cells"]


async def test_cells_endpoint_reports_growth_and_short_peaks(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await kernel.client.execute_interactive(KEEP_300, timeout=60)
    await kernel.client.execute_interactive(SPIKE_500, timeout=60)

    async def two_done() -> list[dict[str, Any]] | None:
        found = await cells(jp_fetch, kernel.id)
        done = [c for c in found if c["status"] == "ok"]
        return found if len(done) >= 2 else None

    spike, keep = (await wait_for(two_done))[:2]
    assert keep["code"].startswith("kept = bytearray") and spike["started_at"] > keep["started_at"]
    assert keep["delta_bytes"] >= 250 * MiB, keep
    assert spike["peak_bytes"] - spike["memory_before_bytes"] >= 400 * MiB, spike
    assert abs(spike["delta_bytes"]) < 100 * MiB, spike
    for key in ("execution_count", "ended_at", "memory_after_bytes", "duration_s"):
        assert key in keep


async def test_cells_of_an_unknown_kernel_is_404_json(jp_fetch, memguard):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("api", "memguard", "kernels", "no-such-kernel", "cells")
    assert error.value.code == 404


class TestHaltNamesTheCell:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {**FAST_HALT, "kernel_memory_limit": "400M"}

    async def test_halted_kernel_termination_names_the_running_cell(
        self, jp_fetch, memguard, start_kernel
    ):
        kernel = await start_kernel(path="leak.ipynb")
        await kernel.client.execute_interactive("a = 1", timeout=30)
        kernel.client.execute(
            LEAK.replace(
                "import time", "import time, signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)"
            )
        )

        async def recorded() -> list[dict[str, Any]]:
            data = await get_json(jp_fetch, "terminations", kernel_id=kernel.id)
            return data["terminations"]

        record = (await wait_for(recorded, timeout=40))[0]
        assert record["verdict"] == "halted_by_memguard"
        cell = record["evidence"]["running_cell"]
        assert cell is not None, record["evidence"]
        assert cell["execution_count"] == 2
        assert "chunks = []" in cell["code"]
        assert cell["peak_bytes"] - cell["memory_before_bytes"] > 200 * MiB
        assert "while running cell [2]" in record["summary"], record["summary"]
        assert record["headline"] == "Kernel stopped: memory almost full"


async def test_a_shutdown_after_an_error_names_no_cell(jp_fetch, memguard, start_kernel):
    """The cell that raised moments before a user's shutdown did not cause it: a wrong culprit
    is worse than none (only memguard's own halt, which interrupts first, names that cell)."""
    kernel = await start_kernel(path="oops.ipynb")
    await kernel.client.execute_interactive("raise ValueError('oops')", timeout=30)

    async def errored() -> bool:
        return any(c["status"] == "error" for c in await cells(jp_fetch, kernel.id))

    await wait_for(errored)
    await jp_fetch("api", "kernels", kernel.id, method="DELETE")

    async def recorded() -> list[dict[str, Any]]:
        data = await get_json(jp_fetch, "terminations", kernel_id=kernel.id)
        return data["terminations"]

    record = (await wait_for(recorded, timeout=30))[0]
    assert record["verdict"] == "user_shutdown"
    assert record["evidence"]["running_cell"] is None, record["evidence"]["running_cell"]
