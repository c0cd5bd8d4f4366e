"""Sizes in and out: parse what people configure, print figures they can compare with it.

Configured sizes like ``600M`` are binary (as Kubernetes and JupyterHub read them), so figures
are shown in binary units by default (``600 MiB``): a configured limit reads back as configured.
``display_units = "decimal"`` shows powers of 1000 (``629.1 MB``) instead.
"""

from __future__ import annotations

import re
from typing import Literal

Units = Literal["binary", "decimal"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Parse a byte count: an integer, or a string like "4G", "512MiB", "1.5 GB".

    Single-letter units (K, M, G, T) are binary, as in Kubernetes-style "4G" limits people
    expect to mean GiB; two-letter decimal units (KB, MB, GB, TB) are powers of 1000 and
    the ``i`` forms (KiB, MiB, GiB) powers of 1024. Raises ValueError on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"size must not be negative: {value!r}")
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (use bytes or a number with K, M, G, T, MiB, GB…)")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit in ("k", "m", "g", "t"):
        unit += "i"
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {match.group(2)!r} in {value!r}")
    return int(number * _UNITS[unit])


def human_bytes(size: float | None, units: Units = "binary") -> str:
    """'600 MiB', '1.5 GiB' (binary) or '629.1 MB' (decimal); 'an unknown amount' for None.

    One decimal, dropped when it is 0, so a configured '600M' reads back as '600 MiB'.
    """
    if size is None:
        return "an unknown amount"
    step, names = (
        (1024, ("B", "KiB", "MiB", "GiB", "TiB"))
        if units == "binary"
        else (1000, ("B", "kB", "MB", "GB", "TB"))
    )
    value = float(size)
    for name in names[:-1]:
        if abs(value) < step:
            if name == "B":
                return f"{value:.0f} B"
            return f"{_one_decimal(value)} {name}"
        value /= step
    return f"{_one_decimal(value)} {names[-1]}"


def _one_decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
