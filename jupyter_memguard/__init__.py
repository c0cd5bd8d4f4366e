"""jupyter-memguard: per-kernel memory tracking, OOM guard and kernel-death forensics."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("jupyter-memguard")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import MemGuard

    return [{"module": "jupyter_memguard", "app": MemGuard}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-memguard"}]
