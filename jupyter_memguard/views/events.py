"""memguard's events on jupyter_server's event bus (one versioned schema per kind)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "event_schemas"
SCHEMA_VERSION = "v2"  # every payload carries the words and a structured trigger
EVENT_KINDS = (
    "memory_warning",
    "kernel_halting",
    "kernel_halted",
    "kernel_culled",
    "kernel_terminated",
    "memory_pressure",
    "gpu_pressure",
)


def schema_id(kind: str) -> str:
    """The schema id of one event kind."""
    return f"https://events.jupyter.org/jupyter_memguard/{kind}/{SCHEMA_VERSION}"


class EventEmitter:
    """Registers memguard's schemas with the server's event logger and emits through it."""

    def __init__(self, event_logger: Any | None, log: logging.Logger) -> None:
        self._logger = event_logger
        self._log = log
        self.emitted: list[tuple[str, dict[str, Any]]] = []  # recent events, newest last
        if event_logger is not None:
            for kind in EVENT_KINDS:
                event_logger.register_event_schema(SCHEMA_DIR / kind / f"{SCHEMA_VERSION}.yaml")

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Emit one event; a failure is logged, never raised into the caller."""
        self.emitted.append((kind, data))
        del self.emitted[:-200]
        if self._logger is None:
            return
        try:
            self._logger.emit(schema_id=schema_id(kind), data=data)
        except Exception:
            self._log.exception("memguard: could not emit %s event", kind)
