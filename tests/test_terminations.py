"""Every kernel death classified, on real processes: never a plain kill -9 called OOM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest

from . import cgroups
from .conftest import MiB, get_json, wait_for


async def newest(jp_fetch: Any, kernel_id: str) -> dict[str, Any] | None:
    rows = (await get_json(jp_fetch, "terminations", kernel_id=kernel_id))["terminations"]
    return rows[0] if rows else None


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    return {"poll_interval": 0.2}


async def test_sigkill_with_headroom_is_not_oom(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel(path="victim.ipynb")
    info = await get_json(jp_fetch, "kernels", kernel.id)
    await asyncio.sleep(0.5)
    os.kill(info["pid"], signal.SIGKILL)
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "killed_externally", record
    assert record["evidence"]["exit_signal"] == "SIGKILL"
    assert record["path"] == "victim.ipynb" and record["pid"] == info["pid"]
    assert "memory" not in record["explanation"].lower() or "not" in record["explanation"].lower()


async def test_segfault_is_a_crash(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await asyncio.sleep(0.5)
    kernel.submit("import ctypes; ctypes.string_at(0)")
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "crashed"
    assert record["evidence"]["exit_signal"] == "SIGSEGV"
    assert "SIGSEGV" in record["explanation"]


async def test_exit_code_is_recorded(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await asyncio.sleep(0.5)
    kernel.submit("import os; os._exit(3)")
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "exited"
    assert record["evidence"]["exit_code"] == 3


async def test_rest_shutdown_and_restart_are_user_actions(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await asyncio.sleep(0.5)
    await jp_fetch("api", "kernels", kernel.id, "restart", method="POST", body="")
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "user_restart"
    await asyncio.sleep(0.5)
    await jp_fetch("api", "kernels", kernel.id, method="DELETE")

    async def shut() -> Any:
        rows = (await get_json(jp_fetch, "terminations", kernel_id=kernel.id))["terminations"]
        return rows if len(rows) == 2 else None

    rows = await wait_for(shut)
    assert rows[0]["verdict"] == "user_shutdown"
    assert all(r["verdict"] != "oom_killed" for r in rows)


async def test_admin_halt_endpoint(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    response = await jp_fetch(
        "api",
        "memguard",
        "kernels",
        kernel.id,
        "halt",
        method="POST",
        body=json.dumps({"reason": "runaway job"}),
    )
    assert response.code == 202
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "halted_by_memguard"
    assert "runaway job" in record["explanation"] or "runaway job" in json.dumps(record["evidence"])


async def test_a_halt_from_the_memory_panel_says_so(jp_fetch, memguard, start_kernel):
    from tornado.httpclient import HTTPClientError

    kernel = await start_kernel()
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "api", "memguard", "kernels", kernel.id, "halt", method="POST",
            body=json.dumps({"via": "carrier pigeon"}),
        )  # fmt: skip
    assert info.value.code == 400
    assert "via" in json.loads(info.value.response.body)["message"]
    response = await jp_fetch(
        "api", "memguard", "kernels", kernel.id, "halt", method="POST",
        body=json.dumps({"reason": "too big", "via": "panel"}),
    )  # fmt: skip
    assert response.code == 202
    record = await wait_for(lambda: newest(jp_fetch, kernel.id))
    assert record["verdict"] == "halted_by_memguard"
    assert record["evidence"]["trigger"]["via"] == "panel"
    assert "Memory panel" in record["headline"]


async def test_halt_endpoint_bad_input(jp_fetch, memguard, start_kernel):
    from tornado.httpclient import HTTPClientError

    kernel = await start_kernel()
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "api", "memguard", "kernels", kernel.id, "halt", method="POST", body="{not json"
        )
    assert info.value.code == 400
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", "kernels", "nope", "halt", method="POST", body="")
    assert info.value.code == 404
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", "terminations", params={"limit": "lots"})
    assert info.value.code == 400
    assert "limit" in json.loads(info.value.response.body)["message"]


class TestRealOomKill:
    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {"poll_interval": 0.2, "guard_enabled": False}

    async def test_cgroup_oom_kill_is_confirmed(self, jp_fetch, memguard, start_kernel):
        reason = cgroups.unavailable_reason()
        if reason:
            pytest.skip(f"no memory-limited cgroup here: {reason}")
        kernel = await start_kernel(path="big.ipynb")
        info = await get_json(jp_fetch, "kernels", kernel.id)
        limit = info["memory"]["rss_bytes"] + 200 * MiB
        with cgroups.memory_cgroup(limit) as group:
            group.add(info["pid"])
            kernel.submit("import time; x = bytearray(b'\\x01') * (600 * 2**20); time.sleep(60)")
            record = await wait_for(lambda: newest(jp_fetch, kernel.id), timeout=30)
            assert group.oom_kills() >= 1
        assert record["verdict"] == "oom_killed", record
        assert record["evidence"]["exit_signal"] == "SIGKILL"
        if memguard.deaths.kernel_log.available:
            assert record["confidence"] == "confirmed"
            assert any(str(info["pid"]) in line for line in record["evidence"]["kmsg_lines"])
        else:
            assert record["confidence"] in ("high", "medium")
