"""The Tick and the settings as JSON: what the REST API, the CLI and the UI read.

Pure functions of the published snapshot: serialising never looks a kernel up, so a request
cannot fail because a kernel is starting or leaving while it is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..forensics.journal import TerminationRecord
from ..guard.policy import effective_lines, kernel_limit
from ..models import Budget, KernelState, Tick
from ..probe.cells import CellRecord
from ..settings import MemGuardSettings
from ..wording import describe, vocabulary

GROWING_SPAN_S = 3.0  # a rate is shown once the kernel has grown for this long ...
GROWING_BYTES = 2 * 2**20  # ... by at least this much
GROWING_RATE = 2**20  # bytes/s


def growing(state: KernelState) -> bool:
    """Whether a growth rate is worth showing: the kernel is busy and has grown for a few
    seconds (not a one-time allocation seconds ago, not an idle kernel)."""
    if not state.busy or state.growth_bytes_per_s < GROWING_RATE or len(state.history) < 2:
        return False
    end, now_bytes = state.history[-1]
    earlier = [b for t, b in state.history if end - t >= GROWING_SPAN_S]
    return bool(earlier) and now_bytes - earlier[-1] >= GROWING_BYTES


def kernel_json(
    state: KernelState,
    settings: MemGuardSettings,
    history: bool = False,
    halting: bool = False,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """The REST representation of one kernel as the tick saw it."""
    memory = None
    if state.memory is not None:
        m = state.memory
        memory = {
            "used_bytes": m.decision_bytes,
            "method": m.method,
            "exact_at": round(m.exact_at, 3) if m.exact_at else None,
            "rss_bytes": m.rss_bytes,
            "peak_bytes": state.peak_bytes,
            "growth_bytes_per_s": round(state.growth_bytes_per_s, 1),
            "children": list(m.children),
            "pss_bytes": m.pss_bytes,
            "uss_bytes": m.uss_bytes,
            "sampled_at": round(m.sampled_at, 3),
            "source": m.source,
        }
    limit = state.limit_bytes
    # Its lines as they apply now: its own, or lower where the shared budget's line, less what
    # everything else holds, comes first (what the UI says is what happens).
    if budget is not None:
        warn, halt, kill = effective_lines(state, budget, settings)
    else:
        warn, halt, kill = (int(limit * f) for f in _fractions(settings))
    data: dict[str, Any] = {
        "id": state.kernel_id,
        "name": state.name,
        "path": state.path,
        "pid": state.pid,
        "execution_state": state.execution_state,
        "idle_seconds": state.idle_seconds,
        "connections": state.connections,
        "started_at": round(state.started_at, 3),
        "protected": state.protected,
        "memory": memory,
        "memory_unavailable_reason": state.unavailable_reason,
        "limit_bytes": limit,
        "limit_source": state.limit_source,
        "warn_bytes": warn,
        "halt_bytes": halt,
        "kill_bytes": kill,
        "level": _level(state.usage_bytes, warn, halt),
        "growing": growing(state),
        "gpu": state.gpu,
        "cells_source": state.cells_source,
        "halted": halting,
    }
    if history:
        data["history"] = [[round(t, 3), b] for t, b in state.history]
    return data


def _fractions(settings: MemGuardSettings) -> tuple[float, float, float]:
    return settings.warn_fraction, settings.halt_fraction, settings.kill_fraction


def _level(usage: int | None, warn: int, halt: int) -> str:
    if usage is None or halt <= 0:
        return "ok"
    return "critical" if usage >= halt else "warning" if usage >= warn else "ok"


def budget_json(budget: Budget, settings: MemGuardSettings) -> dict[str, Any]:
    """The budget with its lines (the server's, never recomputed by a client)."""
    limit = budget.limit_bytes
    return {
        **budget.to_json(),
        "warn_bytes": int(limit * settings.warn_fraction),
        "halt_bytes": int(limit * settings.halt_fraction),
        "kill_bytes": int(limit * settings.kill_fraction),
    }


def kernels_json(tick: Tick, settings: MemGuardSettings) -> dict[str, Any]:
    """GET /api/memguard/kernels: every kernel and the budget."""
    return {
        "kernels": [kernel_json(k, settings, budget=tick.budget) for k in tick.kernels.values()],
        "budget": budget_json(tick.budget, settings),
    }


def status_json(
    tick: Tick, settings: MemGuardSettings, paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """GET /api/memguard/status: the budget, the last tick's figures and the settings in force
    (``paths``: current notebook paths, newer than the tick's)."""
    paths = paths or {}
    limit, source = kernel_limit(settings, tick.budget)
    return {
        "budget": budget_json(tick.budget, settings),
        "kernels_rss_bytes": sum(
            k.memory.rss_bytes for k in tick.kernels.values() if k.memory is not None
        ),
        "kernels_used_bytes": tick.kernels_usage_bytes,
        "kernel_count": len(tick.kernels),
        "interval_seconds": round(tick.interval_s, 4),
        "last_tick_at": tick.at,
        "tick": tick.number,
        "last_sample_cost_seconds": round(tick.sample_cost_s, 6),
        "breakdown": tick.breakdown.to_json() if tick.breakdown is not None else None,
        "gpu_devices": [
            {
                **device.to_json(),
                "kernels": [
                    {
                        "kernel_id": kid,
                        "path": paths.get(kid)
                        or (tick.kernels[kid].path if kid in tick.kernels else None),
                        "bytes": held,
                    }
                    for kid, held in device.kernels
                ],
            }
            for device in tick.gpu_devices
        ],
        "display_units": settings.display_units,
        "verdicts": vocabulary(),
        "settings": {
            **settings.to_json(),
            # The limit each kernel is held to now (kernel_memory_limit, or the budget).
            "kernel_memory_limit_bytes": limit,
            "kernel_memory_limit_source": source,
        },
    }


def termination_json(record: TerminationRecord, settings: MemGuardSettings) -> dict[str, Any]:
    """A journal record with its plain-language headline, summary and advice."""
    data = record.to_json()
    data.update(describe(data, settings.display_units))
    return data


def cells_json(cells: list[CellRecord]) -> dict[str, Any]:
    """GET /api/memguard/kernels/{id}/cells: newest first."""
    return {"cells": [cell.to_json() for cell in cells]}
