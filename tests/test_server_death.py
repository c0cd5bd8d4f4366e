"""The server's own death: a SIGKILLed server's kernels found, stopped and recorded at the next
start; a whole container killed at once explained; nothing touched that is not certain."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_memguard.forensics.classify import ServerDeathFacts, classify_server_death
from jupyter_memguard.probe.orphans import LeftKernel, identify
from jupyter_memguard.probe.proctree import read_stat
from jupyter_memguard.wording import describe

from . import cgroups
from .lab import connect, execute
from .servers import ServerProcess, wait_for

MiB = 2**20
GiB = 2**30
FAST = ("--MemGuard.heartbeat_interval=0.5", "--MemGuard.poll_interval=0.25")


def alive(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.state != "Z"


def kill_hard(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def beat_with(server: ServerProcess, kernel_ids: set[str]) -> dict[str, Any]:
    """Wait until a heartbeat was written after every kernel was measured."""

    def measured() -> dict[str, Any] | None:
        kernels = server.get("api/memguard/kernels")["kernels"]
        if {k["id"] for k in kernels if k["memory"]} >= kernel_ids:
            return server.get("api/memguard/status")
        return None

    first = wait_for(measured, 60, "kernels measured")["server_session"]["heartbeats"]
    return wait_for(
        lambda: (
            (s := server.get("api/memguard/status"))["server_session"]["heartbeats"] > first + 1
            and s
        ),
        30,
        "two more heartbeats",
    )


def died_records(server: ServerProcess) -> list[dict[str, Any]]:
    return server.get("api/memguard/terminations?verdict=server_died")["terminations"]


# ipykernel ends itself within a second of its server's death (it polls its parent pid), but
# not when a launcher stands between them, as `conda run`, `uv run` or a container wrapper do:
# then the kernel runs on, its memory out of everyone's sight. This kernelspec is such a
# launcher: the kernel process memguard knows names the connection file on its command line.
LAUNCHER = (
    "import subprocess, sys; "
    "sys.exit(subprocess.call([sys.executable, '-m', 'ipykernel_launcher', '-f', sys.argv[1]]))"
)


def launched_kernelspec(tmp_path: Path) -> dict[str, str]:
    spec = tmp_path / "jupyter" / "kernels" / "launched"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", LAUNCHER, "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python (launched)", "language": "python"})
    )
    return {"JUPYTER_PATH": str(tmp_path / "jupyter")}


def start_launched(server: ServerProcess, path: str) -> str:
    body = {"path": path, "type": "notebook", "kernel": {"name": "launched"}}
    return server.request("api/sessions", "POST", body)["kernel"]["id"]


@pytest.mark.parametrize("policy", ["stop", "keep"])
def test_a_killed_server_leaves_kernels_the_next_start_finds_and_records(tmp_path, policy):
    root, env = tmp_path / "server", launched_kernelspec(tmp_path)
    first = ServerProcess(*FAST, root=root, env=env).start()
    pids: list[int] = []
    try:
        ids = {start_launched(first, "a.ipynb"), start_launched(first, "b.ipynb")}
        for kernel_id in ids:  # 150 MiB each: 300 MiB left behind without a server
            client = connect(first, kernel_id)
            execute(first, kernel_id, "x = bytearray(b'\\x01') * (150 * 2**20)")
            client.stop_channels()
        wait_for(
            lambda: all(
                (k["memory"] or {}).get("rss_bytes", 0) > 150 * MiB
                for k in first.get("api/memguard/kernels")["kernels"]
            ),
            60,
            "both kernels holding 150 MiB",
        )
        beat_with(first, ids)
        pids = [k["pid"] for k in first.get("api/memguard/kernels")["kernels"]]
        os.kill(first.pid, signal.SIGKILL)  # the server dies; its kernels run on
        first.process.wait()
        assert all(alive(pid) for pid in pids)

        time.sleep(2)  # longer than ipykernel's own parent poll: these outlive the server
        assert all(alive(pid) for pid in pids)
        second = ServerProcess(
            *FAST, f"--MemGuard.orphan_kernels={policy}", root=root, env=env
        ).start()
        try:
            records = wait_for(
                lambda: len(died_records(second)) == 2 and died_records(second),
                30,
                "two server_died records",
            )
            assert {r["kernel_id"] for r in records} == ids
            assert {r["path"] for r in records} == {"a.ipynb", "b.ipynb"}
            for record in records:
                evidence = record["evidence"]
                assert evidence["left_running"] is True
                assert evidence["orphan_bytes"] > 150 * MiB
                assert evidence["orphan_action"] == ("stopped" if policy == "stop" else "kept")
                assert record["headline"] == "The server stopped abruptly"
                assert "stopped abruptly" in record["summary"]
            status = second.get("api/memguard/status")
            assert {o["kernel_id"] for o in status["orphans"]} == ids
            if policy == "stop":
                wait_for(lambda: not any(alive(pid) for pid in pids), 30, "orphans stopped")
                for kernel_id in ids:  # their connection files went with them
                    assert not second.connection_file(kernel_id).exists()
            else:
                assert all(alive(pid) for pid in pids)

                def shown() -> list[dict[str, Any]] | None:
                    split = second.get("api/memguard/status")["breakdown"]
                    return split and len(split["orphans"]) == 2 and split["orphans"]

                holders = wait_for(shown, 30, "the orphans in the breakdown")
                assert {h["key"] for h in holders} == ids
                assert all(h["bytes"] > 150 * MiB for h in holders)
            # Examined once: a third start records nothing more.
            second.stop()
            third = ServerProcess(*FAST, "--MemGuard.orphan_kernels=keep", root=root, env=env)
            third.start()
            assert len(died_records(third)) == 2
            third.stop()
        finally:
            second.stop()
    finally:
        first.stop()
        kill_hard(pids)


def test_a_live_server_on_the_same_journal_is_never_examined(tmp_path):
    root = tmp_path / "server"
    with ServerProcess(*FAST, root=root) as first:
        kernel_id = first.start_kernel("a.ipynb")
        beat_with(first, {kernel_id})
        pid = first.get(f"api/memguard/kernels/{kernel_id}")["pid"]
        with ServerProcess(*FAST, root=root, journal=first.journal) as second:
            assert died_records(second) == []
            assert second.get("api/memguard/status")["orphans"] == []
            assert alive(pid)


# Allocates 1.5 GiB in 32 MiB steps, then holds it: still running when the container dies.
FILL = """
import time
held = []
for _ in range(48):
    held.append(bytearray(b"\\x01") * (32 * 2**20))
    time.sleep(0.05)
time.sleep(300)
"""
LOWER_LINES = ("--MemGuard.warn_fraction=0.7", "--MemGuard.halt_fraction=0.8")


@pytest.mark.cgroup
def test_a_whole_container_killed_at_once_is_explained_at_the_next_start(tmp_path):
    reason = cgroups.unavailable_reason()
    if reason:
        pytest.skip(f"no memory-limited cgroup here: {reason}")
    root = tmp_path / "server"
    limit = 2 * GiB
    with cgroups.memory_cgroup(limit) as group:
        # Tracking only: nothing stops the kernel on its way toward the limit.
        server = ServerProcess(
            *FAST,
            *LOWER_LINES,
            "--MemGuard.guard_enabled=False",
            root=root,
            cgroup_procs=group.path / "cgroup.procs",
        ).start()
        try:
            kernel_id = server.start_kernel("big.ipynb")
            client = connect(server, kernel_id)
            client.execute_interactive("a = 1", timeout=60)  # cell [1]
            client.execute(FILL)  # cell [2], running when everything is killed

            def near() -> dict[str, Any] | None:
                status = server.get("api/memguard/status")
                cells = server.get(f"api/memguard/kernels/{kernel_id}/cells")["cells"]
                running = bool(cells) and cells[0]["status"] == "running"
                full = status["budget"]["usage_bytes"] >= 0.8 * limit
                return status if running and full else None

            wait_for(near, 90, "the kernel near the limit, its cell running")
            time.sleep(1.5)  # a few heartbeats at the pressed pace
            # Every process of the container at once, as Kubernetes' group OOM kill does.
            kill_hard([int(p) for p in (group.path / "cgroup.procs").read_text().split()])
            server.process.wait()
            client.stop_channels()
        finally:
            server.stop()
    # A new container: the old cgroup (and its counters) is gone, as on Kubernetes.
    with ServerProcess(*FAST, *LOWER_LINES, root=root) as restarted:
        (record,) = wait_for(lambda: died_records(restarted), 30, "the server_died record")
    assert record["kernel_id"] == kernel_id and record["path"] == "big.ipynb"
    evidence = record["evidence"]
    assert evidence["cause"] == "container_oom" and record["confidence"] == "medium", evidence
    assert evidence["running_cell"]["execution_count"] == 2
    assert evidence["near_limit"] is True and evidence["left_running"] is False
    assert evidence["used_bytes"] > 1.4 * GiB
    summary = record["summary"]
    assert "big.ipynb" in summary and "in cell [2]" in summary, summary
    assert "whole container ran out of memory" in summary, summary


# ---------------------------------------------------------------------------- pure parts
def _facts(**changes: Any) -> ServerDeathFacts:
    base: dict[str, Any] = {
        "kernel": {
            "id": "k",
            "path": "a.ipynb",
            "used_bytes": 1900 * MiB,
            "limit_bytes": 2 * GiB,
            "growth_bytes_per_s": 0,
            "running_cell": {"execution_count": 7},
        },
        "budget": {"usage_bytes": 1950 * MiB, "limit_bytes": 2 * GiB, "limit_source": "cgroup_v2"},
        "heartbeat_at": 1_700_000_000.0,
        "heartbeat_interval_s": 0.5,
        "session_started_at": 1_699_999_000.0,
        "same_boot": True,
    }
    base.update(changes)
    return ServerDeathFacts(**base)


def test_the_cause_of_a_server_death_follows_the_evidence():
    counted = classify_server_death(_facts(oom_kill_before=3, oom_kill_after=4))
    assert (counted.evidence["cause"], counted.confidence) == ("container_oom_counted", "high")
    # Readable and unchanged: the OOM killer did not do it, however full memory was.
    flat = classify_server_death(_facts(oom_kill_before=3, oom_kill_after=3))
    assert (flat.evidence["cause"], flat.confidence) == ("unknown", "low")
    # A new container (counters gone): near the limit at the last heartbeat.
    near = classify_server_death(_facts())
    assert (near.evidence["cause"], near.confidence) == ("container_oom", "medium")
    # ... or a kernel racing toward its kill line.
    racing_kernel = {
        "id": "k",
        "used_bytes": 1200 * MiB,
        "limit_bytes": 2 * GiB,
        "growth_bytes_per_s": 2 * GiB,
    }
    calm_budget = {"usage_bytes": 1300 * MiB, "limit_bytes": 2 * GiB}
    racing = classify_server_death(_facts(kernel=racing_kernel, budget=calm_budget))
    assert racing.evidence["cause"] == "container_oom" and racing.evidence["racing"] is True
    calm = classify_server_death(
        _facts(kernel={**racing_kernel, "growth_bytes_per_s": 0}, budget=calm_budget)
    )
    assert calm.evidence["cause"] == "unknown"
    words = describe({"verdict": "server_died", "evidence": near.evidence})
    assert words["headline"] == "The server stopped abruptly"
    assert "a.ipynb used 1.9 GiB of 2 GiB in cell [7]" in words["summary"], words["summary"]
    assert "whole container ran out of memory" in words["summary"]


def test_an_orphan_is_identified_only_for_certain(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    # A fake /proc holding one "kernel" process, 4242, with this process's stat and memory.
    me = Path(f"/proc/{os.getpid()}")
    fake_proc, pid = tmp_path / "proc", 4242
    (fake_proc / str(pid) / "task" / str(pid)).mkdir(parents=True)
    (fake_proc / str(pid) / "task" / str(pid) / "children").write_text("")
    (fake_proc / str(pid) / "stat").write_bytes((me / "stat").read_bytes())
    (fake_proc / str(pid) / "statm").write_bytes((me / "statm").read_bytes())
    connection = str(runtime / "kernel-abc.json")
    cmdline = f"python\0-m\0ipykernel_launcher\0-f\0{connection}\0"
    (fake_proc / str(pid) / "cmdline").write_text(cmdline)
    start = read_stat(pid, fake_proc).start_ticks
    left = LeftKernel("abc", pid, start, connection)
    found = identify(left, str(runtime), fake_proc)
    assert found is not None and (found.kernel_id, found.pid, found.pids) == ("abc", pid, (pid,))
    assert found.rss_bytes > 0
    # Anything less certain is never taken for the kernel.
    for doubtful in (
        LeftKernel("abc", pid, start + 1, connection),  # the pid was reused
        LeftKernel("xyz", pid, start, connection),  # another kernel's id
        LeftKernel("abc", None, None, connection),  # no process was recorded
        LeftKernel("abc", os.getpid(), start, connection),  # this very server
    ):
        assert identify(doubtful, str(runtime), fake_proc) is None, doubtful
    assert identify(left, str(tmp_path / "elsewhere"), fake_proc) is None  # another runtime dir
    (fake_proc / str(pid) / "cmdline").write_text("python\0script.py\0")
    assert identify(left, str(runtime), fake_proc) is None  # its command names no connection file
