"""Kernels are watched from their first moment, and no request fails while one is leaving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import FAST_HALT, MiB, get_json, wait_for


async def terminations(jp_fetch: Any, kernel_id: str) -> list[dict[str, Any]]:
    return (await get_json(jp_fetch, "terminations", kernel_id=kernel_id))["terminations"]


async def start_raw(jp_fetch: Any, name: str = "python3") -> str:
    """Start a kernel through the REST API and return at once (no client, no wait)."""
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": name}))
    return json.loads(response.body)["id"]


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    # A slow poll: whatever is recorded here is recorded without help from a tick.
    return {"poll_interval": 5.0, "min_poll_interval": 1.0}


async def test_kernel_shut_down_right_after_start_is_recorded(jp_fetch, memguard):
    kernel_id = await start_raw(jp_fetch)
    await asyncio.sleep(0.3)
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    records = await wait_for(lambda: terminations(jp_fetch, kernel_id), timeout=20)
    assert [r["verdict"] for r in records] == ["user_shutdown"]


async def test_kernel_killed_right_after_start_is_recorded(jp_fetch, memguard, jp_serverapp):
    kernel_id = await start_raw(jp_fetch)
    pid = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner.pid
    await asyncio.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    records = await wait_for(lambda: terminations(jp_fetch, kernel_id), timeout=30)
    assert records[-1]["verdict"] == "killed_externally", records
    assert records[-1]["pid"] == pid
    assert records[-1]["evidence"]["exit_signal"] == "SIGKILL"
    # Let the auto-restart finish before the server fixture shuts down.
    kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    await wait_for(lambda: asyncio.sleep(0, kernel.provisioner.pid not in (None, pid)), 30)
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def test_auto_restart_seen_by_a_reconcile_is_not_a_request(jp_fetch, memguard, jp_serverapp):
    """The restarter's new process found by a reconcile before jupyter_server's "restart"
    event (a tick, or the server's stop): the death is recorded, and no "restarted on
    request" is made up for it (it was, when the server stopped right after a kill)."""
    kernel_id = await start_raw(jp_fetch)
    kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    await wait_for(lambda: asyncio.sleep(0, kernel.provisioner.pid is not None), 30)
    await asyncio.sleep(0.5)
    pid = kernel.provisioner.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while kernel.provisioner.pid in (None, pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    memguard.lifecycle.reconcile()  # at once: before the restart's event is heard
    assert memguard.lifecycle.life(kernel_id).pid == kernel.provisioner.pid
    await asyncio.sleep(2)  # the "restart" event, and any record it would make
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    await wait_for(lambda: _two(jp_fetch, kernel_id), timeout=20, step=0.2)
    await asyncio.sleep(0.5)  # a third would be written by now
    records = await terminations(jp_fetch, kernel_id)
    assert [r["verdict"] for r in records] == ["user_shutdown", "killed_externally"], records


async def _two(jp_fetch: Any, kernel_id: str) -> list[dict[str, Any]] | None:
    records = await terminations(jp_fetch, kernel_id)
    return records if len(records) >= 2 else None


@pytest.fixture
def failing_kernelspec(jp_kernel_dir: Any) -> str:
    """A kernelspec whose process writes to stderr and exits with code 1 at once."""
    spec_dir = jp_kernel_dir / "broken"
    spec_dir.mkdir(parents=True)
    code = "import sys; sys.stderr.write('no such module: nonexistent\\n'); sys.exit(1)"
    spec = {"argv": [sys.executable, "-c", code, "{connection_file}"], "display_name": "Broken"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return "broken"


async def test_kernel_that_exits_at_start_is_recorded_per_attempt(
    jp_fetch, memguard, failing_kernelspec, jp_serverapp
):
    km = jp_serverapp.kernel_manager
    kernel_id = await start_raw(jp_fetch, failing_kernelspec)

    async def given_up() -> list[dict[str, Any]] | None:
        records = await terminations(jp_fetch, kernel_id)
        return records if kernel_id not in km and len(records) >= 2 else None

    # The restarter tries up to restart_limit times, then gives up and removes the kernel.
    records = await wait_for(given_up, timeout=90, step=0.5)
    assert {r["verdict"] for r in records} == {"exited"}, records
    assert all(r["evidence"]["exit_code"] == 1 for r in records)
    assert all("exited with code 1" in r["explanation"] for r in records)
    assert len({r["pid"] for r in records}) == len(records)  # one record per failed process


class TestRequestsDuringAHalt:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        # The kernel's own cgroup limit sits halfway past the kill line (99 %): 99.5 % leaves
        # 38 MiB above the halt line (90 %) for the kernel to stop growing in.
        return {**FAST_HALT, "kernel_memory_limit": "400M", "kill_fraction": 0.99}

    async def test_kernels_and_status_answer_200_throughout(self, jp_fetch, memguard, start_kernel):
        kernel = await start_kernel()
        # Past the halt line (360 MiB) but short of the kill line (396 MiB), in
        # steps memguard can see: one 370 MiB allocation raced the cgroup's OOM killer, which
        # won under load (the kernel was OOM-killed and restarted, never halted).
        kernel.submit(
            "import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "x = []\n"
            "for _ in range(64):\n"
            "    x.append(bytearray(b'\\x01') * (5 * 2**20))\n"
            "    time.sleep(0.02)\n"
            "time.sleep(60)"
        )
        codes: list[int] = []
        seen_gone = False
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            for path in ("kernels", "status"):
                try:
                    response = await jp_fetch("api", "memguard", path)
                    codes.append(response.code)
                except HTTPClientError as error:
                    codes.append(error.code)
            data = await get_json(jp_fetch, "kernels")
            if all(k["id"] != kernel.id for k in data["kernels"]):
                if seen_gone:
                    break
                seen_gone = True  # a few more polls after it left
            await asyncio.sleep(0.1)
        assert seen_gone, "the kernel was never halted"
        assert set(codes) == {200}, codes
        records = await wait_for(lambda: terminations(jp_fetch, kernel.id))
        assert records[0]["verdict"] == "halted_by_memguard"
        assert records[0]["evidence"]["last_rss_bytes"] > 300 * MiB
