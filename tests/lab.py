"""The OOM lab: a jupyter_server with memguard inside a memory-limited cgroup, and allocators.

Used by tests/test_oom_lab.py and benchmarks/oom_reaction.py. Every allocator stops by itself
after ``deadline_s`` and the server after ``lifetime_s``, so a failed run never leaves memory
being eaten; the cgroup is emptied (SIGKILL) and removed in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client import BlockingKernelClient

from .cgroups import MemoryCgroup, memory_cgroup
from .servers import ServerProcess

MiB = 2**20
GiB = 2**30

# Runs inside a kernel (or its child). Allocates `chunk` bytes at a time, touching every page,
# paced to `rate` bytes/s (0: as fast as it can), and logs "time working_set_bytes" of the
# cgroup after each chunk so a benchmark can tell when a threshold was crossed.
ALLOCATOR = r"""
import os as _os, time as _time
def _memguard_lab_alloc(rate, chunk, deadline_s, log_path, use_numpy, cgroup_dir, held):
    if use_numpy:
        import numpy as _np
    def _working_set():
        if not cgroup_dir:
            return 0
        for usage_name, stat_key in (("memory.current", "inactive_file"),
                                      ("memory.usage_in_bytes", "total_inactive_file")):
            try:
                with open(_os.path.join(cgroup_dir, usage_name)) as f:
                    usage = int(f.read())
            except OSError:
                continue
            inactive = 0
            with open(_os.path.join(cgroup_dir, "memory.stat")) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == stat_key:
                        inactive = int(value)
            return max(0, usage - inactive)
        return 0
    started = _time.time()
    end, allocated = started + deadline_s, 0
    with open(log_path, "a", buffering=1) as log:
        log.write(f"start {started} {_os.getpid()}\n")
        while _time.time() < end:
            if use_numpy:
                held.append(_np.ones(chunk, dtype=_np.uint8))
            else:
                held.append(bytearray(chunk))  # zero-filled: every page is touched
            allocated += chunk
            log.write(f"{_time.time()} {_working_set()}\n")
            if rate:
                pause = started + allocated / rate - _time.time()
                if pause > 0:
                    _time.sleep(pause)
        log.write("deadline\n")
"""


def allocate_code(
    log_path: Path,
    cgroup_dir: Path | None,
    rate: float = 0,
    chunk: int = 32 * MiB,
    deadline_s: float = 30,
    use_numpy: bool = False,
    in_child: bool = False,
) -> str:
    """Code for a cell that allocates (in the kernel, or in a forked multiprocessing child)."""
    args = (
        f"{rate!r}, {chunk!r}, {deadline_s!r}, {str(log_path)!r}, {use_numpy!r}, "
        f"{str(cgroup_dir) if cgroup_dir else ''!r}"
    )
    if not in_child:
        # A global list, as a real leak would be: an interrupt does not give the memory back.
        return ALLOCATOR + f"\nleak = []\n_memguard_lab_alloc({args}, leak)\n"
    return (
        ALLOCATOR
        + "\nimport multiprocessing as _mp\n"
        + f"child = _mp.get_context('fork').Process(target=_memguard_lab_alloc, args=({args}, []))\n"
        + "child.start()\nchild.join()\n"
    )


WARM = r"""
import sys, threading, numpy as np
total, held = int(sys.argv[1]), []
def touch(n):
    for _ in range(n):
        held.append(np.ones(16 << 20, dtype=np.uint8))
threads = [threading.Thread(target=touch, args=(total // (32 << 20),)) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
"""


def warm_memory(total_bytes: int) -> None:
    """Touch and free ``total_bytes`` once, outside any cgroup.

    In a VM whose hypervisor backs guest memory lazily (Firecracker here), the first touch of a
    guest page costs a host fault and caps allocation near 0.3 GB/s; after this a kernel
    allocates at the speed of the guest kernel, as it would on real hardware.
    """
    subprocess.run([sys.executable, "-c", WARM, str(total_bytes)], check=True, timeout=120)


def connect(server: ServerProcess, kernel_id: str, timeout: float = 60) -> BlockingKernelClient:
    """A client on the kernel's channels, returned once the kernel answers on shell and iopub.

    jupyter_client's ``wait_for_ready`` declares a kernel dead when one heartbeat takes over a
    second, which a kernel still importing on a loaded machine does; here a kernel is dead only
    when its server says so (it is gone from /api/kernels or its process has exited).
    """
    client = BlockingKernelClient()
    client.load_connection_file(str(server.connection_file(kernel_id)))
    client.start_channels(hb=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            client.kernel_info()
            try:
                reply = client.get_shell_msg(timeout=1)
            except Empty:
                _raise_if_gone(server, kernel_id)
                continue
            if reply["msg_type"] != "kernel_info_reply":
                continue
            try:  # the reply proves shell; a status message proves our iopub subscription
                client.get_iopub_msg(timeout=0.5)
            except Empty:
                continue
            while True:  # drain what is left of the kernel_info round trips
                try:
                    client.get_iopub_msg(timeout=0.2)
                except Empty:
                    return client
        raise RuntimeError(f"kernel {kernel_id} did not answer in {timeout:.0f} s")
    except BaseException:
        client.stop_channels()
        raise


def _raise_if_gone(server: ServerProcess, kernel_id: str) -> None:
    try:
        server.get(f"api/kernels/{kernel_id}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise RuntimeError(
                f"kernel {kernel_id} is gone from its server:\n{server.log()[-3000:]}"
            ) from None
        raise


def execute(server: ServerProcess, kernel_id: str, code: str, wait_started: bool = True) -> None:
    """Send a cell to a kernel of ``server``; return once it runs, without waiting for the end.

    With ``wait_started=False`` only the delivery is awaited: a cell that ends its kernel at
    once (a crash, ``os._exit``) can do so before its ``execute_input`` reaches us.
    """
    client = connect(server, kernel_id, timeout=30)
    try:
        msg_id = client.execute(code, store_history=False)
        if not wait_started:
            time.sleep(0.5)  # let ZMQ hand the message over before the channels close
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                return
        raise RuntimeError("the kernel never started the cell")
    finally:
        client.stop_channels()


def run(server: ServerProcess, kernel_id: str, code: str, timeout: float = 30) -> dict[str, Any]:
    """Run a cell to completion and return the execute_reply content."""
    client = connect(server, kernel_id, timeout=timeout)
    try:
        reply = client.execute_interactive(code, store_history=False, timeout=timeout)
        return reply["content"]
    finally:
        client.stop_channels()


class EventStream:
    """Collects the server's events from /api/events/subscribe (a websocket) in a thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.events: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.server.url.replace("http://", "ws://") + "api/events/subscribe"
        request = HTTPRequest(url, headers={"Authorization": f"token {self.server.token}"})
        connection = await websocket_connect(request)
        self._ready.set()
        while not self._stop:
            try:
                message = await asyncio.wait_for(connection.read_message(), timeout=0.2)
            except asyncio.TimeoutError:
                continue
            if message is None:
                break
            event = json.loads(message)
            event["_received_at"] = time.time()  # the bus sends no timestamp
            self.events.append(event)
        connection.close()

    def __enter__(self) -> EventStream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("could not subscribe to the server's events")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)

    def memguard(self, kernel_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(kind, data) of memguard's events, optionally for one kernel, in arrival order."""
        found = []
        for event in list(self.events):
            # schema_id: https://events.jupyter.org/jupyter_memguard/<kind>/v<version>
            parts = str(event.get("schema_id", "")).rstrip("/").split("/")
            if len(parts) < 3 or parts[-3] != "jupyter_memguard":
                continue
            if kernel_id is not None and event.get("kernel_id") != kernel_id:
                continue
            found.append((parts[-2], event))
        return found


@dataclass
class Lab:
    """A memguard server living in its own memory cgroup."""

    server: ServerProcess
    group: MemoryCgroup
    limit_bytes: int
    logs: Path
    started: list[str] = field(default_factory=list)

    def kernel(self, path: str | None = None) -> str:
        kernel_id = self.server.start_kernel(path)
        self.started.append(kernel_id)
        deadline = time.monotonic() + 60
        while not self.server.connection_file(kernel_id).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("kernel connection file never appeared")
            time.sleep(0.1)
        run(self.server, kernel_id, "1", timeout=60)  # wait until it answers
        return kernel_id

    def kernel_info(self, kernel_id: str) -> dict[str, Any]:
        return self.server.get(f"api/memguard/kernels/{kernel_id}")

    def terminations(self, kernel_id: str) -> list[dict[str, Any]]:
        return self.server.get(f"api/memguard/terminations?kernel_id={kernel_id}")["terminations"]

    def wait_termination(self, kernel_id: str, timeout: float = 60) -> dict[str, Any]:
        """The first recorded termination of the kernel (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.terminations(kernel_id)
            if rows:
                return rows[-1]
            time.sleep(0.2)
        raise AssertionError(
            f"no termination recorded for {kernel_id}:\n{self.server.log()[-4000:]}"
        )


@contextlib.contextmanager
def lab_server(
    limit_bytes: int, *settings: str, root: Path, lifetime_s: float = 300
) -> Iterator[Lab]:
    """A memguard server (and all its kernels) inside a new cgroup limited to ``limit_bytes``."""
    with memory_cgroup(limit_bytes) as group:
        server = ServerProcess(
            *settings,
            root=root,
            cgroup_procs=group.path / "cgroup.procs",
            lifetime_s=lifetime_s,
        )
        server.start()
        try:
            logs = root / "alloc-logs"
            logs.mkdir(exist_ok=True)
            yield Lab(server, group, limit_bytes, logs)
        finally:
            server.stop()
