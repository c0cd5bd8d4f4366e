"""The kernel log's OOM-killer lines, remembered for the deaths that follow them.

/dev/kmsg is read in a worker thread, once per tick and again at each death (the OOM killer's
lines precede the kill, but a tick may not have come since). The last sequence number read is
kept in the journal, per boot, so a restarted server does not report the same kill twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from ..models import OomKill
from ..probe.kmsg import KmsgReader, KmsgRecord, oom_kills
from .journal import Journal

KMSG_CHECKPOINT = "kmsg_seq"
OOM_MEMORY_S = 600.0  # how long an OOM-kill log line is kept for matching a later death


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


BOOT_ID = _boot_id()


class KernelLog:
    """Reads new kernel log records and keeps the OOM kills among them for a while."""

    def __init__(self, path: str, journal: Journal) -> None:
        self.reader = KmsgReader(path)
        self.journal = journal
        self.recent: deque[tuple[float, OomKill]] = deque()
        self._seq: int | None = None

    @property
    def available(self) -> bool:
        return self.reader.available

    @property
    def reason(self) -> str:
        return self.reader.reason

    async def start(self) -> None:
        """Position the reader after the last record this journal saw (this boot's)."""
        checkpoint = await asyncio.to_thread(self.journal.get_checkpoint, KMSG_CHECKPOINT)
        boot, _, seq = (checkpoint or "").partition(":")
        # Sequence numbers restart at boot: a checkpoint from another boot means nothing.
        self._seq = int(seq) if boot == BOOT_ID and seq.isdigit() else None
        await asyncio.to_thread(self.reader.read_new, self._seq)  # position the reader
        if self._seq is None:
            self._seq = -1

    async def read(self) -> list[tuple[KmsgRecord, OomKill]]:
        """The OOM kills logged since the last read (remembered for later deaths too)."""
        if not self.reader.available:
            return []
        records = await asyncio.to_thread(self.reader.read_new, self._seq)
        now = time.time()
        while self.recent and now - self.recent[0][0] > OOM_MEMORY_S:
            self.recent.popleft()
        if not records:
            return []
        self._seq = records[-1].seq
        kills = oom_kills(records)
        self.recent.extend((now, oom) for _, oom in kills)
        await asyncio.to_thread(
            self.journal.set_checkpoint, KMSG_CHECKPOINT, f"{BOOT_ID}:{self._seq}"
        )
        return kills

    def kills_of(self, pids: Iterable[int]) -> tuple[OomKill, ...]:
        """The remembered OOM kills of any of these processes."""
        wanted = set(pids)
        return tuple(oom for _, oom in self.recent if oom.pid in wanted)

    def close(self) -> None:
        self.reader.close()
