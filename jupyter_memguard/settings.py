"""Validation of memguard's configuration into resolved, typed settings (pure, no I/O)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .units import Units, parse_size


class ConfigValueError(ValueError):
    """A configuration value that memguard refuses, with the setting's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"c.MemGuard.{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class KernelLimit:
    """A per-kernel limit: absolute bytes, or a fraction of the budget."""

    bytes: int | None = None
    budget_fraction: float | None = None

    def resolve(self, budget_limit: int) -> int | None:
        if self.bytes is not None:
            return min(self.bytes, budget_limit)
        if self.budget_fraction is not None:
            return int(budget_limit * self.budget_fraction)
        return None


@dataclass(frozen=True)
class MemGuardSettings:
    """Every knob of memguard, validated: the one definition every stage reads.

    Field names are the ``c.MemGuard`` trait names (sizes parsed to ``*_bytes``). The policy
    reads these fields directly and the status JSON is derived from them (``to_json``), so a
    setting is spelled once here and once as its trait, nowhere else.
    """

    memory_limit_bytes: int | None
    kernel_memory_limit: KernelLimit
    poll_interval: float
    min_poll_interval: float
    history_length: int
    growth_window: float
    remote_usage_interval: float
    remote_usage_timeout: float
    guard_enabled: bool
    warn_fraction: float
    halt_fraction: float
    kill_fraction: float
    min_headroom_bytes: int
    action: str
    interrupt_grace: float
    shutdown_grace: float
    idle_timeout: float
    cull_busy: bool
    cull_connected: bool
    cull_under_pressure: bool
    runaway_horizon: float
    dry_run: bool
    protected_kernels: tuple[str, ...]
    oom_score_adj: int | None
    max_growth_rate_bytes: int
    journal_path: str
    journal_max_rows: int
    journal_max_days: float
    kmsg_path: str
    detect_gpu_oom: bool = True
    display_units: Units = "binary"
    gpu_relief: str = "notify"  # off | notify | cull
    kernel_cgroups: bool = True
    heartbeat_interval: float = 5.0
    record_code: bool = True
    kernel_agent: bool = True
    orphan_kernels: str = "stop"  # stop | keep
    spawner_mem_limit_bytes: int | None = None  # MEM_LIMIT, set by JupyterHub spawners
    spawner_mem_limit_problem: str | None = None  # why a MEM_LIMIT given was not used

    def to_json(self) -> dict[str, Any]:
        """The settings in force, for /api/memguard/status (the journal path is not private)."""
        data = asdict(self)
        data["kernel_memory_limit"] = asdict(self.kernel_memory_limit)
        data["protected_kernels"] = list(self.protected_kernels)
        data.pop("spawner_mem_limit_problem")
        return data


def _size(name: str, value: Any, allow_empty: bool = True) -> int | None:
    if allow_empty and (value is None or value == "" or value == 0):
        return None
    try:
        return parse_size(value)
    except ValueError as error:
        raise ConfigValueError(name, str(error)) from None


def _kernel_limit(value: Any) -> KernelLimit:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise ConfigValueError("kernel_memory_limit", f"not a percentage: {value!r}") from None
        if not 0 < percent <= 100:
            raise ConfigValueError(
                "kernel_memory_limit", f"percentage must be in (0, 100]: {value!r}"
            )
        return KernelLimit(budget_fraction=percent / 100)
    return KernelLimit(bytes=_size("kernel_memory_limit", value))


def _number(name: str, value: Any, minimum: float, maximum: float = math.inf) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigValueError(name, f"expected a number, got {value!r}") from None
    if not minimum <= number <= maximum or math.isnan(number):
        raise ConfigValueError(name, f"must be between {minimum} and {maximum}, got {value!r}")
    return number


UNIT_CHOICES = ("binary", "decimal")
GPU_RELIEF_CHOICES = ("off", "notify", "cull")
ORPHAN_CHOICES = ("stop", "keep")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> Any:
    if value not in choices:
        raise ConfigValueError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def spawner_mem_limit(environ: Mapping[str, str]) -> tuple[int | None, str | None]:
    """The limit a JupyterHub spawner passed in MEM_LIMIT (bytes), or why it is unusable."""
    value = environ.get("MEM_LIMIT", "").strip()
    if not value:
        return None, None
    try:
        limit = parse_size(value)
    except ValueError as error:
        return None, f"MEM_LIMIT={value!r} ignored: {error}"
    return (limit, None) if limit > 0 else (None, None)


def resolve_settings(
    raw: dict[str, Any], environ: Mapping[str, str] | None = None
) -> MemGuardSettings:
    """Turn the raw configuration values into settings, or raise ConfigValueError."""
    hub_limit, hub_problem = spawner_mem_limit(os.environ if environ is None else environ)
    if not raw.get("use_spawner_mem_limit", True):
        hub_limit, hub_problem = None, None
    warn = _number("warn_fraction", raw["warn_fraction"], 0.01, 1.0)
    halt = _number("halt_fraction", raw["halt_fraction"], 0.01, 1.0)
    kill = _number("kill_fraction", raw["kill_fraction"], 0.01, 1.0)
    if not warn < halt:
        raise ConfigValueError("halt_fraction", f"must be above warn_fraction ({warn}), got {halt}")
    if not halt < kill:
        raise ConfigValueError("kill_fraction", f"must be above halt_fraction ({halt}), got {kill}")
    poll = _number("poll_interval", raw["poll_interval"], 0.01, 3600)
    min_poll = _number("min_poll_interval", raw["min_poll_interval"], 0.01, 3600)
    if min_poll > poll:
        raise ConfigValueError(
            "min_poll_interval", f"must not exceed poll_interval ({poll}), got {min_poll}"
        )
    action = _choice("action", str(raw["action"]), ("interrupt", "restart"))
    oom_score_adj = raw["oom_score_adj"]
    if oom_score_adj is not None:
        oom_score_adj = int(_number("oom_score_adj", oom_score_adj, -1000, 1000))
    growth = _size("max_growth_rate", raw["max_growth_rate"], allow_empty=False)
    if not growth:
        raise ConfigValueError("max_growth_rate", "must be a positive size per second")
    return MemGuardSettings(
        memory_limit_bytes=_size("memory_limit", raw["memory_limit"]),
        kernel_memory_limit=_kernel_limit(raw["kernel_memory_limit"]),
        poll_interval=poll,
        min_poll_interval=min_poll,
        history_length=int(_number("history_length", raw["history_length"], 2, 100_000)),
        growth_window=_number("growth_window", raw["growth_window"], 0.1, 3600),
        remote_usage_interval=_number(
            "remote_usage_interval", raw["remote_usage_interval"], 0.1, 3600
        ),
        remote_usage_timeout=_number("remote_usage_timeout", raw["remote_usage_timeout"], 0.05, 60),
        guard_enabled=bool(raw["guard_enabled"]),
        warn_fraction=warn,
        halt_fraction=halt,
        kill_fraction=kill,
        min_headroom_bytes=_size("min_headroom", raw["min_headroom"]) or 0,
        action=action,
        interrupt_grace=_number("interrupt_grace", raw["interrupt_grace"], 0, 3600),
        shutdown_grace=_number("shutdown_grace", raw["shutdown_grace"], 0, 3600),
        idle_timeout=_number("idle_timeout", raw["idle_timeout"], 0),
        cull_busy=bool(raw["cull_busy"]),
        cull_connected=bool(raw["cull_connected"]),
        cull_under_pressure=bool(raw["cull_under_pressure"]),
        runaway_horizon=_number("runaway_horizon", raw["runaway_horizon"], 0, 3600),
        dry_run=bool(raw["dry_run"]),
        protected_kernels=tuple(str(k) for k in raw["protected_kernels"]),
        oom_score_adj=oom_score_adj,
        max_growth_rate_bytes=growth,
        journal_path=str(raw["journal_path"]),
        journal_max_rows=int(_number("journal_max_rows", raw["journal_max_rows"], 1)),
        journal_max_days=_number("journal_max_days", raw["journal_max_days"], 0.001),
        kmsg_path=str(raw["kmsg_path"]),
        detect_gpu_oom=bool(raw.get("detect_gpu_oom", True)),
        display_units=_choice("display_units", raw.get("display_units", "binary"), UNIT_CHOICES),
        gpu_relief=_choice("gpu_relief", raw.get("gpu_relief", "notify"), GPU_RELIEF_CHOICES),
        kernel_cgroups=bool(raw.get("kernel_cgroups", True)),
        record_code=bool(raw.get("record_code", True)),
        kernel_agent=bool(raw.get("kernel_agent", True)),
        heartbeat_interval=_number(
            "heartbeat_interval", raw.get("heartbeat_interval", 5.0), 0.5, 600
        ),
        orphan_kernels=_choice("orphan_kernels", raw.get("orphan_kernels", "stop"), ORPHAN_CHOICES),
        spawner_mem_limit_bytes=hub_limit,
        spawner_mem_limit_problem=hub_problem,
    )
