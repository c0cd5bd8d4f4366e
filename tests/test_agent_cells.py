"""Exact cell boundaries from inside real kernels: Run All, a kernel killed mid-cell, a cell
that holds the GIL, and the execution count that iopub carries."""

from __future__ import annotations

import os
import signal
import time

from jupyter_memguard.agent.messages import AgentLost, CellEnded, CellStarted

from .test_agent_support import AgentWorld, MiB, proc_status, wait_for, world

__all__ = ["world"]


async def test_run_all_cells_in_order_with_their_memory(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    cells = ["a = 1", "keep = b'x' * (400 * 2**20)", "c = 3", "d = [4]"]
    msg_ids = [kernel.submit(code) for code in cells]  # sent at once, as Run All does
    for msg_id in msg_ids:
        assert (await kernel.reply(msg_id))["content"]["status"] == "ok"
    await kernel.ended(msg_ids[-1])
    events = [e for e in kernel.events() if isinstance(e, (CellStarted, CellEnded))]
    assert [(type(e).__name__, e.msg_id) for e in events] == [
        (kind, msg_id) for msg_id in msg_ids for kind in ("CellStarted", "CellEnded")
    ]
    starts = [e for e in events if isinstance(e, CellStarted)]
    ends = [e for e in events if isinstance(e, CellEnded)]
    assert [s.code for s in starts] == cells
    assert [s.execution_count for s in starts] == [1, 2, 3, 4]
    assert all(e.status == "ok" and e.ename is None for e in ends)
    rss = [(s.rss_bytes or 0, e.rss_bytes or 0) for s, e in zip(starts, ends)]
    grew = [after - before for before, after in rss]
    assert grew[1] >= 390 * MiB  # the +400 MiB is the second cell's
    assert all(abs(g) < 50 * MiB for i, g in enumerate(grew) if i != 1)
    assert (ends[1].hwm_bytes or 0) >= (starts[1].rss_bytes or 0) + 390 * MiB
    assert (ends[2].hwm_bytes or 0) < (ends[1].hwm_bytes or 0) + 50 * MiB  # the peak was reset
    assert all(s.at <= e.at for s, e in zip(starts, ends))


async def test_execution_count_matches_execute_input(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    for store_history in (True, False, True, False):
        start = len(kernel.iopub)
        reply = await kernel.run("x = 1", store_history=store_history)
        msg_id = reply["parent_header"]["msg_id"]
        started = await kernel.started(msg_id)
        execute_input = next(m for m in kernel.iopub[start:] if m["msg_type"] == "execute_input")
        assert started.execution_count == execute_input["content"]["execution_count"]
        assert (await kernel.ended(msg_id)).execution_count == started.execution_count
    counts = [e.execution_count for e in kernel.events(CellStarted)]
    assert counts == [1, 2, 2, 3]  # store_history=False does not count


async def test_silent_execution_is_not_a_cell(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.run("y = 1", silent=True)
    reply = await kernel.run("z = 2")
    await kernel.ended(reply["parent_header"]["msg_id"])
    assert [e.code for e in kernel.events(CellStarted)] == ["z = 2"]


async def test_statuses(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    outcomes = []
    for code in ("1 + 1", "raise ValueError('boom')", "def f(:\n    pass"):
        reply = await kernel.run(code)
        ended = await kernel.ended(reply["parent_header"]["msg_id"])
        outcomes.append((ended.status, ended.ename))
    assert outcomes == [("ok", None), ("error", "ValueError"), ("error", "SyntaxError")]

    msg_id = kernel.submit("import time\ntime.sleep(120)")
    await kernel.started(msg_id)
    await world.mkm.interrupt_kernel(kernel.id)
    ended = await kernel.ended(msg_id)
    assert (ended.status, ended.ename) == ("interrupted", "KeyboardInterrupt")


async def test_a_cell_that_kills_its_kernel_is_known(world: AgentWorld) -> None:
    kernel = await world.kernel()
    hello = await kernel.hello()
    msg_id = kernel.submit("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    lost = await wait_for(lambda: kernel.events(AgentLost), what="the agent's end")
    assert lost[0].pid == hello.pid
    started = [e for e in kernel.events(CellStarted) if e.msg_id == msg_id]
    assert len(started) == 1 and "SIGKILL" in started[0].code
    assert kernel.events().index(started[0]) < kernel.events().index(lost[0])
    assert not kernel.events(CellEnded)
    assert not world.channel.connected(kernel.id)
    assert "disconnected" in (world.channel.reason(kernel.id) or "")


async def test_a_kernel_killed_mid_cell_from_outside(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    msg_id = kernel.submit("import time\nx = b'x' * (100 * 2**20)\ntime.sleep(120)")
    started = await kernel.started(msg_id)
    os.kill(kernel.pid, signal.SIGKILL)
    await wait_for(lambda: kernel.events(AgentLost), what="the agent's end")
    assert started.execution_count == 1 and not kernel.events(CellEnded)


async def test_cell_start_arrives_before_an_allocation_that_holds_the_gil(
    world: AgentWorld,
) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    received: dict[str, float] = {}

    def on_event(event: object) -> None:
        if isinstance(event, CellStarted):
            received[event.msg_id or ""] = time.time()
        world.events.append(event)  # type: ignore[arg-type]

    world.channel.on_event = on_event
    before = proc_status(kernel.pid, "VmRSS")
    msg_id = kernel.submit("b = bytearray(1024**3)")
    started = await kernel.started(msg_id)
    ended = await kernel.ended(msg_id)
    assert (started.rss_bytes or 0) < before + 100 * MiB  # read before the allocation
    assert (ended.rss_bytes or 0) >= (started.rss_bytes or 0) + 1000 * MiB
    assert received[msg_id] < ended.at  # here while the kernel was still allocating
