"""Prometheus gauges and counters, served on jupyter_server's /metrics."""

from __future__ import annotations

from typing import Any, get_args

from prometheus_client import Counter, Gauge

from ..models import Tick, Verdict

# Created once per process: a second server in the same process shares them.
KERNEL_RSS = Gauge(
    "memguard_kernel_rss_bytes", "RSS of a kernel's process tree", ["kernel_id", "kernel_name"]
)
KERNEL_PEAK = Gauge(
    "memguard_kernel_peak_bytes",
    "Peak RSS of a kernel's process tree",
    ["kernel_id", "kernel_name"],
)
KERNEL_USED = Gauge(
    "memguard_kernel_used_bytes",
    "A kernel's memory with each page counted once (PSS over a tree of several processes): "
    "the figure the guard decides on",
    ["kernel_id", "kernel_name"],
)
BUDGET_HOLDER = Gauge(
    "memguard_budget_holder_bytes",
    "Who holds the budget: kernels, server, terminals, other_processes, page_cache, shmem, "
    "unattributed (from the host scan every few seconds)",
    ["holder"],
)
GPU_DEVICE_USED = Gauge(
    "memguard_gpu_device_used_bytes", "Memory in use on each GPU (NVML)", ["device"]
)
GPU_DEVICE_TOTAL = Gauge("memguard_gpu_device_total_bytes", "Memory of each GPU (NVML)", ["device"])
KERNEL_GPU = Gauge(
    "memguard_kernel_gpu_bytes",
    "GPU memory of a kernel's process tree (all devices; NVML)",
    ["kernel_id", "kernel_name"],
)
KERNEL_LIMIT = Gauge("memguard_kernel_limit_bytes", "Memory limit that applies to one kernel")
BUDGET_LIMIT = Gauge("memguard_budget_limit_bytes", "Effective memory budget", ["source"])
BUDGET_USAGE = Gauge("memguard_budget_usage_bytes", "Usage counted against the budget")
KERNELS = Gauge("memguard_kernels", "Kernels tracked by memguard")
SAMPLE_SECONDS = Gauge("memguard_sample_seconds", "Duration of the last sampling pass")
TERMINATIONS = Counter(
    "memguard_kernel_terminations", "Kernel terminations by verdict", ["verdict"]
)
# Every verdict's series exists from the start at 0, so Prometheus's increase()/rate() also
# count the first termination of each kind (a series born at 1 would hide it).
for _verdict in get_args(Verdict):
    TERMINATIONS.labels(_verdict)


class MetricsUpdater:
    """Copies each Tick's figures into the Prometheus metrics."""

    def __init__(self) -> None:
        self._labels: set[tuple[str, str]] = set()
        # Each kernel's series, looked up once (``labels()`` takes the metric's lock and
        # builds a key each time: it was most of this copy's cost at every tick), and the
        # values set last (an idle kernel's stay the same: each ``set`` takes a lock).
        self._series: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._values: dict[tuple[str, str], tuple[float, ...]] = {}

    def on_tick(self, tick: Tick) -> None:
        current: set[tuple[str, str]] = set()
        limits = set()
        for kernel_id, state in tick.kernels.items():
            limits.add(state.limit_bytes)
            if state.memory is None:
                continue
            labels = (kernel_id, state.name)
            current.add(labels)
            series = self._series.get(labels)
            if series is None:
                gauges = (KERNEL_RSS, KERNEL_USED, KERNEL_PEAK, KERNEL_GPU)
                series = self._series[labels] = tuple(g.labels(*labels) for g in gauges)
            values = (
                state.memory.rss_bytes,
                state.memory.decision_bytes,
                state.peak_bytes,
                state.gpu["used_bytes"] if state.gpu else 0,
            )
            if self._values.get(labels) != values:
                self._values[labels] = values
                for gauge, value in zip(series, values):
                    gauge.set(value)
        for labels in self._labels - current:
            self._series.pop(labels, None)
            self._values.pop(labels, None)
            for gauge in (KERNEL_RSS, KERNEL_USED, KERNEL_PEAK, KERNEL_GPU):
                try:
                    gauge.remove(*labels)
                except KeyError:
                    pass
        self._labels = current
        budget = tick.budget
        BUDGET_LIMIT.clear()
        BUDGET_LIMIT.labels(budget.limit_source).set(budget.limit_bytes)
        BUDGET_USAGE.set(budget.usage_bytes)
        KERNEL_LIMIT.set(max(limits) if limits else budget.limit_bytes)
        KERNELS.set(len(tick.kernels))
        SAMPLE_SECONDS.set(tick.sample_cost_s)
        for device in tick.gpu_devices:
            GPU_DEVICE_USED.labels(str(device.index)).set(device.used_bytes)
            GPU_DEVICE_TOTAL.labels(str(device.index)).set(device.total_bytes)
        split = tick.breakdown
        if split is not None:
            for holder, value in (
                ("kernels", sum(h.bytes for h in split.kernels)),
                ("server", split.server.bytes),
                ("terminals", sum(h.bytes for h in split.terminals)),
                ("other_processes", split.others_bytes),
                ("page_cache", split.page_cache_bytes),
                ("shmem", split.shmem_bytes),
                ("unattributed", split.unattributed_bytes),
            ):
                BUDGET_HOLDER.labels(holder).set(value)

    @staticmethod
    def count_termination(verdict: str) -> None:
        TERMINATIONS.labels(verdict).inc()
