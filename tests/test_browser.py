"""End to end in a real Chromium: status bar memory, a halt, its notification, the autosave."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import stop_process

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = pytest.mark.browser

GROW = """import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignores the interrupt: memguard must shut it down
chunks = []
while True:
    chunks.append(bytearray(b'\\x01') * (5 * 2**20))
    time.sleep(0.05)"""


def _playwright() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _notebook(path: Path) -> None:
    cells = [
        "x = bytearray(b'\\x01') * (150 * 2**20)",
        GROW,
    ]
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"c{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real `jupyter lab` with memguard and a 500 MB per-kernel limit."""
    if shutil.which("jupyter-lab") is None:
        pytest.skip("jupyterlab is not installed")
    port, token = _free_port(), secrets.token_hex(8)
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "demo.ipynb")
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.allow_root=True",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--MemGuard.kernel_memory_limit=500M",
        "--MemGuard.poll_interval=0.5",
        "--MemGuard.interrupt_grace=1",
        "--MemGuard.shutdown_grace=1",
        f"--MemGuard.journal_path={tmp_path / 'journal.sqlite'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log = open(tmp_path / "lab.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(
                    "jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:]
                )
            time.sleep(0.3)
    try:
        yield {"url": url, "token": token, "root": root, "log": tmp_path / "lab.log"}
    finally:
        stop_process(process)
        log.close()


def _mem_value(text: str) -> float:
    match = re.search(r"Mem ([\d.]+) /", text)
    assert match, text
    return float(match.group(1))


def test_status_bar_halt_notification_and_autosave(lab, request):
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{lab['url']}lab/tree/demo.ipynb?token={lab['token']}")
            status = page.locator(".jp-memguard-status")
            status.wait_for(state="visible", timeout=60000)
            page.wait_for_function(
                "() => /Mem [0-9.]+ \\//.test(document.querySelector('.jp-memguard-status').textContent)",
                timeout=60000,
            )
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=60000
            )
            before = _mem_value(status.inner_text())

            # Run the first cell (150 MB): the status bar value rises.
            page.locator(".jp-Cell").nth(0).click()
            page.keyboard.press("Escape")
            page.keyboard.press("Shift+Enter")
            page.wait_for_function(
                f"() => parseFloat(document.querySelector('.jp-memguard-status').textContent"
                f".match(/Mem ([0-9.]+)/)[1]) >= {before + 0.12}",
                timeout=20000,
            )
            after = _mem_value(status.inner_text())
            assert after >= before + 0.12

            # Run the runaway cell, then type into a new cell without saving.
            page.keyboard.press("Shift+Enter")
            page.keyboard.type("edited = 'typed in the browser, never saved by hand'")
            page.keyboard.press("Escape")

            # memguard warns, saves, halts; the sticky notice explains.
            notice = page.get_by_text(re.compile("halted by memguard"))
            notice.first.wait_for(timeout=60000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "halted.png"))
            text = notice.first.inner_text()
            assert "limit" in text and "saved" in text

            saved = json.loads((lab["root"] / "demo.ipynb").read_text())
            sources = ["".join(c["source"]) for c in saved["cells"]]
            assert any("typed in the browser" in s for s in sources), sources
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
            (ARTIFACTS / f"{request.node.name}.log").write_text(lab["log"].read_text())
            raise
        finally:
            browser.close()
