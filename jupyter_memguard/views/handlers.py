"""REST handlers under /api/memguard/ (JSON, authenticated, resource "memguard")."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, get_args

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .. import __version__
from ..models import Tick, Verdict
from ..probe.server import kernel_ids
from .serialize import cells_json, kernel_json, status_json, termination_json

if TYPE_CHECKING:
    from ..app import MemGuard

KERNEL_ID = r"(?P<kernel_id>[\w-]+)"
VERDICTS = frozenset(get_args(Verdict))


class MemGuardHandler(APIHandler):
    """Base: access to the MemGuard app, JSON errors, the auth resource."""

    auth_resource = "memguard"

    @property
    def memguard(self) -> MemGuard:
        return self.settings["memguard"]

    def _detail(self) -> bool:
        detail = self.get_argument("detail", "rss")
        if detail not in ("rss", "pss"):
            raise web.HTTPError(400, f"detail must be 'rss' or 'pss', got {detail!r}")
        return detail == "pss"

    def _known(self, kernel_id: str) -> None:
        if kernel_id not in self.memguard.monitor.latest.kernels:
            if kernel_id in self.kernel_manager:
                return
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")

    async def _fresh(self, detail: bool) -> tuple[Tick, dict[str, str]]:
        """The tick to answer from (sampled now when asked for PSS or when a kernel is not in
        the last tick yet) and the current notebook paths."""
        monitor = self.memguard.monitor
        tick = monitor.latest
        if detail or any(k not in tick.kernels for k in kernel_ids(self.kernel_manager)):
            tick = await monitor.sample(detail=detail)
        # Sessions are cheap to list (in-memory SQLite); a request always shows current paths,
        # so a notebook opened a moment ago is never listed without its path.
        return tick, await monitor.current_paths()

    def can_halt(self) -> bool:
        authorizer = self.authorizer
        return bool(authorizer.is_authorized(self, self.current_user, "write", self.auth_resource))


class KernelsHandler(MemGuardHandler):
    """GET /api/memguard/kernels: every kernel of this server with its memory."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        tick, paths = await self._fresh(self._detail())
        settings = self.memguard.config_in_force
        kernels = []
        for state in tick.kernels.values():
            data = kernel_json(state, settings)
            data["path"] = paths.get(state.kernel_id, state.path)
            kernels.append(data)
        self.finish(json.dumps({"kernels": kernels, "budget": tick.budget.to_json()}))


class KernelHandler(MemGuardHandler):
    """GET /api/memguard/kernels/{id}: one kernel with its recent history."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        detail = self._detail()
        self._known(kernel_id)
        tick, paths = await self._fresh(detail)
        state = tick.kernels.get(kernel_id)
        if state is None:
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")
        data = kernel_json(state, self.memguard.config_in_force, history=True)
        data["path"] = paths.get(kernel_id, state.path)
        self.finish(json.dumps(data))


class CellsHandler(MemGuardHandler):
    """GET /api/memguard/kernels/{id}/cells: the kernel's recent cells with their memory."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        self._known(kernel_id)
        cells = self.memguard.cells.cells(kernel_id, include_running=True)
        self.finish(json.dumps(cells_json(cells)))


class HaltHandler(MemGuardHandler):
    """POST /api/memguard/kernels/{id}/halt: an admin halt (write permission needed)."""

    @web.authenticated
    @authorized
    async def post(self, kernel_id: str) -> None:
        self._known(kernel_id)
        body = self.request.body.strip()
        reason = "halted by an administrator"
        if body:
            try:
                payload = json.loads(body)
            except ValueError as error:
                raise web.HTTPError(400, f"body is not JSON: {error}") from None
            if not isinstance(payload, dict):
                raise web.HTTPError(400, "body must be a JSON object")
            given = payload.get("reason", reason)
            if not isinstance(given, str) or len(given) > 500:
                raise web.HTTPError(400, "reason must be a string of at most 500 characters")
            reason = given or reason
        user = getattr(self.current_user, "username", None) or "unknown user"
        app = self.memguard
        tick = await app.monitor.sample()
        task = asyncio.ensure_future(app.runner.admin_halt(kernel_id, tick, f"{reason} ({user})"))
        app.runner.tasks.add(task)
        task.add_done_callback(app.runner.tasks.discard)
        self.set_status(202)
        self.finish(json.dumps({"kernel_id": kernel_id, "accepted": True}))


class StatusHandler(MemGuardHandler):
    """GET /api/memguard/status: budget, usage, limit source, settings in force."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        app = self.memguard
        tick = app.monitor.latest
        if tick.number == 0:
            tick = await app.monitor.sample()
        data = status_json(tick, app.config_in_force, await app.monitor.current_paths())
        data["gpu"] = app.monitor.gpu.status_json()
        data["version"] = __version__
        data["can_halt"] = self.can_halt()
        data["journal"] = app.deaths.status_json()
        data["iopub"] = app.deaths.iopub.status_json()
        data["kernel_cgroups"] = {
            "available": app.cgroups_per_kernel.available,
            "reason": app.cgroups_per_kernel.reason,
        }
        self.finish(json.dumps(data))


class TerminationsHandler(MemGuardHandler):
    """GET /api/memguard/terminations: the journal, filtered and paged."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = parse_termination_query(self.get_argument)
        journal = self.memguard.recorder.journal
        rows, total = await asyncio.to_thread(journal.terminations, **query)
        self.finish(
            json.dumps(
                {
                    "terminations": [
                        termination_json(r, self.memguard.config_in_force) for r in rows
                    ],
                    "total": total,
                    "limit": query["limit"],
                    "offset": query["offset"],
                }
            )
        )


def parse_termination_query(get: Any) -> dict[str, Any]:
    """Validate the journal filters; a bad value is a 400 with the reason."""

    def number(name: str, default: float, minimum: float, maximum: float) -> float:
        text = get(name, None)
        if text in (None, ""):
            return default
        try:
            value = float(text)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be a number, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise web.HTTPError(400, f"{name} must be between {minimum} and {maximum}")
        return value

    verdict = get("verdict", None) or None
    if verdict is not None and verdict not in VERDICTS:
        raise web.HTTPError(400, f"unknown verdict {verdict!r}; one of {sorted(VERDICTS)}")
    since = number("since", 0.0, 0.0, time.time() + 86400 * 365)
    return {
        "kernel_id": get("kernel_id", None) or None,
        "path": get("path", None) or None,
        "verdict": verdict,
        "since": since or None,
        "limit": int(number("limit", 100, 1, 1000)),
        "offset": int(number("offset", 0, 0, 10**9)),
    }


def handlers() -> list[tuple[str, type[MemGuardHandler]]]:
    """The URL patterns (the extension app prefixes the base URL)."""
    return [
        ("/api/memguard/kernels", KernelsHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}", KernelHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}/cells", CellsHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}/halt", HaltHandler),
        ("/api/memguard/status", StatusHandler),
        ("/api/memguard/terminations", TerminationsHandler),
    ]
