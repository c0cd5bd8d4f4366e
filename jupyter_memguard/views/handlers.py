"""REST handlers under /api/memguard/ (JSON, authenticated, resource "memguard").

Thin: each reads the view (views.source), never the extension app. Every query parameter is
declared: an unknown one, or a value out of range, is a 400 naming the parameter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .. import __version__
from ..models import VERDICTS, Tick
from .serialize import budget_json, cells_json, kernel_json, status_json, termination_json
from .source import MemGuardView, TerminationQuery

KERNEL_ID = r"(?P<kernel_id>[\w-]+)"
IGNORED = frozenset({"token", "_xsrf"})  # jupyter_server's own: authentication
Parse = Callable[[str, str], Any]  # (parameter name, text) -> value, or raises HTTPError 400


def _choice(*choices: str) -> Parse:
    def parse(name: str, text: str) -> str:
        if text not in choices:
            raise web.HTTPError(400, f"{name} must be one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def _number(minimum: float, maximum: float, integer: bool = False) -> Parse:
    def parse(name: str, text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise web.HTTPError(400, f"{name} must be {kind}, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise web.HTTPError(400, f"{name} must be between {minimum:g} and {maximum:g}")
        return value

    return parse


def _text(max_length: int = 4096) -> Parse:
    def parse(name: str, text: str) -> str:
        if len(text) > max_length:
            raise web.HTTPError(400, f"{name} must be at most {max_length} characters")
        return text

    return parse


def _verdict(name: str, text: str) -> str:
    if text not in VERDICTS:
        raise web.HTTPError(400, f"unknown verdict {text!r}; one of {sorted(VERDICTS)}")
    return text


class MemGuardHandler(APIHandler):
    """Base: the view, JSON errors, the auth resource, declared query parameters."""

    auth_resource = "memguard"
    parameters: dict[str, Parse] = {}

    @property
    def view(self) -> MemGuardView:
        return self.settings["memguard_view"]

    def params(self) -> dict[str, Any]:
        """The query's parameters, parsed; 400 for one not declared or out of range."""
        values: dict[str, Any] = {}
        for name, given in self.request.query_arguments.items():
            if name in IGNORED or (name.isdigit() and given in ([b""], [])):
                continue  # authentication, or a client's cache-buster (JupyterLab's ?<ms>)
            parse = self.parameters.get(name)
            if parse is None:
                allowed = ", ".join(sorted(self.parameters)) or "none"
                raise web.HTTPError(400, f"unknown parameter {name!r} (allowed: {allowed})")
            if len(given) != 1:
                raise web.HTTPError(400, f"parameter {name!r} given more than once")
            text = given[0].decode("utf-8", "replace")
            if text != "":
                values[name] = parse(name, text)
        return values

    def _known(self, kernel_id: str) -> None:
        if not self.view.knows(kernel_id):
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")

    async def _fresh(self, detail: bool) -> tuple[Tick, dict[str, str]]:
        """The tick to answer from (sampled now when asked for PSS or when a kernel is not in
        the last tick yet) and the current notebook paths."""
        tick = self.view.latest()
        if detail or any(k not in tick.kernels for k in self._manager_ids()):
            tick = await self.view.sample(detail=detail)
        # Sessions are cheap to list (in-memory SQLite); a request always shows current paths,
        # so a notebook opened a moment ago is never listed without its path.
        return tick, await self.view.current_paths()

    def _manager_ids(self) -> list[str]:
        return list(self.kernel_manager.list_kernel_ids())

    def can_halt(self) -> bool:
        authorizer = self.authorizer
        return bool(authorizer.is_authorized(self, self.current_user, "write", self.auth_resource))


DETAIL = {"detail": _choice("rss", "pss")}


class KernelsHandler(MemGuardHandler):
    """GET /api/memguard/kernels: every kernel of this server with its memory."""

    parameters = DETAIL

    @web.authenticated
    @authorized
    async def get(self) -> None:
        detail = self.params().get("detail") == "pss"
        tick, paths = await self._fresh(detail)
        settings = self.view.settings
        halting = self.view.halting()
        kernels = []
        for state in tick.kernels.values():
            data = kernel_json(
                state, settings, halting=state.kernel_id in halting, budget=tick.budget
            )
            data["path"] = paths.get(state.kernel_id, state.path)
            kernels.append(data)
        self.finish(json.dumps({"kernels": kernels, "budget": budget_json(tick.budget, settings)}))


class KernelHandler(MemGuardHandler):
    """GET /api/memguard/kernels/{id}: one kernel with its recent history."""

    parameters = DETAIL

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        detail = self.params().get("detail") == "pss"
        self._known(kernel_id)
        tick, paths = await self._fresh(detail)
        state = tick.kernels.get(kernel_id)
        if state is None:
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")
        halting = kernel_id in self.view.halting()
        data = kernel_json(
            state, self.view.settings, history=True, halting=halting, budget=tick.budget
        )
        data["path"] = paths.get(kernel_id, state.path)
        self.finish(json.dumps(data))


class CellsHandler(MemGuardHandler):
    """GET /api/memguard/kernels/{id}/cells: the kernel's recent cells with their memory."""

    parameters = {"limit": _number(1, 1000, integer=True)}

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        limit = self.params().get("limit", 200)
        self._known(kernel_id)
        self.finish(json.dumps(cells_json(self.view.cells(kernel_id)[:limit])))


class VariablesHandler(MemGuardHandler):
    """GET /api/memguard/kernels/{id}/variables: the largest names in its namespace."""

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        self.params()
        self._known(kernel_id)
        self.finish(json.dumps(await self.view.variables(kernel_id)))


HALT_VIAS = ("api", "panel")  # where an admin's halt came from, for the words that explain it


class HaltHandler(MemGuardHandler):
    """POST /api/memguard/kernels/{id}/halt: an admin halt (write permission needed)."""

    @web.authenticated
    @authorized
    async def post(self, kernel_id: str) -> None:
        self.params()
        self._known(kernel_id)
        body = self.request.body.strip()
        note = None
        via = "api"
        if body:
            try:
                payload = json.loads(body)
            except ValueError as error:
                raise web.HTTPError(400, f"body is not JSON: {error}") from None
            if not isinstance(payload, dict):
                raise web.HTTPError(400, "body must be a JSON object")
            unknown = sorted(set(payload) - {"reason", "via"})
            if unknown:
                raise web.HTTPError(400, f"unknown field {unknown[0]!r} (allowed: reason, via)")
            given = payload.get("reason")
            if given is not None and (not isinstance(given, str) or len(given) > 500):
                raise web.HTTPError(400, "reason must be a string of at most 500 characters")
            note = given or None
            via = payload.get("via", via)
            if via not in HALT_VIAS:
                raise web.HTTPError(400, f"via must be one of {', '.join(HALT_VIAS)}")
        user = getattr(self.current_user, "username", None) or "unknown user"
        await self.view.halt(kernel_id, user, note, via)
        self.set_status(202)
        self.finish(json.dumps({"kernel_id": kernel_id, "accepted": True}))


class StatusHandler(MemGuardHandler):
    """GET /api/memguard/status: budget, who holds it, settings in force, how memguard runs."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.params()
        tick = self.view.latest()
        if tick.number == 0:
            tick = await self.view.sample()
        data = status_json(tick, self.view.settings, await self.view.current_paths())
        data.update(self.view.status_parts())
        data["version"] = __version__
        data["can_halt"] = self.can_halt()
        self.finish(json.dumps(data))


class TerminationsHandler(MemGuardHandler):
    """GET /api/memguard/terminations: the journal, filtered and paged."""

    parameters = {
        "kernel_id": _text(200),
        "path": _text(),
        "verdict": _verdict,
        "since": _number(0, 4102444800),
        "limit": _number(1, 1000, integer=True),
        "offset": _number(0, 10**9, integer=True),
    }

    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = TerminationQuery(**self.params())
        if query.since is not None and query.since > time.time() + 86400 * 365:
            raise web.HTTPError(400, "since is more than a year ahead")
        rows, total = await self.view.terminations(query)
        settings = self.view.settings
        self.finish(
            json.dumps(
                {
                    "terminations": [termination_json(r, settings) for r in rows],
                    "total": total,
                    "limit": query.limit,
                    "offset": query.offset,
                }
            )
        )


def handlers() -> list[tuple[str, type[MemGuardHandler]]]:
    """The URL patterns (the extension app prefixes the base URL)."""
    return [
        ("/api/memguard/kernels", KernelsHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}", KernelHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}/cells", CellsHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}/variables", VariablesHandler),
        (f"/api/memguard/kernels/{KERNEL_ID}/halt", HaltHandler),
        ("/api/memguard/status", StatusHandler),
        ("/api/memguard/terminations", TerminationsHandler),
    ]
