"""Shared fixtures: a real jupyter_server with memguard, real ipykernel kernels."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MiB = 1024**2

# A guard that halts within about a second (tests of halts); add "kernel_memory_limit".
FAST_HALT = {
    "poll_interval": 0.25,
    "interrupt_grace": 0.5,
    "shutdown_grace": 0.5,
}


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    """Per-test MemGuard settings (override in a test module to change them)."""
    return {}


@pytest.fixture
def jp_server_config(memguard_config: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    config = {"poll_interval": 0.25, "journal_path": str(tmp_path / "journal.sqlite")}
    config.update(memguard_config)
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_memguard": True}},
        "MemGuard": config,
    }


@pytest.fixture
def memguard(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Any:
    """The running MemGuard extension app (its monitor started, as in a real server)."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    point = jp_serverapp.extension_manager.extension_points["jupyter_memguard"]
    return point.app


class KernelHandle:
    """A real kernel started through the REST API, with a client to run code in it."""

    def __init__(self, serverapp: Any, kernel_id: str) -> None:
        self.serverapp = serverapp
        self.id = kernel_id
        self.client = serverapp.kernel_manager.get_kernel(kernel_id).client()
        self.client.start_channels()

    async def ready(self) -> None:
        await self.client.wait_for_ready(timeout=60)

    async def run(self, code: str, timeout: float = 60) -> dict[str, Any]:
        """Execute code and wait for the reply."""
        return await self.client.execute_interactive(code, timeout=timeout, store_history=False)

    def submit(self, code: str) -> str:
        """Execute code without waiting for it (for allocators that get halted)."""
        return self.client.execute(code, store_history=False)

    def stop(self) -> None:
        self.client.stop_channels()


@pytest.fixture
def start_kernel(
    jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Callable[..., Awaitable[KernelHandle]]:
    handles: list[KernelHandle] = []

    async def start(path: str | None = None) -> KernelHandle:
        if path:
            response = await jp_fetch(
                "api",
                "sessions",
                method="POST",
                body=json.dumps({"path": path, "type": "notebook", "kernel": {"name": "python3"}}),
            )
            kernel_id = json.loads(response.body)["kernel"]["id"]
        else:
            response = await jp_fetch(
                "api", "kernels", method="POST", body=json.dumps({"name": "python3"})
            )
            kernel_id = json.loads(response.body)["id"]
        handle = KernelHandle(jp_serverapp, kernel_id)
        handles.append(handle)
        await handle.ready()
        return handle

    yield start
    for handle in handles:
        handle.stop()
    # A kernel the test killed may still be auto-restarting; shutting the server down in the
    # middle of that trips jupyter_client (InvalidStateError on its `ready` future).
    jp_asyncio_loop.run_until_complete(_restarts_settled(jp_serverapp, handles))


async def _restarts_settled(
    serverapp: Any, handles: list[KernelHandle], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    for handle in handles:
        if handle.id not in serverapp.kernel_manager:
            continue
        kernel = serverapp.kernel_manager.get_kernel(handle.id)
        while not kernel.ready.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


async def get_json(jp_fetch: Any, *parts: str, **params: Any) -> Any:
    response = await jp_fetch("api", "memguard", *parts, params=params)
    return json.loads(response.body)


async def measured_by(jp_fetch: Any, kernel_id: str, method: str) -> bool:
    """Whether the kernel's figure now comes by ``method`` ("cgroup": it is in its own)."""
    memory = (await get_json(jp_fetch, "kernels", kernel_id))["memory"]
    return bool(memory and memory["method"] == method)


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 20, step: float = 0.2
) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """A failing test's report gets ``failure_report()`` of each fixture value that has one
    (e.g. the logs of tests/test_hub.py's JupyterHub deployment)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if callable(getattr(value, "failure_report", None)):
                report.sections.append((f"{name}: failure report", value.failure_report()))
