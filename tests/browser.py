"""What tests/test_browser.py drives: a real `jupyter lab` with memguard, a real Chromium
(Debian's /usr/bin/chromium through Playwright), and the waits and reads its scenarios share.

Every wait is for a state (of the page, the server or the file on disk), never a fixed time:
the machine is shared and often loaded. Screenshots a person should look at are kept in
tests/artifacts/ on every run; a failure adds the page, its record of notices and dialogs,
and the server's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_memguard.models import Trigger
from jupyter_memguard.views.events import schema_id
from jupyter_memguard.wording import gpu_pressure_words, pressure_words

from .servers import free_port, stop_process, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
MiB = 2**20
GiB = 2**30

# Records, in the page, every notification's successive texts and every dialog, across the
# whole run (React re-renders a toast in place; a toast element keeps its identity).
RECORDER = """
(() => {
  const record = { toasts: [], dialogs: [] };
  window.__memguard = record;
  let next = 0;
  const scan = () => {
    for (const node of document.querySelectorAll('.Toastify__toast')) {
      if (node.__memguardId === undefined) {
        node.__memguardId = next++;
        record.toasts.push({ id: node.__memguardId, texts: [] });
      }
      const entry = record.toasts.find(t => t.id === node.__memguardId);
      const body = node.querySelector('.jp-toast-message');
      const text = (body ? body.innerText : node.innerText).replace(/\u00a0/g, ' ').trim();
      if (text && entry.texts[entry.texts.length - 1] !== text) {
        entry.texts.push(text);
      }
    }
    for (const node of document.querySelectorAll('.jp-Dialog')) {
      const text = node.innerText.trim();
      const shown = getComputedStyle(node).display !== 'none';
      let entry = record.dialogs.find(d => d.node === node);
      if (!entry) {
        entry = { node, text, everShown: false };
        record.dialogs.push(entry);
      }
      entry.text = text || entry.text;
      entry.everShown = entry.everShown || (shown && text.length > 0);
    }
  };
  new MutationObserver(scan).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ['class', 'style']
  });
})();
"""

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def sync_playwright() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    return sync_playwright


def write_notebook(path: Path, cells: list[str]) -> None:
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


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        kernels = self.api("api/memguard/kernels")["kernels"]
        return next((k for k in kernels if k["id"] == kernel_id), None)

    def used(self, kernel_id: str) -> int:
        """The kernel's memory as memguard decides on it (the figure its lines apply to)."""
        kernel = wait_for(
            lambda: (k := self.kernel(kernel_id)) and k["memory"] and k,
            30,
            "the kernel's memory",
        )
        return kernel["memory"]["used_bytes"]

    def cells(self, kernel_id: str) -> list[dict[str, Any]]:
        """The server's cell records of a kernel, oldest first."""
        return list(reversed(self.api(f"api/memguard/kernels/{kernel_id}/cells")["cells"]))

    def records(self, **query: Any) -> list[dict[str, Any]]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return self.api(f"api/memguard/terminations?{params}")["terminations"]

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Emit one of memguard's events on the server's bus (jupyter_server's POST), as the
        server itself would send it (its schema, its version)."""
        sid = schema_id(kind)
        body = {"schema_id": sid, "version": sid.rsplit("/v", 1)[1], "data": data}
        self.api("api/events", method="POST", body=body)

    def terminal_running(self, code: str) -> tuple[str, Any]:
        """A real terminal of the server (jupyter_server_terminals) running `python -c code`."""
        import websocket  # websocket-client, installed with jupyter_server

        name = self.api("api/terminals", method="POST", body={})["name"]
        url = self.url.replace("http://", "ws://") + f"terminals/websocket/{name}"
        terminal = websocket.create_connection(
            url, header=[f"Authorization: token {self.token}"], timeout=10
        )
        terminal.send(json.dumps(["stdin", f'{sys.executable} -c "{code}"\r']))
        return name, terminal


@contextlib.contextmanager
def lab_server(tmp_path: Path, cells: list[str], *settings: str) -> Iterator[Lab]:
    """A real `jupyter lab` with memguard (its agent on, as installed), demo.ipynb of `cells`."""
    if shutil.which("jupyter-lab") is None:
        pytest.skip("jupyterlab is not installed")
    port, token = free_port(), secrets.token_hex(8)
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "demo.ipynb", cells)
    lab_settings = tmp_path / "settings"
    # No "get notified about Jupyter news?" toast among the notifications counted here.
    news = lab_settings / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.allow_root=True",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--MemGuard.poll_interval=0.5",
        "--MemGuard.interrupt_grace=1",
        "--MemGuard.shutdown_grace=1",
        f"--MemGuard.journal_path={tmp_path / 'journal.sqlite'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *settings,
    ]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(lab_settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log_path = tmp_path / "lab.log"
    log = open(log_path, "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, log_path)

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail("jupyter lab exited:\n" + log_path.read_text()[-3000:])
        try:
            lab.api("api/memguard/status")
            return True
        except OSError:
            return False

    try:
        wait_for(up, 120, "jupyter lab with memguard answers")
        yield lab
    finally:
        stop_process(process)
        log.close()


# --------------------------------------------------------------------------- server events
PRESSURE_CULPRIT = {
    "pid": 4242,
    "name": "python",
    "cmdline": "python train.py",
    "user": "alice",
    "bytes": int(1.6 * GiB),
    "terminal": "1",
}


def pressure_event(culprit_bytes: int) -> dict[str, Any]:
    """A memory_pressure event exactly as the server words it (wording.pressure_words)."""
    usage, limit = int(1.9 * GiB), 2 * GiB
    culprit = {**PRESSURE_CULPRIT, "bytes": culprit_bytes}
    trigger = Trigger(
        "outside", line="warn", usage_bytes=usage, limit_bytes=limit, kernel_bytes=200 * MiB
    )
    return {
        "usage_bytes": usage,
        "limit_bytes": limit,
        "kernels_bytes": 200 * MiB,
        "outside_bytes": usage - 200 * MiB,
        "culprit": culprit,
        "trigger": trigger.to_json(),
        **pressure_words(trigger, culprit, "binary"),
    }


GPU_HOLDERS = [
    {"kernel_id": "0" * 8 + "-idle", "path": "other.ipynb", "bytes": 3 * GiB, "idle": True},
    {"kernel_id": "1" * 8 + "-busy", "path": "busy.ipynb", "bytes": 1 * GiB, "idle": False},
]


def gpu_pressure_event(kernel_id: str) -> dict[str, Any]:
    """A gpu_pressure event for demo.ipynb's kernel, as the server words it."""
    culprit = {
        "device": 0,
        "device_name": "Tesla T4",
        "requested_bytes": 2 * GiB,
        "free_bytes": 100 * MiB,
        "holders": [{**h, "culled": False} for h in GPU_HOLDERS],
    }
    words = gpu_pressure_words(culprit, "binary")
    trigger = Trigger("gpu_pressure", device_index=0, requested_bytes=2 * GiB)
    return {
        "kernel_id": kernel_id,
        "path": "demo.ipynb",
        "message": words["summary"],
        "trigger": trigger.to_json(),
        **culprit,
        **words,
    }


# --------------------------------------------------------------------------- figures
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def parse_size(text: str) -> tuple[float, float]:
    """ "151 MiB" → (bytes, the most the rounding of the figure can hide)."""
    match = re.fullmatch(r"\s*([\d.]+)\s(B|KiB|MiB|GiB|TiB)\s*", text)
    assert match, text
    number, unit = match.group(1), UNITS[match.group(2)]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number) * unit, 0.5 * 10**-decimals * unit


def mib(text: str) -> float:
    """The kernel's figure in MiB from "Mem 54 / 600 MiB" or "Mem 540 MiB / 1 GiB"."""
    match = re.search(r"Mem ([\d.]+)\s(?:(KiB|MiB|GiB)\s)?/", text)
    assert match, text
    value, unit = float(match.group(1)), match.group(2) or text.split()[-1]
    return value * UNITS[unit] / MiB


# --------------------------------------------------------------------------- the page
def text_of(locator: Any) -> str:
    """What an element reads, its no-break spaces (figures kept with their units) as spaces."""
    return locator.inner_text().replace("\xa0", " ")


def words(text: str) -> str:
    """A text's words, one space apart (a note wrapped into lines reads as one sentence)."""
    return " ".join(text.split())


class Page:
    """The page plus the waits and reads the scenarios need."""

    def __init__(self, page: Any, lab: Lab) -> None:
        self.page = page
        self.lab = lab

    def until(self, script: str, arg: Any = None, timeout: float = 30) -> Any:
        return self.page.wait_for_function(script, arg=arg, timeout=timeout * 1000).json_value()

    def wait(self, probe: Any, timeout: float, what: str, step_ms: int = 250) -> Any:
        """servers.wait_for, sleeping in the page, so that its own work (route handlers) goes
        on meanwhile: Playwright's sync API only runs them while it is called."""
        return wait_for(
            probe,
            timeout,
            what,
            step_ms / 1000,
            sleep=lambda seconds: self.page.wait_for_timeout(seconds * 1000),
        )

    def status(self) -> str:
        return self.page.locator(".jp-memguard-status").inner_text().strip()

    def toast(self, pattern: str, timeout: float = 30) -> str:
        """Wait for a visible notification matching the regex; return its text."""
        return self.until(
            """pattern => {
                const re = new RegExp(pattern);
                for (const t of document.querySelectorAll('.Toastify__toast')) {
                    const text = t.innerText.replace(/\u00a0/g, ' ');
                    if (re.test(text)) return text;
                }
                return false;
            }""",
            pattern,
            timeout,
        )

    def notice(self, pattern: str) -> Any:
        return self.page.locator(".Toastify__toast", has_text=re.compile(pattern)).first

    def no_toast(self, pattern: str, timeout: float = 30) -> None:
        self.until(
            """pattern => ![...document.querySelectorAll('.Toastify__toast')]
                .some(t => new RegExp(pattern).test(t.innerText.replace(/\u00a0/g, ' ')))""",
            pattern,
            timeout,
        )

    def click_toast_button(self, pattern: str, label: str | re.Pattern[str]) -> None:
        self.notice(pattern).get_by_role("button", name=label).click()

    def toasts_with(self, text: str) -> list[list[str]]:
        """The recorded notifications (each with its successive texts) that ever said `text`."""
        return [t["texts"] for t in self.record()["toasts"] if any(text in x for x in t["texts"])]

    def record(self) -> dict[str, Any]:
        return self.page.evaluate(
            """() => ({
                toasts: window.__memguard.toasts,
                dialogs: window.__memguard.dialogs.map(d => ({text: d.text, everShown: d.everShown,
                    open: document.body.contains(d.node)}))
            })"""
        )

    def toast_ids(self) -> set[int]:
        return {t["id"] for t in self.record()["toasts"]}

    def kernel_idle(self, timeout: float = 90) -> None:
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=timeout * 1000
        )

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def select_cell(self, index: int) -> None:
        """Make cell `index` the active one, in command mode."""
        self.cell(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")

    def run_cell(self, index: int) -> None:
        self.select_cell(index)
        self.page.keyboard.press("Shift+Enter")

    def write_cell(self, index: int, code: str) -> None:
        """Put `code` in cell `index` (a new cell below the last one when there is none)."""
        cells = self.page.locator(".jp-Notebook .jp-Cell")
        if cells.count() <= index:
            self.select_cell(cells.count() - 1)
            while cells.count() <= index:
                self.page.keyboard.press("b")
        self.select_cell(index)
        self.page.keyboard.press("Enter")
        self.page.keyboard.press("Control+a")
        # Inserted as text: no bracket or quote completion on the way.
        self.page.keyboard.insert_text(code)
        self.page.keyboard.press("Escape")

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    def menu(self, top: str, item: str | re.Pattern[str]) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=top).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=item).first.click()

    def kernel_id(self) -> str:
        def one() -> str | None:
            sessions = self.lab.api("api/sessions")
            return sessions[0]["kernel"]["id"] if sessions else None

        return wait_for(one, 60, "the notebook's session")

    def new_kernel_id(self, old: str) -> str:
        def other() -> str | None:
            sessions = self.lab.api("api/sessions")
            ids = [s["kernel"]["id"] for s in sessions if s["kernel"]]
            return next((k for k in ids if k != old), None)

        return wait_for(other, 90, "a new kernel for the notebook")

    def saved_notebook(self) -> dict[str, Any]:
        """The notebook on disk ({} while a save is half written)."""
        try:
            return json.loads((self.lab.root / "demo.ipynb").read_text())
        except ValueError:
            return {}

    def panel(self) -> Any:
        """The Memory panel, opened."""
        panel = self.page.locator("#jp-memguard-panel")
        if not panel.is_visible():
            self.page.locator("li.lm-TabBar-tab[data-id='jp-memguard-panel']").click()
        panel.wait_for(timeout=10000)
        return panel

    def tab_to(self, start: Any, target: Any, most: int = 12) -> None:
        """Reach `target` with the Tab key from `start` (a place of the page clicked first, as
        a person would), then check it shows that it has the focus."""
        start.click()
        handle = target.element_handle()
        for _ in range(most):
            self.page.keyboard.press("Tab")
            if handle.evaluate("n => n === document.activeElement"):
                break
        else:
            active = self.page.evaluate("() => document.activeElement?.outerHTML.slice(0, 200)")
            raise AssertionError(f"Tab never reached the button (the focus is on {active})")
        visible = handle.evaluate(
            """n => {
                const s = getComputedStyle(n);
                const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
                return n.matches(':focus-visible') && (outline || s.boxShadow !== 'none');
            }"""
        )
        assert visible, "the focused button does not show that it has the focus"

    def shot(self, name: str, locator: Any | None = None, notices: bool = True) -> Path:
        """Keep a screenshot (of one element, or of the page) in tests/artifacts/; without
        the notices floating over it when `notices` is False."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        options: dict[str, Any] = {"path": str(path), "animations": "disabled"}
        if not notices:
            options["style"] = ".jp-toastContainer { display: none; }"
        (self.page if locator is None else locator).screenshot(**options)
        return path


@contextlib.contextmanager
def browser(lab: Lab, name: str) -> Iterator[tuple[Any, Page]]:
    """A Chromium with one page on the lab; on a failure the page, its record of notices and
    dialogs, and the server's log are kept in tests/artifacts/<name>.*"""
    with sync_playwright()() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(RECORDER)
        page = Page(context.new_page(), lab)
        console: list[str] = []
        page.page.on(
            "console",
            lambda m: (
                console.append(f"{m.type}: {m.text}") if m.type in ("warning", "error") else None
            ),
        )
        try:
            yield context, page
            with contextlib.suppress(Exception):  # what the server recorded, for a person
                records = json.dumps(lab.records(limit=50), indent=1)
                (ARTIFACTS / f"{name}.records.json").write_text(records)
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            with contextlib.suppress(Exception):
                page.page.screenshot(path=str(ARTIFACTS / f"{name}.failure.png"))
            with contextlib.suppress(Exception):
                record = json.dumps(page.record(), indent=1)
                (ARTIFACTS / f"{name}.record.json").write_text(record)
            (ARTIFACTS / f"{name}.log").write_text(lab.log.read_text())
            (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console))
            raise
        finally:
            chromium.close()
