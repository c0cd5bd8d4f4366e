"""The SQLite journal: persistence, intents, filters, retention, corruption, concurrency."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time

import pytest

from jupyter_memguard.forensics.journal import Journal, JournalError, TerminationRecord
from jupyter_memguard.models import Trigger


def record(
    kernel_id="k1", verdict="oom_killed", ended_at=None, path="a.ipynb"
) -> TerminationRecord:
    return TerminationRecord(
        id=None,
        kernel_id=kernel_id,
        kernel_name="python3",
        path=path,
        pid=42,
        started_at=1.0,
        ended_at=ended_at if ended_at is not None else time.time(),
        verdict=verdict,
        confidence="confirmed",
        explanation="why",
        evidence={"exit_signal": "SIGKILL", "kmsg_lines": ["Killed process 42 (python3)"]},
    )


def test_round_trip_and_persistence(tmp_path):
    path = tmp_path / "deep" / "journal.sqlite"
    journal = Journal(path)
    row_id = journal.add_termination(record())
    journal.close()
    reopened = Journal(path)  # a server restart
    rows, total = reopened.terminations()
    assert total == 1 and rows[0].id == row_id
    assert rows[0].to_json()["evidence"]["kmsg_lines"] == ["Killed process 42 (python3)"]
    assert set(rows[0].to_json()) == {
        "id",
        "kernel_id",
        "kernel_name",
        "path",
        "pid",
        "started_at",
        "ended_at",
        "verdict",
        "confidence",
        "explanation",
        "evidence",
    }
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_intents(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.pending_intent("k", now=100) is None
    halt = Trigger("kernel_limit", line="halt", usage_bytes=900, limit_bytes=1000, line_bytes=900)
    first = journal.record_intent("k", "halt", halt, "too big", now=100)
    second = journal.record_intent("k", "cull", Trigger("idle", idle_seconds=60), "idle", now=101)
    assert journal.pending_intent("k", now=102).trigger == Trigger("idle", idle_seconds=60)
    assert journal.pending_intent("k", now=102).id == second
    journal.consume_intent(second, now=103)
    assert journal.pending_intent("k", now=104).id == first
    assert journal.pending_intent("k", now=100 + 601) is None  # too old
    assert journal.pending_intent("other", now=104) is None


def test_filters_and_paging(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    base = time.time() - 1000  # recent enough for the 90-day retention
    for i in range(10):
        journal.add_termination(
            record(
                kernel_id=f"k{i % 2}",
                verdict="crashed" if i < 3 else "exited",
                ended_at=base + i,
                path=f"n{i % 3}.ipynb",
            )
        )
    rows, total = journal.terminations(kernel_id="k0")
    assert total == 5 and all(r.kernel_id == "k0" for r in rows)
    assert [r.ended_at for r in rows] == sorted((r.ended_at for r in rows), reverse=True)
    assert journal.terminations(verdict="crashed")[1] == 3
    assert journal.terminations(path="n1.ipynb")[1] == 3
    assert journal.terminations(since=base + 7)[1] == 3
    page, total = journal.terminations(limit=4, offset=4)
    assert total == 10 and [r.ended_at - base for r in page] == [5, 4, 3, 2]


def test_retention_by_rows_and_days(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", max_rows=5, max_days=1)
    now = time.time()
    journal.add_termination(record(ended_at=now - 3 * 86400))
    for i in range(7):
        journal.add_termination(record(ended_at=now - i))
    rows, total = journal.terminations()
    assert total == 5
    assert min(r.ended_at for r in rows) >= now - 4


@pytest.mark.parametrize(
    "content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_corrupt_file_is_set_aside_and_recreated(tmp_path, caplog, content):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="jupyter_memguard"):
        journal = Journal(path)
    assert journal.recovered_from is not None and journal.recovered_from.exists()
    assert journal.recovered_from.read_bytes() == content
    assert "moved it to" in caplog.text
    journal.add_termination(record())
    assert journal.terminations()[1] == 1


def test_newer_schema_is_set_aside(tmp_path):
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.recovered_from is not None


def test_checkpoint_survives_reopen(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    assert journal.get_checkpoint("kmsg_seq") is None
    journal.set_checkpoint("kmsg_seq", "boot:41")
    journal.set_checkpoint("kmsg_seq", "boot:42")
    journal.close()
    assert Journal(path).get_checkpoint("kmsg_seq") == "boot:42"


def test_readonly_open(tmp_path):
    with pytest.raises(JournalError):
        Journal.open_readonly(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"nope" * 100)
    with pytest.raises(JournalError):
        Journal.open_readonly(garbage)
    assert garbage.read_bytes() == b"nope" * 100  # a reader never moves anything


def test_concurrent_reader_in_another_process(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.add_termination(record())
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from jupyter_memguard.forensics.journal import Journal\n"
            "seen = 0\n"
            "for _ in range(200):\n"
            "    j = Journal.open_readonly(sys.argv[1]); seen = max(seen, j.terminations()[1]); j.close()\n"
            "    time.sleep(0.005)\n"
            "print(seen)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(100):
        journal.add_termination(record())
        time.sleep(0.002)
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert 1 <= int(out) <= 101
    assert journal.terminations()[1] == 101
