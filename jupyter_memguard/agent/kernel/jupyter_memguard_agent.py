"""memguard's kernel agent: an IPython extension loaded into ipykernel kernels by memguard.

It tells the Jupyter server, from inside the kernel and at the exact moment, when each cell
starts and ends (with the kernel process's RSS and its peak during the cell), which variables
hold the memory, and it makes memguard's own interrupt say why it happened.

Standard library only: the kernel's environment may have neither jupyter_memguard nor psutil.
Python >= 3.8 syntax, since the kernel's Python may be older than the server's. It never
prints, never touches the user namespace, history or execution count, and never blocks the
kernel: every send is non-blocking and dropped when the server does not keep up. Anything that
fails makes it do nothing. The server side is ``jupyter_memguard.agent.channel``.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import types

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024  # bytes per message, newline included
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CODE_LIMIT = 2000  # characters of a cell's code sent with cell_start
ARM_WINDOW = 5.0  # seconds an armed interrupt stays memguard's
ARM_WAIT = 0.02  # seconds the SIGINT handler yields the GIL for a pending arm request
MESSAGE_LIMIT = 16 * 1024  # characters of an interrupt's message
SOCKET_ENV = "JUPYTER_MEMGUARD_AGENT_SOCKET"
KERNEL_ID_ENV = "JUPYTER_MEMGUARD_KERNEL_ID"

# Variables: bounds that keep one request under ~200 ms and ~20 MiB inside the kernel.
TIME_BUDGET = 0.15  # seconds for the whole namespace
NAME_OBJECTS = 20_000  # objects walked for one name
TOTAL_OBJECTS = 100_000  # objects walked for one request
DEEP_OBJECT_CELLS = 200_000  # pandas: object cells measured exactly; more are sampled
SAMPLE_CELLS = 100_000  # pandas: object cells in a sample
SAMPLE_ROWS = 2_000
OUT_ENTRIES = 100  # IPython output cache entries looked at
TEXT_LIMIT = 200  # characters of a name or a note

try:
    import _signal as _raw_signal  # signal.signal wraps it with enum conversions (µs per call)
except ImportError:  # pragma: no cover
    _raw_signal = signal  # type: ignore[assignment]
_SIGINT = int(signal.SIGINT)

_IPYTHON_NAMES = frozenset(
    [
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_oh",
        "_ih",
        "_dh",
        "In",
        "Out",
        "exit",
        "quit",
        "get_ipython",
    ]
)
_NUMBERED = re.compile(r"_i?\d+\Z")
_SKIPPED_TYPES = (
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    type,
)
_ATOMS = frozenset({int, float, complex, bool, str, type(None)})
_BUFFERS = frozenset({bytes, bytearray, memoryview})
_SEQUENCES = frozenset({list, tuple, set, frozenset})


class MemoryLimitInterrupt(KeyboardInterrupt):
    """memguard interrupted the cell: the kernel passed its memory stop line.

    A KeyboardInterrupt, so code that catches KeyboardInterrupt still works.
    """

    def _render_traceback_(self) -> list[str]:
        """IPython's traceback of the user's frames only: the agent's handler is no news."""
        _trim_traceback(self)
        agent = _agent
        if agent is None:
            raise LookupError("no agent")  # IPython then formats the traceback itself
        tb_formatter = agent.ip.InteractiveTB  # type: ignore[attr-defined]
        return tb_formatter.structured_traceback(type(self), self, self.__traceback__)


def _trim_traceback(error: BaseException) -> None:
    """Cut the traceback where it enters this module (the signal handler's frames)."""
    previous = None
    entry = error.__traceback__
    while entry is not None:
        if entry.tb_frame.f_code.co_filename == __file__ and previous is not None:
            previous.tb_next = None
            return
        previous, entry = entry, entry.tb_next


_agent: _Agent | None = None


def load_ipython_extension(ip: object) -> None:
    """Connect to the server and watch cells; do nothing (silently) when anything is missing."""
    global _agent
    try:
        found = _take_environment()
        if found is None or _agent is not None or not _supported(ip):
            return
        agent = _Agent(ip, *found)
        if agent.start():
            _agent = agent
    except Exception:
        pass


def unload_ipython_extension(ip: object) -> None:
    """Stop watching cells and close the connection (``%unload_ext``)."""
    global _agent
    agent, _agent = _agent, None
    if agent is not None:
        agent.stop()


def _take_environment() -> tuple[str, str] | None:
    """Read and remove memguard's variables, so the kernel's children do not inherit them.

    PYTHONPATH gets back what it was before memguard appended this module's directory, and
    that directory leaves sys.path.
    """
    socket_path = os.environ.pop(SOCKET_ENV, None)
    kernel_id = os.environ.pop(KERNEL_ID_ENV, None)
    if socket_path is None:
        return None
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    python_path = os.environ.get("PYTHONPATH")
    if python_path is not None:
        entries = python_path.split(os.pathsep)
        for index in range(len(entries) - 1, -1, -1):
            if entries[index] and os.path.realpath(entries[index]) == here:
                del entries[index]
                break
        if any(entries):
            os.environ["PYTHONPATH"] = os.pathsep.join(entries)
        else:
            del os.environ["PYTHONPATH"]
    sys.path[:] = [p for p in sys.path if not p or os.path.realpath(p) != here]
    if not kernel_id:
        return None
    return socket_path, kernel_id


def _supported(ip: object) -> bool:
    """An ipykernel shell with IPython's pre/post_run_cell events (IPython >= 7.10)."""
    events = getattr(ip, "events", None)
    callbacks = getattr(events, "callbacks", None)
    return (
        getattr(ip, "kernel", None) is not None
        and isinstance(callbacks, dict)
        and "pre_run_cell" in callbacks
        and "post_run_cell" in callbacks
        and sys.platform.startswith("linux")
    )


def _open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None


class _Cell:
    """The cell that is running: what post_run_cell and the SIGINT handler need."""

    __slots__ = (
        "deferred",
        "ended",
        "execution_count",
        "halted",
        "handler",
        "in_hook",
        "msg_id",
        "previous",
        "sigint",
    )

    def __init__(self, msg_id: str | None, execution_count: int | None) -> None:
        self.msg_id = msg_id
        self.execution_count = execution_count
        self.previous: object = None  # the SIGINT handler before ours
        self.handler: object = None  # ours, when installed
        self.halted = False
        self.sigint = False
        self.ended = False
        self.in_hook = True  # pre_run_cell has not returned yet
        self.deferred = False  # a SIGINT landed during pre_run_cell


class _Agent:
    """One kernel's agent: the connection, the cell hooks and the reader thread."""

    def __init__(self, ip: object, socket_path: str, kernel_id: str) -> None:
        self.ip = ip
        self.socket_path = socket_path
        self.kernel_id = kernel_id
        self.pid = os.getpid()
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.pending = b""  # the unsent end of a partially sent line
        self.closed = False
        self.sent = 0
        self.dropped = 0
        self.requests = 0
        self.request_ns = 0
        self.cells = 0
        self.hook_ns = 0
        self.costs: collections.deque[int] = collections.deque(maxlen=1000)  # ns per cell
        self.start_ns = 0
        self.hooking = False  # pre_run_cell is running (the SIGINT helper waits for it)
        # thread id -> the cells running in it (None for one run from inside a cell)
        self.running: dict[int, list[_Cell | None]] = {}
        self.armed: tuple[str, float] | None = None
        self.status_fd = _open("/proc/self/status", os.O_RDONLY)
        self.statm_fd = _open("/proc/self/statm", os.O_RDONLY)  # RSS alone: a shorter read
        self.clear_refs_fd = _open("/proc/self/clear_refs", os.O_WRONLY)
        self.reader: threading.Thread | None = None
        # ipykernel's post_handler_hook restores the SIGINT handler after every request.
        self.kernel_restores_sigint = hasattr(getattr(ip, "kernel", None), "post_handler_hook")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2.0)
            sock.connect(self.socket_path)
            sock.settimeout(None)  # blocking recv in the reader; sends use MSG_DONTWAIT
        except OSError:
            sock.close()
            self._close_fds()
            return False
        self.sock = sock
        self._send(
            {
                "type": "hello",
                "kernel_id": self.kernel_id,
                "pid": self.pid,
                "python": sys.version.split()[0],
                "ipykernel": _version("ipykernel"),
                "ipython": _version("IPython"),
            }
        )
        if self.closed:
            return False
        self.reader = threading.Thread(target=self._read_loop, name="memguard-agent", daemon=True)
        self.reader.start()
        events = self.ip.events  # type: ignore[attr-defined]
        events.register("pre_run_cell", self.pre_run_cell)
        events.register("post_run_cell", self.post_run_cell)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        return True

    def stop(self) -> None:
        events = getattr(self.ip, "events", None)
        for name, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            try:
                events.unregister(name, callback)  # type: ignore[union-attr]
            except Exception:
                pass
        self._close()

    def _close(self) -> None:
        """The peer is gone (or we stop): never send again; wake and end the reader.

        Under the send lock: a send must never reach a descriptor number that was closed
        and reused meanwhile.
        """
        self.closed = True
        locked = self.lock.acquire(timeout=1.0)
        try:
            sock, self.sock = self.sock, None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        finally:
            if locked:
                self.lock.release()

    def _close_fds(self) -> None:
        for fd in (self.status_fd, self.statm_fd, self.clear_refs_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.status_fd = self.statm_fd = self.clear_refs_fd = None

    def after_fork_in_child(self) -> None:
        """A forked child must neither talk for the kernel nor keep its connection open."""
        self.closed = True
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()  # closes the child's descriptor only; no shutdown of the shared socket
        self._close_fds()
        self.lock = threading.Lock()

    # -- sending -----------------------------------------------------------------------------

    def _send(self, message: dict[str, object]) -> bool:
        """Queue one message (replies, hello) as a JSON line; see _send_line."""
        if self.closed:
            return False
        message["v"] = PROTOCOL_VERSION
        message["dropped"] = self.dropped
        try:
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            self.dropped += 1
            return False
        return self._send_line(line)

    def _send_line(self, line: str) -> bool:
        """Queue one line without ever blocking; drop it when the buffer is full."""
        if self.closed:
            return False
        data = (line + "\n").encode("utf-8", "replace")
        if len(data) > MAX_LINE or not self.lock.acquire(timeout=0.1):
            self.dropped += 1
            return False
        try:
            sock = self.sock
            if sock is None:
                return False
            if self.pending:
                self.pending = self.pending[self._send_some(sock, self.pending) :]
                if self.pending:
                    self.dropped += 1
                    return False
            sent = self._send_some(sock, data)
            if sent == 0:  # the buffer is full (or the peer is gone: then closed is set)
                self.dropped += 0 if self.closed else 1
                return False
            self.pending = data[sent:]
            self.sent += 1
            return not self.closed
        finally:
            self.lock.release()

    def _send_some(self, sock: socket.socket, data: bytes) -> int:
        try:
            return _SYSCALLS.send(sock, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.closed = True
            return 0

    # -- memory ------------------------------------------------------------------------------

    def _memory(self) -> tuple[int | None, int | None]:
        """The kernel process's RSS and its VmHWM since the last reset, in bytes, from
        /proc/self/status (one pread). Not getrusage's ru_maxrss for the peak: it also holds
        the peak of the process that forked the kernel (exec keeps it), which clear_refs does
        not reset."""
        if self.status_fd is None:
            return None, None
        try:
            data = _SYSCALLS.pread(self.status_fd)
        except OSError:
            return None, None
        return _field(data, b"VmRSS:"), _field(data, b"VmHWM:")

    def _rss(self) -> int | None:
        """The kernel process's RSS in bytes, from /proc/self/statm (at a cell's start, where
        the peak before it is not needed: it is reset right after)."""
        if self.statm_fd is None:
            return self._memory()[0]
        try:
            fields = _SYSCALLS.pread(self.statm_fd).split()
            return int(fields[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return None

    def _reset_peak(self) -> None:
        """Make VmHWM start again from the current RSS: the next reading is this cell's peak."""
        if self.clear_refs_fd is not None:
            try:
                _SYSCALLS.pwrite(self.clear_refs_fd, b"5")
            except OSError:
                os.close(self.clear_refs_fd)
                self.clear_refs_fd = None

    # -- cells (main thread) -----------------------------------------------------------------

    def _parent_header(self) -> dict[str, object]:
        kernel = getattr(self.ip, "kernel", None)
        get_parent = getattr(kernel, "get_parent", None)
        parent = get_parent("shell") if get_parent is not None else None
        if not parent:
            parent = getattr(self.ip, "parent_header", None)
        header = parent.get("header") if isinstance(parent, dict) else None
        return header if isinstance(header, dict) else {}

    def pre_run_cell(self, info: object = None) -> None:
        """Before the cell's code runs: announce it, then reset the peak for this cell.

        Our SIGINT handler goes in first, so an interrupt that lands while this hook runs
        waits for the cell's code instead of surfacing as an "Error in callback".
        """
        started = time.perf_counter_ns()
        self.hooking = True
        cell = None
        deferred = False
        try:
            stack = self.running.setdefault(threading.get_ident(), [])
            if stack or self.closed:
                stack.append(None)  # a cell run from inside a cell is part of that cell
                return
            cell = _Cell(None, None)
            stack.append(cell)
            if threading.current_thread() is threading.main_thread():
                self._install_sigint(cell)
            msg_id = self._parent_header().get("msg_id")
            count = getattr(self.ip, "execution_count", None)
            cell.msg_id = msg_id if isinstance(msg_id, str) else None
            cell.execution_count = count if isinstance(count, int) else None
            code = getattr(info, "raw_cell", None)
            code = code if isinstance(code, str) else ""
            rss, hwm = self._rss(), None
            self._send_line(
                _CELL_START
                % (
                    _text(cell.msg_id),
                    _number(cell.execution_count),
                    _text(code[:CODE_LIMIT]),
                    _number(rss),
                    _number(hwm),
                    time.time(),
                    self.dropped,
                )
            )
            self._reset_peak()
        except KeyboardInterrupt:  # before our handler was in place
            deferred = True
        except Exception:
            pass
        finally:
            if cell is not None:
                cell.in_hook = False
                deferred = deferred or cell.deferred
            if deferred:
                self._redeliver_sigint(cell)
            self.start_ns = time.perf_counter_ns() - started
            self.hooking = False  # last: the SIGINT helper waits for this

    def post_run_cell(self, result: object = None) -> None:
        """Right after the cell: its outcome, the RSS it left and its own peak."""
        started = time.perf_counter_ns()
        try:
            stack = self.running.get(threading.get_ident())
            cell = stack.pop() if stack else None
            if stack == []:
                self.running.pop(threading.get_ident(), None)
            if cell is None:
                return
            cell.ended = True  # from here on a SIGINT has nothing left to stop
            if not self.kernel_restores_sigint:
                self._restore_sigint(cell)
            if self.closed:
                return
            rss, hwm = self._memory()  # one read: after a cell, each system call starts cold
            status, ename = _outcome(result, cell)
            self._send_line(
                _CELL_END
                % (
                    _text(cell.msg_id),
                    _number(cell.execution_count),
                    status,
                    _text(ename),
                    _number(rss),
                    _number(hwm),
                    time.time(),
                    self.dropped,
                )
            )
        except KeyboardInterrupt:  # landed before `ended` was set: the cell is over anyway
            pass
        except Exception:
            pass
        finally:
            cost = self.start_ns + time.perf_counter_ns() - started
            self.start_ns = 0
            self.cells += 1
            self.hook_ns += cost
            self.costs.append(cost)

    # -- interrupts --------------------------------------------------------------------------

    def _install_sigint(self, cell: _Cell) -> None:
        """Ours for the cell's duration: ipykernel sets default_int_handler for each request
        (pre_handler_hook) and puts its own back afterwards (post_handler_hook)."""

        def on_sigint(signum: int, frame: object) -> None:
            __tracebackhide__ = True  # IPython leaves this frame out of the traceback
            self._on_sigint(cell, signum, frame)

        cell.handler = on_sigint
        previous = _raw_signal.signal(_SIGINT, on_sigint)  # one call: it returns the old one
        cell.previous = previous
        if not callable(previous):  # SIG_IGN/SIG_DFL: this request is not interruptible
            _raw_signal.signal(_SIGINT, previous)
            cell.handler = None

    def _restore_sigint(self, cell: _Cell) -> None:
        if cell.handler is not None and threading.current_thread() is threading.main_thread():
            if _raw_signal.getsignal(_SIGINT) is cell.handler:
                _raw_signal.signal(_SIGINT, cell.previous)  # type: ignore[arg-type]
            cell.handler = None

    def _on_sigint(self, cell: _Cell, signum: int, frame: object) -> None:
        __tracebackhide__ = True
        if cell.in_hook:  # pre_run_cell is still running: deliver it to the cell's code
            cell.deferred = True
            return
        if cell.ended:  # after post_run_cell, before ipykernel puts its own handler back
            return
        previous = cell.previous if cell.previous is not None else signal.default_int_handler
        cell.sigint = True
        message = self._take_arm()
        if message is None and not self.closed:
            # The arm request may be waiting for the GIL in the reader thread: yield briefly.
            deadline = time.monotonic() + ARM_WAIT
            while message is None and time.monotonic() < deadline:
                time.sleep(0.001)
                message = self._take_arm()
        if message is not None:
            cell.halted = True
            if previous is signal.default_int_handler:
                raise MemoryLimitInterrupt(message)
        previous(signum, frame)  # type: ignore[operator]

    def _redeliver_sigint(self, cell: _Cell | None) -> None:
        """Send the SIGINT that landed in pre_run_cell again, once the cell's code runs.

        Sent from the main thread, it would run the handler inside this hook at once; a
        helper thread sends it once the hook has returned, and again until the handler has
        run (a signal that lands just before a blocking call, e.g. time.sleep, would wait
        for that call to end). Pending signals coalesce, so one interrupt stays one. Rare:
        the window is ~0.1 ms.
        """
        main = threading.main_thread().ident

        def again() -> None:
            deadline = time.monotonic() + 1.0
            while self.hooking and time.monotonic() < deadline:
                time.sleep(0.0002)
            for _ in range(1 if cell is None else 200):
                if main is None or (cell is not None and (cell.sigint or cell.ended)):
                    return
                signal.pthread_kill(main, _SIGINT)  # with the GIL held: no handler runs between
                time.sleep(0.01)

        threading.Thread(target=again, name="memguard-agent-sigint", daemon=True).start()

    def _take_arm(self) -> str | None:
        armed, self.armed = self.armed, None
        if armed is None or time.monotonic() - armed[1] > ARM_WINDOW:
            return None
        return armed[0]

    # -- requests (reader thread) ------------------------------------------------------------

    def _read_loop(self) -> None:
        """Blocked in recv while idle; answers the server's requests one line at a time."""
        buffer = b""
        try:
            while not self.closed:
                sock = self.sock
                if sock is None:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._handle(line)
                if len(buffer) > MAX_LINE:
                    break
        except Exception:
            pass
        finally:
            self._close()

    def _handle(self, line: bytes) -> None:
        started = time.perf_counter_ns()
        request = json.loads(line)
        if not isinstance(request, dict) or request.get("v") != PROTOCOL_VERSION:
            raise ValueError("not a memguard request")
        request_id = request.get("id")
        kind = request.get("type")
        try:
            if kind == "variables":
                result = self._variables(request)
            elif kind == "arm_interrupt":
                message = request.get("message")
                if not isinstance(message, str):
                    raise ValueError("message must be a string")
                self.armed = (message[:MESSAGE_LIMIT], time.monotonic())
                result = {"armed": True}
            elif kind == "stats":
                result = self._stats()
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as error:
            reply = {"type": "reply", "id": request_id, "ok": False, "error": repr(error)[:500]}
        else:
            reply = {"type": "reply", "id": request_id, "ok": True, "result": result}
        self.requests += 1
        self.request_ns += time.perf_counter_ns() - started
        self._send_reply(reply)

    def _send_reply(self, reply: dict[str, object]) -> None:
        """A reply within MAX_LINE: a variables list that does not fit loses its tail."""
        while True:
            line = json.dumps(reply, ensure_ascii=False, separators=(",", ":"))
            result = reply.get("result")
            variables = result.get("variables") if isinstance(result, dict) else None
            if len(line.encode("utf-8", "replace")) < MAX_LINE - 256 or not variables:
                break
            del variables[len(variables) // 2 :]  # type: ignore[union-attr, arg-type]
        self._send(reply)

    def _variables(self, request: dict[str, object]) -> dict[str, object] | None:
        sent_at = request.get("sent_at")
        expires = request.get("timeout")
        if (
            isinstance(sent_at, (int, float))
            and isinstance(expires, (int, float))
            and time.time() - sent_at > expires
        ):
            return None  # the server stopped waiting: do not spend the kernel's time on it
        limit = request.get("limit")
        limit = max(1, min(100, limit)) if isinstance(limit, int) else 10
        return measure_namespace(self.ip, limit)

    def _stats(self) -> dict[str, object]:
        return {
            "cells": self.cells,
            "hook_ns": self.hook_ns,
            "costs_ns": list(self.costs),
            "requests": self.requests,
            "request_ns": self.request_ns,
            "sent": self.sent,
            "dropped": self.dropped,
        }


class _Syscalls:
    """The hooks' few system calls (µs each, never blocking).

    os and socket release the GIL around every call, and right when a cell starts ipykernel's
    IOPub thread is waiting for it: each release would hand it over for up to the 5 ms switch
    interval. Through ctypes.PyDLL the GIL stays held, so the hooks run in one go; without
    ctypes, the os and socket calls do the same work.
    """

    def __init__(self) -> None:
        self.buffer: object = None
        self.libc: object = None
        try:
            import ctypes

            libc = ctypes.PyDLL(None, use_errno=True)
            size_t, ssize_t = ctypes.c_size_t, ctypes.c_ssize_t
            for name, argtypes in (
                ("pread", (ctypes.c_int, ctypes.c_void_p, size_t, ctypes.c_long)),
                ("pwrite", (ctypes.c_int, ctypes.c_char_p, size_t, ctypes.c_long)),
                ("send", (ctypes.c_int, ctypes.c_char_p, size_t, ctypes.c_int)),
            ):
                function = getattr(libc, name)
                function.argtypes = argtypes
                function.restype = ssize_t
            self.buffer = ctypes.create_string_buffer(4096)  # VmRSS and VmHWM come early
            self.get_errno = ctypes.get_errno
            self.string_at = ctypes.string_at
            self.libc = libc
        except Exception:
            self.libc = None

    def _check(self, result: int) -> int:
        if result < 0:
            number = self.get_errno()
            raise OSError(number, os.strerror(number))
        return result

    def pread(self, fd: int) -> bytes:
        if self.libc is None:
            return os.pread(fd, 4096, 0)
        count = self._check(self.libc.pread(fd, self.buffer, 4096, 0))  # type: ignore[attr-defined]
        return self.string_at(self.buffer, count)  # type: ignore[no-any-return]

    def pwrite(self, fd: int, data: bytes) -> None:
        if self.libc is None:
            os.pwrite(fd, data, 0)
        else:
            self._check(self.libc.pwrite(fd, data, len(data), 0))  # type: ignore[attr-defined]

    def send(self, sock: socket.socket, data: bytes) -> int:
        if self.libc is None:
            return sock.send(data, _SEND_FLAGS)
        return self._check(self.libc.send(sock.fileno(), data, len(data), _SEND_FLAGS))  # type: ignore[attr-defined]


_SYSCALLS = _Syscalls()
_SEND_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)  # computed once: enum flags are slow


def _after_fork_in_child() -> None:
    agent = _agent
    if agent is not None:
        agent.after_fork_in_child()


# The two hot-path messages, formatted without json.dumps (a few µs less per cell).
_CELL_START = (
    '{"v":1,"type":"cell_start","msg_id":%s,"execution_count":%s,"code":%s,'
    '"rss":%s,"hwm":%s,"at":%r,"dropped":%d}'
)
_CELL_END = (
    '{"v":1,"type":"cell_end","msg_id":%s,"execution_count":%s,"status":"%s","ename":%s,'
    '"rss":%s,"hwm":%s,"at":%r,"dropped":%d}'
)
_encode_text = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _text(value: str | None) -> str:
    return "null" if value is None else _encode_text(value)


def _number(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _field(data: bytes, key: bytes) -> int | None:
    start = data.find(key)
    if start < 0:
        return None
    end = data.find(b"\n", start)
    try:
        return int(data[start + len(key) : end].split()[0]) * 1024  # "VmRSS:   1234 kB"
    except (ValueError, IndexError):
        return None


def _version(module: str) -> str | None:
    found = sys.modules.get(module)
    version = getattr(found, "__version__", None)
    return version if isinstance(version, str) else None


def _outcome(result: object, cell: _Cell) -> tuple[str, str | None]:
    """ok | error (with ename) | interrupted | halted (memguard's interrupt fired)."""
    error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
    ename = type(error).__name__ if error is not None else None
    if cell.halted or isinstance(error, MemoryLimitInterrupt):
        return "halted", ename
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", ename
    if result is None:  # ipykernel cancelled an async cell (its SIGINT handler) or it failed
        return ("interrupted" if cell.sigint else "error"), None
    if error is not None:
        return "error", ename
    return "ok", None


# -- which variables hold the memory --------------------------------------------------------


def measure_namespace(ip: object, limit: int = 10) -> dict[str, object]:
    """The largest user variables of ``ip.user_ns``, each buffer and object counted once.

    Buffers (numpy, torch, pandas, bytes, str) take O(1) to measure and come first; object
    graphs are walked next, largest shallow size first, so that the time bound, if reached,
    cuts the small ones.
    """
    started = time.monotonic()
    namespace = getattr(ip, "user_ns", {})
    hidden = getattr(ip, "user_ns_hidden", {})
    items = list(namespace.items())  # one atomic copy: the main thread may be running a cell
    entries = [(n, o, False) for n, o in items if _is_user_variable(n, o, hidden)]
    names = len(entries)
    out = namespace.get("Out")
    if isinstance(out, dict) and isinstance(hidden, dict) and hidden.get("Out") is out:
        numbers = sorted((k for k in list(out) if isinstance(k, int)), reverse=True)
        entries += [(f"Out[{n}]", out.get(n), True) for n in numbers[:OUT_ENTRIES]]
    meter = _Meter(started + TIME_BUDGET, ignore=(ip, namespace, hidden))
    meter.claim_owners(entries)
    found: list[tuple[dict[str, object], object]] = []
    graphs: list[tuple[int, str, object, bool]] = []
    for name, obj, output in entries:
        first = meter.names.setdefault(id(obj), name)
        if first != name:
            if not output:
                found.append((meter.alias(name, first), obj))
        elif meter.walks(obj):
            graphs.append((_shallow(obj), name, obj, output))
        else:
            found.append((meter.measure(name, obj, output), obj))
    graphs.sort(key=lambda graph: graph[0], reverse=True)
    found += [(meter.measure(name, obj, output), obj) for _, name, obj, output in graphs]
    # The output cache is listed only where it holds memory that no name holds.
    kept = [(v, o) for v, o in found if not v.pop("output", False) or v["bytes"]]
    kept.sort(key=lambda pair: pair[0]["bytes"], reverse=True)  # type: ignore[arg-type, return-value]
    variables = []
    for variable, obj in kept[:limit]:
        variable["type"] = _type_name(obj)
        variables.append(variable)
    reason = None
    if meter.shallow:
        reason = (
            f"{meter.shallow} of {names} names were only measured shallowly "
            f"(time bound of {TIME_BUDGET * 1000:.0f} ms reached)"
        )
    return {
        "taken_at": time.time(),
        "names": names,
        "total_bytes": meter.host_bytes,
        "variables": variables,
        "reason": reason,
        "elapsed": time.monotonic() - started,
    }


def _shallow(obj: object) -> int:
    try:
        return sys.getsizeof(obj)
    except Exception:
        return 0


def _is_user_variable(name: object, obj: object, hidden: object) -> bool:
    if not isinstance(name, str):
        return False
    if name[:1] == "_" and (name in _IPYTHON_NAMES or _NUMBERED.match(name)):
        return False
    if name in _IPYTHON_NAMES:
        return False
    if isinstance(hidden, dict) and name in hidden and hidden[name] is obj:
        return False
    if name.startswith("__") and name.endswith("__"):
        return False
    return not issubclass(type(obj), _SKIPPED_TYPES)


def _type_name(obj: object) -> str:
    kind = type(obj)
    module = getattr(kind, "__module__", "builtins")
    qualname = getattr(kind, "__qualname__", kind.__name__)
    root = module.split(".")[0] if isinstance(module, str) else ""
    if root in ("builtins", ""):
        return str(qualname)
    if root in ("numpy", "pandas", "torch"):
        return f"{root}.{kind.__name__}"
    return f"{module}.{qualname}"


def _short(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


class _Meter:
    """Sizes for one request: ids and buffers seen once, within the time and object bounds."""

    def __init__(self, deadline: float, ignore: tuple[object, ...]) -> None:
        self.deadline = deadline
        self.seen: set[int] = {id(o) for o in ignore}
        self.names: dict[int, str] = {}  # id of a name's object -> that name
        self.top: set[int] = set()  # ids of all names' objects: walks leave them to their name
        self.owners: dict[object, str] = {}  # buffer key -> the name that owns it
        self.counted: set[object] = set()  # buffer keys already counted
        self.objects = 0
        self.host_bytes = 0
        self.shallow = 0
        self.numpy = sys.modules.get("numpy")
        self.pandas = sys.modules.get("pandas")
        self.torch = sys.modules.get("torch")
        # measured as a whole (no walk): arrays, tensors, pandas objects
        self.measured_types: tuple[type, ...] = tuple(
            getattr(module, name)
            for module, name in (
                (self.numpy, "ndarray"),
                (self.torch, "Tensor"),
                (self.pandas, "DataFrame"),
                (self.pandas, "Series"),
                (self.pandas, "Index"),
            )
            if module is not None and isinstance(getattr(module, name, None), type)
        )

    # -- buffers -----------------------------------------------------------------------------

    def _ndarray_root(self, array: object) -> tuple[object, object, object]:
        """(root array, buffer key, the object behind the root if it is not an array)."""
        ndarray = self.numpy.ndarray  # type: ignore[union-attr]
        root = array
        while isinstance(getattr(root, "base", None), ndarray):
            root = root.base  # type: ignore[attr-defined]
        base = root.base  # type: ignore[attr-defined]
        return root, ("buffer", id(base if base is not None else root)), base

    def _torch_key(self, tensor: object) -> object:
        storage = tensor.untyped_storage()  # type: ignore[attr-defined]
        return ("torch", str(tensor.device), storage.data_ptr())  # type: ignore[attr-defined]

    def _buffer_key(self, obj: object) -> object | None:
        kind = type(obj)
        try:
            if self.numpy is not None and issubclass(kind, self.numpy.ndarray):
                return self._ndarray_root(obj)[1]
            if self.torch is not None and issubclass(kind, self.torch.Tensor):
                return self._torch_key(obj)
        except Exception:
            return None
        if kind in (bytes, bytearray):
            return ("buffer", id(obj))
        return None

    def claim_owners(self, entries: list[tuple[str, object, bool]]) -> None:
        """Each buffer belongs to the name that holds it directly; its views name that owner."""
        ndarray = getattr(self.numpy, "ndarray", None)
        tensor = getattr(self.torch, "Tensor", None)
        for name, obj, _output in entries:
            self.top.add(id(obj))
            kind = type(obj)
            owns = kind in (bytes, bytearray)
            if ndarray is not None and issubclass(kind, ndarray):
                owns = getattr(obj, "base", None) is None
            elif tensor is not None and issubclass(kind, tensor):
                owns = getattr(obj, "_base", None) is None
            if owns:
                key = self._buffer_key(obj)
                if key is not None:
                    self.owners.setdefault(key, name)

    def _take_buffer(self, key: object, name: str) -> tuple[bool, str | None]:
        """Whether this name counts the buffer now, and whose buffer it is when it does not."""
        owner = self.owners.setdefault(key, name)
        if key in self.counted:
            return False, owner
        if owner != name:
            return False, owner
        self.counted.add(key)
        return True, None

    # -- one name ----------------------------------------------------------------------------

    def walks(self, obj: object) -> bool:
        """Whether measuring obj means walking an object graph (the costly kind)."""
        kind = type(obj)
        return not (kind in _ATOMS or kind in _BUFFERS or issubclass(kind, self.measured_types))

    def alias(self, name: str, first: str) -> dict[str, object]:
        return {
            "name": _short(name),
            "bytes": 0,
            "qualifier": "exact",
            "method": "identity",
            "device": None,
            "note": _short(f"same object as {first}"),
        }

    def measure(self, name: str, obj: object, output: bool = False) -> dict[str, object]:
        variable: dict[str, object] = {
            "name": _short(name),
            "bytes": 0,
            "qualifier": "exact",
            "method": "getsizeof",
            "device": None,
            "note": None,
            "output": output,
        }
        if time.monotonic() > self.deadline or self.objects >= TOTAL_OBJECTS:
            self.shallow += 0 if output else 1
            variable["bytes"] = _shallow(obj)
            variable.update(qualifier="at_least", note="not measured: the time bound was reached")
            self.host_bytes += variable["bytes"]  # type: ignore[operator]
            return variable
        try:
            self._measure(name, obj, variable)
        except Exception as error:
            variable.update(
                qualifier="at_least", method="failed", note=_short(f"could not measure: {error!r}")
            )
        if output and variable["note"] is None:
            variable["note"] = f"IPython output cache; del {name} (or %reset -f out) frees it"
        if variable["device"] in (None, "cpu"):
            self.host_bytes += variable["bytes"]  # type: ignore[operator]
        return variable

    def _measure(self, name: str, obj: object, variable: dict[str, object]) -> None:
        kind = type(obj)
        if self.numpy is not None and issubclass(kind, self.numpy.ndarray):
            self.seen.add(id(obj))
            variable.update(self._numpy(name, obj))
        elif self.torch is not None and issubclass(kind, self.torch.Tensor):
            self.seen.add(id(obj))
            variable.update(self._torch(name, obj))
        elif self.pandas is not None and issubclass(
            kind, (self.pandas.DataFrame, self.pandas.Series, self.pandas.Index)
        ):
            self.seen.add(id(obj))
            variable.update(self._pandas(obj))
        elif kind in (bytes, bytearray):
            self.seen.add(id(obj))
            counts, owner = self._take_buffer(("buffer", id(obj)), name)
            variable["bytes"] = sys.getsizeof(obj) if counts else 0
            if owner:
                variable["note"] = _short(f"counted under {owner}")
        elif kind is memoryview:
            self.seen.add(id(obj))
            variable.update(self._memoryview(name, obj))
        elif kind in _ATOMS:
            self.seen.add(id(obj))
            variable["bytes"] = sys.getsizeof(obj)
        else:
            variable.update(self._walk(name, obj))

    def _numpy(self, name: str, array: object) -> dict[str, object]:
        root, key, base = self._ndarray_root(array)
        described = _short(f"{array.dtype} {tuple(array.shape)}")  # type: ignore[attr-defined]
        counts, owner = self._take_buffer(key, name)
        result: dict[str, object] = {"method": "nbytes", "note": described}
        if not counts:
            result["bytes"] = 0
            result["note"] = _short(f"view of {owner}: {described}, its buffer is counted there")
            return result
        if base is None:
            size, qualifier = root.nbytes, "exact"  # type: ignore[attr-defined]
        elif type(base) in (bytes, bytearray):
            size, qualifier = sys.getsizeof(base), "exact"
        else:
            size, qualifier = root.nbytes, "estimate"  # type: ignore[attr-defined]
            result["note"] = _short(f"{described}, a view of a {type(base).__name__}")
        if root is not array:
            result["note"] = _short(f"{described}, a view; its whole base buffer is counted here")
        if array.dtype.hasobject:  # type: ignore[attr-defined]
            qualifier = "at_least"
            result["note"] = _short(f"{described}; the objects it points to are not counted")
        result.update(bytes=int(size), qualifier=qualifier)
        return result

    def _torch(self, name: str, tensor: object) -> dict[str, object]:
        device = str(tensor.device)  # type: ignore[attr-defined]
        described = _short(f"{tensor.dtype} {tuple(tensor.shape)}")  # type: ignore[attr-defined]
        result: dict[str, object] = {"method": "storage", "device": device, "note": described}
        try:
            key = self._torch_key(tensor)
            size = tensor.untyped_storage().nbytes()  # type: ignore[attr-defined]
            qualifier = "exact"
        except Exception:  # sparse, nested or other tensors without one plain storage
            key = ("tensor", id(tensor))
            size = tensor.element_size() * tensor.nelement()  # type: ignore[attr-defined]
            qualifier = "estimate"
            result["method"] = "element_size*nelement"
        counts, owner = self._take_buffer(key, name)
        if not counts:
            result.update(bytes=0, note=_short(f"view of {owner}: {described}, counted there"))
            return result
        if not device.startswith("cpu"):
            result["note"] = _short(f"{described}; {device} memory, not host RAM")
        result.update(bytes=int(size), qualifier=qualifier)
        return result

    def _pandas(self, obj: object) -> dict[str, object]:
        """memory_usage(deep=True) when the object cells are few; else sampled: an estimate."""
        pandas = self.pandas
        if issubclass(type(obj), pandas.DataFrame):  # type: ignore[union-attr]
            shallow = int(obj.memory_usage(index=True, deep=False).sum())  # type: ignore[attr-defined]
            dtypes = list(obj.dtypes)  # type: ignore[attr-defined]
            rows = len(obj)  # type: ignore[arg-type]
            deep_columns = [i for i, d in enumerate(dtypes) if _needs_deep(d)]
            index_deep = _needs_deep(obj.index.dtype)  # type: ignore[attr-defined]
            described = f"{rows} rows × {len(dtypes)} columns"
        else:
            shallow = int(obj.memory_usage(deep=False))  # type: ignore[attr-defined]
            rows = len(obj)  # type: ignore[arg-type]
            deep_columns = [0] if _needs_deep(obj.dtype) else []  # type: ignore[attr-defined]
            index = getattr(obj, "index", None)
            index_deep = index is not None and _needs_deep(index.dtype)
            described = f"{rows} rows, {obj.dtype}"  # type: ignore[attr-defined]
        cells = rows * (len(deep_columns) + (1 if index_deep else 0))
        if cells == 0:
            return {"bytes": shallow, "method": "memory_usage", "note": described}
        if cells <= DEEP_OBJECT_CELLS:
            size = obj.memory_usage(deep=True)  # type: ignore[attr-defined]
            size = int(size.sum()) if hasattr(size, "sum") else int(size)
            return {"bytes": size, "method": "memory_usage(deep=True)", "note": described}
        width = len(deep_columns) + 1
        step = max(1, rows // max(1, min(SAMPLE_ROWS, SAMPLE_CELLS // width)))
        if issubclass(type(obj), pandas.DataFrame):  # type: ignore[union-attr]
            sample = obj.iloc[::step, deep_columns]  # type: ignore[attr-defined]
            extra = int(sample.memory_usage(index=True, deep=True).sum()) - int(
                sample.memory_usage(index=True, deep=False).sum()
            )
        else:
            sample = obj.iloc[::step] if hasattr(obj, "iloc") else obj[::step]  # type: ignore[index]
            extra = int(sample.memory_usage(deep=True)) - int(sample.memory_usage(deep=False))
        size = shallow + int(extra * rows / max(1, len(sample)))
        return {
            "bytes": size,
            "qualifier": "estimate",
            "method": f"memory_usage(deep=True) of {len(sample)} sampled rows",
            "note": described,
        }

    def _memoryview(self, name: str, view: memoryview) -> dict[str, object]:
        exporter = view.obj
        if type(exporter) in (bytes, bytearray):
            counts, owner = self._take_buffer(("buffer", id(exporter)), name)
            if not counts:
                return {"bytes": 0, "method": "nbytes", "note": _short(f"view of {owner}")}
            return {"bytes": sys.getsizeof(exporter), "method": "getsizeof"}
        return {"bytes": view.nbytes, "qualifier": "estimate", "method": "nbytes"}

    # -- containers and other objects --------------------------------------------------------

    def _walk(self, name: str, root: object) -> dict[str, object]:
        """sys.getsizeof over the object graph, each object once, within the bounds."""
        stack = [root]
        total = 0
        devices: dict[str, int] = {}
        walked = 0
        cut = False
        budget = min(NAME_OBJECTS, TOTAL_OBJECTS - self.objects)
        while stack:
            if walked >= budget or (walked & 255 == 0 and time.monotonic() > self.deadline):
                cut = True
                break
            obj = stack.pop()
            ident = id(obj)
            if ident in self.seen or (ident in self.top and obj is not root):
                continue
            self.seen.add(ident)
            walked += 1
            kind = type(obj)
            if kind in _ATOMS:
                total += sys.getsizeof(obj)
                continue
            room = budget - walked - len(stack)
            if kind in _SEQUENCES:  # the plain containers first: the common case, kept short
                total += sys.getsizeof(obj)
                if len(obj) > room:  # type: ignore[arg-type]
                    cut = True
                stack.extend(itertools.islice(obj, max(0, room)))  # type: ignore[call-overload]
                continue
            if kind is dict:
                total += sys.getsizeof(obj)
                if len(obj) * 2 > room:  # type: ignore[arg-type]
                    cut = True
                stack.extend(itertools.islice(dict.keys(obj), max(0, room // 2)))  # type: ignore[arg-type]
                stack.extend(itertools.islice(dict.values(obj), max(0, room // 2)))  # type: ignore[arg-type]
                continue
            if issubclass(kind, _SKIPPED_TYPES):
                continue  # shared machinery (modules, classes, functions), not data
            if kind in _BUFFERS or issubclass(kind, self.measured_types):
                part: dict[str, object] = {"device": None}
                self._measure(name, obj, part)
                device = part.get("device")
                size = part.get("bytes", 0)
                if isinstance(device, str) and not device.startswith("cpu"):
                    devices[device] = devices.get(device, 0) + size  # type: ignore[operator]
                else:
                    total += size  # type: ignore[operator]
                cut = cut or part.get("qualifier") in ("at_least", "estimate")
                continue
            try:
                total += sys.getsizeof(obj)
            except Exception:
                cut = True
                continue
            if issubclass(kind, dict):
                if len(obj) * 2 > room:  # type: ignore[arg-type]
                    cut = True
                stack.extend(itertools.islice(dict.keys(obj), max(0, room // 2)))  # type: ignore[arg-type]
                stack.extend(itertools.islice(dict.values(obj), max(0, room // 2)))  # type: ignore[arg-type]
            elif issubclass(kind, (list, tuple, set, frozenset, collections.deque)):
                if len(obj) > room:  # type: ignore[arg-type]
                    cut = True
                stack.extend(itertools.islice(iter(obj), max(0, room)))  # type: ignore[call-overload]
            elif getattr(kind, "__dictoffset__", 0):
                try:
                    attributes = object.__getattribute__(obj, "__dict__")
                except Exception:
                    attributes = None
                if isinstance(attributes, dict):
                    stack.append(attributes)
        self.objects += walked
        result: dict[str, object] = {"bytes": total, "method": "getsizeof walk"}
        if devices and not total:
            device, size = max(devices.items(), key=lambda item: item[1])
            result.update(bytes=size, device=device, note=f"{device} memory, not host RAM")
        elif devices:
            result["note"] = _short(
                "also " + ", ".join(f"{_mib(size)} on {d}" for d, size in devices.items())
            )
        if cut:
            result["qualifier"] = "at_least"
            if result.get("note") is None:
                result["note"] = f"stopped at the bound of {walked} objects; holds at least this"
        return result


def _mib(size: int) -> str:
    """A size for a note, in MiB or GiB (the server's words say the rest)."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def _needs_deep(dtype: object) -> bool:
    """Object-backed columns: their Python objects are only counted by deep=True."""
    if getattr(dtype, "kind", None) == "O":
        return True
    storage = getattr(dtype, "storage", None)  # pandas StringDtype: "python" or "pyarrow"
    return storage == "python"
