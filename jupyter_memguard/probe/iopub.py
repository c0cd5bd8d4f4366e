"""Listen to each kernel's iopub for the errors its cells raise (for GPU out-of-memory errors).

One SUB socket per kernel, as jupyter_server's own activity tracking has. Most iopub traffic
(streams, displays, status) is dropped by a byte search of the header before any JSON is parsed
or any signature checked; only ``error`` messages are deserialized (with a Session of our own
holding the kernel's key, so nothing is shared with other clients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from jupyter_client.session import Session

ErrorCallback = Callable[[str, str, str], None]  # (kernel_id, ename, evalue)


class _Subscription:
    def __init__(self, pid: int | None, stream: Any) -> None:
        self.pid = pid
        self.stream = stream


class KernelErrorListener:
    """Keeps one iopub subscription per live kernel and reports every ``error`` message."""

    def __init__(self, kernel_manager: Any, on_error: ErrorCallback, log: logging.Logger) -> None:
        self.km = kernel_manager
        self.on_error = on_error
        self.log = log
        self._subscriptions: dict[str, _Subscription] = {}
        self._failed: dict[str, int | None] = {}  # kernels we could not subscribe to (per pid)

    def sync(self, kernels: dict[str, int | None]) -> None:
        """Subscribe to new (or restarted) kernels and drop those that are gone (event loop)."""
        for kernel_id in [k for k in self._subscriptions if k not in kernels]:
            self._close(kernel_id)
        for kernel_id in [k for k in self._failed if k not in kernels]:
            self._failed.pop(kernel_id)
        for kernel_id, pid in kernels.items():
            current = self._subscriptions.get(kernel_id)
            if current is not None and current.pid == pid:
                continue
            if current is None and kernel_id in self._failed and self._failed[kernel_id] == pid:
                continue
            self._close(kernel_id)
            self._subscribe(kernel_id, pid)

    def _subscribe(self, kernel_id: str, pid: int | None) -> None:
        try:
            kernel = self.km.get_kernel(kernel_id)
            session = Session(
                key=kernel.session.key, signature_scheme=kernel.session.signature_scheme
            )
            stream = kernel.connect_iopub()
        except Exception as error:  # no connection info (e.g. a gateway kernel)
            self.log.debug("memguard: cannot listen to kernel %s's errors: %s", kernel_id, error)
            self._failed[kernel_id] = pid
            return
        stream.on_recv(lambda parts: self._received(kernel_id, session, parts))
        self._subscriptions[kernel_id] = _Subscription(pid, stream)
        self._failed.pop(kernel_id, None)

    def _received(self, kernel_id: str, session: Session, parts: list[bytes]) -> None:
        try:
            _identities, message_parts = session.feed_identities(parts, copy=True)
            if len(message_parts) < 5 or b'"error"' not in message_parts[1]:
                return
            message = session.deserialize(message_parts, content=True)
            if message["header"].get("msg_type") != "error":
                return
            content = message.get("content") or {}
            self.on_error(kernel_id, str(content.get("ename", "")), str(content.get("evalue", "")))
        except Exception as error:  # a bad signature or a malformed message: ignore it
            self.log.debug("memguard: unreadable iopub message from %s: %s", kernel_id, error)

    def _close(self, kernel_id: str) -> None:
        subscription = self._subscriptions.pop(kernel_id, None)
        if subscription is not None:
            subscription.stream.close()

    def close(self) -> None:
        for kernel_id in list(self._subscriptions):
            self._close(kernel_id)

    @property
    def listening(self) -> int:
        return len(self._subscriptions)
