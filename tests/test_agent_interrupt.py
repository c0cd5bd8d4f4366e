"""memguard's interrupt says why: MemoryLimitInterrupt, armed through the channel, SIGINT sent
through the kernel manager (as jupyter_server's interrupt_kernel does)."""

from __future__ import annotations

import json
from typing import Any

from .test_agent_support import AgentKernel, AgentWorld, world

__all__ = ["world"]

MESSAGE = "memguard stopped this cell: the kernel used 555 MiB, past its stop line of 540 MiB."


async def interrupted(
    world: AgentWorld, kernel: AgentKernel, code: str, arm: bool
) -> tuple[dict[str, Any], str]:
    """Run code, interrupt it (armed or not) once it runs: its reply's content, the status
    its cell_end reported."""
    msg_id = kernel.submit(code)
    await kernel.started(msg_id)
    if arm:
        assert await world.channel.arm_interrupt(kernel.id, MESSAGE, timeout=10)
    await world.mkm.interrupt_kernel(kernel.id)
    reply = (await kernel.reply(msg_id))["content"]
    return reply, (await kernel.ended(msg_id)).status


async def test_armed_interrupt_says_why(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    msg_id = kernel.submit("import time\ntime.sleep(120)")
    await kernel.started(msg_id)
    assert await world.channel.arm_interrupt(kernel.id, MESSAGE, timeout=10)
    await world.mkm.interrupt_kernel(kernel.id)
    reply = (await kernel.reply(msg_id))["content"]
    assert reply["status"] == "error" and reply["ename"] == "MemoryLimitInterrupt"
    assert reply["evalue"] == MESSAGE
    traceback = "\n".join(reply["traceback"])
    assert MESSAGE in traceback
    assert "_on_sigint" not in traceback and "jupyter_memguard_agent" not in traceback
    ended = await kernel.ended(msg_id)
    assert (ended.status, ended.ename) == ("halted", "MemoryLimitInterrupt")
    assert ended.rss_bytes

    # It is a KeyboardInterrupt inside the kernel, and the kernel goes on.
    out = await kernel.output(
        "import sys, json\n"
        "print(json.dumps([sys.last_type.__name__, issubclass(sys.last_type, KeyboardInterrupt)]))"
    )
    assert json.loads(out) == ["MemoryLimitInterrupt", True]


async def test_unarmed_interrupt_stays_plain(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    sleep = "import time\ntime.sleep(120)"
    reply, status = await interrupted(world, kernel, sleep, arm=False)
    assert (reply["ename"], status) == ("KeyboardInterrupt", "interrupted")
    # An arm is used once: the interrupt after a memguard one is the user's again.
    reply, status = await interrupted(world, kernel, sleep, arm=True)
    assert (reply["ename"], status) == ("MemoryLimitInterrupt", "halted")
    reply, status = await interrupted(world, kernel, sleep, arm=False)
    assert (reply["ename"], status) == ("KeyboardInterrupt", "interrupted")


async def test_user_code_catching_keyboard_interrupt_catches_memguards(
    world: AgentWorld,
) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    code = (
        "import json, time\n"
        "try:\n"
        "    time.sleep(120)\n"
        "except KeyboardInterrupt as error:\n"
        "    caught = [type(error).__name__, isinstance(error, KeyboardInterrupt), str(error)]\n"
    )
    reply, status = await interrupted(world, kernel, code, arm=True)
    assert reply["status"] == "ok" and status == "halted"  # it went on after catching it
    out = await kernel.output("print(json.dumps(caught))")
    assert json.loads(out) == ["MemoryLimitInterrupt", True, MESSAGE]


async def test_arm_that_waits_for_the_gil(world: AgentWorld) -> None:
    """The SIGINT lands while C code holds the GIL and the arm request is still unread: the
    handler yields the GIL briefly so the reader thread can take the arm first."""
    kernel = await world.kernel()
    await kernel.hello()
    msg_id = kernel.submit("sum(range(3 * 10**8))\nimport time\ntime.sleep(120)")
    await kernel.started(msg_id)
    assert not await world.channel.arm_interrupt(kernel.id, MESSAGE, timeout=0.1)  # no ack yet
    await world.mkm.interrupt_kernel(kernel.id)
    reply = (await kernel.reply(msg_id))["content"]
    assert reply["ename"] == "MemoryLimitInterrupt" and reply["evalue"] == MESSAGE
    assert (await kernel.ended(msg_id)).status == "halted"


async def test_arm_without_agent(world: AgentWorld) -> None:
    assert not await world.channel.arm_interrupt("no-such-kernel", MESSAGE)


async def test_async_cell_interrupt(world: AgentWorld) -> None:
    """A top-level-await cell keeps ipykernel's own SIGINT handling (it cancels the task);
    the agent chains to it and still reports the cell as halted. ipykernel 7.4 itself only
    ends such a cell when its await returns, and then sends no reply (seen without the agent
    too), so the cell sleeps briefly and no reply is awaited."""
    kernel = await world.kernel()
    await kernel.hello()
    msg_id = kernel.submit("import asyncio\nawait asyncio.sleep(5)")
    await kernel.started(msg_id)
    assert await world.channel.arm_interrupt(kernel.id, MESSAGE, timeout=10)
    await world.mkm.interrupt_kernel(kernel.id)
    assert (await kernel.ended(msg_id)).status == "halted"
    assert await world.mkm.is_alive(kernel.id)


# Inside the kernel: make the agent's memory read in the hook (`_rss` at a cell's start, `_memory`
# at its end) raise a real SIGINT, so that it lands while pre_run_cell (or post_run_cell) runs;
# the read itself is the agent's own.
LAND_IN_HOOK = """\
import os, signal, sys, time
_agent = sys.modules["jupyter_memguard_agent"]._agent
_read = type(_agent).{read}
# this setup cell's own post_run_cell comes first: skip it
_state = {{"skip": 1 if {hook!r} == "post_run_cell" else 0, "done": False}}
def _read_then_sigint(self):
    import inspect
    if not _state["done"] and inspect.stack()[1].function == {hook!r}:
        if _state["skip"]:
            _state["skip"] -= 1
        else:
            _state["done"] = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, inside the hook
    return _read(self)
_agent.{read} = _read_then_sigint.__get__(_agent)
"""


async def test_sigint_during_pre_run_cell_interrupts_the_cell(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.output(LAND_IN_HOOK.format(hook="pre_run_cell", read="_rss"))
    start = len(kernel.iopub)
    reply = await kernel.run("import time\ntime.sleep(600)\nprint('not interrupted')", timeout=120)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    texts = [
        m["content"].get("text", "") for m in kernel.iopub[start:] if m["msg_type"] == "stream"
    ]
    assert not any("Error in callback" in t or "not interrupted" in t for t in texts), texts
    ended = await kernel.ended(reply["parent_header"]["msg_id"])
    assert ended.status == "interrupted"
    assert (await kernel.output("print(_state['done'])")) == "True\n"


async def test_sigint_during_post_run_cell_is_harmless(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    await kernel.output(LAND_IN_HOOK.format(hook="post_run_cell", read="_memory"))
    start = len(kernel.iopub)
    reply = await kernel.run("print('done')")
    assert reply["content"]["status"] == "ok"
    texts = [
        m["content"].get("text", "") for m in kernel.iopub[start:] if m["msg_type"] == "stream"
    ]
    assert "".join(texts) == "done\n"
    assert (await kernel.ended(reply["parent_header"]["msg_id"])).status == "ok"
    assert (await kernel.output("print(_state['done'])")) == "True\n"
