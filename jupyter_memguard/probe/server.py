"""What jupyter_server knows of its kernels, read without ever failing on one that is leaving.

A kernel being shut down is removed from the kernel manager while requests and ticks still
name it. ``MappingKernelManager.get_kernel`` then raises tornado's ``HTTPError(404)``, not
``KeyError``; every lookup here treats both (and any other lookup error) as "gone".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from tornado.web import HTTPError


class ServerKernel(Protocol):
    """What memguard uses of one of jupyter_server's kernel managers (a kernel)."""

    kernel_name: str
    provisioner: Any  # jupyter_client's provisioner: pid, pgid, process (local ones)

    def add_restart_callback(self, callback: Callable[[], None], event: str) -> None: ...

    def stop_restarter(self) -> None: ...

    def is_alive(self) -> Awaitable[bool]: ...


class KernelManager(Protocol):
    """What memguard uses of jupyter_server's MappingKernelManager."""

    def list_kernel_ids(self) -> Iterable[str]: ...

    def get_kernel(self, kernel_id: str) -> ServerKernel: ...

    def __contains__(self, kernel_id: object) -> bool: ...

    def interrupt_kernel(self, kernel_id: str) -> Awaitable[None]: ...

    def restart_kernel(self, kernel_id: str, now: bool = False) -> Awaitable[None]: ...

    def shutdown_kernel(self, kernel_id: str, now: bool = False) -> Awaitable[None]: ...


class SessionManager(Protocol):
    """What memguard uses of jupyter_server's SessionManager: the notebook of each kernel."""

    def list_sessions(self) -> Awaitable[list[dict[str, Any]]]: ...


def find_kernel(kernel_manager: KernelManager, kernel_id: str) -> ServerKernel | None:
    """The kernel manager's kernel object, or None when it is gone (or going)."""
    try:
        return kernel_manager.get_kernel(kernel_id)
    except (KeyError, HTTPError):
        return None


def kernel_ids(kernel_manager: KernelManager) -> list[str]:
    """A copy of the kernel ids (the manager's dict changes while we iterate otherwise)."""
    return list(kernel_manager.list_kernel_ids())


def kernel_pid(kernel: Any) -> int | None:
    """The local PID of a kernel, or None for kernels without one (remote provisioners)."""
    provisioner = getattr(kernel, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if isinstance(pid, int) and pid > 0:
        return pid
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) and pid > 0 else None


def kernel_pgid(kernel: Any) -> int | None:
    """The process group jupyter_client started the kernel in (local kernels only)."""
    pgid = getattr(getattr(kernel, "provisioner", None), "pgid", None)
    return pgid if isinstance(pgid, int) and pgid > 1 else None


def connection_file(kernel: Any) -> str | None:
    """The kernel's connection file (its path names the kernel on the process's command line)."""
    path = getattr(kernel, "connection_file", None)
    return path if isinstance(path, str) and path else None


def kernel_returncode(kernel: Any) -> int | None:
    """The exit status of a local kernel's process, if it has ended (read before the
    restarter replaces the process and jupyter_client forgets it)."""
    process = getattr(getattr(kernel, "provisioner", None), "process", None)
    try:
        return process.poll() if process is not None else None
    except Exception:
        return None


@dataclass(frozen=True)
class Activity:
    """Execution state, idle time and open connections, as jupyter_server tracks them."""

    execution_state: str
    idle_seconds: float
    connections: int


GONE = Activity("dead", 0.0, 0)


def kernel_activity(kernel_manager: KernelManager, kernel_id: str, now: float) -> Activity:
    """The kernel's activity; GONE for a kernel that has left the manager."""
    kernel = find_kernel(kernel_manager, kernel_id)
    if kernel is None:
        return GONE
    last = getattr(kernel, "last_activity", None)
    idle = 0.0
    if isinstance(last, datetime):
        if last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        idle = max(0.0, now - last.timestamp())
    connections = getattr(kernel_manager, "_kernel_connections", {}).get(kernel_id, 0)
    return Activity(
        getattr(kernel, "execution_state", None) or "unknown", round(idle, 1), int(connections)
    )


def terminal_roots(serverapp: Any) -> dict[str, int]:
    """Each terminal of this server (jupyter_server_terminals) by name → its shell's pid."""
    settings = getattr(getattr(serverapp, "web_app", None), "settings", None) or {}
    manager = settings.get("terminal_manager")
    roots: dict[str, int] = {}
    for name, terminal in dict(getattr(manager, "terminals", None) or {}).items():
        pid = getattr(getattr(terminal, "ptyproc", None), "pid", None)
        if isinstance(pid, int) and pid > 0:
            roots[str(name)] = pid
    return roots
