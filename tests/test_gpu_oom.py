"""GPU out-of-memory errors: recognised in a kernel's iopub errors, journalled with evidence.

The parser is checked on the messages the libraries really print. Through a real server and a
real kernel, a cell raises an error with the name and message PyTorch's CUDA allocator raises
(CI has no GPU; ``test_gpu.py::test_real_gpu_allocation`` provokes the real one on a GPU).
"""

from __future__ import annotations

import signal

import pytest

from jupyter_memguard.forensics.classify import TerminationFacts, classify, classify_gpu_oom
from jupyter_memguard.probe.gpu import GpuReader
from jupyter_memguard.probe.gpu_oom import parse_gpu_oom

from .conftest import get_json, wait_for
from .test_gpu import FakeNvml, device

GiB, MiB = 2**30, 2**20

TORCH_2 = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB "
    "of which 1.06 GiB is free. Process 1234 has 78.04 GiB memory in use. Of the allocated "
    "memory 77.50 GiB is allocated by PyTorch, and 12.20 MiB is reserved by PyTorch but "
    "unallocated. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
)
TORCH_1 = (
    "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 1; 7.79 GiB total capacity; "
    "6.50 GiB already allocated; 11.69 MiB free; 6.60 GiB reserved in total by PyTorch)"
)


@pytest.mark.parametrize(
    ("ename", "evalue", "library", "requested", "device_index"),
    [
        ("OutOfMemoryError", TORCH_2, "PyTorch", 2 * GiB, 0),
        ("RuntimeError", TORCH_1, "PyTorch", 20 * MiB, 1),
        (
            "RuntimeError",
            "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
            "PyTorch",
            None,
            None,
        ),
        (
            "OutOfMemoryError",
            "Out of memory allocating 4,294,967,296 bytes (allocated so far: 0 bytes).",
            "CuPy",
            4 * GiB,
            None,
        ),
        (
            "XlaRuntimeError",
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.",
            "JAX",
            16 * GiB,
            None,
        ),
        (
            "ResourceExhaustedError",
            "OOM when allocating tensor with shape[65536,65536] and type float on "
            "/job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc [Op:Fill]",
            "TensorFlow",
            None,
            0,
        ),
        (
            "CudaAPIError",
            "[2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY",
            "CUDA",
            None,
            None,
        ),
        (
            "RuntimeError",
            "CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)",
            "CUDA",
            None,
            None,
        ),
    ],
)
def test_library_messages_are_recognised(ename, evalue, library, requested, device_index):
    oom = parse_gpu_oom(ename, evalue, at=1.0)
    assert oom is not None
    assert (oom.library, oom.requested_bytes, oom.device_index) == (
        library,
        requested,
        device_index,
    )
    assert oom.error_name == ename and oom.message == evalue.splitlines()[0][:500]


@pytest.mark.parametrize(
    ("ename", "evalue"),
    [
        ("MemoryError", ""),  # host memory: not a GPU error
        ("MemoryError", "Unable to allocate 8.00 GiB for an array with shape (1073741824,)"),
        ("RuntimeError", "DataLoader worker (pid 12) is killed by signal: Killed. out of memory"),
        ("OutOfMemoryError", "something else entirely"),  # a name alone is not enough
        ("ZeroDivisionError", "division by zero"),
        ("ResourceExhaustedError", "quota exceeded"),
    ],
)
def test_other_errors_are_not_gpu_oom(ename, evalue):
    assert parse_gpu_oom(ename, evalue, at=1.0) is None


def test_gpu_oom_record_names_the_kernels_gpu_memory():
    oom = parse_gpu_oom("OutOfMemoryError", TORCH_2, at=5.0)
    gpu = {
        "used_bytes": 76 * GiB,
        "devices": [
            {"index": 0, "name": "NVIDIA H100", "used_bytes": 76 * GiB, "total_bytes": 80 * GiB}
        ],
    }
    result = classify_gpu_oom(oom, gpu, kernel_rss_bytes=3 * GiB, limit_bytes=16 * GiB)
    assert (result.verdict, result.confidence) == ("gpu_out_of_memory", "confirmed")
    assert "PyTorch OutOfMemoryError, tried to allocate 2 GiB" in result.explanation
    assert "still running" in result.explanation
    assert "76 GiB of 80 GiB on GPU 0 (NVIDIA H100)" in result.explanation
    assert result.evidence["gpu_oom"]["requested_bytes"] == 2 * GiB
    assert result.evidence["gpu_last_bytes"] == 76 * GiB
    no_gpu = classify_gpu_oom(oom)
    assert "on GPU" not in no_gpu.explanation and no_gpu.evidence["gpu"] is None


def test_a_crash_after_a_gpu_oom_says_so():
    oom = parse_gpu_oom("OutOfMemoryError", TORCH_2, at=5.0).to_json()
    facts = TerminationFacts("k", pid=10, returncode=-signal.SIGABRT, gpu_oom_errors=(oom,))
    result = classify(facts)
    assert result.verdict == "crashed"
    assert "GPU out-of-memory error before it ended (PyTorch OutOfMemoryError" in result.explanation
    assert result.evidence["gpu_oom_errors"] == [oom]
    plain = classify(TerminationFacts("k", pid=10, returncode=-signal.SIGABRT))
    assert "GPU" not in plain.explanation and plain.evidence["gpu_oom_errors"] == []


RAISE_TORCH_OOM = f"""
class OutOfMemoryError(RuntimeError):
    pass
OutOfMemoryError.__module__ = "torch.cuda"
raise OutOfMemoryError({TORCH_2!r})
"""


async def gpu_oom_records(jp_fetch, kernel_id):
    rows = await get_json(jp_fetch, "terminations", kernel_id=kernel_id)
    return [r for r in rows["terminations"] if r["verdict"] == "gpu_out_of_memory"]


async def test_gpu_oom_in_a_real_kernel_is_journalled_and_kept_as_evidence(
    jp_fetch, memguard, start_kernel
):
    monitor = memguard.monitor
    kernel = await start_kernel("train.ipynb")
    await monitor.tick()
    await wait_for(lambda: _listening(memguard, kernel.id))
    pid = monitor.latest.kernels[kernel.id].pid
    monitor.gpu = GpuReader(nvml=FakeNvml([device("NVIDIA H100", [(pid, 76 * GiB)])]))
    await monitor.tick()
    # The error comes before any tick has seen the session (the monitor caches notebook paths
    # for a second): the record must still name the notebook.
    memguard.deaths.facts[kernel.id].path = None
    monitor._paths = {}
    monitor._paths_read_at = float("inf")

    ordinary = await kernel.run("1 / 0")
    assert ordinary["content"]["ename"] == "ZeroDivisionError"
    reply = await kernel.run(RAISE_TORCH_OOM)
    assert reply["content"]["ename"] == "OutOfMemoryError"
    rows = await wait_for(lambda: gpu_oom_records(jp_fetch, kernel.id))
    assert len(rows) == 1, rows
    record = rows[0]
    assert record["path"] == "train.ipynb" and record["confidence"] == "confirmed"
    assert record["evidence"]["gpu_oom"]["library"] == "PyTorch"
    assert record["evidence"]["gpu_oom"]["requested_bytes"] == 2 * GiB
    assert record["evidence"]["gpu_last_bytes"] == 76 * GiB
    assert "on GPU 0 (NVIDIA H100)" in record["explanation"]

    # A second failing cell right after: kept as evidence, not journalled twice.
    await kernel.run(RAISE_TORCH_OOM)
    assert (await kernel.run("print('still alive')"))["content"]["status"] == "ok"
    assert len(await gpu_oom_records(jp_fetch, kernel.id)) == 1

    # The kernel then crashes: the crash record carries both GPU OOMs.
    kernel.submit("import os, signal; os.kill(os.getpid(), signal.SIGABRT)")

    async def crashed():
        rows = await get_json(jp_fetch, "terminations", kernel_id=kernel.id, verdict="crashed")
        return rows["terminations"]

    crash = (await wait_for(crashed, timeout=30))[0]
    assert len(crash["evidence"]["gpu_oom_errors"]) == 2
    assert crash["evidence"]["gpu_peak_bytes"] == 76 * GiB
    assert "GPU out-of-memory error before it ended" in crash["explanation"]
    status = await get_json(jp_fetch, "status")
    assert status["journal"]["gpu_oom_detection"] is True


async def _listening(memguard, kernel_id):
    await memguard.monitor.tick()
    listener = memguard.iopub
    return listener.on_error is not None and kernel_id in listener._subscriptions


@pytest.mark.parametrize("memguard_config", [{"detect_gpu_oom": False}])
async def test_detection_can_be_turned_off(jp_fetch, memguard, start_kernel):
    kernel = await start_kernel()
    await memguard.monitor.tick()
    assert memguard.iopub.on_error is None
    await kernel.run(RAISE_TORCH_OOM)
    await memguard.monitor.tick()
    assert await gpu_oom_records(jp_fetch, kernel.id) == []
    assert (await get_json(jp_fetch, "status"))["journal"]["gpu_oom_detection"] is False
