"""A halted kernel's end is heard when its process exits (a pidfd), not at the next poll."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest

from jupyter_memguard.guard.actions import open_exit_watch, wait_exit

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no os.pidfd_open here")


def test_the_exit_of_a_signalled_process_is_heard_before_the_timeout():
    process = subprocess.Popen(["sleep", "60"])
    try:
        watch = open_exit_watch(process.pid)
        assert watch is not None

        async def signalled_then_waited() -> float:
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, process.send_signal, signal.SIGTERM)
            started = time.monotonic()
            await wait_exit(watch, timeout=30)
            return time.monotonic() - started

        waited = asyncio.run(signalled_then_waited())
        # It returned because the process exited (not at the 30 s timeout), and not before.
        assert process.poll() == -signal.SIGTERM, waited
        assert waited < 30
        os.close(watch)
    finally:
        process.kill()
        process.wait()


def test_a_process_that_goes_on_running_is_waited_for_only_until_the_timeout():
    process = subprocess.Popen(["sleep", "60"])
    try:
        watch = open_exit_watch(process.pid)
        assert watch is not None
        asyncio.run(wait_exit(watch, timeout=0.2))
        assert process.poll() is None
        os.close(watch)
    finally:
        process.kill()
        process.wait()


def test_no_watch_without_a_process():
    assert open_exit_watch(None) is None
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    assert open_exit_watch(gone.pid) is None
