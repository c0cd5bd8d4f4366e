"""The server's end of the kernel agents: one private Unix socket, one connection per kernel.

Runs on the server's asyncio loop (tornado runs on asyncio). A connection counts only once
SO_PEERCRED shows our own uid and the pid of the kernel that its hello names (or a descendant
of it: kernelspecs launched through a wrapper such as ``conda run``). An agent that misbehaves
(garbage, oversized lines, bad JSON, a wrong kernel id or pid, no answer) is dropped, logged
once per kernel, and its kernel reported as having no agent, with the reason: memguard then
falls back to what it sees from outside. Nothing a kernel sends can raise into the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import provisioner
from .messages import (
    MAX_LINE,
    AgentEvent,
    AgentHello,
    AgentLost,
    AgentStats,
    CellEnded,
    CellStarted,
    ProtocolError,
    Variable,
    VariablesReport,
    decode,
    encode,
    field_int,
    parse_cell_end,
    parse_cell_start,
    parse_hello,
    parse_stats,
    parse_variables,
)

__all__ = [
    "AgentChannel",
    "AgentEvent",
    "AgentHello",
    "AgentLost",
    "AgentStats",
    "CellEnded",
    "CellStarted",
    "Variable",
    "VariablesReport",
]

HELLO_TIMEOUT = 10.0  # seconds from connect to hello
VERIFY_TIMEOUT = 30.0  # seconds to wait for the kernel manager to know the kernel's pid
WRITE_BACKLOG = 256 * 1024  # bytes queued to an agent that does not read: it is stuck
REMEMBERED = 10_000  # kernels whose "no agent" reason is kept
STATUS_NO_AGENT = 100  # of them, the most recent ones in status_json
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def bind_private_socket(path: Path) -> socket.socket:
    """A listening-ready Unix socket at path, mode 0600 from its creation.

    fchmod before bind makes the node 0600 without touching the process-wide umask (the
    server has threads); chmod after bind and a check of the result keep it so everywhere.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        path.unlink()  # a stale socket of an earlier server with our pid
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        got = stat.S_IMODE(os.lstat(path).st_mode)
        if got != 0o600:
            raise PermissionError(f"{path} has mode {got:o}, not 600")
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return sock


def _peer(sock: socket.socket) -> tuple[int, int]:
    pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def _descends_from(pid: int, ancestor: int, depth: int = 8) -> bool:
    """Whether pid is ancestor or one of its descendants (parent links in /proc)."""
    for _ in range(depth):
        if pid == ancestor:
            return True
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            pid = int(fields[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid <= 1:
            return False
    return pid == ancestor


class _Dropped(Exception):
    """End this connection, with the reason its kernel has no agent."""


@dataclass
class _Connection:
    kernel_id: str
    pid: int
    writer: asyncio.StreamWriter
    since: float
    pending: dict[int, asyncio.Future[dict[str, object]]] = field(default_factory=dict)
    next_id: int = 1
    cells: int = 0
    agent_dropped: int = 0
    timeouts: int = 0
    closed: bool = False


class AgentChannel:
    """The agents' socket: events in (on_event, on the loop), requests out (variables, arm)."""

    def __init__(
        self,
        socket_path: Path,
        log: logging.Logger,
        pid_of: Callable[[str], int | None],
        on_event: Callable[[AgentEvent], None],
        *,
        hello_timeout: float = HELLO_TIMEOUT,
        verify_timeout: float = VERIFY_TIMEOUT,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.log = log
        self.pid_of = pid_of
        self.on_event = on_event
        self.hello_timeout = hello_timeout
        self.verify_timeout = verify_timeout
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._connections: dict[str, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._no_agent: dict[str, str] = {}
        self._logged: set[str] = set()
        self._counts = {"accepted": 0, "rejected": 0, "dropped": 0, "event_errors": 0}
        self._last_reports: dict[str, VariablesReport] = {}  # kernel id → its last answer
        self.callback_seconds = 0.0  # event-loop time spent on the agents' messages

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        sock = bind_private_socket(self.socket_path)
        self._inode = os.lstat(self.socket_path).st_ino
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE - 1)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections.values()):
            self._close(connection)
        self._connections.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        with contextlib.suppress(OSError):
            if self._inode is not None and os.lstat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()
        self._inode = None

    # -- queries -----------------------------------------------------------------------------

    def connected(self, kernel_id: str) -> bool:
        return kernel_id in self._connections

    def reason(self, kernel_id: str) -> str | None:
        """Why the kernel has no agent, if known (None while one is connected)."""
        if kernel_id in self._connections:
            return None
        return self._no_agent.get(kernel_id) or provisioner.launch_reason(kernel_id)

    def status_json(self) -> dict[str, object]:
        now = time.time()
        return {
            "socket": str(self.socket_path),
            "listening": self._server is not None,
            "connected": {
                c.kernel_id: {
                    "pid": c.pid,
                    "connected_for": round(now - c.since, 1),
                    "cells": c.cells,
                    "messages_dropped_by_agent": c.agent_dropped,
                    "request_timeouts": c.timeouts,
                }
                for c in self._connections.values()
            },
            "no_agent": dict(list(self._no_agent.items())[-STATUS_NO_AGENT:]),
            "connections": dict(self._counts),
            "callback_seconds": round(self.callback_seconds, 6),
        }

    # -- requests ----------------------------------------------------------------------------

    async def variables(
        self, kernel_id: str, limit: int = 10, timeout: float = 0.3
    ) -> VariablesReport:
        """The largest variables; "busy" when the agent cannot answer in time (native code
        holds the GIL), "unavailable" without an agent."""
        connection = self._connections.get(kernel_id)
        if connection is None:
            reason = self.reason(kernel_id) or "no agent is connected for this kernel"
            return VariablesReport(kernel_id, "unavailable", reason, time.time(), None, ())
        limit = max(1, min(100, limit))
        params: dict[str, object] = {"limit": limit, "sent_at": time.time(), "timeout": timeout}
        reply = await self._request(connection, "variables", params, timeout)
        if reply is None and connection.closed:
            reason = self.reason(kernel_id) or "the kernel's agent disconnected"
            return VariablesReport(kernel_id, "unavailable", reason, time.time(), None, ())
        if reply is None or (reply.get("ok") is True and reply.get("result") is None):
            # no answer in time (or the agent saw the request had expired)
            reason = (
                f"busy in native code: the kernel did not answer within {timeout:g} s "
                "(a C extension holds the GIL)"
            )
            return VariablesReport(kernel_id, "busy", reason, time.time(), None, ())
        if reply.get("ok") is not True:
            error = reply.get("error")
            reason = f"the agent could not measure: {error}" if isinstance(error, str) else None
            return VariablesReport(kernel_id, "unavailable", reason, time.time(), None, ())
        try:
            report = parse_variables(reply.get("result"), kernel_id, limit)
            self._last_reports[kernel_id] = report
            return report
        except ProtocolError as error:
            self._drop(connection, f"the agent sent a bad variables reply: {error}")
            reason = self.reason(kernel_id)
            return VariablesReport(kernel_id, "unavailable", reason, time.time(), None, ())

    async def arm_interrupt(self, kernel_id: str, message: str, timeout: float = 0.1) -> bool:
        """Tell the agent the next SIGINT is memguard's, with its message; True once acknowledged.

        The caller sends the SIGINT afterwards (jupyter_server's interrupt_kernel).
        """
        connection = self._connections.get(kernel_id)
        if connection is None:
            return False
        reply = await self._request(connection, "arm_interrupt", {"message": message}, timeout)
        return reply is not None and reply.get("ok") is True

    async def stats(self, kernel_id: str, timeout: float = 1.0) -> AgentStats | None:
        """The agent's own cost inside the kernel (benchmarks, doctor)."""
        connection = self._connections.get(kernel_id)
        if connection is None:
            return None
        reply = await self._request(connection, "stats", {}, timeout)
        if reply is None or reply.get("ok") is not True:
            return None
        try:
            return parse_stats(reply.get("result"), kernel_id)
        except ProtocolError as error:
            self._drop(connection, f"the agent sent a bad stats reply: {error}")
            return None

    def recent_variables(self, kernel_id: str, max_age_s: float) -> VariablesReport | None:
        """The kernel's last variables answer, if it is at most ``max_age_s`` old."""
        report = self._last_reports.get(kernel_id)
        if report is None or time.time() - report.taken_at > max_age_s:
            return None
        return report

    def forget(self, kernel_id: str) -> None:
        """The kernel is gone: close its connection and forget it (no AgentLost follows)."""
        self._last_reports.pop(kernel_id, None)
        connection = self._connections.pop(kernel_id, None)
        if connection is not None:
            self._close(connection)
        self._no_agent.pop(kernel_id, None)
        self._logged.discard(kernel_id)
        provisioner.forget_launch(kernel_id)

    async def _request(
        self,
        connection: _Connection,
        kind: str,
        params: dict[str, object],
        timeout: float,
    ) -> dict[str, object] | None:
        """Send one request; its reply, or None when none came in time."""
        if connection.closed:
            return None
        transport = connection.writer.transport
        if transport.is_closing() or transport.get_write_buffer_size() > WRITE_BACKLOG:
            connection.timeouts += 1
            return None
        request_id = connection.next_id
        connection.next_id += 1
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        connection.pending[request_id] = future
        try:
            connection.writer.write(encode({"type": kind, "id": request_id, **params}))
            return await asyncio.wait_for(future, timeout)
        except (asyncio.TimeoutError, ConnectionError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and not future.cancelled():
                raise
            connection.timeouts += 1
            return None
        finally:
            connection.pending.pop(request_id, None)

    # -- connections -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        connection: _Connection | None = None
        try:
            connection = await self._admit(reader, writer)
            if connection is not None:
                await self._read(connection, reader)
        except _Dropped as dropped:
            if connection is not None:
                self._drop(connection, str(dropped))
        except asyncio.CancelledError:
            pass
        except Exception as error:  # never let a kernel's bytes raise into the server
            if connection is not None:
                self._drop(connection, f"unexpected error: {error!r}")
            else:
                self._log_once("?", f"memguard agent channel: a connection failed: {error!r}")
        finally:
            if connection is not None:
                self._lost(connection, "the kernel's agent disconnected (the kernel exited)")
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _admit(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Connection | None:
        """Peer credentials, then a valid hello from the kernel it names; else None."""
        sock = writer.get_extra_info("socket")
        pid, uid = _peer(sock)
        if uid != os.getuid():
            self._reject(None, f"a connection from uid {uid} (pid {pid}), not ours")
            return None
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), self.hello_timeout)
            hello = parse_hello(decode(line), time.time())
        except asyncio.TimeoutError:
            self._reject(None, f"pid {pid} sent no hello within {self.hello_timeout:g} s")
            return None
        except (ProtocolError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as error:
            self._reject(None, f"pid {pid} sent a bad hello: {_describe(error)}")
            return None
        if hello.pid != pid:
            self._reject(hello.kernel_id, f"pid {pid} claims to be pid {hello.pid}")
            return None
        problem = await self._verify(hello.kernel_id, pid)
        if problem is not None:
            self._reject(hello.kernel_id, problem)
            return None
        old = self._connections.get(hello.kernel_id)
        if old is not None:  # a restarted kernel's new process: the old one's end comes first
            self._lost(old, "replaced by the agent of the kernel's new process")
        connection = _Connection(hello.kernel_id, pid, writer, since=time.time())
        self._connections[hello.kernel_id] = connection
        self._no_agent.pop(hello.kernel_id, None)
        self._counts["accepted"] += 1
        self._emit(hello)
        return connection

    async def _verify(self, kernel_id: str, pid: int) -> str | None:
        """None when pid is the kernel's process (or a descendant of it), else why not."""
        deadline = time.monotonic() + self.verify_timeout
        delay = 0.02
        while True:
            try:
                expected = self.pid_of(kernel_id)
            except Exception:
                expected = None
            if expected is not None:
                if _descends_from(pid, expected):
                    return None
                return f"pid {pid} claims kernel {kernel_id}, whose process is pid {expected}"
            if time.monotonic() > deadline:
                return f"pid {pid} claims kernel {kernel_id}, which this server does not run"
            await asyncio.sleep(delay)
            delay = min(0.25, delay * 2)

    async def _read(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        while not connection.closed:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as error:
                if error.partial:
                    raise _Dropped("the agent's last message was cut off") from None
                return
            except asyncio.LimitOverrunError:
                raise _Dropped(f"the agent sent a line over {MAX_LINE} bytes") from None
            except ConnectionError:
                return
            started = time.perf_counter()
            try:
                self._dispatch(connection, decode(line))
            except ProtocolError as error:
                raise _Dropped(f"the agent broke the protocol: {error}") from None
            finally:
                self.callback_seconds += time.perf_counter() - started

    def _dispatch(self, connection: _Connection, data: dict[str, object]) -> None:
        kind = data["type"]
        dropped = data.get("dropped")
        if isinstance(dropped, int) and not isinstance(dropped, bool):
            connection.agent_dropped = dropped
        if kind == "reply":
            request_id = field_int(data, "id")
            future = connection.pending.get(request_id)
            if future is not None and not future.done():
                future.set_result(data)
        elif kind == "cell_start":
            self._emit(parse_cell_start(data, connection.kernel_id, connection.pid))
        elif kind == "cell_end":
            connection.cells += 1
            self._emit(parse_cell_end(data, connection.kernel_id, connection.pid))
        else:
            raise ProtocolError(f"unknown message type {kind!r}")

    # -- endings -----------------------------------------------------------------------------

    def _drop(self, connection: _Connection, reason: str) -> None:
        """A misbehaving agent: close it, say why once, report the kernel as without agent."""
        if connection.closed:
            return
        self._counts["dropped"] += 1
        self._log_once(
            connection.kernel_id,
            f"memguard agent of kernel {connection.kernel_id} dropped: {reason}",
        )
        self._lost(connection, reason)

    def _lost(self, connection: _Connection, reason: str) -> None:
        if connection.closed:
            return
        self._close(connection)
        if self._connections.get(connection.kernel_id) is connection:
            del self._connections[connection.kernel_id]
            self._remember(connection.kernel_id, reason)
        self._emit(AgentLost(connection.kernel_id, connection.pid, time.time(), reason))

    def _close(self, connection: _Connection) -> None:
        connection.closed = True
        for future in connection.pending.values():
            if not future.done():
                future.cancel()
        connection.pending.clear()
        connection.writer.close()

    def _reject(self, kernel_id: str | None, reason: str) -> None:
        self._counts["rejected"] += 1
        self._log_once(kernel_id or reason, f"memguard agent channel rejected {reason}")
        if kernel_id is not None and kernel_id not in self._connections:
            self._remember(kernel_id, f"its agent's connection was rejected: {reason}")

    def _remember(self, kernel_id: str, reason: str) -> None:
        self._no_agent.pop(kernel_id, None)
        self._no_agent[kernel_id] = reason
        while len(self._no_agent) > REMEMBERED:
            del self._no_agent[next(iter(self._no_agent))]

    def _log_once(self, key: str, message: str) -> None:
        if key in self._logged:
            self.log.debug(message)
            return
        if len(self._logged) < REMEMBERED:
            self._logged.add(key)
        self.log.warning(message)

    def _emit(self, event: AgentEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            self._counts["event_errors"] += 1
            self.log.exception("memguard agent channel: on_event failed for %r", event)


def _describe(error: Exception) -> str:
    if isinstance(error, asyncio.LimitOverrunError):
        return f"a line over {MAX_LINE} bytes"
    if isinstance(error, asyncio.IncompleteReadError):
        return "the connection closed before a full line"
    return str(error)
