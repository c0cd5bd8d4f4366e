"""The journal is private: it holds the user's code. Its modes, its location, record_code."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from jupyter_memguard.forensics.journal import Journal
from jupyter_memguard.forensics.privacy import UnsafeJournalLocation, check_location

from .lab import connect
from .servers import ServerProcess, wait_for

MARKER = "MEMGUARD-SECRET-7f3a"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_journal_is_private(tmp_path):
    journal = Journal(tmp_path / "memguard" / "journal.sqlite")
    journal.set_checkpoint("x", "1")  # WAL: the -wal and -shm files exist now
    assert mode(tmp_path / "memguard") == 0o700
    for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
        assert mode(tmp_path / "memguard" / name) == 0o600, name
    journal.close()


def test_a_journal_readable_by_others_is_tightened_with_one_warning(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="jupyter_memguard"):
        Journal(path).close()
    assert mode(path) == 0o600
    warnings = [r for r in caplog.records if "could be read by other users" in r.getMessage()]
    assert len(warnings) == 1


def test_a_journal_set_aside_as_corrupt_stays_private(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    os.chmod(path, 0o644)
    journal = Journal(path)
    assert journal.recovered_from is not None and mode(journal.recovered_from) == 0o600
    assert mode(path) == 0o600
    journal.close()


def test_a_location_other_users_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(UnsafeJournalLocation, match="other users can write"):
        check_location(shared / "journal.sqlite")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    check_location(private / "new" / "journal.sqlite")  # fine, also before it exists
    (private / "journal.sqlite").touch(mode=0o666)
    os.chmod(private / "journal.sqlite", 0o666)
    with pytest.raises(UnsafeJournalLocation, match="written by other users"):
        check_location(private / "journal.sqlite")


def test_the_server_refuses_to_start_on_a_world_writable_journal_path(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    server = ServerProcess(root=tmp_path / "server", journal=shared / "journal.sqlite")
    with pytest.raises(RuntimeError, match="server exited") as info:
        server.start()
    assert "c.MemGuard.journal_path" in str(info.value)
    assert not (shared / "journal.sqlite").exists()


def _nobody() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run a command as another user"
    if shutil.which("runuser") is None and shutil.which("setpriv") is None:
        return "neither runuser nor setpriv is installed"
    return None


def test_another_user_cannot_open_the_journal():
    reason = _nobody()
    if reason:
        pytest.skip(reason)
    # A directory every user may enter, so that only the journal's own modes protect it.
    top = Path(tempfile.mkdtemp(prefix="memguard-privacy-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        path = top / "memguard" / "journal.sqlite"
        Journal(path).close()
        os.chmod(path.parent, 0o755)  # even with its directory opened up, the file is 0600
        command = ["python3", "-c", f"open({str(path)!r}, 'rb').read(1)"]
        if shutil.which("runuser"):
            command = ["runuser", "-u", "nobody", "--", *command]
        else:
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "PermissionError" in result.stderr, result
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("record_code", [False, True])
def test_record_code_false_leaves_no_code_in_the_journal(tmp_path, record_code):
    settings = ("--MemGuard.heartbeat_interval=0.5", f"--MemGuard.record_code={record_code}")
    with ServerProcess(*settings, root=tmp_path / "server") as server:
        kernel_id = server.start_kernel("secret.ipynb")
        client = connect(server, kernel_id)
        client.execute_interactive(f"token = {MARKER!r}", timeout=60)
        client.execute(f"import time; again = {MARKER!r}; time.sleep(60)")
        time.sleep(2)  # heartbeats with the running cell
        pid = server.get(f"api/memguard/kernels/{kernel_id}")["pid"]
        os.kill(pid, signal.SIGKILL)  # a record with the recent cells as evidence
        wait_for(
            lambda: server.get(f"api/memguard/terminations?kernel_id={kernel_id}")["terminations"],
            60,
            "the kill recorded",
        )
        record = server.get(f"api/memguard/terminations?kernel_id={kernel_id}")["terminations"][0]
        client.stop_channels()
        cells = server.get(f"api/memguard/kernels/{kernel_id}/cells")["cells"]
    stored = b"".join(
        p.read_bytes() for p in server.journal.parent.glob(server.journal.name + "*") if p.is_file()
    )
    if record_code:  # the control: the same run keeps the code when allowed to
        assert MARKER.encode() in stored
        return
    assert MARKER.encode() not in stored
    assert all(c["code"] == "" and c["first_line"] == "" for c in cells)
    assert "cell [" in record["summary"] or record["evidence"]["recent_cells"], record
