"""Kernels without a local process: memory through the protocol's usage_request.

A remote provisioner is stood in for by a proxy around a real kernel's provisioner that, like a
remote one, exposes no PID, process or process group. The kernel, its control channel and its
usage_reply are real.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace
from typing import Any

import pytest

from jupyter_memguard.probe.remote_usage import NOT_SUPPORTED, parse_usage_reply

from .conftest import MiB, get_json, wait_for


class OpaqueProvisioner:
    """Delegates everything to a real provisioner but hides its local process."""

    pid = None
    pgid = None
    process = None

    def __init__(self, real: Any) -> None:
        self.__dict__["_real"] = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real, name, value)


def hide_process(serverapp: Any, kernel_id: str, memguard: Any) -> int:
    """Make the kernel look remote to memguard; returns its real PID (for the test only).

    A remote kernel has no local process from its start; this one had one, so memguard's
    record of its identity is made to forget it too."""
    kernel = serverapp.kernel_manager.get_kernel(kernel_id)
    real_pid = kernel.provisioner.pid
    kernel.provisioner = OpaqueProvisioner(kernel.provisioner)
    lives = memguard.lifecycle._lives
    lives[kernel_id] = replace(lives[kernel_id], pid=None, pgid=None, pid_start_ticks=None)
    return real_pid


def test_parse_usage_reply():
    full = parse_usage_reply({"kernel_memory": 123, "hostname": "h", "pid": 7}, now=5.0)
    assert (full.memory_bytes, full.hostname, full.remote_pid, full.received_at) == (
        123,
        "h",
        7,
        5.0,
    )
    bare = parse_usage_reply({"hostname": "h", "cpu_count": 2}, now=1.0)  # no psutil there
    assert bare.memory_bytes is None and bare.remote_pid is None
    assert parse_usage_reply({"kernel_memory": -1, "pid": "x"}, now=0).memory_bytes is None


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    return {"remote_usage_interval": 0.2, "remote_usage_timeout": 1.0}


async def test_remote_kernel_memory_from_usage_request(
    jp_fetch, jp_serverapp, memguard, start_kernel
):
    kernel = await start_kernel()
    hide_process(jp_serverapp, kernel.id, memguard)

    async def measured() -> Any:
        await memguard.monitor.tick()
        info = await get_json(jp_fetch, "kernels", kernel.id)
        return info if info["memory"] else None

    info = await wait_for(measured, timeout=20)
    assert info["pid"] is None and info["memory"]["source"] == "usage_request"
    assert info["memory"]["children"] == []
    assert memguard.monitor.latest.kernels[kernel.id].pids == ()  # nothing local to signal
    before = info["memory"]["rss_bytes"]
    assert before > 20 * MiB

    await kernel.run("x = bytearray(b'\\x01') * (200 * 2**20)")

    async def grown() -> Any:
        await memguard.monitor.tick()
        info = await get_json(jp_fetch, "kernels", kernel.id)
        return info if info["memory"]["rss_bytes"] > before + 180 * MiB else None

    info = await wait_for(grown, timeout=20)
    assert info["memory"]["rss_bytes"] < before + 260 * MiB
    assert len(info["history"]) >= 2


async def test_remote_kernel_that_does_not_answer_is_not_supported(
    jp_fetch, jp_serverapp, memguard, start_kernel
):
    kernel = await start_kernel()
    real_pid = hide_process(jp_serverapp, kernel.id, memguard)
    os.kill(real_pid, signal.SIGSTOP)  # a kernel that cannot answer any request
    try:

        async def reported() -> Any:
            await memguard.monitor.tick()
            info = await get_json(jp_fetch, "kernels", kernel.id)
            reason = info["memory_unavailable_reason"] or ""
            return info if NOT_SUPPORTED in reason else None

        info = await wait_for(reported, timeout=20)
        assert info["memory"] is None and info["pid"] is None
        # The listing and the status stay healthy.
        listing = await get_json(jp_fetch, "kernels")
        assert any(k["id"] == kernel.id and k["memory"] is None for k in listing["kernels"])
    finally:
        os.kill(real_pid, signal.SIGCONT)
    await asyncio.sleep(0)
