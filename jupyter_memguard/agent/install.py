"""Server-side switch for the agent: make memguard's provisioner the default one.

Called at extension link time, before jupyter_server creates its kernel manager. An admin's
own default provisioner always wins: then the agent cannot load, and ``AgentSetup.reason``
says why (for the status endpoint and the log).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.provisioning import KernelProvisionerFactory
from jupyter_core.paths import jupyter_runtime_dir
from traitlets.config import Config

from . import provisioner
from .provisioner import PROVISIONER_NAME

_FACTORY = "KernelProvisionerFactory"
_TRAIT = "default_provisioner_name"
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


@dataclass(frozen=True)
class AgentSetup:
    """What install() did: enabled, or the reason the agent cannot load."""

    enabled: bool
    reason: str | None
    socket_path: Path
    previous_default: str | None  # the live factory's default that install() replaced


def default_socket_path(runtime_dir: str | None = None) -> Path:
    """``<runtime dir>/memguard-<pid>.sock``; a private temporary directory when that path is
    too long for a Unix socket (108 bytes)."""
    path = Path(runtime_dir or jupyter_runtime_dir()) / f"memguard-{os.getpid()}.sock"
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="memguard-")) / f"memguard-{os.getpid()}.sock"


def _configured_default(config: Config) -> str | None:
    """A default provisioner the user or admin chose (config or environment), if any."""
    section = config.get(_FACTORY)  # dict.get: no section is created on the way
    if section is not None and _TRAIT in section:
        return str(section[_TRAIT])
    return os.environ.get(KernelProvisionerFactory.default_provisioner_name_env) or None


def install(config: Config, socket_path: Path) -> AgentSetup:
    """Make memguard's provisioner the default unless another one was configured."""
    chosen = _configured_default(config)
    if chosen not in (None, PROVISIONER_NAME):
        reason = (
            f"the default kernel provisioner is configured as {chosen!r} "
            f"(c.KernelProvisionerFactory.default_provisioner_name or "
            f"${KernelProvisionerFactory.default_provisioner_name_env}), so memguard's "
            "kernel agent cannot load; kernels are watched from outside only"
        )
        provisioner.set_socket_path(None)
        return AgentSetup(False, reason, socket_path, None)
    config[_FACTORY][_TRAIT] = PROVISIONER_NAME
    previous = None
    if KernelProvisionerFactory.initialized():
        # The factory is a process-wide singleton that reads its config once; one created
        # before us (anything that listed kernelspecs) still says "local-provisioner".
        factory = KernelProvisionerFactory.instance()
        current = factory.default_provisioner_name
        if current not in ("local-provisioner", PROVISIONER_NAME):
            reason = (
                f"the kernel provisioner factory already uses {current!r} as its default, "
                "so memguard's kernel agent cannot load"
            )
            provisioner.set_socket_path(None)
            return AgentSetup(False, reason, socket_path, None)
        if current != PROVISIONER_NAME:
            previous = current
            factory.default_provisioner_name = PROVISIONER_NAME
    provisioner.set_socket_path(socket_path)
    return AgentSetup(True, None, socket_path, previous)


def uninstall(setup: AgentSetup) -> None:
    """Kernels launched from now on get no agent; the factory's old default comes back."""
    provisioner.set_socket_path(None)
    if setup.previous_default is not None and KernelProvisionerFactory.initialized():
        factory = KernelProvisionerFactory.instance()
        if factory.default_provisioner_name == PROVISIONER_NAME:
            factory.default_provisioner_name = setup.previous_default
