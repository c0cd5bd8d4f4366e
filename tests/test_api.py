"""The read API against a real server and real ipykernel kernels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import MiB, get_json, wait_for

ALLOCATE = "x = bytearray(b'\\x01') * ({mb} * 2**20)"


async def kernel_rss(jp_fetch: Any, kernel_id: str) -> int:
    data = await get_json(jp_fetch, "kernels", kernel_id)
    return data["memory"]["rss_bytes"]


async def test_kernel_memory_rises_and_falls(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    baseline = await wait_for(lambda: kernel_rss(jp_fetch, kernel.id))
    await kernel.run(ALLOCATE.format(mb=200))
    interval = memguard.monitor.settings.poll_interval

    async def risen() -> bool:
        return await kernel_rss(jp_fetch, kernel.id) >= baseline + 190 * MiB

    # The endpoint shows the allocation within two ticks.
    await wait_for(risen, timeout=2 * interval + 0.5, step=0.05)
    await kernel.run("del x; import gc; gc.collect()")

    async def fallen() -> bool:
        return await kernel_rss(jp_fetch, kernel.id) < baseline + 50 * MiB

    await wait_for(fallen, timeout=5)
    data = await get_json(jp_fetch, "kernels", kernel.id)
    assert data["memory"]["peak_bytes"] >= data["memory"]["used_bytes"] + 150 * MiB
    assert len(data["history"]) >= 2
    assert data["limit_bytes"] > 0 and data["level"] == "ok"


async def test_child_process_memory_counts_for_its_kernel(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    baseline = await wait_for(lambda: kernel_rss(jp_fetch, kernel.id))
    await kernel.run(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import time; x = bytearray(b\"\\\\x01\") * (150 * 2**20); time.sleep(120)'])"
    )

    async def counted() -> dict[str, Any] | None:
        data = await get_json(jp_fetch, "kernels", kernel.id)
        grown = data["memory"]["rss_bytes"] >= baseline + 140 * MiB
        return data if grown and data["memory"]["children"] else None

    data = await wait_for(counted, timeout=15)
    child_pid = (await kernel.run("print(child.pid)"))["content"]
    assert data["memory"]["children"], data
    await kernel.run("child.kill(); child.wait()")
    assert child_pid["status"] == "ok"


async def test_list_status_and_notebook_path(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel(path="work/analysis.ipynb")
    data = await get_json(jp_fetch, "kernels")
    entry = next(k for k in data["kernels"] if k["id"] == kernel.id)
    assert entry["path"] == "work/analysis.ipynb"
    assert entry["pid"] > 0 and entry["memory"]["rss_bytes"] > 10 * MiB
    assert entry["execution_state"] in ("idle", "busy", "starting")
    assert data["budget"]["limit_source"] in ("config", "cgroup_v2", "cgroup_v1", "host")
    status = await get_json(jp_fetch, "status")
    assert status["budget"]["limit_bytes"] == data["budget"]["limit_bytes"]
    assert status["settings"]["poll_interval"] == 0.25
    assert status["can_halt"] is True
    assert status["interval_seconds"] > 0


async def test_pss_detail_on_request(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    plain = await get_json(jp_fetch, "kernels", kernel.id)
    assert plain["memory"]["pss_bytes"] is None
    detailed = await get_json(jp_fetch, "kernels", kernel.id, detail="pss")
    assert 0 < detailed["memory"]["pss_bytes"] <= detailed["memory"]["rss_bytes"]
    assert 0 < detailed["memory"]["uss_bytes"] <= detailed["memory"]["pss_bytes"]


async def test_unknown_kernel_is_404_json(jp_fetch, memguard):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", "kernels", "00000000-0000-0000-0000-000000000000")
    assert info.value.code == 404
    assert "no kernel" in json.loads(info.value.response.body)["message"]


async def test_bad_parameter_is_400_json(jp_fetch, memguard):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", "kernels", params={"detail": "everything"})
    assert info.value.code == 400
    assert "detail" in json.loads(info.value.response.body)["message"]


@pytest.mark.parametrize("path", ["kernels", "status", "terminations"])
async def test_unauthenticated_request_is_refused(jp_fetch, memguard, path):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", path, headers={"Authorization": ""})
    assert info.value.code in (401, 403)


async def test_metrics_exported(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await memguard.monitor.tick()
    response = await jp_fetch("metrics")
    text = response.body.decode()
    assert f'memguard_kernel_rss_bytes{{kernel_id="{kernel.id}"' in text
    assert "memguard_budget_limit_bytes" in text


async def test_example_grafana_dashboard_queries_metrics_we_export(
    jp_fetch, memguard, start_kernel
):
    dashboard = json.loads(
        (Path(__file__).parent.parent / "examples" / "grafana-dashboard.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmemguard_[a-z_]+", target["expr"])
    }
    await start_kernel()
    await memguard.monitor.tick()
    exported = set(
        re.findall(r"^(memguard_[a-z_]+)", (await jp_fetch("metrics")).body.decode(), re.M)
    )
    assert queried and queried <= exported, queried - exported
