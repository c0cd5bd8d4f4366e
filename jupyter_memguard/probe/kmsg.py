"""Reading the kernel log (/dev/kmsg) for OOM-killer records, without blocking.

Each read() of /dev/kmsg returns one record "prio,seq,usec,flags;text". Records carry a
sequence number, which the journal stores as a checkpoint so a restarted server does not
report the same kill twice.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ..forensics.classify import OomKill, parse_oom_line


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
