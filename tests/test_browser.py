"""End to end in a real Chromium: what a student sees when a kernel runs out of memory.

One JupyterLab with memguard and a 600M (binary) limit per kernel, one notebook, and in order:

1. the status item reads the limit back as configured ("/ 600 MiB") and its tooltip (ours, not
   the browser's) explains the warn and stop lines, with a chart;
   which cell did it: the cell that keeps 150 MiB gets a memory badge, a small cell none; the
   badge opens the memory timeline at that cell, one span per executed cell, refreshed in place;
   who holds the memory: the Memory panel's bar shows the Jupyter server and the kernel;
   pressure from outside the kernels (a memory_pressure event) is ONE notice on every open
   JupyterLab of the server, updated in place; a gpu_pressure event is shown only where the
   failing kernel's notebook is open, naming the holders, and "Stop idle notebooks…" asks first;
2. a leaking cell: ONE notification that turns from the warning into "stopping" into "stopped";
   the halted cell says why in its own output; the notebook is saved after that (the file on
   disk has the note, the tab is not dirty); the status item says "Kernel stopped"; its
   Details view tells the story (the advice, the evidence) over a timeline of its cells;
3. a page reload: the undismissed notice is still there;
4. "Stop kernel…" in the Memory panel asks first and says what is lost;
5. a restart through JupyterLab's Kernel menu: the notice says the kernel runs again;
6. a SIGKILL of the kernel from outside: exactly one message (memguard's, with the reason);
   JupyterLab's "appears to have died" dialog does not stay open.

Every wait is for a condition on the page or on disk; a failure leaves a screenshot, the page's
record of notifications and dialogs, and the server log in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import free_port, stop_process, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = pytest.mark.browser

MiB = 2**20

# A leak into a global list, as real leaks are: the interrupt gives nothing back, so memguard
# goes on to shut the kernel down. 50 MiB/s: the warning (480 MiB) comes about a second before
# the stop line (540 MiB).
LEAK = """import time
leak = []
while True:
    leak.append(bytearray(b'\\x01') * (5 * 2**20))
    time.sleep(0.1)"""

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
      const text = (body ? body.innerText : node.innerText).trim();
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


def _playwright() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    return sync_playwright


# Keeps 150 MiB: a badge (the threshold is 5 % of the 600 MiB limit). The second cell moves
# nothing: no badge.
KEEP = "x = bytearray(b'\\x01') * (150 * 2**20)"
SMALL = "y = 1"
LEAK_CELL = 2


def _notebook(path: Path) -> None:
    cells = [KEEP, SMALL, LEAK]
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
    """A real `jupyter lab` with memguard and a 600M per-kernel limit."""
    if shutil.which("jupyter-lab") is None:
        pytest.skip("jupyterlab is not installed")
    port, token = free_port(), secrets.token_hex(8)
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "demo.ipynb")
    settings = tmp_path / "settings"
    # No "get notified about Jupyter news?" toast among the notifications counted here.
    news = settings / "@jupyterlab" / "apputils-extension"
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
        "--MemGuard.kernel_memory_limit=600M",
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
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log = open(tmp_path / "lab.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail("jupyter lab exited:\n" + (tmp_path / "lab.log").read_text()[-3000:])
        try:
            urllib.request.urlopen(f"{url}api/memguard/status?token={token}", timeout=2)
            return True
        except OSError:
            return False

    try:
        wait_for(up, 90, "jupyter lab with memguard answers")
        yield {"url": url, "token": token, "root": root, "log": tmp_path / "lab.log"}
    finally:
        stop_process(process)
        log.close()


def _api(lab: dict[str, Any], path: str, method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(
        lab["url"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def _terminal_running(lab: dict[str, Any], code: str) -> tuple[str, Any]:
    """A real terminal of the server (jupyter_server_terminals) running ``python -c code``."""
    import websocket  # websocket-client, installed with jupyter_server

    name = _api(lab, "api/terminals", method="POST", body={})["name"]
    url = lab["url"].replace("http://", "ws://") + f"terminals/websocket/{name}"
    terminal = websocket.create_connection(
        url, header=[f"Authorization: token {lab['token']}"], timeout=10
    )
    terminal.send(json.dumps(["stdin", f'{sys.executable} -c "{code}"\r']))
    return name, terminal


def _emit(lab: dict[str, Any], kind: str, data: dict[str, Any]) -> None:
    """Emit one of memguard's events on the server's event bus (jupyter_server's POST)."""
    body = {
        "schema_id": f"https://events.jupyter.org/jupyter_memguard/{kind}/v1",
        "version": "1",
        "data": data,
    }
    request = urllib.request.Request(
        lab["url"] + "api/events",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204, response.status


def _toasts_with(ui: Page, text: str) -> list[list[str]]:
    """The recorded notifications (each with its successive texts) that ever said `text`."""
    return [t["texts"] for t in ui.record()["toasts"] if any(text in x for x in t["texts"])]


def _mib(text: str) -> float:
    """The kernel's figure in MiB from "Mem 54 / 600 MiB" or "Mem 540 MiB / 1.5 GiB"."""
    match = re.search(r"Mem ([\d.]+) (?:(KiB|MiB|GiB) )?/", text)
    assert match, text
    value, unit = float(match.group(1)), match.group(2) or text.split()[-1]
    return value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


class Page:
    """The page plus the waits and reads the scenarios need."""

    def __init__(self, page: Any, lab: dict[str, Any]) -> None:
        self.page = page
        self.lab = lab

    def until(self, script: str, arg: Any = None, timeout: float = 30) -> Any:
        return self.page.wait_for_function(script, arg=arg, timeout=timeout * 1000).json_value()

    def status(self) -> str:
        return self.page.locator(".jp-memguard-status").inner_text().strip()

    def toast(self, pattern: str, timeout: float = 30) -> str:
        """Wait for a visible notification matching the regex; return its text."""
        return self.until(
            """pattern => {
                const re = new RegExp(pattern);
                for (const t of document.querySelectorAll('.Toastify__toast')) {
                    if (re.test(t.innerText)) return t.innerText;
                }
                return false;
            }""",
            pattern,
            timeout,
        )

    def click_toast_button(self, pattern: str, label: str) -> None:
        toast = self.page.locator(".Toastify__toast", has_text=re.compile(pattern)).first
        toast.get_by_role("button", name=label).click()

    def record(self) -> dict[str, Any]:
        return self.page.evaluate(
            """() => ({
                toasts: window.__memguard.toasts,
                dialogs: window.__memguard.dialogs.map(d => ({text: d.text, everShown: d.everShown,
                    open: document.body.contains(d.node)}))
            })"""
        )

    def kernel_idle(self, timeout: float = 60) -> None:
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=timeout * 1000
        )

    def run_cell(self, index: int) -> None:
        self.page.locator(".jp-Cell").nth(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Shift+Enter")

    def kernel_id(self) -> str:
        def one() -> str | None:
            sessions = _api(self.lab, "api/sessions")
            return sessions[0]["kernel"]["id"] if sessions else None

        return wait_for(one, 60, "the notebook's session")

    def saved_notebook(self) -> dict[str, Any]:
        """The notebook on disk ({} while a save is half written)."""
        try:
            return json.loads((self.lab["root"] / "demo.ipynb").read_text())
        except ValueError:
            return {}


def _leak_and_halt(ui: Page) -> None:
    """Scenario 2: warning → stopping → stopped in one notice, the cell's note, the save."""
    page = ui.page
    seen = {t["id"] for t in ui.record()["toasts"]}
    ui.run_cell(LEAK_CELL)
    # An edit nobody saves by hand.
    page.keyboard.press("Enter")
    page.keyboard.type("edited = 'typed in the browser, never saved by hand'")
    page.keyboard.press("Escape")

    final = ui.toast(r"Kernel stopped", timeout=60)
    assert "restart the kernel" in final.lower(), final
    toasts = [
        t
        for t in ui.record()["toasts"]
        if t["id"] not in seen
        and any("memguard" in x or "Memory high" in x or "Kernel stopped" in x for x in t["texts"])
    ]
    assert len(toasts) == 1, f"one notification for one kernel event, got {toasts}"
    texts = toasts[0]["texts"]
    phases = [
        next((i for i, t in enumerate(texts) if pattern in t), None)
        for pattern in ("Memory high in demo.ipynb", "memguard is stopping", "Kernel stopped")
    ]
    assert None not in phases and phases == sorted(phases), texts
    warning = texts[phases[0]]
    assert "600 MiB" in warning and "540 MiB" in warning, warning
    assert "past its stop line of 540 MiB" in texts[phases[1]], texts[phases[1]]
    assert not re.search(r"halted_by_memguard|confirmed|\bhigh\b", final), final

    # The halted cell says why, under the interrupt's traceback.
    output = page.locator(".jp-Cell").nth(LEAK_CELL).locator(".jp-OutputArea")
    note = output.get_by_text(re.compile("memguard stopped this cell"))
    note.wait_for(timeout=30000)
    text = output.inner_text()
    assert "KeyboardInterrupt" in text and text.index("KeyboardInterrupt") < text.index(
        "memguard stopped this cell"
    ), text
    assert "Its variables are lost" in note.inner_text()

    # Saved after the note: the file has it (and the typed edit), the tab is not dirty.
    def on_disk() -> bool:
        cells = ui.saved_notebook().get("cells", [])
        if len(cells) <= LEAK_CELL:
            return False
        outputs = json.dumps(cells[LEAK_CELL].get("outputs", []))
        return "memguard stopped this cell" in outputs and any(
            "typed in the browser" in "".join(c["source"]) for c in cells
        )

    wait_for(on_disk, 30, "the notebook saved with the note and the edit")
    ui.until(
        """() => { const tab = [...document.querySelectorAll('.lm-TabBar-tab')]
            .find(t => t.innerText.includes('demo.ipynb'));
            return tab && !tab.classList.contains('jp-mod-dirty'); }""",
        timeout=20,
    )

    # The status item says the kernel stopped (no "Mem n/a"), and stays.
    ui.until(
        "() => document.querySelector('.jp-memguard-status')?.innerText.includes('Kernel stopped')",
        timeout=20,
    )
    page.wait_for_timeout(500)
    assert ui.status() == "Kernel stopped"


def _badge_and_timeline(ui: Page) -> None:
    """Which cell did it: a badge on the cell that kept 150 MiB, none on a small one; the
    badge opens the timeline at that cell, with one span per executed cell."""
    page = ui.page
    ui.run_cell(1)
    ui.kernel_idle()
    badge = page.locator(".jp-Cell").nth(0).locator(".jp-memguard-badge")
    badge.wait_for(timeout=30000)
    text = badge.inner_text().strip()
    assert re.fullmatch(r"\+1\d\d MiB · peak \d+ MiB", text), text
    assert "Click for the memory timeline" in (badge.get_attribute("title") or "")

    badge.click()
    view = page.locator(".jp-memguard-details-view")
    view.wait_for(timeout=20000)
    spans = view.locator(".jp-memguard-span")
    ui.until(
        "() => document.querySelectorAll('.jp-memguard-details-view .jp-memguard-span')"
        ".length === 2",
        timeout=30,
    )
    counts = sorted(spans.evaluate_all("s => s.map(n => n.dataset.executionCount)"))
    assert counts == ["1", "2"], counts
    # Opened at the badge's cell, with its figures.
    card = view.locator(".jp-memguard-timeline-selected")
    card.wait_for(timeout=10000)
    assert "Cell [1]" in card.inner_text() and "+1" in card.inner_text(), card.inner_text()
    assert "limit 600 MiB" in view.inner_text()
    # The small cell moved nothing notable: no badge (its record is in, the view shows it).
    assert page.locator(".jp-Cell").nth(1).locator(".jp-memguard-badge").count() == 0
    # Hovering a span shows that cell's figures.
    view.locator(".jp-memguard-span[data-execution-count='2']").hover()
    hover = view.locator(".jp-memguard-timeline-hover")
    hover.wait_for(timeout=5000)
    assert "y = 1" in hover.inner_text() and "Peak" in hover.inner_text(), hover.inner_text()
    # It refreshes in place: the same chart element, a longer curve.
    chart = view.locator("svg.jp-memguard-timeline-chart").element_handle()
    points = view.locator("polyline.jp-memguard-chart-line").get_attribute("points")
    page.wait_for_function(
        """([chart, before]) => chart.isConnected &&
            chart.querySelector('polyline.jp-memguard-chart-line')
                ?.getAttribute('points') !== before""",
        arg=[chart, points],
        timeout=20000,
    )
    page.locator(".lm-TabBar-tab", has_text="Memory: demo.ipynb").locator(
        ".lm-TabBar-tabCloseIcon"
    ).click()
    view.wait_for(state="detached", timeout=10000)


def _breakdown(ui: Page) -> None:
    """Who holds the memory: the panel's bar has the Jupyter server and the kernel."""
    page = ui.page
    page.locator("li.lm-TabBar-tab[data-id='jp-memguard-panel']").click()
    bar = page.locator("#jp-memguard-panel .jp-memguard-breakdown-bar")
    bar.locator(".jp-memguard-seg[data-kind='kernel']").first.wait_for(timeout=30000)
    assert bar.locator(".jp-memguard-seg[data-kind='server']").count() == 1
    legend = page.locator("#jp-memguard-panel .jp-memguard-breakdown .jp-memguard-legend")
    text = legend.inner_text()
    assert "Jupyter server" in text and "demo.ipynb" in text and "Free" in text, text

    # A script run from a terminal shows in the bar as that terminal's.
    name, terminal = _terminal_running(
        ui.lab, "x = b'x' * (200 * 2**20); import time; time.sleep(600)"
    )
    try:
        ui.until(
            """name => [...document.querySelectorAll(
                '#jp-memguard-panel .jp-memguard-breakdown .jp-memguard-legend')]
                .some(e => e.innerText.includes('Terminal ' + name))""",
            name,
            timeout=45,
        )
    finally:
        terminal.close()
        _api(ui.lab, f"api/terminals/{name}", method="DELETE")

    # Each GPU (none here: the status is given one) with the notebooks that hold it.
    kernel_id = ui.kernel_id()
    gib = 2**30

    def with_gpu(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        data["gpu_devices"] = [
            {
                "index": 0,
                "name": "Tesla T4",
                "used_bytes": 6 * gib,
                "total_bytes": 15 * gib,
                "free_bytes": 9 * gib,
                "kernels": [{"kernel_id": kernel_id, "path": "demo.ipynb", "bytes": 4 * gib}],
            }
        ]
        route.fulfill(response=response, json=data)

    page.route("**/api/memguard/status*", with_gpu)
    try:
        gpu = page.locator("#jp-memguard-panel .jp-memguard-gpu")
        gpu.wait_for(timeout=30000)
        text = gpu.inner_text()
        assert "GPU 0 (Tesla T4): 6 GiB of 15 GiB (40 %) used" in text, text
        assert re.search(r"demo\.ipynb\s+4 GiB", text), text
        assert gpu.locator(".jp-memguard-seg[data-kind='kernel']").count() == 1
    finally:
        page.unroute("**/api/memguard/status*", with_gpu)


def _pressure(ui: Page, other: Page, lab: dict[str, Any]) -> None:
    """memory_pressure: one notice on every open JupyterLab, updated in place; gpu_pressure:
    only where the failing kernel's notebook is open, with "Stop idle notebooks…"."""
    message = (
        "A process outside your notebooks, `python train.py` (pid 4242, terminal 1), "
        "uses {} of the 2 GiB limit"
    )
    culprit = {
        "pid": 4242,
        "name": "python",
        "cmdline": "python train.py",
        "user": "alice",
        "bytes": 1717986918,
        "terminal": "1",
    }
    event = {"usage_bytes": 2040109465, "limit_bytes": 2147483648, "culprit": culprit}
    _emit(lab, "memory_pressure", {**event, "message": message.format("1.6 GiB")})
    for page in (ui, other):
        page.toast(re.escape("`python train.py` (pid 4242, terminal 1), uses 1.6 GiB"))
    _emit(lab, "memory_pressure", {**event, "message": message.format("1.7 GiB")})
    for page in (ui, other):
        page.toast(re.escape("uses 1.7 GiB of the 2 GiB limit"))
        toasts = _toasts_with(page, "python train.py")
        assert len(toasts) == 1, f"one pressure notice per page, got {toasts}"
    button = ui.page.locator(".Toastify__toast", has_text="python train.py").get_by_role(
        "button", name="Memory panel"
    )
    assert button.count() == 1

    kernel_id = ui.kernel_id()
    _emit(
        lab,
        "gpu_pressure",
        {
            "kernel_id": kernel_id,
            "path": "demo.ipynb",
            "message": "GPU 0 (Tesla T4) is full: other.ipynb (3 GiB) holds memory on it",
            "device": 0,
            "device_name": "Tesla T4",
            "requested_bytes": 2147483648,
            "free_bytes": 104857600,
            "holders": [
                {
                    "kernel_id": "0" * 8 + "-idle",
                    "path": "other.ipynb",
                    "bytes": 3221225472,
                    "idle": True,
                    "culled": False,
                },
                {
                    "kernel_id": "1" * 8 + "-busy",
                    "path": "busy.ipynb",
                    "bytes": 1073741824,
                    "idle": False,
                    "culled": False,
                },
            ],
        },
    )
    gpu = ui.toast(r"GPU 0 is full")
    assert "other.ipynb (3 GiB, idle)" in gpu and "busy.ipynb (1 GiB, running)" in gpu, gpu
    # Events arrive in order: once the next one shows on the other page, the GPU one has
    # been handled there, and it showed nothing (that page has no notebook of this kernel).
    _emit(lab, "memory_pressure", {**event, "message": message.format("1.8 GiB")})
    other.toast(re.escape("uses 1.8 GiB"))
    assert not _toasts_with(other, "GPU 0 is full")
    ui.click_toast_button("GPU 0 is full", "Stop idle notebooks…")
    dialog = ui.page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10000)
    question = dialog.inner_text()
    assert "other.ipynb" in question and "busy.ipynb" not in question, question
    assert "variables are lost" in question, question
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached", timeout=10000)
    ui.page.locator(".Toastify__toast", has_text="GPU 0 is full").locator(
        ".jp-Notification-Toast-Close"
    ).click()
    # The server's memory is not short in this test: the pressure notice says so, then goes.
    ui.toast(r"Memory is no longer short")
    ui.until(
        """() => ![...document.querySelectorAll('.Toastify__toast')]
            .some(t => /GPU 0 is full|python train.py|no longer short/.test(t.innerText))""",
        timeout=30,
    )


def test_what_a_student_sees(lab: dict[str, Any], request: Any) -> None:
    sync_playwright = _playwright()
    started = time.monotonic()
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
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(RECORDER)
        page = context.new_page()
        ui = Page(page, lab)
        try:
            # 1. The limit as configured, and our own tooltip with the lines and a chart.
            page.goto(f"{lab['url']}lab/tree/demo.ipynb?token={lab['token']}")
            ui.kernel_idle(timeout=90)
            ui.until(
                "() => /^Mem \\d+ \\/ 600 MiB$/.test("
                "document.querySelector('.jp-memguard-status')?.innerText.trim())",
                timeout=60,
            )
            item = page.locator(".jp-memguard-status")
            assert item.get_attribute("title") is None, "no native tooltip"
            before = _mib(ui.status())
            ui.run_cell(0)
            ui.until(
                """floor => { const m = document.querySelector('.jp-memguard-status')
                    .innerText.match(/Mem (\\d+) \\//); return m && Number(m[1]) >= floor; }""",
                before + 120,
            )
            ui.kernel_idle()
            item.hover()
            tooltip = page.locator(".jp-memguard-tooltip")
            tooltip.wait_for(timeout=10000)
            page.locator(".jp-memguard-tooltip svg.jp-memguard-chart").wait_for(timeout=20000)
            tip = tooltip.inner_text()
            assert (
                "memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB)." in tip
            ), tip
            assert "of 600 MiB" in tip, tip
            page.mouse.move(700, 300)

            # Which cell did it, who holds the memory, pressure from outside (two pages).
            _badge_and_timeline(ui)
            _breakdown(ui)
            other_page = context.new_page()
            other = Page(other_page, lab)
            other_page.goto(f"{lab['url']}lab/workspaces/second?reset&token={lab['token']}")
            other_page.locator("#jp-main-statusbar").wait_for(timeout=60000)
            other.until("() => document.querySelector('.jp-LauncherCard') !== null", timeout=60)
            _pressure(ui, other, lab)
            other_page.close()

            # 2. A runaway cell.
            _leak_and_halt(ui)

            # Details: the story, the advice and the evidence over a timeline of its cells.
            ui.click_toast_button("Kernel stopped", "Details")
            details = page.locator(".jp-memguard-details-view")
            details.locator(".jp-memguard-details-evidence").wait_for(timeout=15000)
            story = details.inner_text()
            assert "Verdict" in story and "Kernel stopped" in story, story
            record = next(
                t
                for t in _api(lab, "api/memguard/terminations?limit=5")["terminations"]
                if t["verdict"] == "halted_by_memguard"
            )
            if record["advice"]:
                assert record["advice"] in story, story
            cells = {
                c["msg_id"]
                for c in record["evidence"]["recent_cells"] + [record["evidence"]["running_cell"]]
                if c
            }
            assert len(cells) == 3, record["evidence"]
            assert details.locator(".jp-memguard-span").count() == len(cells)
            assert details.locator(".jp-memguard-span[data-execution-count='3']").count() == 1
            panel = page.locator("#jp-memguard-panel")
            assert "This server's memory:" in panel.inner_text()
            tab = page.locator("li.lm-TabBar-tab[data-id='jp-memguard-panel']")
            assert (tab.get_attribute("title") or tab.get_attribute("aria-label") or "").strip()

            # 3. A reload: the notice was not dismissed, so it is still there (saying that the
            # notebook has a kernel again once JupyterLab has started a new one).
            page.reload()
            ui.toast(r"Kernel stopped", timeout=60)
            ui.kernel_idle(timeout=90)
            ui.click_toast_button("Kernel stopped", "Dismiss")
            ui.until(
                """() => ![...document.querySelectorAll('.Toastify__toast')]
                    .some(t => t.innerText.includes('Kernel stopped'))""",
                timeout=15,
            )

            # 4. Stop kernel… asks first, and says what is lost.
            if not panel.is_visible():
                page.locator("li.lm-TabBar-tab[data-id='jp-memguard-panel']").click()
            row = page.locator(".jp-memguard-kernel").first
            row.wait_for(timeout=30000)
            title = row.locator(".jp-memguard-kernel-title")
            assert title.evaluate("n => getComputedStyle(n).whiteSpace") != "nowrap"
            row.get_by_role("button", name=re.compile("Stop kernel")).click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=10000)
            assert "variables" in dialog.inner_text() and "lost" in dialog.inner_text()
            dialog.get_by_role("button", name="Stop the kernel").click()
            ui.until(
                "() => document.querySelector('.jp-memguard-status')?.innerText"
                ".includes('Kernel stopped')",
                timeout=30,
            )
            ui.toast(r"Kernel (stopped|shut down)", timeout=30)
            # JupyterLab no longer shows the kernel as running (no "Idle" for a dead kernel).
            page.get_by_text("No Kernel").first.wait_for(timeout=30000)

            # 5. Restart through JupyterLab's own Kernel menu: the notice follows.
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(
                ".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel")
            ).first.click()
            # JupyterLab knows the kernel is gone: no "Restart Kernel?" question, a new kernel.
            ui.toast(r"running again", timeout=60)
            stops = [
                t["texts"]
                for t in ui.record()["toasts"]
                if any("from the Memory panel" in x for x in t["texts"])
            ]
            assert len(stops) == 1 and "running again" in stops[0][-1], stops
            ui.kernel_idle()
            ui.until(
                "() => /^Mem \\d+ \\/ 600 MiB$/.test("
                "document.querySelector('.jp-memguard-status')?.innerText.trim())",
                timeout=30,
            )

            # 6. SIGKILL from outside: one message, memguard's, with the reason.
            kernel_id = ui.kernel_id()
            pid = wait_for(
                lambda: next(
                    (
                        k["pid"]
                        for k in _api(lab, "api/memguard/kernels")["kernels"]
                        if k["id"] == kernel_id and k["pid"]
                    ),
                    None,
                ),
                30,
                "the kernel's pid",
            )
            seen = {t["id"] for t in ui.record()["toasts"]}
            os.kill(pid, signal.SIGKILL)
            killed = ui.toast(r"another (process|program)", timeout=60)
            assert "memory was" in killed or "Kernel stopped" in killed, killed
            ui.until(
                """() => ![...document.querySelectorAll('.jp-Dialog')]
                    .some(d => d.innerText.includes('appears to have died'))""",
                timeout=20,
            )
            record = ui.record()
            assert not any("Restart Kernel?" in d["text"] for d in record["dialogs"]), record
            new = [t for t in record["toasts"] if t["id"] not in seen]
            assert len(new) == 1, f"exactly one message after the kill, got {new}"
            died = [d for d in record["dialogs"] if "appears to have died" in d["text"]]
            assert not any(d["everShown"] or d["open"] for d in died), died
            assert time.monotonic() - started < 175
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            name = request.node.name
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
            try:
                (ARTIFACTS / f"{name}.record.json").write_text(json.dumps(ui.record(), indent=1))
            except Exception:
                pass
            (ARTIFACTS / f"{name}.log").write_text(lab["log"].read_text())
            raise
        finally:
            browser.close()
