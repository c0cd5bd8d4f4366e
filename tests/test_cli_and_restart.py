"""The CLI, the journal across a server restart, and a corrupt journal at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .servers import REPO, ServerProcess


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_memguard.views.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def wait_for_termination(server: ServerProcess, kernel_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = server.get(f"api/memguard/terminations?kernel_id={kernel_id}")["terminations"]
        if rows:
            return rows[0]
        time.sleep(0.3)
    raise AssertionError("no termination recorded")


def test_journal_survives_restart_and_cli_reads_it(tmp_path):
    journal = tmp_path / "journal.sqlite"
    with ServerProcess(root=tmp_path / "root", journal=journal) as server:
        kernel_id = server.start_kernel(path="nb/victim.ipynb")
        kernels = server.wait_idle(1)
        # The CLI against the running server.
        live = cli("kernels", "--url", server.url, "--token", server.token, "--json")
        assert live.returncode == 0, live.stderr
        assert [k["id"] for k in json.loads(live.stdout)["kernels"]] == [kernel_id]
        table = cli("kernels", "--url", server.url, "--token", server.token)
        assert "nb/victim.ipynb" in table.stdout and "budget:" in table.stdout
        status = cli("status", "--url", server.url, "--token", server.token)
        assert status.returncode == 0, status.stderr
        assert "Memory:" in status.stdout and "memguard warns at 80%" in status.stdout
        assert not status.stdout.lstrip().startswith("{")  # words by default, --json for JSON
        cells = cli("cells", kernel_id, "--url", server.url, "--token", server.token)
        assert cells.returncode == 0 and cells.stdout.startswith("CELL"), cells.stderr
        for output in (table, status, cells):
            assert max(map(len, output.stdout.splitlines())) <= 100, output.stdout
        os.kill(kernels[0]["pid"], signal.SIGKILL)
        first = wait_for_termination(server, kernel_id)
        assert first["verdict"] == "killed_externally"
    # The server is gone: the CLI reads the journal directly.
    offline = cli("terminations", "--journal", str(journal), "--json")
    assert offline.returncode == 0, offline.stderr
    rows = json.loads(offline.stdout)["terminations"]
    verdicts = {r["verdict"] for r in rows}
    assert "killed_externally" in verdicts
    assert "server_shutdown" in verdicts  # the restarted kernel ended with the server
    text = cli("terminations", "--journal", str(journal), "--verdict", "killed_externally")
    assert "nb/victim.ipynb" in text.stdout
    assert "Kernel stopped: another process killed it" in text.stdout
    lines = [line for line in text.stdout.splitlines() if not line.startswith("journal: ")]
    assert max(map(len, lines)) <= 100, text.stdout
    details = cli("terminations", "--journal", str(journal), "--details", "--limit", "1")
    assert "Nothing suggests memory was the cause" in details.stdout or "server" in details.stdout
    # A new server on the same journal serves the old record.
    with ServerProcess(root=tmp_path / "root", journal=journal) as again:
        rows = again.get("api/memguard/terminations?verdict=killed_externally")["terminations"]
        assert [r["id"] for r in rows] == [first["id"]]


def test_cli_errors_are_clear(tmp_path):
    missing = cli("terminations", "--journal", str(tmp_path / "none.sqlite"))
    assert missing.returncode != 0 and "cannot read the journal" in missing.stderr
    unreachable = cli("kernels", "--url", "http://127.0.0.1:9/", "--token", "x")
    assert unreachable.returncode != 0 and "cannot reach" in unreachable.stderr


def test_jupyter_subcommand_is_installed():
    if not any(
        os.access(os.path.join(p, "jupyter-memguard"), os.X_OK)
        for p in os.environ["PATH"].split(os.pathsep)
    ):
        pytest.skip("jupyter-memguard is not on PATH (package not installed)")
    result = subprocess.run(
        ["jupyter", "memguard", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "terminations" in result.stdout


def test_corrupt_journal_does_not_stop_the_server(tmp_path):
    journal = tmp_path / "journal.sqlite"
    journal.write_bytes(b"\x00garbage, not SQLite" * 500)
    with ServerProcess(root=tmp_path / "root", journal=journal) as server:
        status = server.get("api/memguard/status")
        assert status["journal"]["path"] == str(journal)
        assert server.get("api/memguard/terminations")["total"] == 0
        assert "moved it to" in server.log()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"\x00garbage")


def test_doctor_on_this_machine_with_and_without_a_server(tmp_path):
    # No server: this machine, as a server started now would see it.
    alone = cli("doctor", "--json")
    assert alone.returncode == 0, alone.stderr
    topics = {c["topic"]: c for c in json.loads(alone.stdout)["checks"]}
    assert {"limit", "guard", "kernel_cgroups", "kmsg", "orphans"} <= set(topics)
    words = cli("doctor")
    assert words.stdout.startswith("memguard doctor: no running server")
    assert max(map(len, words.stdout.splitlines())) <= 100, words.stdout
    # A server: what it sees, its agent included.
    with ServerProcess(root=tmp_path / "root") as server:
        served = cli("doctor", "--url", server.url, "--token", server.token)
        assert served.returncode == 0, served.stderr
        assert f"the server at {server.url}" in served.stdout
        assert "kernel agent" in served.stdout and "Memory limit:" in served.stdout
        status = server.get("api/memguard/status")
        assert {c["topic"] for c in status["doctor"]["checks"]} >= set(topics) | {"agent"}


def test_variables_from_the_command_line(tmp_path):
    from .lab import connect

    with ServerProcess(root=tmp_path / "root") as server:
        kernel_id = server.start_kernel("v.ipynb")
        client = connect(server, kernel_id)
        client.execute_interactive("big = bytearray(64 * 2**20)", timeout=60)
        client.stop_channels()
        text = cli("variables", kernel_id, "--url", server.url, "--token", server.token)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("NAME") and "big" in text.stdout and "64 MiB" in text.stdout
        data = json.loads(
            cli(
                "variables", kernel_id, "--url", server.url, "--token", server.token, "--json"
            ).stdout
        )
        assert data["status"] == "ok" and data["variables"][0]["name"] == "big"
