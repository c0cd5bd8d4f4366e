"""What the views (REST handlers, CLI-facing JSON, metrics) may read and ask of memguard.

A small read-only interface over the published state: the latest Tick, the journal, the cells,
the variables a kernel's agent reports, and one request (an admin's halt). The handlers never
hold the extension app or any live stage object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..forensics.journal import TerminationRecord
from ..models import Tick
from ..probe.cells import CellRecord
from ..settings import MemGuardSettings


@dataclass(frozen=True)
class TerminationQuery:
    """The journal's filters, validated by the handler."""

    kernel_id: str | None = None
    path: str | None = None
    verdict: str | None = None
    since: float | None = None
    limit: int = 100
    offset: int = 0


class MemGuardView(Protocol):
    """memguard as the views see it."""

    @property
    def settings(self) -> MemGuardSettings: ...

    def latest(self) -> Tick:
        """The last Tick published (number 0: nothing sampled yet)."""
        ...

    async def sample(self, detail: bool = False) -> Tick:
        """A Tick sampled now (with PSS/USS per kernel when ``detail``)."""
        ...

    async def current_paths(self) -> dict[str, str]:
        """Each kernel's notebook path as the session manager says now."""
        ...

    def halting(self) -> frozenset[str]:
        """The kernels memguard is stopping (or has stopped) now."""
        ...

    def knows(self, kernel_id: str) -> bool:
        """Whether this is a kernel of this server now (in the last Tick or the manager)."""
        ...

    def cells(self, kernel_id: str) -> list[CellRecord]:
        """The kernel's recent cells, newest first, the running one included."""
        ...

    async def terminations(self, query: TerminationQuery) -> tuple[list[TerminationRecord], int]:
        """Matching journal records, newest first, and how many match in all."""
        ...

    async def variables(self, kernel_id: str) -> dict[str, Any]:
        """The largest names in the kernel's namespace, as its agent reports them."""
        ...

    def status_parts(self) -> dict[str, Any]:
        """The parts of /status that are not the Tick: journal, iopub, GPU, cgroups, agent,
        doctor, orphans, the verdict vocabulary."""
        ...

    async def halt(self, kernel_id: str, by: str, note: str | None, via: str = "api") -> None:
        """An administrator's halt (the handler has checked the permission)."""
        ...
