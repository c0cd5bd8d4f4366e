"""GPU memory per kernel: NVML's per-process figures charged to each kernel's process tree.

CI has no GPU: the reader is exercised with a fake NVML module (same functions and fields as
nvidia-ml-py), and through the real server and a real kernel. ``test_real_gpu_allocation``
runs only where NVML sees a device and PyTorch can use it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from jupyter_memguard.probe.gpu import GpuReader, kernel_gpu

from .conftest import get_json, wait_for

GiB = 2**30


class FakeNvml:
    """The part of pynvml memguard uses, over a fixed list of devices and processes."""

    class NVMLError(Exception):
        pass

    def __init__(self, devices: list[dict[str, Any]], fail_init: bool = False) -> None:
        self.devices = devices
        self.fail_init = fail_init

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.devices[index]

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> bytes:
        return handle["name"].encode()  # older bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> Any:
        return SimpleNamespace(total=handle["total"], used=0, free=handle["total"])

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in handle["procs"]]


def device(name: str, procs: list[tuple[int, int | None]], total: int = 80 * GiB) -> dict:
    return {"name": name, "total": total, "procs": procs}


def test_reader_and_per_kernel_totals():
    nvml = FakeNvml(
        [
            device("H100", [(10, 2 * GiB), (11, 1 * GiB), (99, 5 * GiB)]),
            device("H100", [(11, 3 * GiB), (12, None)]),  # None: not reported, skipped
        ]
    )
    reader = GpuReader(nvml=nvml)
    assert reader.available and reader.status_json()["devices"] == 2
    by_pid = reader.read()
    assert set(by_pid) == {10, 11, 99}
    gpu = kernel_gpu((10, 11, 12), by_pid)  # a kernel (10) and its children (11, 12)
    assert gpu is not None and gpu["used_bytes"] == 6 * GiB
    assert [(d["index"], d["used_bytes"], d["pids"]) for d in gpu["devices"]] == [
        (0, 3 * GiB, [10, 11]),
        (1, 3 * GiB, [11]),
    ]
    assert gpu["devices"][0]["name"] == "H100" and gpu["devices"][0]["total_bytes"] == 80 * GiB
    assert kernel_gpu((42,), by_pid) is None  # another process's memory is never charged


def test_no_driver_or_no_device_means_no_gpu_figures():
    broken = GpuReader(nvml=FakeNvml([], fail_init=True))
    assert not broken.available and "Driver Not Loaded" in (broken.reason or "")
    assert broken.read() == {}
    empty = GpuReader(nvml=FakeNvml([]))
    assert not empty.available and empty.reason == "no NVIDIA GPU"


def test_without_nvidia_ml_py_the_reason_names_the_extra():
    try:
        import pynvml  # noqa: F401
    except ImportError:
        reader = GpuReader()
        assert not reader.available and "jupyter-memguard[gpu]" in (reader.reason or "")
    else:
        pytest.skip("nvidia-ml-py is installed here")


async def test_kernel_gpu_memory_in_the_api_and_metrics(jp_fetch, memguard, start_kernel):
    with_gpu = await start_kernel()
    without = await start_kernel()
    monitor = memguard.monitor
    await monitor.tick()
    pid = monitor.latest.kernels[with_gpu.id].pid
    monitor.gpu = GpuReader(nvml=FakeNvml([device("A100", [(pid, 3 * GiB)])]))
    await monitor.tick()
    info = await get_json(jp_fetch, "kernels", with_gpu.id)
    assert info["gpu"]["used_bytes"] == 3 * GiB and info["gpu"]["devices"][0]["pids"] == [pid]
    assert (await get_json(jp_fetch, "kernels", without.id))["gpu"] is None
    status = await get_json(jp_fetch, "status")
    assert status["gpu"] == {"available": True, "devices": 1, "reason": None}
    metrics = (await jp_fetch("metrics")).body.decode()
    assert f'memguard_kernel_gpu_bytes{{kernel_id="{with_gpu.id}"' in metrics
    listing = await get_json(jp_fetch, "kernels")
    assert json.dumps(listing)  # serialisable with the GPU figures in it


def _real_gpu() -> str | None:
    reader = GpuReader()
    if not reader.available:
        return reader.reason
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    return None if torch.cuda.is_available() else "PyTorch cannot use the GPU"


async def test_real_gpu_allocation(jp_fetch, memguard, start_kernel):
    reason = _real_gpu()
    if reason is not None:
        pytest.skip(f"needs a real NVIDIA GPU: {reason}")
    kernel = await start_kernel()
    reply = await kernel.run(
        "import torch; x = torch.ones(512 * 2**20 // 4, device='cuda'); torch.cuda.synchronize()",
        timeout=180,
    )
    assert reply["content"]["status"] == "ok"
    await memguard.monitor.tick()
    info = await get_json(jp_fetch, "kernels", kernel.id)
    assert info["gpu"] is not None and info["gpu"]["used_bytes"] >= 512 * 2**20
    # A real CUDA out-of-memory error: recorded with the kernel's GPU memory as evidence.
    reply = await kernel.run(
        "big = torch.empty(torch.cuda.get_device_properties(0).total_memory * 2, "
        "dtype=torch.uint8, device='cuda')",
        timeout=180,
    )
    assert reply["content"]["ename"] == "OutOfMemoryError", reply["content"]

    async def gpu_oom():
        rows = await get_json(jp_fetch, "terminations", kernel_id=kernel.id)
        return [r for r in rows["terminations"] if r["verdict"] == "gpu_out_of_memory"]

    record = (await wait_for(gpu_oom, timeout=30))[0]
    assert record["evidence"]["gpu_oom"]["library"] == "PyTorch"
    assert record["evidence"]["gpu_oom"]["requested_bytes"] > 2**30
    assert record["evidence"]["gpu_last_bytes"] >= 512 * 2**20
