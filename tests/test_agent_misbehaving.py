"""Agents that misbehave, impostors, and a server that goes away: the kernel, the server and
the other kernels are never harmed."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from jupyter_memguard.agent.messages import MAX_LINE, AgentHello, AgentLost, CellEnded

from .test_agent_support import (
    AgentKernel,
    AgentWorld,
    hello_for,
    kernel_code_connecting,
    wait_for,
    world,
)

__all__ = ["world"]


async def still_fine(world: AgentWorld, kernel: AgentKernel) -> None:
    """A kernel whose agent is connected answers and reports cells as before."""
    assert world.channel.connected(kernel.id)
    reply = await kernel.run("still = 1")
    assert reply["content"]["status"] == "ok"
    await kernel.ended(reply["parent_header"]["msg_id"])
    assert (await world.channel.variables(kernel.id, timeout=10)).status == "ok"


@pytest.mark.parametrize(
    "lines, reason",
    [
        ([b"\x00\xffgarbage\n"], "broke the protocol"),
        ([b"{not json}\n"], "broke the protocol"),
        ([b'{"v": 2, "type": "cell_start"}\n'], "protocol version"),
        ([b'{"v": 1, "type": "cell_end", "status": "exploded", "at": 1}\n'], "cell status"),
        ([b"x" * (MAX_LINE + 10) + b"\n"], f"over {MAX_LINE} bytes"),
        ([b'{"v": 1, "type": "cell_start"'], "cut off"),
    ],
    ids=["garbage", "bad-json", "version", "bad-field", "oversized", "cut-off"],
)
async def test_a_misbehaving_agent_is_dropped(
    world: AgentWorld, lines: list[bytes], reason: str
) -> None:
    bad, good = await world.kernel(), await world.kernel()
    await bad.hello()
    await good.hello()
    # The kernel's own process connects again (its pid passes) and then misbehaves.
    code = kernel_code_connecting(world.socket_path, *lines, hello=hello_for(bad.id))
    assert (await bad.run(code))["content"]["status"] == "ok"
    lost = await wait_for(
        lambda: [e for e in bad.events(AgentLost) if reason in e.reason], what=reason
    )
    assert len(lost) == 1
    assert not world.channel.connected(bad.id)
    assert reason in (world.channel.reason(bad.id) or "")
    report = await world.channel.variables(bad.id)
    assert report.status == "unavailable" and reason in (report.reason or "")
    # The kernel itself runs on, the server and the other kernel are unaffected.
    assert (await bad.output("print(6 * 7)")) == "42\n"
    await still_fine(world, good)
    assert world.channel.status_json()["connections"]["dropped"] >= 1  # type: ignore[index]


async def test_impostors_are_rejected(world: AgentWorld) -> None:
    victim, other = await world.kernel(), await world.kernel()
    await victim.hello()
    await other.hello()
    hellos = len([e for e in world.events if isinstance(e, AgentHello)])

    # Another kernel's process claiming the victim's id: its pid is not the victim's.
    code = kernel_code_connecting(world.socket_path, hello=hello_for(victim.id))
    assert (await other.run(code))["content"]["status"] == "ok"
    # A process that is no kernel at all (this test), with its own pid, then with a false one.
    for claimed in (os.getpid(), victim.pid):
        reader, writer = await asyncio.open_unix_connection(str(world.socket_path))
        writer.write(json.dumps(hello_for(victim.id, pid=claimed)).encode() + b"\n")
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the server
        writer.close()
    # A kernel id nobody runs: rejected once the kernel manager does not know it in time.
    channel = world.channel
    channel.verify_timeout = 0.5
    reader, writer = await asyncio.open_unix_connection(str(world.socket_path))
    writer.write(json.dumps(hello_for("no-such-kernel", pid=os.getpid())).encode() + b"\n")
    assert await asyncio.wait_for(reader.read(), 30) == b""
    writer.close()

    await wait_for(lambda: channel.status_json()["connections"]["rejected"] >= 4)  # type: ignore[index]
    assert len([e for e in world.events if isinstance(e, AgentHello)]) == hellos
    assert not victim.events(AgentLost) and not other.events(AgentLost)
    await still_fine(world, victim)
    await still_fine(world, other)


async def test_silence_after_connecting_is_rejected(world: AgentWorld) -> None:
    channel = world.new_channel(hello_timeout=0.5)
    await world.channel.stop()
    world.channel = channel
    await channel.start()
    with socket.socket(socket.AF_UNIX) as quiet:
        quiet.connect(str(world.socket_path))
        await wait_for(lambda: channel.status_json()["connections"]["rejected"] == 1)  # type: ignore[index]
    kernel = await world.kernel()
    await kernel.hello()
    await still_fine(world, kernel)


async def test_a_kernel_outlives_its_server(world: AgentWorld) -> None:
    kernel = await world.kernel()
    await kernel.hello()
    await world.channel.stop()
    assert not world.socket_path.exists()
    for number in range(5):
        assert (await kernel.output(f"print({number} * 2)")) == f"{number * 2}\n"
    msg_id = kernel.submit("big = b'x' * (50 * 2**20)")
    assert (await kernel.reply(msg_id))["content"]["status"] == "ok"
    assert not [e for e in kernel.events(CellEnded) if e.msg_id == msg_id]
    # Interrupts still work as the user's own.
    msg_id = kernel.submit("import time\ntime.sleep(120)")
    await asyncio.sleep(1)
    await world.mkm.interrupt_kernel(kernel.id)
    assert (await kernel.reply(msg_id))["content"]["ename"] == "KeyboardInterrupt"


async def test_requests_to_a_stopped_agent_time_out(world: AgentWorld) -> None:
    """An agent that connects properly and then never answers: "busy", never a hang."""
    kernel = await world.kernel()
    await kernel.hello()
    code = (
        "import json, os, socket, threading\n"
        "_quiet = socket.socket(socket.AF_UNIX)\n"
        f"_quiet.connect({str(world.socket_path)!r})\n"
        f"_quiet.sendall(json.dumps({hello_for(kernel.id)!r} | {{'pid': os.getpid()}}).encode()"
        " + b'\\n')\n"
    )
    assert (await kernel.run(code))["content"]["status"] == "ok"
    await wait_for(lambda: len(kernel.events(AgentHello)) == 2, what="the second hello")
    report = await world.channel.variables(kernel.id, timeout=0.3)
    assert report.status == "busy"
    assert not await world.channel.arm_interrupt(kernel.id, "x", timeout=0.1)
    world.channel.forget(kernel.id)
    assert not world.channel.connected(kernel.id) and world.channel.reason(kernel.id) is None
