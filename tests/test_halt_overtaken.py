"""A halt overtaken: the kernel dies of something else while memguard is halting it."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from .conftest import get_json, wait_for
from .test_guard import GROW_IGNORING_INTERRUPTS, GUARD_CONFIG, kinds, terminations


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    return {**GUARD_CONFIG, "interrupt_grace": 30.0}  # the SIGKILL below comes well inside it


async def test_a_death_during_a_halt_is_its_own_record_and_uses_up_the_halt(
    jp_fetch, memguard, start_kernel
):
    """Real kernel: memguard interrupted it (a cell ignoring SIGINT, over the halt line) when
    something else SIGKILLed it (as the OOM killer would, in the kernel's own cgroup). The
    record of that death names the halt under way without claiming it; the kernel's next end,
    a shutdown on request, is the user's, not memguard's."""
    kernel = await start_kernel()
    info = await get_json(jp_fetch, "kernels", kernel.id)
    target = (info["halt_bytes"] + int(info["limit_bytes"] * 0.95)) // 2 - info["memory"][
        "used_bytes"
    ]
    kernel.submit(GROW_IGNORING_INTERRUPTS.format(target=target))
    await wait_for(
        lambda: asyncio.sleep(0, "halted:interrupt" in kinds(memguard, kernel.id)), timeout=30
    )
    life = memguard.lifecycle.life(kernel.id)
    assert life is not None and life.pid
    os.kill(life.pid, signal.SIGKILL)

    records = await wait_for(lambda: terminations(jp_fetch, kernel.id), timeout=30)
    death = records[0]
    assert death["verdict"] != "halted_by_memguard", death
    assert death["evidence"]["under_way"] == "halt", death["evidence"]
    assert "memguard had begun to halt it" in death["explanation"], death["explanation"]
    assert death["evidence"]["exit_signal"] == "SIGKILL"

    # The restarter brings the kernel back; its shutdown on request is recorded as such.
    async def restarted() -> bool:
        new = memguard.lifecycle.life(kernel.id)
        return new is not None and new.pid not in (None, life.pid)

    await wait_for(restarted, timeout=60)
    kernel_manager = memguard.serverapp.kernel_manager
    await wait_for(lambda: asyncio.sleep(0, kernel_manager.get_kernel(kernel.id).ready.done()))
    await jp_fetch("api", "kernels", kernel.id, method="DELETE")

    async def two_records() -> list[dict[str, Any]]:
        found = await terminations(jp_fetch, kernel.id)
        return found if len(found) >= 2 else []

    records = await wait_for(two_records, timeout=30)
    shutdown = next(r for r in records if r["id"] != death["id"])
    assert shutdown["verdict"] == "user_shutdown", shutdown
