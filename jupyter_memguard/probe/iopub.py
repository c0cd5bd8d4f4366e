"""Listen to each kernel's iopub: the errors its cells raise (GPU out-of-memory) and its cells.

One SUB socket per kernel, as jupyter_server's own activity tracking has. Most iopub traffic
(streams, displays, comms) is dropped by a byte search of the header before any JSON is parsed
or any signature checked. Deserialized (with a Session of our own holding the kernel's key, so
nothing is shared with other clients) are only: ``error``; and, when cells are tracked,
``execute_input`` and the ``status`` messages whose parent is an ``execute_request`` (a second
byte search, of the parent header). A cell thus costs three or four small parses on the event loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from hmac import compare_digest
from typing import TYPE_CHECKING, Any

from jupyter_client.session import Session

from ..lifecycle import Gone, LifecycleEvent, Restarted, Started

if TYPE_CHECKING:
    from .cells import CellTracker

ErrorCallback = Callable[[str, str, str], None]  # (kernel_id, ename, evalue)

_STATUS = b'"status"'
_EXECUTE_INPUT = b'"execute_input"'
_ERROR = b'"error"'
_EXECUTE_REQUEST = b'"execute_request"'
CLOCK_SKEW_S = 5.0  # a date further ahead than this is not believed


def _unpack(
    session: Session, parts: list[bytes]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """(header, parent header, content), or None for a bad signature.

    Leaner than ``Session.deserialize``, which also parses every date with dateutil (~0.1 ms a
    message); only the header's date is needed here, and ``_sent_at`` reads it cheaply.
    """
    if session.auth is not None and not compare_digest(parts[0], session.sign(parts[1:5])):
        return None
    return json.loads(parts[1]), json.loads(parts[2]), json.loads(parts[4])


def _sent_at(header: dict[str, Any]) -> float | None:
    """When the kernel made the message (its header's date), or None if unreadable.

    The kernel's own time is the truer start and end of a cell: a cell that holds the GIL
    delays the kernel's iopub thread, so its messages can reach us late (seconds, for a large
    allocation). Used for local kernels only, whose clock is ours.
    """
    date = header.get("date")
    if not isinstance(date, str):
        return None
    try:
        if date.endswith("Z"):
            date = date[:-1] + "+00:00"
        stamp = datetime.fromisoformat(date)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        at = stamp.timestamp()
    except ValueError:
        return None
    return at if at < time.time() + CLOCK_SKEW_S else None


class _Subscription:
    def __init__(self, pid: int | None, stream: Any) -> None:
        self.pid = pid
        self.stream = stream
        self.received = 0


class IopubListener:
    """Keeps one iopub subscription per live kernel; reports errors and feeds the cell tracker."""

    def __init__(
        self,
        kernel_manager: Any,
        on_error: ErrorCallback | None,
        log: logging.Logger,
        cells: CellTracker | None = None,
    ) -> None:
        self.km = kernel_manager
        self.on_error = on_error
        self.log = log
        self.cells = cells
        self._subscriptions: dict[str, _Subscription] = {}
        self._failed: dict[str, int | None] = {}  # kernels we could not subscribe to (per pid)
        self._idle_waiters: dict[str, Callable[[], None]] = {}  # kernel id → called at its idle
        # What listening costs the event loop (for metrics and the budget of 1 ms per cell).
        self.callback_seconds = 0.0
        self.messages_received = 0
        self.messages_parsed = 0

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        """Listen to a kernel from its start (and its new process after a restart, which may
        have new ports); stop when it leaves."""
        kernel_id = event.life.kernel_id
        if isinstance(event, (Started, Restarted)):
            self.watch(kernel_id, event.life.pid)
        elif isinstance(event, Gone):
            self._close(kernel_id)
            self._failed.pop(kernel_id, None)

    def status_json(self) -> dict[str, Any]:
        """What listening costs: kernels listened to, messages, event-loop seconds spent."""
        return {
            "listening": self.listening,
            "messages_received": self.messages_received,
            "messages_parsed": self.messages_parsed,
            "callback_seconds": round(self.callback_seconds, 6),
        }

    def watch(self, kernel_id: str, pid: int | None) -> None:
        """Subscribe to one kernel now (at its start, before any tick), leaving the others."""
        current = self._subscriptions.get(kernel_id)
        if current is not None and current.pid == pid:
            return
        self._close(kernel_id)
        self._subscribe(kernel_id, pid)

    def when_idle(self, kernel_id: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the kernel next says it is idle: a halt that waits for
        the interrupted cell's traceback to reach the notebook goes on the moment it has, not
        at the next tick. Only then is a status message of an agent's kernel parsed."""
        self._idle_waiters[kernel_id] = callback

    def _heard_idle(self, kernel_id: str) -> None:
        callback = self._idle_waiters.pop(kernel_id, None)
        if callback is None:
            return
        try:
            callback()
        except Exception:
            self.log.exception("memguard: idle callback for kernel %s failed", kernel_id)

    def heard_from(self, kernel_id: str) -> bool:
        """Whether any message came from this kernel since we subscribed (SUB joins late)."""
        subscription = self._subscriptions.get(kernel_id)
        return subscription is not None and subscription.received > 0

    def _subscribe(self, kernel_id: str, pid: int | None) -> None:
        try:
            kernel = self.km.get_kernel(kernel_id)
            session = Session(
                key=kernel.session.key, signature_scheme=kernel.session.signature_scheme
            )
            stream = kernel.connect_iopub()
            if not hasattr(stream, "on_recv"):  # a plain KernelManager gives a bare socket
                from zmq.eventloop.zmqstream import ZMQStream

                stream = ZMQStream(stream)
        except Exception as error:  # no connection info (e.g. a gateway kernel)
            self.log.debug("memguard: cannot listen to kernel %s's iopub: %s", kernel_id, error)
            self._failed[kernel_id] = pid
            return
        subscription = _Subscription(pid, stream)
        stream.on_recv(lambda parts: self._received(kernel_id, session, subscription, parts))
        self._subscriptions[kernel_id] = subscription
        self._failed.pop(kernel_id, None)

    def _received(
        self, kernel_id: str, session: Session, subscription: _Subscription, parts: list[bytes]
    ) -> None:
        started = time.perf_counter()
        try:
            subscription.received += 1
            self.messages_received += 1
            _identities, message_parts = session.feed_identities(parts, copy=True)
            if len(message_parts) < 5:
                return
            header, parent = message_parts[1], message_parts[2]
            cells = self.cells
            if cells is not None and cells.source(kernel_id) == "agent":
                cells = None  # its agent reports its cells: only errors are read here
            if _STATUS in header:
                waited = kernel_id in self._idle_waiters
                if (cells is None and not waited) or _EXECUTE_REQUEST not in parent:
                    return
            elif _EXECUTE_INPUT in header:
                if cells is None:
                    return
            elif _ERROR not in header:
                return
            message = _unpack(session, message_parts)
            if message is None:
                self.log.debug("memguard: iopub message from %s with a bad signature", kernel_id)
                return
            self.messages_parsed += 1
            self._dispatch(kernel_id, *message, cells, subscription.pid is not None)
        except Exception as error:  # a malformed message: ignore it
            self.log.debug("memguard: unreadable iopub message from %s: %s", kernel_id, error)
        finally:
            self.callback_seconds += time.perf_counter() - started

    def _dispatch(
        self,
        kernel_id: str,
        header: dict[str, Any],
        parent_header: dict[str, Any],
        content: dict[str, Any],
        cells: CellTracker | None,
        local: bool,
    ) -> None:
        msg_type = header.get("msg_type")
        at = _sent_at(header) if local and cells is not None else None
        parent_id = str(parent_header.get("msg_id") or "")
        if msg_type == "status":
            state = content.get("execution_state")
            if state == "idle":
                self._heard_idle(kernel_id)
            if cells is None or not parent_id:
                return
            if state == "busy":
                cells.on_busy(kernel_id, parent_id, at)
            elif state == "idle":
                cells.on_idle(kernel_id, parent_id, at)
        elif msg_type == "execute_input":
            if cells is not None and parent_id:
                count = content.get("execution_count")
                cells.on_execute_input(
                    kernel_id,
                    parent_id,
                    count if isinstance(count, int) else None,
                    str(content.get("code", "")),
                    at,
                )
        elif msg_type == "error":
            ename = str(content.get("ename", ""))
            if cells is not None and parent_id:
                cells.on_error(kernel_id, parent_id, ename)
            if self.on_error is not None:
                self.on_error(kernel_id, ename, str(content.get("evalue", "")))

    def _close(self, kernel_id: str) -> None:
        self._idle_waiters.pop(kernel_id, None)
        subscription = self._subscriptions.pop(kernel_id, None)
        if subscription is not None:
            subscription.stream.close()

    def close(self) -> None:
        for kernel_id in list(self._subscriptions):
            self._close(kernel_id)

    @property
    def listening(self) -> int:
        return len(self._subscriptions)
