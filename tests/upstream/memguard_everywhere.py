"""pytest plugin: every jupyter_server the upstream tests start runs memguard, started.

jupyter_server's own tests configure their servers per module (``jp_server_config``), so
memguard is added where the server finds its extensions, and its start step (which
pytest-jupyter's ``jp_serverapp`` never runs) is scheduled right after the server initializes.
At the end the run fails if no server loaded memguard: the check would prove nothing.
"""

from __future__ import annotations

import asyncio

import pytest
from jupyter_server.serverapp import ServerApp

LOADED: list[str] = []

_find = ServerApp.find_server_extensions
_initialize = ServerApp.initialize


def find_server_extensions(self: ServerApp) -> None:
    _find(self)
    self.jpserver_extensions = {**self.jpserver_extensions, "jupyter_memguard": True}


def initialize(self: ServerApp, *args, **kwargs) -> None:
    self.jpserver_extensions = {**self.jpserver_extensions, "jupyter_memguard": True}
    _initialize(self, *args, **kwargs)
    if "memguard_view" not in self.web_app.settings:  # set by MemGuard.initialize_settings
        raise RuntimeError("memguard did not load in this jupyter_server")
    LOADED.append(self.root_dir)
    start = self.extension_manager.start_all_extensions()
    try:
        asyncio.get_running_loop().create_task(start)
    except RuntimeError:  # no loop running: the fixture's loop runs it later
        asyncio.get_event_loop().run_until_complete(start)


ServerApp.find_server_extensions = find_server_extensions
ServerApp.initialize = initialize


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(f"memguard was loaded and started in {len(LOADED)} servers")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    if exitstatus == 0 and not LOADED:
        session.exitstatus = 1
