"""The kernel log reader on records and on the real /dev/kmsg."""

from __future__ import annotations

import os
import uuid

import pytest

from jupyter_memguard.probe.kmsg import KmsgReader, KmsgRecord, oom_kills, parse_record


def test_parse_record():
    record = parse_record(b"6,1234,5678901,-;Memory cgroup out of memory: Killed process 7 (x)\n")
    assert record == KmsgRecord(1234, 5678901, "Memory cgroup out of memory: Killed process 7 (x)")
    continued = parse_record(b"4,99,100,c;first line\n SUBSYSTEM=memory\n")
    assert continued.text == "first line"
    assert parse_record(b"garbage") is None
    assert parse_record(b"x,y,z;text") is None


def test_oom_kills_picks_victims():
    records = [
        KmsgRecord(1, 1, "usb 1-1: hello"),
        KmsgRecord(2, 2, "oom-kill:constraint=CONSTRAINT_MEMCG,task=python3,pid=42,uid=0"),
    ]
    found = oom_kills(records)
    assert [(r.seq, o.pid) for r, o in found] == [(2, 42)]


def test_unreadable_log_is_unavailable_not_an_error(tmp_path):
    reader = KmsgReader(str(tmp_path / "missing"))
    assert not reader.available and "cannot open" in reader.reason
    assert reader.read_new(5) == []


def test_real_kmsg_sees_a_new_line():
    reader = KmsgReader()
    if not reader.available:
        pytest.skip(f"/dev/kmsg is not readable here: {reader.reason}")
    if os.geteuid() != 0:
        pytest.skip("writing to /dev/kmsg needs root")
    assert reader.read_new(None) == []  # no checkpoint: skip the history
    marker = f"memguard-test-{uuid.uuid4().hex}"
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(marker + "\n")
    records = reader.read_new(-1)
    assert any(marker in r.text for r in records)
    last = records[-1].seq
    assert reader.read_new(last) == []  # EAGAIN: nothing new, no blocking
    reader.close()


def test_checkpoint_skips_what_was_seen():
    reader = KmsgReader()
    if not reader.available or os.geteuid() != 0:
        pytest.skip("needs a readable and writable /dev/kmsg (root)")
    first = f"memguard-first-{uuid.uuid4().hex}"
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(first + "\n")
    seen = [r for r in KmsgReader().read_new(-1) if first in r.text]
    second = f"memguard-second-{uuid.uuid4().hex}"
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(second + "\n")
    # A fresh reader (a restarted server) with the checkpoint reads only what is newer.
    again = KmsgReader().read_new(seen[0].seq)
    assert not any(first in r.text for r in again)
    assert any(second in r.text for r in again)
