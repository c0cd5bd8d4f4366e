"""The agent protocol as typed values: what a kernel's agent says, parsed strictly.

Newline-delimited JSON, one object per line, at most ``MAX_LINE`` bytes, ``"v": 1``. The kernel
side (``kernel/jupyter_memguard_agent.py``) is standard library only and cannot import this
module, so the constants are repeated there; ``tests/test_agent_protocol.py`` checks they agree.
Anything that does not parse raises ``ProtocolError``: the channel then drops that agent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal, cast

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024

CellStatus = Literal["ok", "error", "interrupted", "halted"]
Qualifier = Literal["exact", "estimate", "at_least"]
VariablesStatus = Literal["ok", "busy", "unavailable"]
CELL_STATUSES: frozenset[str] = frozenset({"ok", "error", "interrupted", "halted"})
QUALIFIERS: frozenset[str] = frozenset({"exact", "estimate", "at_least"})


class ProtocolError(ValueError):
    """A message that breaks the protocol (the agent that sent it is dropped)."""


@dataclass(frozen=True)
class AgentHello:
    """An agent connected and was verified as the kernel's own process."""

    kernel_id: str
    pid: int
    at: float
    python: str | None
    ipykernel: str | None
    ipython: str | None


@dataclass(frozen=True)
class CellStarted:
    """Sent from pre_run_cell, before the cell's code runs (kernel clock, time.time())."""

    kernel_id: str
    pid: int
    msg_id: str | None
    execution_count: int | None
    code: str
    rss_bytes: int | None
    hwm_bytes: int | None  # the peak since the previous reset (before this cell)
    at: float


@dataclass(frozen=True)
class CellEnded:
    """Sent from post_run_cell; hwm_bytes is the kernel process's peak during this cell."""

    kernel_id: str
    pid: int
    msg_id: str | None
    execution_count: int | None
    status: CellStatus
    ename: str | None
    rss_bytes: int | None
    hwm_bytes: int | None
    at: float


@dataclass(frozen=True)
class AgentLost:
    """The agent's connection ended (kernel exited, misbehaved or was replaced); server clock."""

    kernel_id: str
    pid: int
    at: float
    reason: str


AgentEvent = AgentHello | CellStarted | CellEnded | AgentLost


@dataclass(frozen=True)
class Variable:
    """One name of the kernel's namespace and the memory it holds."""

    name: str
    type: str
    bytes: int
    qualifier: Qualifier
    method: str
    device: str | None  # torch's device ("cpu", "cuda:0"); None for host objects
    note: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "bytes": self.bytes,
            "qualifier": self.qualifier,
            "method": self.method,
            "device": self.device,
            "note": self.note,
        }


@dataclass(frozen=True)
class VariablesReport:
    """The largest variables, or why there are none: "busy" (native code holds the GIL) or
    "unavailable" (no agent). total_bytes is host RAM held by all the names measured."""

    kernel_id: str
    status: VariablesStatus
    reason: str | None
    taken_at: float
    total_bytes: int | None
    variables: tuple[Variable, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "kernel_id": self.kernel_id,
            "status": self.status,
            "reason": self.reason,
            "taken_at": self.taken_at,
            "total_bytes": self.total_bytes,
            "variables": [v.to_json() for v in self.variables],
        }


@dataclass(frozen=True)
class AgentStats:
    """The agent's own accounting inside the kernel (what it costs the kernel)."""

    kernel_id: str
    cells: int
    hook_ns: int  # pre_run_cell + post_run_cell, all cells
    costs_ns: tuple[int, ...]  # per cell (both hooks), wall clock, the most recent ones
    requests: int
    request_ns: int
    sent: int
    dropped: int


# -- parsing -------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ProtocolError(f"{name} is not JSON")


def decode(line: bytes) -> dict[str, object]:
    """One line into a version-checked JSON object."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a message of {len(line)} bytes, over {MAX_LINE}")
    try:
        data = json.loads(line, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {data.get('v')!r}, expected {PROTOCOL_VERSION}")
    if not isinstance(data.get("type"), str):
        raise ProtocolError("no message type")
    return cast("dict[str, object]", data)


def encode(message: dict[str, object]) -> bytes:
    data = json.dumps({"v": PROTOCOL_VERSION, **message}, separators=(",", ":"), allow_nan=False)
    line = data.encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"a request of {len(line)} bytes, over {MAX_LINE}")
    return line


def field_str(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    return value


def field_opt_str(data: dict[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string or null")
    return value


def field_int(data: dict[str, object], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{key} must be a non-negative integer")
    return value


def field_opt_int(data: dict[str, object], key: str) -> int | None:
    return None if data.get(key) is None else field_int(data, key)


def field_time(data: dict[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"{key} must be a finite number")
    return float(value)


def parse_hello(data: dict[str, object], at: float) -> AgentHello:
    if data["type"] != "hello":
        raise ProtocolError(f"expected hello, got {data['type']!r}")
    kernel_id = field_str(data, "kernel_id")
    if not 0 < len(kernel_id) <= 200:
        raise ProtocolError("kernel_id must be 1 to 200 characters")
    return AgentHello(
        kernel_id=kernel_id,
        pid=field_int(data, "pid"),
        at=at,
        python=field_opt_str(data, "python"),
        ipykernel=field_opt_str(data, "ipykernel"),
        ipython=field_opt_str(data, "ipython"),
    )


def parse_cell_start(data: dict[str, object], kernel_id: str, pid: int) -> CellStarted:
    return CellStarted(
        kernel_id=kernel_id,
        pid=pid,
        msg_id=field_opt_str(data, "msg_id"),
        execution_count=field_opt_int(data, "execution_count"),
        code=field_str(data, "code"),
        rss_bytes=field_opt_int(data, "rss"),
        hwm_bytes=field_opt_int(data, "hwm"),
        at=field_time(data, "at"),
    )


def parse_cell_end(data: dict[str, object], kernel_id: str, pid: int) -> CellEnded:
    status = field_str(data, "status")
    if status not in CELL_STATUSES:
        raise ProtocolError(f"unknown cell status {status!r}")
    return CellEnded(
        kernel_id=kernel_id,
        pid=pid,
        msg_id=field_opt_str(data, "msg_id"),
        execution_count=field_opt_int(data, "execution_count"),
        status=cast("CellStatus", status),
        ename=field_opt_str(data, "ename"),
        rss_bytes=field_opt_int(data, "rss"),
        hwm_bytes=field_opt_int(data, "hwm"),
        at=field_time(data, "at"),
    )


def parse_variable(data: object) -> Variable:
    if not isinstance(data, dict):
        raise ProtocolError("a variable must be an object")
    entry = cast("dict[str, object]", data)
    qualifier = field_str(entry, "qualifier")
    if qualifier not in QUALIFIERS:
        raise ProtocolError(f"unknown qualifier {qualifier!r}")
    return Variable(
        name=field_str(entry, "name"),
        type=field_str(entry, "type"),
        bytes=field_int(entry, "bytes"),
        qualifier=cast("Qualifier", qualifier),
        method=field_str(entry, "method"),
        device=field_opt_str(entry, "device"),
        note=field_opt_str(entry, "note"),
    )


def parse_variables(result: object, kernel_id: str, limit: int) -> VariablesReport:
    if not isinstance(result, dict):
        raise ProtocolError("a variables result must be an object")
    data = cast("dict[str, object]", result)
    entries = data.get("variables")
    if not isinstance(entries, list):
        raise ProtocolError("variables must be a list")
    variables = tuple(parse_variable(entry) for entry in entries[:limit])
    return VariablesReport(
        kernel_id=kernel_id,
        status="ok",
        reason=field_opt_str(data, "reason"),
        taken_at=field_time(data, "taken_at"),
        total_bytes=field_int(data, "total_bytes"),
        variables=variables,
    )


def parse_stats(result: object, kernel_id: str) -> AgentStats:
    if not isinstance(result, dict):
        raise ProtocolError("a stats result must be an object")
    data = cast("dict[str, object]", result)
    costs = data.get("costs_ns")
    if not isinstance(costs, list):
        raise ProtocolError("costs_ns must be a list")
    return AgentStats(
        kernel_id=kernel_id,
        cells=field_int(data, "cells"),
        hook_ns=field_int(data, "hook_ns"),
        costs_ns=tuple(field_int({"c": c}, "c") for c in costs),
        requests=field_int(data, "requests"),
        request_ns=field_int(data, "request_ns"),
        sent=field_int(data, "sent"),
        dropped=field_int(data, "dropped"),
    )
