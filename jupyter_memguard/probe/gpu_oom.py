"""Recognise GPU out-of-memory errors in a kernel's error output (pure, no I/O).

A CUDA out-of-memory error does not kill a kernel: the library raises an exception, the cell
fails and the kernel reports the error on iopub (``ename``, ``evalue``). The messages below are
those of the libraries notebooks use (PyTorch, CuPy, TensorFlow, JAX, Numba, raw CUDA/cuBLAS
status codes); a host ``MemoryError`` is not a GPU error and is never matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_DECIMAL = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

# (library, ename pattern or None for any, evalue pattern); the first match wins.
_PATTERNS: tuple[tuple[str, re.Pattern[str] | None, re.Pattern[str]], ...] = (
    (
        "PyTorch",
        None,
        re.compile(
            r"(?P<api>CUDA|HIP|XPU) out of memory\. Tried to allocate "
            r"(?P<size>[\d.]+) ?(?P<unit>[KMGT]?)(?P<binary>i?)B"
            r"(?:.*?GPU (?P<device>\d+))?",
            re.S,
        ),
    ),
    ("PyTorch", None, re.compile(r"(?P<api>CUDA|HIP) error: out of memory")),
    (
        "CuPy",
        re.compile(r"OutOfMemoryError"),
        re.compile(r"Out of memory allocating (?P<count>[\d,]+) bytes"),
    ),
    (
        "JAX",
        None,
        re.compile(
            r"RESOURCE_EXHAUSTED: Out of memory while trying to allocate (?P<count>\d+) bytes"
        ),
    ),
    (
        "TensorFlow",
        re.compile(r"ResourceExhausted"),
        re.compile(
            r"OOM when allocating tensor(?:.*?on /job:[^/]*/replica:\d+/task:\d+/device:GPU:(?P<device>\d+))?",
            re.S,
        ),
    ),
    ("CUDA", None, re.compile(r"CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation")),
    ("CUDA", None, re.compile(r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED")),
)

MAX_MESSAGE = 500


@dataclass(frozen=True)
class GpuOomError:
    """One GPU out-of-memory error a kernel reported."""

    library: str
    error_name: str
    message: str  # the first line of the error value, at most MAX_MESSAGE characters
    requested_bytes: int | None
    device_index: int | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "error_name": self.error_name,
            "message": self.message,
            "requested_bytes": self.requested_bytes,
            "device_index": self.device_index,
            "at": self.at,
        }


def _requested(match: re.Match[str]) -> int | None:
    groups = match.groupdict()
    if groups.get("count"):
        return int(groups["count"].replace(",", ""))
    if groups.get("size"):
        table = _UNITS if groups.get("binary") else _DECIMAL
        return int(float(groups["size"]) * table[groups.get("unit") or ""])
    return None


def parse_gpu_oom(error_name: str, error_value: str, at: float) -> GpuOomError | None:
    """The GPU out-of-memory error in an iopub ``error`` message, or None if it is not one."""
    for library, name_pattern, value_pattern in _PATTERNS:
        if name_pattern is not None and not name_pattern.search(error_name):
            continue
        match = value_pattern.search(error_value)
        if match is None:
            continue
        device = match.groupdict().get("device")
        first_line = error_value.strip().splitlines()[0] if error_value.strip() else ""
        return GpuOomError(
            library=library,
            error_name=error_name,
            message=first_line[:MAX_MESSAGE],
            requested_bytes=_requested(match),
            device_index=int(device) if device is not None else None,
            at=at,
        )
    return None
