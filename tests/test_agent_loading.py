"""How the agent gets into a kernel, and that nothing of it shows: real kernels, real socket."""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets.config import Config

from jupyter_memguard.agent import install, provisioner, uninstall
from jupyter_memguard.agent.install import default_socket_path
from jupyter_memguard.agent.messages import AgentHello, AgentLost
from jupyter_memguard.agent.provisioner import AGENT_MODULE, _extension_arguments, is_ipykernel

from .test_agent_support import (
    ENTRY_POINT_VALUE,
    AgentWorld,
    environ_has_agent,
    proc_cmdline,
    proc_environ,
    wait_for,
    world,
)

__all__ = ["world"]

EXTENSION_ARG = f"--IPKernelApp.extra_extensions={AGENT_MODULE}"

# What a cell can see of the kernel: the same in a kernel with the agent and in one without.
PROBE = """\
import json, os, sys
_ip = get_ipython()
print(json.dumps({
    "names": sorted(_ip.user_ns),
    "hidden": sorted(_ip.user_ns_hidden),
    "count": _ip.execution_count,
    "In": len(In), "Out": len(Out),
    "history": len(list(_ip.history_manager.get_range())),
    "env": sorted(k for k in os.environ if k.startswith("JUPYTER_MEMGUARD")),
    "pythonpath": os.environ.get("PYTHONPATH"),
    "agent_on_path": [p for p in sys.path if p.endswith(os.path.join("agent", "kernel"))],
    "callbacks": {k: len(v) for k, v in _ip.events.callbacks.items()},
}))
"""


def test_entry_point_declared() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    group = project["entry-points"][KernelProvisionerFactory.GROUP_NAME]
    assert group == {provisioner.PROVISIONER_NAME: ENTRY_POINT_VALUE}


async def test_loads_and_nothing_shows(world: AgentWorld) -> None:
    kernel = await world.kernel()
    hello = await kernel.hello()
    assert hello.pid == kernel.pid and hello.ipykernel and hello.python
    assert world.channel.connected(kernel.id) and world.channel.reason(kernel.id) is None
    assert proc_cmdline(kernel.pid).count(EXTENSION_ARG) == 1
    launch_env = proc_environ(kernel.pid)
    assert launch_env[provisioner.KERNEL_ID_ENV] == kernel.id
    assert launch_env[provisioner.SOCKET_ENV] == str(world.socket_path)

    provisioner.set_socket_path(None)  # the next kernel starts exactly as without memguard
    try:
        plain = await world.kernel()
    finally:
        provisioner.set_socket_path(world.socket_path)
    assert EXTENSION_ARG not in proc_cmdline(plain.pid)
    assert not environ_has_agent(proc_environ(plain.pid))

    with_agent = json.loads(await kernel.output(PROBE))
    without = json.loads(await plain.output(PROBE))
    # The agent registers one pre_run_cell and one post_run_cell callback, nothing else.
    callbacks = dict(without["callbacks"])
    callbacks["pre_run_cell"] += 1
    callbacks["post_run_cell"] += 1
    assert with_agent.pop("callbacks") == callbacks
    without.pop("callbacks")
    assert with_agent == without
    assert with_agent["count"] == 1 and with_agent["In"] == 2 and with_agent["env"] == []
    assert with_agent["pythonpath"] == os.environ.get("PYTHONPATH")
    assert with_agent["agent_on_path"] == []

    # Nothing from loading on iopub: only this cell's own messages came.
    assert all(
        m["parent_header"].get("msg_type") == "execute_request" or m["msg_type"] == "status"
        for m in kernel.iopub
    )
    assert not [m for m in kernel.iopub if m["msg_type"] in ("error", "display_data")]

    # A child of the kernel (`!env`, subprocess) does not see memguard's variables (its own:
    # the environment may hold others, such as CI's MEMGUARD_DOCS_HTML).
    child = await kernel.output("!env")
    assert "JUPYTER_MEMGUARD" not in child and str(provisioner.AGENT_DIR) not in child
    child = await kernel.output(
        "import subprocess\nprint(subprocess.run(['env'], capture_output=True, text=True).stdout)"
    )
    assert "JUPYTER_MEMGUARD" not in child and "PATH=" in child


async def test_no_output_from_loading(world: AgentWorld, tmp_path: Path) -> None:
    """The kernel process writes exactly what a kernel without the agent writes."""
    outputs = {}
    for name, path in (("plain", None), ("agent", world.socket_path)):
        provisioner.set_socket_path(path)
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            kernel = await world.kernel(stdout=stdout, stderr=stderr)
        assert await kernel.output("print('hi')") == "hi\n"
        await world.mkm.shutdown_kernel(kernel.id, now=True)
        outputs[name] = (out.read_text(), err.read_text())
    assert outputs["agent"] == outputs["plain"]


async def test_restart_adds_nothing_twice(world: AgentWorld) -> None:
    kernel = await world.kernel()
    first = await kernel.hello()
    await world.mkm.restart_kernel(kernel.id, now=True)
    await kernel.client.wait_for_ready(timeout=120)
    assert kernel.pid != first.pid
    second = await kernel.hello()
    assert second.pid == kernel.pid
    assert proc_cmdline(kernel.pid).count(EXTENSION_ARG) == 1
    python_path = proc_environ(kernel.pid)["PYTHONPATH"].split(os.pathsep)
    assert python_path.count(str(provisioner.AGENT_DIR)) == 1
    lost = await wait_for(
        lambda: [e for e in kernel.events(AgentLost) if e.pid == first.pid], what="the old end"
    )
    assert len(lost) == 1
    assert world.channel.connected(kernel.id)
    ended = kernel.events()
    assert ended.index(lost[0]) < ended.index(second)
    assert (await kernel.output("print(1 + 1)")) == "2\n"


async def test_non_ipykernel_kernel_gets_no_agent(tmp_path: Path, jp_asyncio_loop) -> None:
    pytest.importorskip("bash_kernel")
    spec_dir = tmp_path / "kernels" / "bash"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"],
                "display_name": "Bash",
                "language": "bash",
            }
        )
    )
    world = AgentWorld(tmp_path / "runtime", kernel_dirs=[str(tmp_path / "kernels")])
    await world.channel.start()
    try:
        kernel = await world.kernel("bash")
        assert await kernel.output("echo hello") == "hello\n"
        assert EXTENSION_ARG not in proc_cmdline(kernel.pid)
        assert not environ_has_agent(proc_environ(kernel.pid))
        assert not world.channel.connected(kernel.id)
        assert "not an ipykernel kernel" in (world.channel.reason(kernel.id) or "")
        assert not [e for e in world.events if isinstance(e, AgentHello)]
        report = await world.channel.variables(kernel.id)
        assert report.status == "unavailable" and "ipykernel" in (report.reason or "")
    finally:
        await world.close()


async def test_socket_is_private(world: AgentWorld) -> None:
    mode = os.lstat(world.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert world.socket_path.name == f"memguard-{os.getpid()}.sock"
    if os.getuid() != 0:
        return
    # Another user cannot even connect (root bypasses the mode, so the child drops to nobody).
    code = (
        "import os, socket, sys\n"
        f"os.setgid({pwd.getpwnam('nobody').pw_gid}); os.setuid({pwd.getpwnam('nobody').pw_uid})\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"try:\n    s.connect({str(world.socket_path)!r})\nexcept PermissionError:\n"
        "    sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3
    await world.channel.stop()
    assert not world.socket_path.exists()


def test_install_leaves_a_configured_default(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path("/nonexistent/memguard.sock")
    config = Config()
    config.KernelProvisionerFactory.default_provisioner_name = "my-provisioner"
    setup = install(config, path)
    assert not setup.enabled and "'my-provisioner'" in (setup.reason or "")
    assert config.KernelProvisionerFactory.default_provisioner_name == "my-provisioner"
    assert provisioner.socket_path() is None

    monkeypatch.setenv("JUPYTER_DEFAULT_PROVISIONER_NAME", "env-provisioner")
    setup = install(Config(), path)
    assert not setup.enabled and "env-provisioner" in (setup.reason or "")

    monkeypatch.setenv("JUPYTER_DEFAULT_PROVISIONER_NAME", provisioner.PROVISIONER_NAME)
    config = Config()
    setup = install(config, path)
    assert setup.enabled and provisioner.socket_path() == path
    assert config.KernelProvisionerFactory.default_provisioner_name == provisioner.PROVISIONER_NAME
    uninstall(setup)
    assert provisioner.socket_path() is None


def test_default_socket_path_fits_sun_path(tmp_path: Path) -> None:
    short = default_socket_path(str(tmp_path))
    assert short.parent == tmp_path
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    long = default_socket_path(str(deep))
    assert len(os.fsencode(long)) <= 107 and long.parent != deep
    assert stat.S_IMODE(os.stat(long.parent).st_mode) == 0o700
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(long))
    sock.close()


def test_extension_argument_joins_the_kernelspecs() -> None:
    assert _extension_arguments(["python", "-m", "ipykernel_launcher"]) == [EXTENSION_ARG]
    own = ["python", "-m", "ipykernel", "--InteractiveShellApp.extra_extensions=mine"]
    assert _extension_arguments(own) == [f"--InteractiveShellApp.extra_extensions={AGENT_MODULE}"]
    assert _extension_arguments(["python", EXTENSION_ARG]) == []
    assert is_ipykernel(["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "x"], "python")
    assert not is_ipykernel(["python", "-m", "bash_kernel"], "bash")
    assert not is_ipykernel(["R", "--slave"], "R")


def test_extension_options_add_up_in_traitlets() -> None:
    """The kernelspec's own extra extensions survive ours (checked with IPKernelApp itself)."""
    code = (
        "from ipykernel.kernelapp import IPKernelApp\n"
        "import sys\n"
        "app = IPKernelApp()\n"
        "app.parse_command_line(sys.argv[1:])\n"
        "print(','.join(app.extra_extensions))\n"
    )
    for own in (
        "--ext=mine",
        "--IPKernelApp.extra_extensions=mine",
        "--InteractiveShellApp.extra_extensions=mine",
    ):
        argv = [own, *_extension_arguments(["python", own])]
        out = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
        ).stdout
        assert out.strip() == f"mine,{AGENT_MODULE}", own
