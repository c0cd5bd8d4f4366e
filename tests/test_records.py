"""Every record true, none lost: jupyter_server's own culler named as such, the synchronous
kernel manager's requests told from deaths, no write lost at stop, bad parameters refused."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import get_json, wait_for
from .servers import ServerProcess
from .servers import wait_for as wait_until

SYNC_MANAGER = "jupyter_server.services.kernels.kernelmanager.MappingKernelManager"


async def records(jp_fetch: Any, kernel_id: str) -> list[dict[str, Any]]:
    return (await get_json(jp_fetch, "terminations", kernel_id=kernel_id))["terminations"]


class TestJupyterServersCuller:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Any) -> dict[str, Any]:
        culler = {"cull_idle_timeout": 2, "cull_interval": 1}
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_memguard": True}},
            "MappingKernelManager": culler,
            "AsyncMappingKernelManager": culler,
            "MemGuard": {"poll_interval": 0.25, "journal_path": str(tmp_path / "j.sqlite")},
        }

    async def test_a_cull_by_jupyter_server_is_named_and_not_a_users_shutdown(
        self, jp_fetch, memguard, start_kernel
    ):
        kernel = await start_kernel("idle.ipynb")
        kernel.stop()  # no client: nothing keeps it busy or connected
        (record,) = await wait_for(lambda: records(jp_fetch, kernel.id), timeout=60)
        assert record["verdict"] == "culled_idle", record
        assert record["confidence"] == "confirmed"
        trigger = record["evidence"]["trigger"]
        assert trigger["kind"] == "jupyter_server_culler" and trigger["timeout_seconds"] == 2
        assert trigger["idle_seconds"] >= 1
        assert "cull_kernel_if_idle" in trigger["note"]  # how it was told
        assert record["headline"] == "Kernel shut down by the server: it was idle"
        assert "cull_idle_timeout = 2 s" in record["summary"]


class TestSynchronousKernelManager:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Any) -> dict[str, Any]:
        return {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_memguard": True},
                "kernel_manager_class": SYNC_MANAGER,
            },
            "MemGuard": {"poll_interval": 0.25, "journal_path": str(tmp_path / "j.sqlite")},
        }

    async def test_requests_are_told_from_deaths_without_kernel_actions(
        self, jp_fetch, jp_serverapp, memguard
    ):
        assert type(jp_serverapp.kernel_manager).__name__ == "MappingKernelManager"

        async def started() -> str:
            response = await jp_fetch("api", "kernels", method="POST", body='{"name": "python3"}')
            kernel_id = json.loads(response.body)["id"]

            async def measured() -> Any:
                info = await get_json(jp_fetch, "kernels", kernel_id)
                return info["memory"] and info["memory"]["rss_bytes"] > 30 * 2**20

            await wait_for(measured, timeout=60)
            return kernel_id

        restarted = await started()
        await jp_fetch("api", "kernels", restarted, "restart", method="POST", body="")
        (record,) = await wait_for(lambda: records(jp_fetch, restarted))
        assert record["verdict"] == "user_restart" and record["confidence"] == "confirmed"

        shut = await started()
        await jp_fetch("api", "kernels", shut, method="DELETE")
        (record,) = await wait_for(lambda: records(jp_fetch, shut))
        assert record["verdict"] == "user_shutdown" and record["confidence"] == "confirmed"

        killed = await started()
        pid = (await get_json(jp_fetch, "kernels", killed))["pid"]
        os.kill(pid, signal.SIGKILL)
        rows = await wait_for(lambda: records(jp_fetch, killed), timeout=30)
        assert rows[-1]["verdict"] == "killed_externally", rows
        await jp_fetch("api", "kernels", killed, method="DELETE")


def test_no_record_is_lost_when_the_server_stops_right_after_shutdowns(tmp_path):
    root = tmp_path / "server"
    with ServerProcess(root=root) as server:
        ids = [server.start_kernel() for _ in range(3)]
        server.wait_idle(3)

        def delete(kernel_id: str) -> None:
            request = urllib.request.Request(
                f"{server.url}api/kernels/{kernel_id}",
                method="DELETE",
                headers={"Authorization": f"token {server.token}"},
            )
            urllib.request.urlopen(request, timeout=60).read()

        threads = [threading.Thread(target=delete, args=(k,)) for k in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        server.process.send_signal(signal.SIGTERM)  # at once, as a container's stop does
        assert server.process.wait(60) == 0, server.log()[-3000:]
        assert "Cannot operate on a closed database" not in server.log()
    with ServerProcess(root=root) as again:
        rows = again.get("api/memguard/terminations")["terminations"]
        shutdowns = {r["kernel_id"] for r in rows if r["verdict"] == "user_shutdown"}
        assert shutdowns == set(ids), rows
        sessions = again.get("api/memguard/terminations?verdict=server_died")["terminations"]
        assert sessions == []  # the stop was clean: nothing to examine
        wait_until(lambda: again.alive(), 5, "the server running")


# ------------------------------------------------------------------ every endpoint's parameters
BAD = [
    (("kernels",), {"detail": "all"}, "detail"),
    (("kernels",), {"nope": "1"}, "nope"),
    (("kernels", "{id}"), {"detail": "x"}, "detail"),
    (("kernels", "{id}"), {"limit": "3"}, "limit"),
    (("kernels", "{id}", "cells"), {"limit": "-5"}, "limit"),
    (("kernels", "{id}", "cells"), {"limit": "many"}, "limit"),
    (("kernels", "{id}", "cells"), {"since": "1"}, "since"),
    (("kernels", "{id}", "variables"), {"limit": "3"}, "limit"),
    (("status",), {"verbose": "1"}, "verbose"),
    (("terminations",), {"limit": "0"}, "limit"),
    (("terminations",), {"limit": "lots"}, "limit"),
    (("terminations",), {"offset": "-1"}, "offset"),
    (("terminations",), {"since": "yesterday"}, "since"),
    (("terminations",), {"verdict": "murder"}, "verdict"),
    (("terminations",), {"sort": "asc"}, "sort"),
]


@pytest.mark.parametrize(("parts", "params", "name"), BAD)
async def test_every_endpoint_refuses_bad_parameters_naming_them(
    jp_fetch, memguard, start_kernel, parts, params, name
):
    kernel = await start_kernel()
    path = [p.format(id=kernel.id) for p in parts]
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("api", "memguard", *path, params=params)
    assert info.value.code == 400
    assert name in json.loads(info.value.response.body)["message"]


async def test_the_halt_refuses_parameters_and_unknown_fields(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    for params, body in (({"action": "explode"}, ""), ({}, json.dumps({"how": "fast"}))):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "api", "memguard", "kernels", kernel.id, "halt", method="POST", body=body,
                params=params,
            )  # fmt: skip
        assert info.value.code == 400
    assert (await get_json(jp_fetch, "kernels", kernel.id))["id"] == kernel.id  # not halted
    # The good ones still answer.
    assert (await get_json(jp_fetch, "terminations", limit="5", offset="0"))["limit"] == 5
    assert "cells" in await get_json(jp_fetch, "kernels", kernel.id, "cells", limit="10")
