"""GPU memory per kernel from NVIDIA's NVML (optional extra ``gpu``: nvidia-ml-py).

NVML lists the compute processes on each device with the memory each uses; memguard charges
them to the kernel whose process tree holds the PID. Without the package, a driver or a device
everything else works and GPU figures are None. PIDs are those of this PID namespace; in a
container whose NVML reports host PIDs no process matches and GPU figures stay empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..models import GpuDevice


@dataclass(frozen=True)
class GpuProcessUsage:
    """One process's memory on one device."""

    pid: int
    device_index: int
    device_name: str
    used_bytes: int
    device_total_bytes: int


class GpuReader:
    """Reads per-process GPU memory through NVML (call ``read`` from a worker thread)."""

    def __init__(self, nvml: Any = None) -> None:
        self.reason: str | None = None
        self.device_count = 0
        self._nvml = nvml
        if self._nvml is None:
            try:
                import pynvml  # nvidia-ml-py

                self._nvml = pynvml
            except ImportError:
                self.reason = "nvidia-ml-py is not installed (pip install 'jupyter-memguard[gpu]')"
                return
        try:
            self._nvml.nvmlInit()
            self.device_count = int(self._nvml.nvmlDeviceGetCount())
        except Exception as error:  # NVMLError: no driver, no device, no permission
            self.reason = f"NVML unavailable: {error}"
            self._nvml = None
            return
        if self.device_count == 0:
            self.reason = "no NVIDIA GPU"

    @property
    def available(self) -> bool:
        return self._nvml is not None and self.device_count > 0

    def read(self) -> dict[int, list[GpuProcessUsage]]:
        """Per PID, its memory on each device (empty when NVML is unavailable)."""
        if not self.available:
            return {}
        nvml = self._nvml
        by_pid: dict[int, list[GpuProcessUsage]] = {}
        for index in range(self.device_count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                total = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:
                continue  # a device that fell off the bus: skip it this tick
            name = name.decode() if isinstance(name, bytes) else str(name)
            for process in processes:
                used = getattr(process, "usedGpuMemory", None)
                if used is None:  # not reported (e.g. some vGPU / MIG setups)
                    continue
                by_pid.setdefault(int(process.pid), []).append(
                    GpuProcessUsage(int(process.pid), index, name, int(used), total)
                )
        return by_pid

    def devices(self, by_pid: dict[int, list[GpuProcessUsage]]) -> list[GpuDevice]:
        """Each device's used and total memory (used: NVML's figure, or at least what its
        processes hold)."""
        if not self.available:
            return []
        held: dict[int, int] = {}
        for usages in by_pid.values():
            for usage in usages:
                held[usage.device_index] = held.get(usage.device_index, 0) + usage.used_bytes
        devices = []
        for index in range(self.device_count):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                name = self._nvml.nvmlDeviceGetName(handle)
                info = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:
                continue
            name = name.decode() if isinstance(name, bytes) else str(name)
            used = max(int(info.used), held.get(index, 0))
            devices.append(GpuDevice(index, name, used, int(info.total)))
        return devices

    def status_json(self) -> dict[str, Any]:
        return {"available": self.available, "devices": self.device_count, "reason": self.reason}


def kernel_gpu(
    pids: Iterable[int], by_pid: dict[int, list[GpuProcessUsage]]
) -> dict[str, Any] | None:
    """A kernel's GPU memory (its process tree, per device), or None if it uses no GPU."""
    devices: dict[int, dict[str, Any]] = {}
    for pid in pids:
        for usage in by_pid.get(pid, ()):
            device = devices.setdefault(
                usage.device_index,
                {
                    "index": usage.device_index,
                    "name": usage.device_name,
                    "used_bytes": 0,
                    "total_bytes": usage.device_total_bytes,
                    "pids": [],
                },
            )
            device["used_bytes"] += usage.used_bytes
            device["pids"].append(pid)
    if not devices:
        return None
    ordered = [devices[i] for i in sorted(devices)]
    return {"used_bytes": sum(d["used_bytes"] for d in ordered), "devices": ordered}
