"""Kernel-log parsing (new and old formats) and termination classification."""

from __future__ import annotations

import signal
from dataclasses import replace

import pytest

from jupyter_memguard.forensics.classify import TerminationFacts, classify, classify_child_oom
from jupyter_memguard.probe.kmsg import parse_oom_line

MODERN = (
    "Memory cgroup out of memory: Killed process 3287 (python3) total-vm:1786944kB, "
    "anon-rss:976724kB, file-rss:13776kB, shmem-rss:0kB, UID:0 pgtables:2100kB oom_score_adj:0"
)
GLOBAL = (
    "Out of memory: Killed process 4100 (ipykernel_launc) total-vm:9786944kB, anon-rss:8976724kB, "
    "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:20100kB oom_score_adj:500"
)
SUMMARY = (
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/memguard-test,task_memcg=/memguard-test,task=python3,pid=3287,uid=0"
)
OLD_KILLED = "Killed process 2592 (python) total-vm:1448728kB, anon-rss:1236060kB, file-rss:0kB"
OLD_KILL = "Out of memory: Kill process 2592 (python) score 917 or sacrifice child"
OLD_MEMCG = "Memory cgroup out of memory: Kill process 2592 (python) score 999 or sacrifice child"


@pytest.mark.parametrize(
    ("line", "pid", "name", "anon"),
    [
        (MODERN, 3287, "python3", 976724 * 1024),
        (GLOBAL, 4100, "ipykernel_launc", 8976724 * 1024),
        (SUMMARY, 3287, "python3", None),
        (OLD_KILLED, 2592, "python", 1236060 * 1024),
        (OLD_KILL, 2592, "python", None),
        (OLD_MEMCG, 2592, "python", None),
        ("6,2345,98765432,-;" + MODERN, 3287, "python3", 976724 * 1024),
        ("[ 1234.567890] " + OLD_KILLED, 2592, "python", 1236060 * 1024),
    ],
)
def test_parse_oom_lines(line, pid, name, anon):
    oom = parse_oom_line(line)
    assert oom is not None
    assert (oom.pid, oom.process_name, oom.anon_rss_bytes) == (pid, name, anon)


def test_parse_details():
    summary = parse_oom_line(SUMMARY)
    assert summary.constraint == "CONSTRAINT_MEMCG" and summary.memcg == "/memguard-test"
    modern = parse_oom_line(MODERN)
    assert modern.constraint == "CONSTRAINT_MEMCG" and modern.total_vm_bytes == 1786944 * 1024
    assert parse_oom_line(GLOBAL).constraint is None


@pytest.mark.parametrize(
    "line",
    [
        "",
        "usb 1-1: new high-speed USB device number 2",
        "systemd[1]: Killed process 99 with signal SIGKILL",  # no memory figures: not the OOM killer
        "oom-kill:constraint=CONSTRAINT_NONE,task=x",  # no pid
        "Killed process abc (x)",
    ],
)
def test_non_oom_lines_are_ignored(line):
    assert parse_oom_line(line) is None


def facts(**kw) -> TerminationFacts:
    base = {
        "kernel_id": "k",
        "pid": 100,
        "pids": (100, 101),
        "limit_bytes": 4 * 10**9,
        "limit_source": "cgroup_v2",
    }
    base.update(kw)
    return TerminationFacts(**base)


def test_plain_kill_9_with_headroom_is_never_oom():
    result = classify(
        facts(
            returncode=-signal.SIGKILL,
            last_rss_bytes=10**8,
            peak_rss_bytes=2 * 10**8,
            cgroup_oom_kill_before=0,
            cgroup_oom_kill_after=0,
            system_oom_kill_before=5,
            system_oom_kill_after=5,
        )
    )
    assert (result.verdict, result.confidence) == ("killed_externally", "high")
    assert result.evidence["exit_signal"] == "SIGKILL"
    assert "no sign that memory" in result.explanation


def test_kernel_log_match_confirms_oom():
    oom = parse_oom_line(MODERN.replace("3287", "101"))
    result = classify(
        facts(returncode=-signal.SIGKILL, oom_kills=(oom,), last_rss_bytes=3_900_000_000)
    )
    assert (result.verdict, result.confidence) == ("oom_killed", "confirmed")
    assert result.evidence["matched_pid"] == 101 and result.evidence["kmsg_lines"] == [oom.raw]
    assert "3.6 GiB of a 3.7 GiB limit (cgroup v2)" in result.explanation


def test_log_line_of_another_process_does_not_count():
    other = parse_oom_line(MODERN)  # pid 3287, not ours
    result = classify(facts(returncode=-signal.SIGKILL, oom_kills=(other,), last_rss_bytes=10**8))
    assert result.verdict == "killed_externally"


@pytest.mark.parametrize("counter", ["cgroup", "system"])
def test_counter_rise_with_sigkill_is_high(counter):
    kw = {f"{counter}_oom_kill_before": 1, f"{counter}_oom_kill_after": 2}
    result = classify(facts(returncode=-signal.SIGKILL, last_rss_bytes=10**8, **kw))
    assert (result.verdict, result.confidence) == ("oom_killed", "high")


def test_near_limit_sigkill_is_medium():
    result = classify(facts(returncode=-signal.SIGKILL, last_rss_bytes=3_700_000_000))
    assert (result.verdict, result.confidence) == ("oom_killed", "medium")
    assert "likely out of memory" in result.explanation


def test_signals_and_exit_codes():
    crash = classify(facts(returncode=-signal.SIGSEGV))
    assert (crash.verdict, crash.evidence["exit_signal"]) == ("crashed", "SIGSEGV")
    assert classify(facts(returncode=-signal.SIGABRT)).evidence["exit_signal"] == "SIGABRT"
    exited = classify(facts(returncode=3))
    assert (exited.verdict, exited.evidence["exit_code"]) == ("exited", 3)
    assert classify(facts(returncode=0)).verdict == "exited"
    assert classify(facts()).verdict == "unknown"


def test_intents_and_user_actions_come_first():
    oom = parse_oom_line(MODERN.replace("3287", "100"))
    assert (
        classify(facts(intent="halt", returncode=-9, oom_kills=(oom,))).verdict
        == "halted_by_memguard"
    )
    admin = classify(facts(intent="admin_halt", intent_reason="runaway (alice)"))
    assert admin.verdict == "halted_by_memguard" and "runaway (alice)" in admin.explanation
    assert classify(facts(intent="cull")).verdict == "culled_idle"
    assert classify(facts(user_action="shutdown")).verdict == "user_shutdown"
    assert classify(facts(user_action="restart")).verdict == "user_restart"
    assert classify(facts(server_shutdown=True)).verdict == "server_shutdown"


def test_child_oom():
    oom = parse_oom_line(MODERN.replace("3287", "101"))
    result = classify_child_oom("k", oom, kernel_rss_bytes=10**9, limit_bytes=4 * 10**9)
    assert (result.verdict, result.confidence) == ("child_oom_killed", "confirmed")
    assert result.evidence["child_pid"] == 101
    assert "still running" in result.explanation


def test_an_oom_kill_in_its_own_cgroup_names_its_limit_not_a_stale_sample():
    # A one-shot allocation reached the kernel's own limit between two ticks: the last sample
    # saw 70 MiB, the kernel log what its process held as it was killed.
    oom = parse_oom_line(MODERN.replace("3287", "101"))
    oom = replace(oom, oom_memcg="/memguard-test/memguard-kernel-k")
    contained = classify(
        facts(
            returncode=-signal.SIGKILL,
            oom_kills=(oom,),
            last_rss_bytes=70 * 2**20,
            kernel_cgroup_path="/sys/fs/cgroup/memory/memguard-test/memguard-kernel-k",
            kernel_cgroup_limit_bytes=2**30,
        )
    )
    assert (contained.verdict, contained.evidence["contained"]) == ("oom_killed", True)
    assert "it reached its own limit of 1 GiB" in contained.explanation
    assert "held 953.8 MiB as it was killed" in contained.explanation
    assert "70 MiB" not in contained.explanation
    # Outside its own cgroup, the larger of the sample and the kernel log's figure is told.
    shared = classify(
        facts(returncode=-signal.SIGKILL, oom_kills=(oom,), last_rss_bytes=70 * 2**20)
    )
    assert "it used 953.8 MiB of a 3.7 GiB limit" in shared.explanation
