"""`jupyter memguard`: live kernels from a running server, terminations from the journal."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..units import human_bytes as _human_bytes


def human_bytes(value: int | None) -> str:
    """1.2 GB style (decimal units, as in the journal's explanations), '-' for unknown."""
    return "-" if value is None else _human_bytes(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


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
        rows.append(
            [
                k["id"][:8],
                k.get("name") or "",
                k.get("path") or "-",
                str(k.get("pid") or "-"),
                human_bytes(memory.get("rss_bytes")) if memory else "n/a",
                human_bytes(memory.get("peak_bytes")) if memory else "n/a",
                human_bytes(k.get("limit_bytes")),
                k.get("level", ""),
                k.get("execution_state", ""),
            ]
        )
    print(table(["KERNEL", "NAME", "PATH", "PID", "RSS", "PEAK", "LIMIT", "LEVEL", "STATE"], rows))
    budget = data["budget"]
    print(
        f"\nbudget: {human_bytes(budget['usage_bytes'])} of {human_bytes(budget['limit_bytes'])}"
        f" ({budget['limit_source']})"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    base, token = find_server(args.url, args.token)
    print(json.dumps(api_get(base, token, "api/memguard/status"), indent=2))
    return 0


def cmd_terminations(args: argparse.Namespace) -> int:
    from ..app import default_journal_path
    from ..forensics.journal import Journal

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
    if args.json:
        print(json.dumps({"terminations": [r.to_json() for r in rows], "total": total}, indent=2))
        return 0
    body = [
        [
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ended_at)),
            r.kernel_id[:8],
            r.path or "-",
            r.verdict,
            r.confidence,
            r.explanation,
        ]
        for r in rows
    ]
    print(table(["ENDED", "KERNEL", "PATH", "VERDICT", "CONFIDENCE", "EXPLANATION"], body))
    print(f"\n{len(rows)} of {total} terminations ({path})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter memguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("kernels", "live kernels of the running server"),
        ("status", "budget and settings"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(
            "--url", help="server URL (default: the running server from jupyter's runtime dir)"
        )
        p.add_argument("--token", help="API token (default: the running server's)")
        p.add_argument("--json", action="store_true", help="JSON output")
        if name == "kernels":
            p.add_argument("--pss", action="store_true", help="also measure PSS/USS (slower)")
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
    p.add_argument("--json", action="store_true", help="JSON output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"kernels": cmd_kernels, "status": cmd_status, "terminations": cmd_terminations}[
        args.command
    ]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
