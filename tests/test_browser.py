"""End to end in a real Chromium, real kernels and memguard's agent in them: what a student sees.

`test_what_a_student_sees`: a 600M (binary) limit for each kernel, the machine's memory as the
server's budget (so a cell that crosses its kernel's stop line is interrupted and the kernel
is kept, with its variables):
1. the status item reads the limit back as configured ("/ 600 MiB"); its tooltip (ours, not
   the browser's) gives the warn and stop lines, with a labelled chart;
2. Run All of three cells whose second keeps 300 MiB: the badge is on the second cell, none
   on the others, and the server's records put each change on its own cell; the badge opens
   the memory timeline at that cell, one span per cell, refreshed in place;
3. who holds the memory: the Memory panel's bar has the server and the kernel, its parts add
   up to the usage the server reports within 2 %, a terminal's script shows as that terminal;
   each GPU (a fake NVML reading) with the notebooks that hold it;
4. pressure from outside the kernels (a memory_pressure event, worded by the server) is ONE
   notice on every open JupyterLab, updated in place; a gpu_pressure event shows only where the
   failing kernel's notebook is open, and "Stop idle notebooks…" asks first;
5. a variable `big` crosses the warn line: the warning names it;
6. a cell crosses the stop line, under the kill line: memguard interrupts it with a
   MemoryLimitInterrupt that says why, and keeps the kernel: the same notice says what to free
   (`del …`), the kernel still has its variables (the panel lists them), the panel's history
   shows the interrupt the kernel survived;
7. "Stop kernel…" in the Memory panel, reached with the keyboard, asks first and says what is
   lost; a restart through JupyterLab's Kernel menu: the notice says the kernel runs again;
8. a SIGKILL of the kernel from outside: exactly one message (memguard's, with the reason);
   JupyterLab's "appears to have died" dialog does not stay open.

`test_a_kernel_memguard_stops`: a 1G budget for the server and its kernels, and no limit of
the kernel's own, so a leak fills the server's memory and memguard stops the kernel (it is not
kept). The warn line is at 60 %: the server itself counts in the budget, so at 80 % the kernel
would reach the budget's stop line before its own warn line.
1. a leaking cell: ONE notice that turns from the warning (naming `leak`) into "stopping" into
   "stopped"; the stopped cell shows the MemoryLimitInterrupt with its message, then memguard's
   note; the notebook is saved after that (the file has the note and an unsaved edit, the tab
   is not dirty); the status item says "Kernel stopped"; the Details view tells the story over
   a timeline of the cells;
2. a page reload: the undismissed notice is kept (in jupyter-memguard:v2:<baseUrl>:notices)
   and is still there;
3. a second stop: the notice's "Restart and run cells [1]–[2] again", reached with the
   keyboard, restarts the kernel and runs the cells above the failing one, not that one.

Screenshots of the tooltip, the panel, each kind of notice and the Details view are kept in
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_memguard.wording import LOST

from .browser import (
    GPU_HOLDERS,
    Lab,
    MiB,
    Page,
    browser,
    gpu_pressure_event,
    lab_server,
    mib,
    parse_size,
    pressure_event,
    text_of,
    words,
)
from .servers import wait_for

pytestmark = pytest.mark.browser

KEEP = "keep = bytearray(b'\\x01') * (300 * 2**20)"
RUN_ALL = ["a = 1", KEEP, "c = 3"]
# Grows a list (the variable exists while it grows, as a real one would) to `n` MiB.
BIG = "big = []\nfor _ in range({n}):\n    big.append(bytearray(b'\\x01') * 2**20)"
# Crosses the stop line and is still running when memguard steps in; ends under the kill line.
OVER = (
    "more = []\nimport time\nfor _ in range({n}):\n"
    "    more.append(bytearray(b'\\x01') * 2**20)\n    time.sleep(0.02)\ntime.sleep(120)"
)

# A leak into a global list, as real leaks are: the interrupt gives nothing back. 50 MiB/s.
LEAK = """import time
leak = []
while True:
    leak.append(bytearray(b'\\x01') * (5 * 2**20))
    time.sleep(0.1)"""
DATA = "data = bytearray(b'\\x01') * (100 * 2**20)"
STOP_CELLS = [DATA, "n = len(data)", LEAK]
LEAK_CELL = 2
EDIT = "typed in the browser, never saved by hand"


@pytest.fixture
def quota_lab(tmp_path: Path) -> Iterator[Lab]:
    with lab_server(tmp_path, RUN_ALL, "--MemGuard.kernel_memory_limit=600M") as lab:
        yield lab


@pytest.fixture
def budget_lab(tmp_path: Path) -> Iterator[Lab]:
    # The kill line well above the stop line: a leak that a loaded machine lets run on for a
    # second past the stop line is still interrupted, not killed.
    settings = (
        "--MemGuard.memory_limit=1G",
        "--MemGuard.warn_fraction=0.6",
        "--MemGuard.kill_fraction=0.99",
    )
    with lab_server(tmp_path, STOP_CELLS, *settings) as lab:
        yield lab


def _open(ui: Page, status: str) -> None:
    """Open demo.ipynb; wait for its kernel and for the status item to read `status` (a regex:
    the limit as configured)."""
    ui.page.goto(f"{ui.lab.url}lab/tree/demo.ipynb?token={ui.lab.token}")
    ui.kernel_idle(timeout=120)
    ui.until(
        "status => new RegExp(status).test("
        "document.querySelector('.jp-memguard-status')?.innerText.trim())",
        status,
        timeout=60,
    )
    assert ui.page.locator(".jp-memguard-status").get_attribute("title") is None, "native tip"


def _phases(texts: list[str], *patterns: str) -> list[int | None]:
    return [next((i for i, t in enumerate(texts) if p in t), None) for p in patterns]


# --------------------------------------------------------------------------- the quota lab
def _run_all_and_tooltip(ui: Page) -> None:
    """Run All, then the status item's own tooltip with the lines and a labelled chart."""
    page = ui.page
    before = mib(ui.status())
    ui.menu("Run", "Run All Cells")
    ui.until(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]"
        ".map(p => p.innerText.trim()).join(' ') === '[1]: [2]: [3]:'",
        timeout=60,
    )
    ui.kernel_idle()
    ui.until(
        """floor => { const m = document.querySelector('.jp-memguard-status')
            .innerText.match(/Mem (\\d+) \\//); return m && Number(m[1]) >= floor; }""",
        before + 250,
    )
    item = page.locator(".jp-memguard-status")
    item.hover()
    tooltip = page.locator(".jp-memguard-tooltip")
    tooltip.wait_for(timeout=10000)
    page.locator(".jp-memguard-tooltip svg.jp-memguard-chart").wait_for(timeout=20000)
    tip = text_of(tooltip)
    assert "memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB)." in tip, tip
    assert "of 600 MiB" in tip and "kernel_memory_limit" in tip, tip
    labels = tooltip.locator(".jp-memguard-chart-label").all_text_contents()
    assert {"warn 480 MiB", "stop 540 MiB"} <= set(labels), labels
    ui.shot("tooltip", tooltip)
    page.mouse.move(700, 300)


def _badge_and_timeline(ui: Page) -> None:
    """Each change on its own cell after Run All; the badge opens the timeline at its cell."""
    page = ui.page
    kernel_id = ui.kernel_id()
    cells = wait_for(
        lambda: (
            (c := ui.lab.cells(kernel_id)) and len(c) >= 3 and all(x["ended_at"] for x in c) and c
        ),
        30,
        "the server's records of the three cells",
    )
    deltas = [c["delta_bytes"] / MiB for c in cells]
    assert [c["source"] for c in cells] == ["agent"] * 3, cells
    assert abs(deltas[0]) < 10 and 280 <= deltas[1] <= 330 and abs(deltas[2]) < 10, deltas
    # Nor a peak of another's: a small cell's own peak is small (the first cell of a fresh
    # kernel included, however large the server that started it).
    peaks = [(c["peak_above_start_bytes"] or 0) / MiB for c in cells]
    assert peaks[0] < 10 and peaks[2] < 10, (
        f"small cells' own peaks (MiB): {peaks}; a peak read from getrusage's ru_maxrss keeps "
        "the peak of the server that forked the kernel, which clear_refs does not reset",
        cells,
    )

    badge = ui.cell(1).locator(".jp-memguard-badge")
    badge.wait_for(timeout=30000)
    text = text_of(badge).strip()
    match = re.fullmatch(r"\+(\d+) MiB · peak \+(\d+) MiB", text)
    assert match and 280 <= int(match[1]) <= 330 and int(match[2]) >= int(match[1]) - 5, text
    assert "Click for the memory timeline" in (badge.get_attribute("title") or "")
    for other in (0, 2):
        assert ui.cell(other).locator(".jp-memguard-badge").count() == 0, other

    badge.click()
    view = page.locator(".jp-memguard-details-view")
    view.wait_for(timeout=20000)
    ui.until(
        "() => document.querySelectorAll('.jp-memguard-details-view .jp-memguard-span')"
        ".length === 3",
        timeout=30,
    )
    spans = view.locator(".jp-memguard-span")
    counts = sorted(spans.evaluate_all("s => s.map(n => n.dataset.executionCount)"))
    assert counts == ["1", "2", "3"], counts
    card = view.locator(".jp-memguard-timeline-selected")
    card.wait_for(timeout=10000)
    assert "Cell [2]" in text_of(card) and "+3" in text_of(card), text_of(card)
    assert "limit 600 MiB" in text_of(view)
    ui.shot("timeline", view)
    view.locator(".jp-memguard-span[data-execution-count='3']").hover()
    hover = view.locator(".jp-memguard-timeline-hover")
    hover.wait_for(timeout=5000)
    assert "c = 3" in text_of(hover) and "Peak" in text_of(hover), text_of(hover)
    ui.shot("timeline-hover", view)
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


class FrozenStatus:
    """Serves the page /api/memguard/status as the server answers it, until frozen: then the
    same answer again, so what the page shows can be compared with what it was given."""

    def __init__(self, ui: Page) -> None:
        self.ui = ui
        self.last: dict[str, Any] | None = None
        self.frozen: dict[str, Any] | None = None
        self.served_frozen = 0

    def __call__(self, route: Any) -> None:
        if self.frozen is not None:
            self.served_frozen += 1
            route.fulfill(json=self.frozen)
            return
        response = route.fetch()
        self.last = response.json()
        route.fulfill(response=response, json=self.last)

    def freeze(self) -> dict[str, Any]:
        self.ui.wait(
            lambda: self.last and self.last.get("breakdown"), 60, "a status with a breakdown"
        )
        self.frozen = self.last
        assert self.frozen is not None
        return self.frozen


def _legend(ui: Page) -> dict[str, str]:
    """The Memory panel's legend: each entry's data-kind/label → its size text."""
    items = ui.page.locator("#jp-memguard-panel .jp-memguard-breakdown .jp-memguard-legend-item")
    return items.evaluate_all(
        """items => Object.fromEntries(items.map(i => [
            i.dataset.kind + ':' + i.querySelector('.jp-memguard-legend-label').innerText,
            i.querySelector('.jp-memguard-legend-size').innerText]))"""
    )


def _breakdown(ui: Page) -> None:
    """Who holds the memory: server, kernel, terminals; the parts add up to the usage."""
    page = ui.page
    panel = ui.panel()
    bar = panel.locator(".jp-memguard-breakdown-bar")
    bar.locator(".jp-memguard-seg[data-kind='kernel']").first.wait_for(timeout=30000)
    assert bar.locator(".jp-memguard-seg[data-kind='server']").count() == 1
    text = text_of(panel.locator(".jp-memguard-breakdown .jp-memguard-legend"))
    assert "Jupyter server" in text and "demo.ipynb" in text and "Free" in text, text
    assert "This server's memory:" in text_of(panel)
    tab = page.locator("li.lm-TabBar-tab[data-id='jp-memguard-panel']")
    assert (tab.get_attribute("title") or tab.get_attribute("aria-label") or "").strip()

    # The parts the page shows add up to the usage the server gave it, within 2 % (and the
    # rounding of the figures shown).
    frozen = FrozenStatus(ui)
    page.route("**/api/memguard/status*", frozen)
    try:
        status = frozen.freeze()
        ui.wait(lambda: frozen.served_frozen >= 2, 60, "the page polls the frozen status")
        legend = ui.wait(
            lambda: (a := _legend(ui)) == _legend(ui) and a, 10, "a settled legend", step_ms=500
        )
        parts = [parse_size(size) for key, size in legend.items() if not key.startswith("free:")]
        total, rounding = sum(p[0] for p in parts), sum(p[1] for p in parts)
        usage = status["breakdown"]["usage_bytes"]
        assert abs(total - usage) <= 0.02 * usage + rounding, (legend, usage)
        b = status["breakdown"]
        counted = (
            sum(k["bytes"] for k in b["kernels"])
            + (b["server"]["bytes"] if b["server"] else 0)
            + sum(t["bytes"] for t in b["terminals"])
            + sum(o["bytes"] for o in b["orphans"])
            + b["others_bytes"]
            + b["page_cache_bytes"]
            + b["shmem_bytes"]
            + b["unattributed_bytes"]
        )
        assert abs(counted - usage) <= 0.02 * usage, ({**b, "others": None}, counted)
    finally:
        page.unroute("**/api/memguard/status*", frozen)

    # A script run from a terminal shows in the bar as that terminal's.
    name, terminal = ui.lab.terminal_running(
        "x = b'x' * (200 * 2**20); import time; time.sleep(600)"
    )
    try:
        ui.until(
            """name => [...document.querySelectorAll(
                '#jp-memguard-panel .jp-memguard-breakdown .jp-memguard-legend')]
                .some(e => e.innerText.includes('Terminal ' + name))""",
            name,
            timeout=60,
        )
    finally:
        terminal.close()
        ui.lab.api(f"api/terminals/{name}", method="DELETE")

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
        gpu = panel.locator(".jp-memguard-gpu")
        gpu.wait_for(timeout=30000)
        text = text_of(gpu)
        assert "GPU 0 (Tesla T4): 6 GiB of 15 GiB (40 %) used" in text, text
        assert re.search(r"demo\.ipynb\s+4 GiB", text), text
        assert gpu.locator(".jp-memguard-seg[data-kind='kernel']").count() == 1
        ui.shot("panel-gpu", gpu)
    finally:
        page.unroute("**/api/memguard/status*", with_gpu)


def _pressure(ui: Page, other: Page) -> None:
    """memory_pressure: one notice on every open JupyterLab, updated in place; gpu_pressure:
    only where the failing kernel's notebook is open, with "Stop idle notebooks…"."""
    lab = ui.lab
    first = pressure_event(int(1.6 * 2**30))
    short = first["usage_bytes"], first["limit_bytes"]

    def budget_short(route: Any) -> None:
        """The budget as the pressure events say it is (this machine has plenty)."""
        response = route.fetch()
        data = response.json()
        usage, limit = short
        data["budget"] = {
            **data["budget"],
            "usage_bytes": usage,
            "limit_bytes": limit,
            "warn_bytes": int(0.8 * limit),
            "halt_bytes": int(0.9 * limit),
            "headroom_bytes": limit - usage,
        }
        route.fulfill(response=response, json=data)

    kernels = re.compile(r"/api/memguard/kernels(\?.*)?$")
    ui.page.context.route(kernels, budget_short)
    try:
        lab.emit("memory_pressure", first)
        # What the server says happened, and who holds the memory, as it words it.
        said = first["summary"].split(". ")[0]
        assert "`python train.py` (pid 4242, terminal 1), uses 1.6 GiB" in said, said
        for page in (ui, other):
            page.toast(re.escape(said))
        lab.emit("memory_pressure", pressure_event(int(1.7 * 2**30)))
        for page in (ui, other):
            page.toast(re.escape("uses 1.7 GiB of the 2 GiB limit"))
            toasts = page.toasts_with("python train.py")
            assert len(toasts) == 1, f"one pressure notice per page, got {toasts}"
        notice = ui.notice("python train.py")
        text = text_of(notice.locator(".jp-toast-message"))
        assert "memguard stops no kernel for it" not in text, text
        assert notice.get_by_role("button", name="Memory panel").count() == 1
        ui.shot("notice-pressure", notice)
        event = gpu_pressure_event(ui.kernel_id())
        lab.emit("gpu_pressure", event)
        gpu = ui.toast(re.escape("On GPU 0 (Tesla T4)"))
        assert "other.ipynb (3 GiB, idle)" in gpu and "busy.ipynb (1 GiB, running)" in gpu, gpu
        assert event["headline"] in gpu, gpu
        ui.shot("notice-gpu", ui.notice("On GPU 0 .Tesla T4."))
        # Events arrive in order: once the next one shows on the other page, the GPU one has
        # been handled there, and it showed nothing (that page has no notebook of this kernel).
        lab.emit("memory_pressure", pressure_event(int(1.8 * 2**30)))
        other.toast(re.escape("uses 1.8 GiB"))
        assert not other.toasts_with("On GPU 0 (Tesla T4)")
        ui.click_toast_button("On GPU 0 .Tesla T4.", "Stop idle notebooks…")
        dialog = ui.page.locator(".jp-Dialog")
        dialog.wait_for(timeout=10000)
        question = text_of(dialog)
        idle, busy = (h["path"] for h in GPU_HOLDERS)
        assert idle in question and busy not in question, question
        assert "variables are lost" in question, question
        dialog.get_by_role("button", name="Cancel").click()
        dialog.wait_for(state="detached", timeout=10000)
        ui.notice("On GPU 0 .Tesla T4.").locator(".jp-Notification-Toast-Close").click()
    finally:
        ui.page.context.unroute(kernels, budget_short)
    # The real budget is far from short: the pressure notice says so, then goes.
    ui.toast(r"Memory is no longer short")
    ui.no_toast(r"On GPU 0 \(Tesla T4\)|python train.py|no longer short", timeout=30)


def _warning_names_big(ui: Page) -> str:
    """A variable `big` crosses the warn line: the warning names it."""
    kernel_id = ui.kernel_id()
    n = (510 * MiB - ui.lab.used(kernel_id)) // MiB
    assert 100 <= n <= 200, n
    ui.write_cell(3, BIG.format(n=n))
    ui.run_cell(3)
    warning = ui.toast(r"Kernel memory is high \(demo\.ipynb\)", timeout=60)
    assert "`big` (list" in warning, warning
    assert not re.search(r"\b(warn|halt)_bytes\b|memory_warning", warning), warning
    ui.kernel_idle()
    ui.cell(3).locator(".jp-memguard-badge").wait_for(timeout=30000)
    ui.shot("notice-warning", ui.notice("Kernel memory is high"))
    ui.shot("status-bar-and-notice")
    return kernel_id


def _interrupt_kept(ui: Page, kernel_id: str) -> None:
    """Over the stop line, under the kill line: interrupted with a MemoryLimitInterrupt, kept."""
    n = (555 * MiB - ui.lab.used(kernel_id)) // MiB
    assert 20 <= n <= 70, n
    ui.write_cell(4, OVER.format(n=n))
    ui.run_cell(4)
    kept = ui.toast(r"Cell stopped", timeout=60)
    assert "del " in kept, kept
    ui.shot("notice-kept", ui.notice("Cell stopped"))
    warned = [
        t for t in ui.toasts_with("Kernel memory is high") if any("Cell stopped" in x for x in t)
    ]
    assert len(warned) == 1, ui.record()["toasts"]
    phases = _phases(warned[0], "Kernel memory is high", "Stopping the kernel", "Cell stopped")
    assert None not in phases and phases == sorted(phases), warned[0]

    # The cell says why: the interrupt's own name and message, then memguard's note.
    output = ui.cell(4).locator(".jp-OutputArea")
    error = output.locator("[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text="MemoryLimitInterrupt"
    )
    error.first.wait_for(timeout=30000)
    note = output.locator(".jp-OutputArea-output", has_text="memguard interrupted this cell")
    note.first.wait_for(timeout=30000)
    text = text_of(output)
    assert re.search(r"MemoryLimitInterrupt: memguard stopped this cell: the kernel used", text)
    assert text.index("MemoryLimitInterrupt") < text.index("memguard interrupted this cell")
    assert "KeyboardInterrupt" not in text, text

    # The kernel is the same one, with its variables.
    assert ui.kernel_id() == kernel_id
    record = wait_for(
        lambda: next(
            (r for r in ui.lab.records(kernel_id=kernel_id) if r["verdict"] == "interrupted_kept"),
            None,
        ),
        30,
        "the record of the interrupt the kernel survived",
    )
    assert record["survived"] is True
    panel = ui.panel()
    row = panel.locator(f".jp-memguard-kernel[data-kernel-id='{kernel_id}']")
    row.locator(".jp-memguard-variables summary").click()
    table = row.locator(".jp-memguard-variables-table")
    table.wait_for(timeout=30000)
    names = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert {"keep", "big", "more"} <= set(names), names
    history = panel.locator(
        ".jp-memguard-termination[data-survived='true'][data-verdict='interrupted_kept']"
    )
    history.first.wait_for(timeout=30000)
    assert record["headline"] in text_of(history.first)
    # The kernel row as it is now (idle, with its variables), then the history.
    row.locator(".jp-memguard-kernel-state", has_text="Idle").wait_for(timeout=30000)
    history.first.scroll_into_view_if_needed()
    ui.shot("panel", panel)
    row.locator(".jp-memguard-variables summary").click()


def _stop_from_panel_and_restart(ui: Page, kernel_id: str) -> None:
    """ "Stop kernel…", reached with the keyboard, asks first; the Kernel menu restarts."""
    page = ui.page
    panel = ui.panel()
    row = panel.locator(f".jp-memguard-kernel[data-kernel-id='{kernel_id}']")
    title = row.locator(".jp-memguard-kernel-title")
    assert title.evaluate("n => getComputedStyle(n).whiteSpace") != "nowrap"
    ui.tab_to(
        row.locator(".jp-memguard-kernel-figures"), row.get_by_role("button", name="Stop kernel…")
    )
    page.keyboard.press("Enter")
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10000)
    assert "variables" in text_of(dialog) and "lost" in text_of(dialog)
    ui.shot("dialog-stop-kernel", dialog.locator(".jp-Dialog-content"))
    dialog.get_by_role("button", name="Stop the kernel").focus()
    page.keyboard.press("Enter")
    ui.until(
        "() => document.querySelector('.jp-memguard-status')?.innerText.includes('Kernel stopped')",
        timeout=30,
    )
    stopped = ui.toast(r"Kernel (stopped|shut down)", timeout=30)
    ui.shot("notice-stopped-from-panel", ui.notice(r"Kernel (stopped|shut down)"))
    # JupyterLab no longer shows the kernel as running (no "Idle" for a dead kernel).
    page.get_by_text("No Kernel").first.wait_for(timeout=30000)

    # Restart through JupyterLab's own Kernel menu: the notice follows.
    ui.menu("Kernel", re.compile(r"^Restart Kernel"))
    ui.toast(r"running again", timeout=60)
    head = stopped.split("\n")[0]
    stops = ui.toasts_with(head)
    assert len(stops) == 1 and "running again" in stops[0][-1], stops
    ui.shot("notice-running-again", ui.notice("running again"))
    ui.kernel_idle()
    ui.until(
        "() => /^Mem \\d+ \\/ 600 MiB$/.test("
        "document.querySelector('.jp-memguard-status')?.innerText.trim())",
        timeout=30,
    )


def _sigkill(ui: Page) -> None:
    """SIGKILL from outside: one message, memguard's, with the reason; no died dialog."""
    kernel_id = ui.kernel_id()
    pid = wait_for(
        lambda: (k := ui.lab.kernel(kernel_id)) and k["pid"],
        30,
        "the kernel's pid",
    )
    seen = ui.toast_ids()
    os.kill(pid, signal.SIGKILL)
    killed = ui.toast(r"another process", timeout=60)
    assert "SIGKILL" in killed or "killed" in killed, killed
    ui.shot("notice-killed", ui.notice("another process"))
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


def test_what_a_student_sees(quota_lab: Lab) -> None:
    with browser(quota_lab, "test_what_a_student_sees") as (context, ui):
        _open(ui, r"^Mem \d+ / 600 MiB$")
        _run_all_and_tooltip(ui)
        _badge_and_timeline(ui)
        _breakdown(ui)
        other = Page(context.new_page(), quota_lab)
        other.page.goto(f"{quota_lab.url}lab/workspaces/second?reset&token={quota_lab.token}")
        other.page.locator("#jp-main-statusbar").wait_for(timeout=60000)
        other.until("() => document.querySelector('.jp-LauncherCard') !== null", timeout=60)
        _pressure(ui, other)
        other.page.close()
        kernel_id = _warning_names_big(ui)
        _interrupt_kept(ui, kernel_id)
        _stop_from_panel_and_restart(ui, kernel_id)
        _sigkill(ui)


# --------------------------------------------------------------------------- the budget lab
def _leak_until_stopped(ui: Page, edit: str | None = None) -> str:
    """Run the leak (and type `edit` into a new cell while it runs, never saving it by hand);
    ONE notice goes from the warning (naming `leak`) to "stopping" to "stopped", in the
    server's words. Returns the stopped kernel's id."""
    kernel_id = ui.kernel_id()
    seen = ui.toast_ids()
    ui.run_cell(LEAK_CELL)
    if edit:
        ui.page.keyboard.press("Enter")
        ui.page.keyboard.insert_text(edit)
        ui.page.keyboard.press("Escape")
    final = ui.toast(r"Kernel stopped", timeout=120)
    new = [t for t in ui.record()["toasts"] if t["id"] not in seen]
    assert len(new) == 1, f"one notification for one kernel event, got {new}"
    texts = new[0]["texts"]
    phases = _phases(
        texts, "Kernel memory is high (demo.ipynb)", "Stopping the kernel", "Kernel stopped"
    )
    assert None not in phases and phases == sorted(phases), texts
    assert "`leak` (list" in texts[phases[0]], texts[phases[0]]
    assert not re.search(r"halted_by_memguard|confirmed|kernel_limit", final), final
    return kernel_id


def _stopped_cell_and_save(ui: Page) -> None:
    """The stopped cell: MemoryLimitInterrupt with its message, memguard's note; saved."""
    page = ui.page
    output = ui.cell(LEAK_CELL).locator(".jp-OutputArea")
    note = output.locator(".jp-OutputArea-output", has_text="memguard stopped this cell: memguard")
    note.first.wait_for(timeout=30000)
    text = text_of(output)
    assert re.search(r"MemoryLimitInterrupt: memguard stopped this cell: ", text), text
    assert "KeyboardInterrupt" not in text, text
    assert text.index("MemoryLimitInterrupt") < text.index("memguard stopped this cell: memguard")
    assert LOST in words(text_of(note.first))
    ui.shot("cell-stopped", ui.cell(LEAK_CELL))

    def on_disk() -> bool:
        cells = ui.saved_notebook().get("cells", [])
        if len(cells) <= LEAK_CELL:
            return False
        outputs = json.dumps(cells[LEAK_CELL].get("outputs", []))
        return (
            "MemoryLimitInterrupt" in outputs
            and "memguard stopped this cell: memguard" in outputs
            and any(EDIT in "".join(c["source"]) for c in cells)
        )

    wait_for(on_disk, 30, "the notebook saved with the note and the edit")
    ui.until(
        """() => { const tab = [...document.querySelectorAll('.lm-TabBar-tab')]
            .find(t => t.innerText.includes('demo.ipynb'));
            return tab && !tab.classList.contains('jp-mod-dirty'); }""",
        timeout=20,
    )
    ui.until(
        "() => document.querySelector('.jp-memguard-status')?.innerText.includes('Kernel stopped')",
        timeout=20,
    )
    page.wait_for_timeout(500)
    assert ui.status() == "Kernel stopped"


def _details(ui: Page, kernel_id: str) -> None:
    """Details: the server's story, the advice and the evidence over a timeline of its cells."""
    page = ui.page
    record = next(
        r for r in ui.lab.records(kernel_id=kernel_id) if r["verdict"] == "halted_by_memguard"
    )
    ui.click_toast_button("Kernel stopped", "Details")
    page.locator(".lm-TabBar-tab", has_text="Details: demo.ipynb").wait_for(timeout=15000)
    details = page.locator(".jp-memguard-details-view")
    details.locator(".jp-memguard-details-evidence").wait_for(timeout=15000)
    story = text_of(details)
    assert record["headline"] in story and record["summary"] in story, story
    if record["advice"]:
        assert record["advice"] in story, story
    evidence = record["evidence"]
    cells = {c["msg_id"] for c in [*evidence["recent_cells"], evidence["running_cell"]] if c}
    assert len(cells) == 3, evidence
    ui.until(
        "n => document.querySelectorAll('.jp-memguard-details-view .jp-memguard-span')"
        ".length === n",
        len(cells),
        timeout=30,
    )
    assert details.locator(".jp-memguard-span[data-execution-count='3']").count() == 1
    ui.shot("details", details, notices=False)
    details.locator(".jp-memguard-details-evidence").scroll_into_view_if_needed()
    ui.shot("details-evidence", details, notices=False)
    page.locator(".lm-TabBar-tab", has_text="Details: demo.ipynb").locator(
        ".lm-TabBar-tabCloseIcon"
    ).click()
    details.wait_for(state="detached", timeout=10000)


def _restart_and_run_to(ui: Page, stopped_kernel: str) -> None:
    """The stopped notice's "Restart and run cells [1]–[2] again", with the keyboard: the two
    cells above the failing one run in a new kernel, the failing one does not."""
    page = ui.page
    notice = ui.notice("Kernel stopped")
    button = notice.get_by_role("button", name="Restart and run cells [1]–[2] again")
    button.wait_for(timeout=20000)
    ui.shot("notice-stopped", notice)
    ui.tab_to(notice.locator(".jp-toast-message"), button)
    page.keyboard.press("Enter")
    kernel_id = ui.new_kernel_id(stopped_kernel)
    codes = STOP_CELLS[:LEAK_CELL]

    def ran() -> list[dict[str, Any]] | None:
        cells = ui.lab.cells(kernel_id)
        done = [c for c in cells if c["ended_at"]]
        return cells if len(done) == LEAK_CELL else None

    cells = wait_for(ran, 90, "the cells above the failing one, run again")
    assert [c["code"] for c in cells] == codes, cells
    assert all(c["status"] == "ok" for c in cells), cells
    ui.kernel_idle()
    assert [ui.prompt(i) for i in range(LEAK_CELL)] == ["[1]:", "[2]:"]
    ui.toast(r"running again", timeout=60)
    # The failing cell was not run again: the kernel has no more cells than those.
    page.wait_for_timeout(2000)
    assert len(ui.lab.cells(kernel_id)) == LEAK_CELL


def test_a_kernel_memguard_stops(budget_lab: Lab) -> None:
    with browser(budget_lab, "test_a_kernel_memguard_stops") as (_, ui):
        _open(ui, r"^Mem \d+ MiB / 1 GiB$")
        for index in range(LEAK_CELL):
            ui.run_cell(index)
            ui.kernel_idle()
        kernel_id = _leak_until_stopped(ui, edit=f"edited = {EDIT!r}")
        ui.shot("notice-stopped-first", ui.notice("Kernel stopped"))
        _stopped_cell_and_save(ui)
        _details(ui, kernel_id)

        # A reload: the notice was not dismissed, so it is kept (in this server's own place
        # of the page's storage) and still there after it (saying that the notebook has a
        # kernel again once JupyterLab has started a new one).
        stored = ui.page.evaluate(
            """() => Object.keys(localStorage).filter(k => k.endsWith(':notices'))
                .map(k => [k, localStorage.getItem(k)])"""
        )
        assert len(stored) == 1 and stored[0][0].startswith("jupyter-memguard:v2:"), stored
        assert kernel_id in stored[0][1], stored
        ui.page.reload()
        ui.toast(r"Kernel stopped", timeout=60)
        ui.kernel_idle(timeout=120)
        ui.click_toast_button("Kernel stopped", "Dismiss")
        ui.no_toast("Kernel stopped", timeout=15)

        # The same leak again, then "Restart and run cells [1]–[2] again".
        _restart_and_run_to(ui, _leak_until_stopped(ui))
