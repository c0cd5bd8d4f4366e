"""Shared pieces of the agent tests (no tests here): real kernels through jupyter_client's
AsyncMultiKernelManager with memguard's provisioner as the default, and a real AgentChannel
on a real Unix socket, both on the test's event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets.config import Config

from jupyter_memguard.agent import install, provisioner, uninstall
from jupyter_memguard.agent.channel import AgentChannel
from jupyter_memguard.agent.install import default_socket_path
from jupyter_memguard.agent.messages import AgentEvent, AgentHello, CellEnded, CellStarted

MiB = 1024**2
ENTRY_POINT_VALUE = "jupyter_memguard.agent.provisioner:AgentProvisioner"
log = logging.getLogger("test_agent")


def ensure_entry_point() -> None:
    """Use the installed entry point; an editable install that predates it gets the same one
    (the value pyproject.toml declares) until it is reinstalled."""
    group = KernelProvisionerFactory.GROUP_NAME
    if entry_points(group=group, name=provisioner.PROVISIONER_NAME):
        return
    KernelProvisionerFactory.provisioners.setdefault(
        provisioner.PROVISIONER_NAME,
        EntryPoint(provisioner.PROVISIONER_NAME, ENTRY_POINT_VALUE, group),
    )


async def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)
    return value


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def proc_cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return [arg.decode() for arg in handle.read().split(b"\0") if arg]


def proc_environ(pid: int) -> dict[str, str]:
    """The environment the process was started with (later changes do not show here)."""
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode() for k, v in pairs}


class AgentKernel:
    """A real kernel, a client on it, and the channel's events for it."""

    def __init__(self, world: AgentWorld, kernel_id: str) -> None:
        self.world = world
        self.id = kernel_id
        self.km = world.mkm.get_kernel(kernel_id)
        self.km.stop_restarter()
        self.client = self.km.client()
        self.iopub: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)

    async def start(self) -> None:
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=120)

    def events(self, kind: type | None = None) -> list[AgentEvent]:
        return [
            e
            for e in self.world.events
            if e.kernel_id == self.id and (kind is None or isinstance(e, kind))
        ]

    async def hello(self) -> AgentHello:
        return await wait_for(
            lambda: next((e for e in self.events(AgentHello) if e.pid == self.pid), None),
            what="the agent's hello",
        )

    async def run(self, code: str, timeout: float = 120, **kwargs: Any) -> dict[str, Any]:
        """Execute and return the reply; iopub messages of this cell land in self.iopub."""
        return await self.client.execute_interactive(
            code, timeout=timeout, output_hook=self.iopub.append, **kwargs
        )

    async def output(self, code: str) -> str:
        """The stdout a cell prints (reply must be ok)."""
        start = len(self.iopub)
        reply = await self.run(code)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(
            m["content"]["text"]
            for m in self.iopub[start:]
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def submit(self, code: str, **kwargs: Any) -> str:
        """Send a cell without waiting. Its error (most are interrupted) does not make
        ipykernel abort the requests that follow: under load the next one can arrive while it
        still aborts, and its reply is then "aborted"."""
        kwargs.setdefault("stop_on_error", False)
        return self.client.execute(code, **kwargs)

    async def started(self, msg_id: str) -> CellStarted:
        return await wait_for(
            lambda: next((e for e in self.events(CellStarted) if e.msg_id == msg_id), None),
            what=f"cell_start of {msg_id}",
        )

    async def ended(self, msg_id: str, timeout: float = 120) -> CellEnded:
        return await wait_for(
            lambda: next((e for e in self.events(CellEnded) if e.msg_id == msg_id), None),
            timeout,
            what=f"cell_end of {msg_id}",
        )

    async def reply(self, msg_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def stop(self) -> None:
        self.client.stop_channels()


class AgentWorld:
    """install() on a Config, a multi-kernel manager that uses it, and a running channel."""

    def __init__(self, runtime_dir: Path, kernel_dirs: list[str] | None = None) -> None:
        ensure_entry_point()
        self.factory_existed = KernelProvisionerFactory.initialized()
        self.socket_path = default_socket_path(str(runtime_dir))
        self.config = Config()
        self.setup = install(self.config, self.socket_path)
        spec_manager = KernelSpecManager(kernel_dirs=kernel_dirs) if kernel_dirs else None
        self.mkm = AsyncMultiKernelManager(
            config=self.config,
            kernel_spec_manager=spec_manager,
            connection_dir=str(self.socket_path.parent),  # not the working directory
        )
        self.events: list[AgentEvent] = []
        self.channel = self.new_channel()
        self.kernels: list[AgentKernel] = []

    def new_channel(self, **kwargs: Any) -> AgentChannel:
        return AgentChannel(self.socket_path, log, self.pid_of, self.events.append, **kwargs)

    def pid_of(self, kernel_id: str) -> int | None:
        try:
            pid = self.mkm.get_kernel(kernel_id).provisioner.pid
        except KeyError:
            return None
        return int(pid) if pid is not None else None

    async def kernel(self, kernel_name: str = "python3", **kwargs: Any) -> AgentKernel:
        kernel_id = await self.mkm.start_kernel(kernel_name=kernel_name, **kwargs)
        kernel = AgentKernel(self, kernel_id)
        self.kernels.append(kernel)
        await kernel.start()
        return kernel

    async def close(self) -> None:
        for kernel in self.kernels:
            kernel.stop()
        await self.mkm.shutdown_all(now=True)
        await self.channel.stop()
        uninstall(self.setup)
        if not self.factory_existed:  # do not leave our default to the rest of the session
            KernelProvisionerFactory.clear_instance()


@pytest.fixture
def world(tmp_path: Path, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[AgentWorld]:
    """A started channel and a kernel manager whose python3 kernels get the agent."""
    agent_world = AgentWorld(tmp_path / "runtime")
    assert agent_world.setup.enabled, agent_world.setup.reason
    jp_asyncio_loop.run_until_complete(agent_world.channel.start())
    yield agent_world
    jp_asyncio_loop.run_until_complete(agent_world.close())


def kernel_code_connecting(socket_path: Path, *lines: bytes, hello: dict[str, Any] | None) -> str:
    """Code for a kernel cell that opens its own connection and sends raw lines (an agent
    that misbehaves, from the kernel's own process so that its pid passes the check)."""
    return (
        "import json as _j, os as _o, socket as _s, time as _t\n"
        "_c = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)\n"
        f"_c.connect({str(socket_path)!r})\n"
        f"_h = {hello!r}\n"
        "if _h is not None:\n"
        "    _h.setdefault('pid', _o.getpid())\n"
        "    _c.sendall(_j.dumps(_h).encode() + b'\\n')\n"
        "    _t.sleep(0.5)\n"
        f"for _l in {list(lines)!r}:\n"
        "    try:\n"
        "        _c.sendall(_l)\n"
        "    except OSError:\n"
        "        break\n"
        "_t.sleep(0.5)\n"
        "_c.close()\n"
    )


def hello_for(kernel_id: str, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "type": "hello", "kernel_id": kernel_id, **extra}


def environ_has_agent(env: dict[str, str]) -> bool:
    agent_dir = str(provisioner.AGENT_DIR)
    return (
        provisioner.SOCKET_ENV in env
        or provisioner.KERNEL_ID_ENV in env
        or agent_dir in env.get("PYTHONPATH", "").split(os.pathsep)
    )
