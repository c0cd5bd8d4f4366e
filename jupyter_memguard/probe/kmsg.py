"""Reading the kernel log (/dev/kmsg) for OOM-killer records, without blocking, and parsing them.

Each read() of /dev/kmsg returns one record "prio,seq,usec,flags;text". Records carry a
sequence number, which the journal stores as a checkpoint so a restarted server does not
report the same kill twice.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from ..models import OomKill

_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_DMESG_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s*")
_KILLED = re.compile(
    r"(?:(?P<scope>Memory cgroup out of memory|Out of memory(?: \(oom_kill_allocating_task\))?):\s*)?"
    r"Kill(?:ed)? process (?P<pid>\d+) \((?P<name>[^)]*)\)"
    r"(?P<rest>.*)$"
)
_KB_FIELD = re.compile(r"(?P<key>total-vm|anon-rss|file-rss|shmem-rss):(?P<kb>\d+)kB")
_OOM_KILL = re.compile(r"oom-kill:(?P<fields>\S+)")


def _strip(line: str) -> str:
    line = line.strip()
    line = _KMSG_PREFIX.sub("", line, count=1)
    return _DMESG_PREFIX.sub("", line, count=1)


def parse_oom_line(line: str) -> OomKill | None:
    """Parse an OOM-killer line (modern, pre-4.19, cgroup, oom-kill summary); None otherwise."""
    text = _strip(line)
    summary = _OOM_KILL.search(text)
    if summary:
        fields = dict(
            part.split("=", 1) for part in summary.group("fields").split(",") if "=" in part
        )
        if "pid" not in fields or not fields["pid"].isdigit():
            return None
        return OomKill(
            pid=int(fields["pid"]),
            process_name=fields.get("task"),
            anon_rss_bytes=None,
            total_vm_bytes=None,
            constraint=fields.get("constraint"),
            memcg=fields.get("task_memcg"),
            raw=text,
            oom_memcg=fields.get("oom_memcg"),
        )
    match = _KILLED.search(text)
    if not match:
        return None
    # "Kill process … or sacrifice child" (pre-4.19) and "Killed process …" both name the victim,
    # but a bare "Killed process" is only accepted with its memory figures, so that unrelated
    # messages that happen to say "killed process" are not taken for the OOM killer.
    rest = match.group("rest")
    sizes = {m.group("key"): int(m.group("kb")) * 1024 for m in _KB_FIELD.finditer(rest)}
    if match.group("scope") is None and not sizes and "sacrifice child" not in rest:
        return None
    constraint = (
        "CONSTRAINT_MEMCG" if (match.group("scope") or "").startswith("Memory cgroup") else None
    )
    return OomKill(
        pid=int(match.group("pid")),
        process_name=match.group("name"),
        anon_rss_bytes=sizes.get("anon-rss"),
        total_vm_bytes=sizes.get("total-vm"),
        constraint=constraint,
        memcg=None,
        raw=text,
    )


@dataclass(frozen=True)
class KmsgRecord:
    """One kernel log record."""

    seq: int
    usec: int
    text: str


def parse_record(raw: bytes) -> KmsgRecord | None:
    """Parse one /dev/kmsg record (continuation lines, starting with a space, are dropped)."""
    header, sep, body = raw.decode("utf-8", "replace").partition(";")
    if not sep:
        return None
    parts = header.split(",")
    if len(parts) < 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    text = body.split("\n", 1)[0]
    return KmsgRecord(seq=int(parts[1]), usec=int(parts[2]), text=text)


class KmsgReader:
    """Non-blocking reader of the kernel log; unavailable (with a reason) rather than failing."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        self.reason = ""
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            self.reason = f"cannot open {path}: {error.strerror}"

    @property
    def available(self) -> bool:
        return self._fd is not None

    def read_new(self, after_seq: int | None = None, skip_history: bool = True) -> list[KmsgRecord]:
        """Records newer than ``after_seq``.

        With no checkpoint (``after_seq`` None) and ``skip_history``, the first call only moves
        to the end of the log, so a new installation does not report old kills.
        """
        if self._fd is None:
            return []
        if after_seq is None and skip_history:
            os.lseek(self._fd, 0, os.SEEK_END)
            return []
        records: list[KmsgRecord] = []
        while True:
            try:
                raw = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.EPIPE:
                    continue  # records were overwritten in the ring buffer: go on with the next
                self.reason = f"reading {self.path}: {error.strerror}"
                break
            if not raw:
                break
            record = parse_record(raw)
            if record is not None and (after_seq is None or record.seq > after_seq):
                records.append(record)
        return records

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def oom_kills(records: list[KmsgRecord]) -> list[tuple[KmsgRecord, OomKill]]:
    """The OOM-killer victims named in these records."""
    found = []
    for record in records:
        oom = parse_oom_line(record.text)
        if oom is not None:
            found.append((record, oom))
    return found
