"""`jupyter memguard`: live kernels from a running server, terminations from the journal."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..units import human_bytes as _human_bytes

WIDTH = 100  # every table fits a 100-column terminal


def human_bytes(value: int | None) -> str:
    """'1.2 GiB' (the units of the explanations), '-' for unknown."""
    return "-" if value is None else _human_bytes(value)


def table(headers: list[str], rows: list[list[str]], width: int = WIDTH) -> str:
    """A plain aligned text table; the last column is cut to keep within ``width``."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    room = width - sum(widths[:-1]) - 2 * (len(widths) - 1)
    widths[-1] = max(8, min(widths[-1], room))

    def line(cells: list[str]) -> str:
        cells = [*cells[:-1], _cut(cells[-1], widths[-1])]
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def find_server(url: str | None, token: str | None) -> tuple[str, str]:
    """The URL and token of the running server: given, or from jupyter's runtime files."""
    if url:
        return url.rstrip("/") + "/", token or ""
    from jupyter_server.serverapp import list_running_servers

    servers = list(list_running_servers())
    if not servers:
        raise SystemExit("memguard: no running Jupyter server found (start one, or pass --url)")
    info = servers[-1]
    return info["url"].rstrip("/") + "/", token if token is not None else info.get("token", "")


def api_get(base: str, token: str, path: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(
            f"memguard: {path}: HTTP {error.code}: {error.read().decode(errors='replace')}"
        ) from None
    except urllib.error.URLError as error:
        raise SystemExit(f"memguard: cannot reach {base}: {error.reason}") from None


def cmd_kernels(args: argparse.Namespace) -> int:
    base, token = find_server(args.url, args.token)
    data = api_get(base, token, "api/memguard/kernels" + ("?detail=pss" if args.pss else ""))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = []
    for k in data["kernels"]:
        memory = k.get("memory") or {}
        row = [
            k["id"][:8],
            str(k.get("pid") or "-"),
            human_bytes(memory.get("used_bytes")) if memory else "n/a",
            memory.get("method", "-") if memory else "-",
            human_bytes(memory.get("rss_bytes")) if memory else "n/a",
        ]
        if args.pss:
            row.append(human_bytes(memory.get("pss_bytes")) if memory else "n/a")
        row += [
            human_bytes(k.get("limit_bytes")),
            k.get("execution_state", ""),
            k.get("path") or "-",
        ]
        rows.append(row)
    headers = ["KERNEL", "PID", "USED", "HOW", "RSS", *(["PSS"] if args.pss else [])]
    print(table([*headers, "LIMIT", "STATE", "NOTEBOOK"], rows))
    budget = data["budget"]
    print(
        f"\nbudget: {human_bytes(budget['usage_bytes'])} of {human_bytes(budget['limit_bytes'])}"
        f" ({LIMIT_SOURCES.get(budget['limit_source'], budget['limit_source'])})"
    )
    return 0


LIMIT_SOURCES = {
    "config": "configured limit",
    "cgroup_v2": "the container's limit, cgroup v2",
    "cgroup_v1": "the container's limit, cgroup v1",
    "spawner_mem_limit": "JupyterHub's MEM_LIMIT",
    "host": "the whole machine",
    "kernel_memory_limit": "the per-kernel limit",
}


def status_text(data: dict[str, Any]) -> str:
    """The status in plain words: the budget, who holds it, the guard's settings."""
    budget = data["budget"]
    settings = data["settings"]
    source = LIMIT_SOURCES.get(budget["limit_source"], budget["limit_source"])
    lines = [
        f"memguard {data.get('version', '')}: guard "
        + ("off (tracking only)" if not settings["guard_enabled"] else "on")
        + (" (dry run: reports, never acts)" if settings.get("dry_run") else ""),
        f"Memory: {human_bytes(budget['usage_bytes'])} used of {human_bytes(budget['limit_bytes'])}"
        f" ({source}); {data['kernel_count']} kernels use {human_bytes(data.get('kernels_used_bytes'))}.",
        f"Each kernel may use {human_bytes(settings['kernel_memory_limit_bytes'])}: memguard warns at "
        f"{settings['warn_fraction']:.0%} and stops it at {settings['halt_fraction']:.0%}.",
    ]
    split = data.get("breakdown")
    if split:
        lines.append("\nWho holds the memory:")
        rows = [[f"kernel {h['key'][:8]}", human_bytes(h["bytes"]), ""] for h in split["kernels"]]
        rows.append(["the Jupyter server", human_bytes(split["server"]["bytes"]), ""])
        rows += [[f"terminal {h['key']}", human_bytes(h["bytes"]), ""] for h in split["terminals"]]
        for other in split["others"]:
            who = f"pid {other['pid']} ({other['user']})"
            rows.append([who, human_bytes(other["bytes"]), other["cmdline"] or other["name"]])
        if split["others_count"] > len(split["others"]):
            rest = split["others_bytes"] - sum(o["bytes"] for o in split["others"])
            rows.append(
                [f"{split['others_count'] - len(split['others'])} more", human_bytes(rest), ""]
            )
        rows.append(["file cache", human_bytes(split["page_cache_bytes"]), "no process"])
        rows.append(["shared memory", human_bytes(split["shmem_bytes"]), "shmem, tmpfs"])
        rows.append(["not attributed", human_bytes(split["unattributed_bytes"]), ""])
        lines.append(table(["HOLDER", "MEMORY", "COMMAND"], rows))
    journal = data.get("journal") or {}
    if journal:
        lines.append(f"\nJournal: {journal.get('path')}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    base, token = find_server(args.url, args.token)
    data = api_get(base, token, "api/memguard/status")
    print(json.dumps(data, indent=2) if args.json else status_text(data))
    return 0


def doctor_text(checks: list[dict[str, str]], where: str) -> str:
    """The checks, one paragraph each, marked by state."""
    marks = {"ok": "ok", "warning": "WARN", "info": "info"}
    lines = [where]
    for check in checks:
        head = f"{marks.get(check['state'], check['state']):4}  {check['topic']:14} "
        lines.append(
            textwrap.fill(
                check["text"], WIDTH, initial_indent=head, subsequent_indent=" " * len(head)
            )
        )
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """From the running server (what it sees), or, with none, from this machine."""
    try:
        base, token = find_server(args.url, args.token)
        checks = api_get(base, token, "api/memguard/status")["doctor"]["checks"]
        where = f"memguard doctor: the server at {base}"
    except SystemExit:
        if args.url:
            raise
        from .doctor import diagnose, gather

        checks = [c.to_json() for c in diagnose(gather())]
        where = "memguard doctor: no running server; this machine, as a server started now sees it"
    print(json.dumps({"checks": checks}, indent=2) if args.json else doctor_text(checks, where))
    return 0


def cmd_cells(args: argparse.Namespace) -> int:
    base, token = find_server(args.url, args.token)
    data = api_get(base, token, f"api/memguard/kernels/{args.kernel_id}/cells")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        [
            f"[{c['execution_count']}]" if c.get("execution_count") is not None else "[ ]",
            c["status"],
            human_bytes(c.get("memory_before_bytes")),
            _signed(c.get("delta_bytes")),
            human_bytes(c.get("peak_bytes")),
            f"{c['duration_s']:.1f} s" if c.get("duration_s") is not None else "-",
            (c.get("first_line") or c.get("code") or "").strip().splitlines()[0]
            if (c.get("first_line") or c.get("code") or "").strip()
            else "",
        ]
        for c in data["cells"]
    ]
    print(table(["CELL", "ENDED", "BEFORE", "CHANGE", "PEAK", "TOOK", "CODE"], rows))
    return 0


QUALIFIERS = {"exact": "", "estimate": "about ", "at_least": "at least "}


def variables_text(data: dict[str, Any]) -> str:
    """The largest variables of a kernel, or why there are none."""
    if data["status"] != "ok":
        state = "busy" if data["status"] == "busy" else "unavailable"
        return f"No variables ({state}): {data.get('reason') or 'no reason given'}"
    rows = [
        [
            v["name"],
            v.get("type") or "",
            QUALIFIERS.get(v.get("qualifier") or "", "") + human_bytes(v.get("bytes")),
            v.get("device") or "",
            v.get("note") or "",
        ]
        for v in data["variables"]
    ]
    total = data.get("total_bytes")
    tail = f"\nall names measured: {human_bytes(total)}" if total is not None else ""
    return table(["NAME", "TYPE", "MEMORY", "DEVICE", "NOTE"], rows) + tail


def cmd_variables(args: argparse.Namespace) -> int:
    base, token = find_server(args.url, args.token)
    data = api_get(base, token, f"api/memguard/kernels/{args.kernel_id}/variables")
    print(json.dumps(data, indent=2) if args.json else variables_text(data))
    return 0


def _cell_label(cell: dict[str, Any] | None) -> str:
    """'[7]' for the cell that was running, '-' when none was."""
    if not cell:
        return "-"
    count = cell.get("execution_count")
    return f"[{count}]" if count is not None else "[ ]"


def _signed(value: int | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + human_bytes(abs(value))


def cmd_terminations(args: argparse.Namespace) -> int:
    from ..forensics.journal import Journal, default_journal_path
    from ..wording import describe

    path = Path(args.journal) if args.journal else default_journal_path()
    try:
        journal = Journal.open_readonly(path)
    except Exception as error:
        raise SystemExit(f"memguard: cannot read the journal {path}: {error}") from None
    since = time.time() - args.since_hours * 3600 if args.since_hours else None
    rows, total = journal.terminations(
        kernel_id=args.kernel_id,
        path=args.path,
        verdict=args.verdict,
        since=since,
        limit=args.limit,
    )
    journal.close()
    records = [{**r.to_json(), **describe(r.to_json())} for r in rows]
    if args.json:
        print(json.dumps({"terminations": records, "total": total}, indent=2))
        return 0
    body = [
        [
            _when(r["ended_at"]),
            r["kernel_id"][:8],
            r["path"] or "-",
            _cell_label(r["evidence"].get("running_cell")),
            r["headline"],
        ]
        for r in records
    ]
    print(table(["ENDED", "KERNEL", "NOTEBOOK", "CELL", "WHAT HAPPENED"], body))
    if args.details:
        for r in records:
            print(f"\n{_when(r['ended_at'])}  {r['kernel_id']}  {r['path'] or '-'}")
            for text in (r["headline"], r["summary"], r["advice"]):
                if text:
                    print(textwrap.fill(text, WIDTH, initial_indent="  ", subsequent_indent="  "))
            print(f"  evidence: {r['verdict']} ({r['confidence']}); {r['explanation']}")
    more = "" if args.details else " (--details: why, and what to do)"
    print(f"\n{len(rows)} of {total} terminations{more}\njournal: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter memguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("kernels", "live kernels of the running server"),
        ("status", "the memory budget, who holds it, and the guard's settings"),
        ("cells", "a kernel's recent cells and what each did to its memory"),
        ("variables", "the largest names in a kernel's namespace (its agent measures them)"),
        ("doctor", "which mode memguard runs in here, and what follows from it"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(
            "--url", help="server URL (default: the running server from jupyter's runtime dir)"
        )
        p.add_argument("--token", help="API token (default: the running server's)")
        p.add_argument("--json", action="store_true", help="JSON output")
        if name == "kernels":
            p.add_argument("--pss", action="store_true", help="also measure PSS/USS (slower)")
        if name in ("cells", "variables"):
            p.add_argument("kernel_id", help="the kernel's id (as `kernels --json` lists it)")
    p = sub.add_parser(
        "terminations", help="why kernels ended (reads the journal; no server needed)"
    )
    p.add_argument(
        "--journal", help="journal file (default: <jupyter data dir>/memguard/journal.sqlite)"
    )
    p.add_argument("--kernel-id")
    p.add_argument("--path")
    p.add_argument("--verdict")
    p.add_argument("--since-hours", type=float)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--details", action="store_true", help="what happened and why, in full")
    p.add_argument("--json", action="store_true", help="JSON output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "kernels": cmd_kernels,
        "status": cmd_status,
        "cells": cmd_cells,
        "terminations": cmd_terminations,
        "doctor": cmd_doctor,
        "variables": cmd_variables,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
