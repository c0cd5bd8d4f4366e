"""Memory of kernels without a local process (remote provisioners, gateways), by protocol.

Such kernels are asked through the Jupyter protocol's ``usage_request`` on the control channel
(answered by ipykernel ≥ 6.11 with ``kernel_memory``: PSS, or RSS, of its process tree). A kernel
that does not answer within the timeout is reported as not supporting it; memguard never
blocks a tick on it: requests run as tasks and the tick reads the last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from dataclasses import dataclass
from typing import Any

from jupyter_client.session import Session
from jupyter_core.utils import ensure_async

NOT_SUPPORTED = "kernel does not answer usage_request (memory not supported for this kernel)"
WAITING = "waiting for the kernel's first usage_reply"


@dataclass(frozen=True)
class RemoteUsage:
    """What one usage_reply said."""

    memory_bytes: int | None
    hostname: str | None
    remote_pid: int | None
    received_at: float


def parse_usage_reply(content: dict[str, Any], now: float) -> RemoteUsage:
    """The figures of a usage_reply's content (fields a kernel may leave out become None)."""
    memory = content.get("kernel_memory")
    pid = content.get("pid")
    return RemoteUsage(
        memory_bytes=int(memory) if isinstance(memory, (int, float)) and memory >= 0 else None,
        hostname=str(content["hostname"]) if content.get("hostname") else None,
        remote_pid=pid if isinstance(pid, int) else None,
        received_at=now,
    )


async def request_usage(kernel: Any, timeout: float) -> RemoteUsage | None:
    """Ask one kernel for its usage on the control channel; None if it does not answer.

    Works for ZMQ clients (local and remote provisioners) and for jupyter_server's gateway
    client, whose channels are queues fed by a websocket.
    """
    # A Session of its own (same key): short-lived clients sharing the manager's Session
    # stalled the other clients' iopub (seen with jupyter_client 8.10).
    session = Session(key=kernel.session.key, signature_scheme=kernel.session.signature_scheme)
    client = kernel.client(session=session)
    # iopub too: the gateway client's router thread dies on a message for a channel it lacks,
    # and the kernel's status messages come first.
    await ensure_async(
        client.start_channels(shell=False, iopub=True, stdin=False, hb=False, control=True)
    )
    try:
        message = client.session.msg("usage_request", {})
        message["channel"] = "control"  # the gateway's websocket routes by it; ZMQ ignores it
        client.control_channel.send(message)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = await _next_message(client.control_channel, left)
            if reply is None:
                return None
            if reply.get("parent_header", {}).get("msg_id") == message["header"]["msg_id"]:
                if reply["header"].get("msg_type") != "usage_reply":
                    return None
                return parse_usage_reply(reply.get("content", {}), time.time())
        return None
    finally:
        await ensure_async(client.stop_channels())


async def _next_message(channel: Any, timeout: float) -> dict[str, Any] | None:
    """The next message on a channel within ``timeout`` s, or None."""
    if isinstance(channel, queue.Queue):
        # The gateway client's queue: its own async get spins the event loop while it waits.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return channel.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
        return None
    try:
        return await channel.get_msg(timeout=timeout)
    except Exception:  # queue.Empty on timeout
        return None


@dataclass
class _KernelUsage:
    last: RemoteUsage | None = None
    asked_at: float = -1e9
    unanswered: int = 0
    task: asyncio.Task[None] | None = None


class RemoteUsagePoller:
    """Keeps the last usage_reply of each kernel without a local process, refreshed in tasks."""

    def __init__(self, interval_s: float, timeout_s: float) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._kernels: dict[str, _KernelUsage] = {}

    def refresh(self, kernel_id: str, kernel: Any) -> None:
        """Start a request for the kernel unless one is in flight or the last one is recent."""
        entry = self._kernels.setdefault(kernel_id, _KernelUsage())
        now = time.monotonic()
        if (entry.task is not None and not entry.task.done()) or (
            now - entry.asked_at < self.interval_s
        ):
            return
        entry.asked_at = now
        entry.task = asyncio.ensure_future(self._ask(entry, kernel))

    async def _ask(self, entry: _KernelUsage, kernel: Any) -> None:
        try:
            usage = await request_usage(kernel, self.timeout_s)
        except Exception:
            usage = None
        if usage is None:
            entry.unanswered += 1
        else:
            entry.last, entry.unanswered = usage, 0

    def usage(self, kernel_id: str) -> tuple[RemoteUsage | None, str | None]:
        """The last answer that is still current, or None with the reason."""
        entry = self._kernels.get(kernel_id)
        if entry is None or (entry.last is None and entry.unanswered == 0):
            return None, WAITING
        if entry.unanswered > 0 or entry.last is None or entry.last.memory_bytes is None:
            return None, NOT_SUPPORTED
        return entry.last, None

    def forget(self, kernel_id: str) -> None:
        entry = self._kernels.pop(kernel_id, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()

    async def close(self) -> None:
        for kernel_id in list(self._kernels):
            entry = self._kernels.pop(kernel_id)
            if entry.task is not None:
                entry.task.cancel()
                with contextlib.suppress(BaseException):
                    await entry.task
