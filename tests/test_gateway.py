"""Kernels behind a real Jupyter Kernel Gateway: no local process, memory by protocol.

A jupyter_server with memguard is pointed at a real ``jupyter kernelgateway`` (``--gateway-url``),
so its kernels run in another server and reach it over a websocket, as on a remote gateway.
memguard must show their memory from the kernels' own ``usage_reply``, never look for a
local PID, and halt them only through the kernel manager.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import ServerProcess, free_port, stop_process, wait_for

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("kernel_gateway") is None,
        reason="needs Jupyter Kernel Gateway (pip install jupyter_kernel_gateway)",
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = open(tmp_path / "gateway.log", "w")
    process = subprocess.Popen(
        [
            "timeout",
            "-s",
            "KILL",
            "170",
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            "--JupyterWebsocketPersonality.list_kernels=True",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/kernelspecs", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "gateway.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process)
        log.close()


def test_gateway_kernel_memory_by_protocol_and_halt_through_the_manager(tmp_path, gateway):
    settings = (
        f"--GatewayClient.url={gateway}",
        "--MemGuard.remote_usage_interval=0.5",
        "--MemGuard.remote_usage_timeout=5",
    )
    with ServerProcess(*settings, root=tmp_path / "server") as server:
        kernel_id = server.request("api/kernels", "POST", {"name": "python3"})["id"]

        def measured():
            info = server.get(f"api/memguard/kernels/{kernel_id}")
            return info if info["memory"] else None

        info = wait_for(measured, 60, "gateway kernel measured by usage_reply")
        assert info["pid"] is None  # it runs in the gateway, not here
        assert info["memory"]["source"] == "usage_request"
        assert 20 * 2**20 < info["memory"]["rss_bytes"] < 2**30  # an idle ipykernel
        listing = server.get("api/memguard/kernels")["kernels"]
        assert [k["id"] for k in listing] == [kernel_id]

        reply = server.request(
            f"api/memguard/kernels/{kernel_id}/halt", "POST", {"reason": "gateway test"}
        )
        assert reply["accepted"] is True

        def recorded():
            rows = server.get(f"api/memguard/terminations?kernel_id={kernel_id}")
            return rows["terminations"]

        record = wait_for(recorded, 60, "halt recorded in the journal")[0]
        assert record["verdict"] == "halted_by_memguard"
        assert record["pid"] is None
        # Forensics rests on what the protocol said: the last usage_reply's figure.
        assert record["evidence"]["last_rss_bytes"] > 20 * 2**20
        assert kernel_id not in [k["id"] for k in server.get("api/kernels")]
        assert server.alive()
        assert "Traceback" not in server.log(), server.log()[-4000:]
