"""GPU-aware relief against a fake NVML and real kernels: a cell runs out of GPU memory while
other idle kernels of the server hold memory on that GPU."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_memguard.app import default_settings
from jupyter_memguard.guard.gpu_relief import gpu_relief
from jupyter_memguard.models import Budget, GpuDevice, KernelState, Tick
from jupyter_memguard.probe.gpu import GpuReader
from jupyter_memguard.wording import action_reason

from .conftest import get_json, wait_for
from .test_gpu import FakeNvml, device

GiB = 2**30

RAISE_TORCH_OOM = """
class OutOfMemoryError(RuntimeError):
    pass
OutOfMemoryError.__module__ = "torch.cuda"
raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 80.00 GiB of which 8.00 GiB is free.")
"""


def _gpu(index: int, held: int) -> dict[str, Any]:
    return {"used_bytes": held, "devices": [{"index": index, "used_bytes": held}]}


def _tick(kernels: list[KernelState], free: int) -> Tick:
    held = tuple(
        sorted(((k.kernel_id, k.gpu["used_bytes"]) for k in kernels if k.gpu), key=lambda h: -h[1])
    )
    used = sum(b for _, b in held)
    gpu = GpuDevice(0, "H100", used, used + free, held)
    budget = Budget(100 * GiB, "host", 10 * GiB, "test", 100 * GiB)
    return Tick(1, 0.0, budget, {k.kernel_id: k for k in kernels}, gpu_devices=(gpu,))


KERNELS = [
    KernelState("failing", gpu=_gpu(0, 30 * GiB), execution_state="busy"),
    KernelState("big", path="big.ipynb", gpu=_gpu(0, 20 * GiB)),
    KernelState("small", path="small.ipynb", gpu=_gpu(0, 15 * GiB)),
    KernelState("busy", gpu=_gpu(0, 40 * GiB), execution_state="busy"),
    KernelState("kept", gpu=_gpu(0, 50 * GiB), protected=True),
]


def test_off_notify_and_cull_enough_to_fit():
    tick = _tick(KERNELS, free=8 * GiB)
    assert gpu_relief(tick, default_settings(gpu_relief="off"), "failing", 0, 20 * GiB) == []
    (notice,) = gpu_relief(tick, default_settings(), "failing", 0, 20 * GiB)
    assert notice.kind == "gpu_notify"
    assert {h["kernel_id"] for h in notice.culprit["holders"]} == {"big", "small", "busy", "kept"}
    assert "big.ipynb (20 GiB, idle)" in action_reason(notice)
    # 20 GiB wanted, 8 free: 12 more. The larger idle holder (20 GiB) is enough.
    actions = gpu_relief(tick, default_settings(gpu_relief="cull"), "failing", 0, 20 * GiB)
    assert [(a.kind, a.kernel_id) for a in actions] == [("cull", "big"), ("gpu_notify", "failing")]
    # 40 GiB wanted: big + small (35) + 8 free = 43 is enough; busy and protected never go.
    actions = gpu_relief(tick, default_settings(gpu_relief="cull"), "failing", 0, 40 * GiB)
    assert [a.kernel_id for a in actions if a.kind == "cull"] == ["big", "small"]
    # 60 GiB: the idle holders cannot make it fit: nobody is culled, the user is told.
    actions = gpu_relief(tick, default_settings(gpu_relief="cull"), "failing", 0, 60 * GiB)
    assert [a.kind for a in actions] == ["gpu_notify"]


@pytest.fixture
def memguard_config() -> dict[str, Any]:
    return {"gpu_relief": "cull"}


async def test_gpu_oom_in_a_real_kernel_culls_the_larger_idle_holder(
    jp_fetch, memguard, start_kernel
):
    failing = await start_kernel("train.ipynb")
    large = await start_kernel("large.ipynb")
    small = await start_kernel("small.ipynb")
    monitor = memguard.monitor
    await monitor.tick()
    pid = {k.id: monitor.latest.kernels[k.id].pid for k in (failing, large, small)}
    procs = [(pid[failing.id], 30 * GiB), (pid[large.id], 25 * GiB), (pid[small.id], 17 * GiB)]
    monitor.gpu = GpuReader(nvml=FakeNvml([device("NVIDIA H100", procs, total=80 * GiB)]))
    await monitor.tick()
    status = await get_json(jp_fetch, "status")
    (gpu0,) = status["gpu_devices"]
    assert gpu0["used_bytes"] == 72 * GiB and gpu0["free_bytes"] == 8 * GiB
    assert [k["path"] for k in gpu0["kernels"]] == ["train.ipynb", "large.ipynb", "small.ipynb"]
    metrics = (await jp_fetch("metrics")).body.decode()
    assert 'memguard_gpu_device_used_bytes{device="0"}' in metrics

    await failing.run(RAISE_TORCH_OOM)  # 20 GiB wanted, 8 free: culling 25 GiB is enough

    async def culled() -> list[dict[str, Any]]:
        rows = await get_json(jp_fetch, "terminations", kernel_id=large.id)
        return rows["terminations"]

    record = (await wait_for(culled, timeout=30))[0]
    assert record["verdict"] == "culled_idle"
    assert record["evidence"]["trigger"]["kind"] == "gpu_pressure"
    assert "GPU memory" in record["summary"]
    notices = [d for kind, d in memguard.events.emitted if kind == "gpu_pressure"]
    assert notices and notices[0]["kernel_id"] == failing.id
    assert {h["kernel_id"] for h in notices[0]["holders"] if h["culled"]} == {large.id}
    assert small.id in monitor.latest.kernels  # enough room: the smaller one is left alone
    assert (await small.run("print('still here')"))["content"]["status"] == "ok"
