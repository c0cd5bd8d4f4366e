"""A LocalProvisioner that loads memguard's agent into ipykernel kernels.

It only adds to the launch: an IPython extension on the kernel's command line (IPython's
``extra_extensions``, which adds to the user's ``extensions`` instead of replacing them), the
directory that holds only the agent module at the end of PYTHONPATH, and the channel's
socket and the kernel id in the environment. The agent removes all three when it loads.
Nothing the user owns changes: no IPython profile, no kernelspec. Every other kernel, and
every kernel while the agent is off, starts exactly as with LocalProvisioner.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

PROVISIONER_NAME = "memguard-local-provisioner"
AGENT_MODULE = "jupyter_memguard_agent"
AGENT_DIR = Path(__file__).resolve().parent / "kernel"  # holds only the agent module
SOCKET_ENV = "JUPYTER_MEMGUARD_AGENT_SOCKET"
KERNEL_ID_ENV = "JUPYTER_MEMGUARD_KERNEL_ID"
_EXTENSION_OPTIONS = ("--IPKernelApp.extra_extensions", "--InteractiveShellApp.extra_extensions")
_REMEMBERED = 10_000


@dataclass
class _State:
    """What the provisioner needs from the server (one socket per server process)."""

    socket_path: Path | None = None
    # kernel id -> why its launch got no agent, or (None, launch time) when it got one
    launches: dict[str, tuple[str | None, float]] = field(default_factory=dict)


_state = _State()


def set_socket_path(path: Path | None) -> None:
    """Kernels launched from now on get the agent (path) or do not (None)."""
    _state.socket_path = path


def socket_path() -> Path | None:
    return _state.socket_path


def launch_reason(kernel_id: str, grace: float = 20.0) -> str | None:
    """Why a kernel started by this process has no agent, as far as its launch tells."""
    launch = _state.launches.get(kernel_id)
    if launch is None:
        return None
    reason, launched = launch
    if reason is None and time.monotonic() - launched > grace:
        return (
            "the agent did not connect: the kernel's environment may lack IPython >= 7.10 "
            "or ipykernel, or the extension failed to load"
        )
    return reason


def forget_launch(kernel_id: str) -> None:
    _state.launches.pop(kernel_id, None)


def _remember(kernel_id: str, reason: str | None) -> None:
    _state.launches.pop(kernel_id, None)
    _state.launches[kernel_id] = (reason, time.monotonic())
    while len(_state.launches) > _REMEMBERED:
        del _state.launches[next(iter(_state.launches))]


def is_ipykernel(argv: list[str], language: str | None) -> bool:
    """A Python kernelspec whose command runs ipykernel (ipykernel_launcher, -m ipykernel)."""
    if not (language or "").lower().startswith("python"):
        return False
    return any("ipykernel" in os.path.basename(arg) for arg in argv)


def _socket_ready(path: Path | None) -> str | None:
    if path is None:
        return "the memguard agent is off"
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            return None
    except OSError:
        pass
    return f"the memguard agent's socket {path} does not exist"


class AgentProvisioner(LocalProvisioner):  # type: ignore[misc]
    """LocalProvisioner, plus memguard's agent for ipykernel kernels."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        spec = self.kernel_spec
        argv = list(getattr(spec, "argv", None) or [])
        path = _state.socket_path
        reason = _socket_ready(path)
        if reason is None and not is_ipykernel(argv, getattr(spec, "language", None)):
            reason = "not an ipykernel kernel: memguard's agent only loads into ipykernel"
        if reason is None:
            # New objects, never in place: jupyter_client keeps the launch kwargs for restarts.
            extra = list(kwargs.get("extra_arguments") or [])
            kwargs["extra_arguments"] = extra + _extension_arguments(argv + extra)
        kwargs = await super().pre_launch(**kwargs)
        if reason is None:
            env = dict(kwargs["env"])  # already a copy made by the base pre_launch
            user_path = env.get("PYTHONPATH", "")
            env["PYTHONPATH"] = (
                f"{user_path}{os.pathsep}{AGENT_DIR}" if user_path else str(AGENT_DIR)
            )
            env[SOCKET_ENV] = str(path)
            env[KERNEL_ID_ENV] = str(self.kernel_id)
            kwargs["env"] = env
        _remember(str(self.kernel_id), reason)
        return kwargs


def _extension_arguments(command: list[str]) -> list[str]:
    """The option that loads the agent, unless the command already has it.

    Command-line list options of one class name add up, but ``IPKernelApp`` beats a
    kernelspec's ``InteractiveShellApp`` option: use the class name the kernelspec uses.
    """
    if any(arg.split("=", 1)[-1] == AGENT_MODULE for arg in command if "=" in arg):
        return []
    option = _EXTENSION_OPTIONS[0]
    if any(arg.startswith(_EXTENSION_OPTIONS[1] + "=") for arg in command):
        option = _EXTENSION_OPTIONS[1]
    return [f"{option}={AGENT_MODULE}"]
