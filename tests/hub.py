"""A real JupyterHub deployment for tests: hub, proxy, single-user servers in memory cgroups.

Used by tests/test_hub.py. Everything runs as subprocesses on 127.0.0.1 with free ports:

- ``configurable-http-proxy``, started by us (as a separate proxy pod would be on Kubernetes);
- ``jupyterhub`` with a generated config: DummyAuthenticator, a service token that may start
  servers and create tokens, and :class:`CgroupSpawner`, which puts each single-user server
  into its own new memory cgroup limited to ``Spawner.mem_limit`` (a container limit);
- each single-user server loads ``examples/jupyter_server_config.py``: the shipped example is
  what is under test;
- Prometheus, scraping every user server's ``/metrics`` through the proxy.

Every process is started under ``timeout -s KILL <lifetime>``, so nothing outlives a failed
test even when pytest itself dies; the cgroups the spawner made are listed in a file, and
emptied (SIGKILL) and removed at the end in every case, whether or not the hub did it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from traitlets import Unicode

from . import cgroups
from .servers import REPO, free_port, wait_for

try:
    from jupyterhub.spawner import SimpleLocalProcessSpawner
except ImportError:  # tests/test_hub.py is skipped then; no hub is ever started
    SimpleLocalProcessSpawner = object  # type: ignore[assignment,misc]

MiB = 2**20
GiB = 2**30
EXAMPLES = REPO / "examples"
PROMETHEUS = "/usr/bin/prometheus"


def missing_components() -> str | None:
    """What this machine lacks for a hub deployment test (and how to get it), or None."""
    missing = []
    if shutil.which("timeout") is None:
        missing.append("timeout (coreutils)")
    if importlib.util.find_spec("jupyterhub") is None:
        missing.append("jupyterhub (pip install jupyterhub)")
    if shutil.which("configurable-http-proxy") is None:
        missing.append("configurable-http-proxy (npm install -g configurable-http-proxy)")
    if shutil.which("prometheus") is None and not os.access(PROMETHEUS, os.X_OK):
        missing.append("prometheus (apt-get install prometheus)")
    reason = cgroups.unavailable_reason()
    if reason is not None:
        missing.append(f"a memory cgroup ({reason})")
    if not missing:
        return None
    return "needs " + ", ".join(missing) + " (`bash .ci/run` installs what it can)"


# --------------------------------------------------------------------------------------------
# The spawner (imported by the hub process as tests.hub.CgroupSpawner)


class CgroupSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner whose servers each live in a new cgroup of ``mem_limit``.

    As a container runtime would: the cgroup is made before the server starts, the server
    (and so all its kernels) is moved into it before exec, and it is emptied and removed
    when the server stops.
    """

    cgroup_registry = Unicode(
        "", config=True, help="File to which the path of every cgroup made is appended."
    )

    _cgroup: tuple[contextlib.AbstractContextManager[cgroups.MemoryCgroup], Any] | None = None

    async def start(self) -> Any:
        if not self.mem_limit:
            raise ValueError("CgroupSpawner needs Spawner.mem_limit")
        await self._remove_cgroup()  # left from a server that died by itself
        manager = cgroups.memory_cgroup(int(self.mem_limit))
        group = manager.__enter__()
        self._cgroup = (manager, group)
        if self.cgroup_registry:
            with open(self.cgroup_registry, "a") as registry:
                registry.write(f"{group.version} {group.path}\n")
        self.log.info(
            "Server of %s in cgroup %s (%d bytes)", self.user.name, group.path, self.mem_limit
        )
        try:
            return await super().start()
        except BaseException:
            await self._remove_cgroup()
            raise

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        inner = super().make_preexec_fn(name)
        assert self._cgroup is not None
        procs = str(self._cgroup[1].path / "cgroup.procs")

        def preexec() -> None:  # in the child, before exec: all it starts stays inside
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
            inner()

        return preexec

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            await self._remove_cgroup()

    async def _remove_cgroup(self) -> None:
        if self._cgroup is not None:
            manager, self._cgroup = self._cgroup[0], None
            await asyncio.to_thread(manager.__exit__, None, None, None)


def remove_registered_cgroups(registry: Path) -> None:
    """Empty (SIGKILL) and remove every cgroup listed in ``registry`` that is still there."""
    if not registry.exists():
        return
    for line in registry.read_text().splitlines():
        version, _, path = line.partition(" ")
        if path and Path(path).exists():
            cgroups.remove(cgroups.MemoryCgroup(Path(path), int(version)))


# --------------------------------------------------------------------------------------------
# Processes


class Guarded:
    """A subprocess in its own process group under ``timeout -s KILL lifetime_s``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        lifetime_s: float,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.log_path = name, log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                ["timeout", "-s", "KILL", str(int(lifetime_s)), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, tail: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:]

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log()}")

    def stop(self, grace: float = 30) -> None:
        """SIGTERM (``timeout`` passes it on), then SIGKILL to the whole process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its group: we made it with the process
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


# --------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def http(
    url: str,
    method: str = "GET",
    body: Any = None,
    token: str | None = None,
    timeout: float = 30,
) -> Response:
    """One request; any HTTP status comes back as a Response (no exception, no redirect)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Response(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


# --------------------------------------------------------------------------------------------
# The hub


class Hub:
    """A running JupyterHub (and its proxy) with users whose servers live in memory cgroups."""

    def __init__(self, root: Path, users: list[str], admins: list[str], mem_limit: int) -> None:
        self.root = root
        self.users, self.admins, self.mem_limit = users, admins, mem_limit
        self.proxy_port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.service_name = "memguard-test"
        self.service_token = secrets.token_hex(32)
        self.proxy_token = secrets.token_hex(32)
        self.registry = root / "cgroups.txt"
        self.homes = root / "home"
        self.config_path = root / "jupyterhub_config.py"
        self.proxy: Guarded | None = None
        self.hub: Guarded | None = None

    def write_config(self, lifetime_s: float) -> None:
        roles = [
            {
                "name": self.service_name,
                "description": "The test: starts servers, creates tokens",
                "scopes": ["servers", "read:users", "tokens"],
                "services": [self.service_name],
            }
        ]
        guard = ["timeout", "-s", "KILL", str(int(lifetime_s))]
        server_cmd = [*guard, sys.executable, "-m", "jupyterhub.singleuser"]
        settings = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_ip": "127.0.0.1",
            "JupyterHub.hub_port": self.hub_port,
            "JupyterHub.db_url": f"sqlite:///{self.root / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.root / "jupyterhub_cookie_secret"),
            "JupyterHub.pid_file": str(self.root / "jupyterhub.pid"),
            "JupyterHub.authenticator_class": "dummy",
            "JupyterHub.spawner_class": "tests.hub.CgroupSpawner",
            "JupyterHub.services": [{"name": self.service_name, "api_token": self.service_token}],
            "JupyterHub.load_roles": roles,
            "JupyterHub.cleanup_servers": True,
            # POST /users/{name}/server answers at once (202); the test waits for "ready".
            "JupyterHub.tornado_settings": {"slow_spawn_timeout": 0},
            "ConfigurableHTTPProxy.should_start": False,
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.api_port}",
            "ConfigurableHTTPProxy.auth_token": self.proxy_token,
            "Authenticator.allowed_users": set(self.users),
            "Authenticator.admin_users": set(self.admins),
            "Spawner.cmd": server_cmd,
            # The shipped example config is what the servers run with; --allow-root: we are root.
            "Spawner.args": [
                f"--config={EXAMPLES / 'jupyter_server_config.py'}",
                "--allow-root",
            ],
            "Spawner.mem_limit": self.mem_limit,
            "Spawner.start_timeout": 180,
            "Spawner.http_timeout": 180,
            "Spawner.interrupt_timeout": 5,
            "Spawner.term_timeout": 5,
            "Spawner.kill_timeout": 5,
            "SimpleLocalProcessSpawner.home_dir_template": f"{self.homes}/{{username}}",
            "CgroupSpawner.cgroup_registry": str(self.registry),
        }
        lines = ["# generated by tests/hub.py", "c = get_config()  # noqa"]
        for key, value in settings.items():
            lines.append(f"c.{key} = {value!r}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, lifetime_s: float) -> None:
        self.write_config(lifetime_s)
        self.homes.mkdir(exist_ok=True)
        proxy_command = [
            "configurable-http-proxy",
            "--ip=127.0.0.1",
            f"--port={self.proxy_port}",
            "--api-ip=127.0.0.1",
            f"--api-port={self.api_port}",
            f"--default-target=http://127.0.0.1:{self.hub_port}",
            f"--error-target=http://127.0.0.1:{self.hub_port}/hub/error",
        ]
        self.proxy = Guarded(
            "configurable-http-proxy",
            proxy_command,
            self.root / "proxy.log",
            lifetime_s,
            self.root,
            {"CONFIGPROXY_AUTH_TOKEN": self.proxy_token},
        )
        self.hub = Guarded(
            "jupyterhub",
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
            self.root / "hub.log",
            lifetime_s,
            self.root,
            {"PYTHONPATH": str(REPO)},  # for tests.hub.CgroupSpawner
        )

        def up() -> bool:
            assert self.hub is not None and self.proxy is not None
            self.hub.check()
            self.proxy.check()
            with contextlib.suppress(OSError):
                return http(f"{self.url}/hub/api/", timeout=5).status == 200
            return False

        wait_for(up, 120, "the hub answering through the proxy")

    def stop(self) -> None:
        """Hub (it stops its servers), then what is left in the cgroups, then the proxy."""
        try:
            if self.hub is not None:
                self.hub.stop(grace=60)
        finally:
            try:
                remove_registered_cgroups(self.registry)
            finally:
                if self.proxy is not None:
                    self.proxy.stop(grace=10)

    def logs(self) -> str:
        """The tails of the hub's log (with its servers' output) and the proxy's."""
        return "\n----\n".join(p.log() for p in (self.hub, self.proxy) if p is not None)

    # --- the hub's REST API, as the service

    def api(
        self, path: str, method: str = "GET", body: Any = None, token: str | None = None
    ) -> Any:
        response = http(f"{self.url}/hub/api/{path}", method, body, token or self.service_token)
        if response.status >= 400:
            raise RuntimeError(
                f"{method} /hub/api/{path}: {response.status} {response.body[:500]!r}"
            )
        return response.json()

    def new_token(self, user: str) -> str:
        """A token of ``user`` (with the user's own permissions), made by the service."""
        return self.api(f"users/{user}/tokens", "POST", {"note": "memguard hub test"})["token"]

    def start_server(self, user: str) -> None:
        self.api(f"users/{user}/server", "POST", {})

    def wait_ready(self, user: str, timeout: float = 180) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.hub is not None
            self.hub.check()
            server = self.api(f"users/{user}")["servers"].get("")
            return server if server and server["ready"] else None

        return wait_for(ready, timeout, f"{user}'s server ready", step=0.5)

    # --- single-user servers, through the proxy

    def user_url(self, user: str, path: str) -> str:
        return f"{self.url}/user/{user}/{path}"

    def user(
        self, user: str, path: str, token: str | None, method: str = "GET", body: Any = None
    ) -> Response:
        return http(self.user_url(user, path), method, body, token)

    def user_json(
        self, user: str, path: str, token: str, method: str = "GET", body: Any = None
    ) -> Any:
        response = self.user(user, path, token, method, body)
        if response.status >= 400:
            raise RuntimeError(
                f"{method} /user/{user}/{path}: {response.status} {response.body[:500]!r}"
            )
        return response.json()


@contextlib.contextmanager
def running_hub(
    root: Path, users: list[str], admins: list[str], mem_limit: int, lifetime_s: float = 300
) -> Iterator[Hub]:
    """A hub with ``users`` and ``admins``; all of it is gone at exit, whatever happened."""
    hub = Hub(root, users, admins, mem_limit)
    try:
        hub.start(lifetime_s)
        yield hub
    finally:
        hub.stop()


# --------------------------------------------------------------------------------------------
# Prometheus


class Prometheus:
    """A real Prometheus scraping each user server's /metrics through the hub's proxy."""

    def __init__(self, root: Path, hub: Hub, users: list[str], job: str = "jupyter-memguard"):
        self.root, self.job = root, job
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = root / "prometheus.yml"
        # Through the proxy every user server has the same address, so each target gets its
        # own `instance` (the dashboard groups by it) and a `user` label.
        targets = [
            {
                "targets": [f"127.0.0.1:{hub.proxy_port}"],
                "labels": {
                    "__metrics_path__": f"/user/{user}/metrics",
                    "instance": user,
                    "user": user,
                },
            }
            for user in users
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "scrape_timeout": "1s", "static_configs": targets}
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.process: Guarded | None = None

    def start(self, lifetime_s: float) -> Prometheus:
        binary = shutil.which("prometheus") or PROMETHEUS
        self.process = Guarded(
            "prometheus",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.root / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            self.root / "prometheus.log",
            lifetime_s,
            self.root,
        )

        def ready() -> bool:
            assert self.process is not None
            self.process.check()
            with contextlib.suppress(OSError):
                return http(f"{self.url}/-/ready", timeout=5).status == 200
            return False

        wait_for(ready, 60, "Prometheus ready")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=15)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        response = http(f"{self.url}/api/v1/{path}?{query}")
        data = response.json()
        assert isinstance(data, dict), response.body
        return data

    def query(self, expr: str) -> dict[str, Any]:
        """The whole /api/v1/query answer (status, data or errorType/error)."""
        return self.api("query", query=expr)

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def by_user(self, expr: str) -> dict[str, float]:
        return {s["metric"].get("user", ""): float(s["value"][1]) for s in self.vector(expr)}


@contextlib.contextmanager
def running_prometheus(
    root: Path, hub: Hub, users: list[str], lifetime_s: float = 300
) -> Iterator[Prometheus]:
    prometheus = Prometheus(root, hub, users)
    try:
        yield prometheus.start(lifetime_s)
    finally:
        prometheus.stop()


# --------------------------------------------------------------------------------------------
# Kernels, through the proxy


async def _execute(url: str, token: str, code: str, timeout: float) -> None:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(url, headers={"Authorization": f"token {token}"}, request_timeout=30)
    connection = await websocket_connect(request)
    session = uuid.uuid4().hex

    def send(msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": session,
            "username": "memguard-test",
            "version": "5.3",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
        connection.write_message(json.dumps(message))
        return msg_id

    async def replied(msg_id: str, msg_type: str, channel: str, wait: float) -> bool:
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                raw = await asyncio.wait_for(connection.read_message(), end - time.monotonic())
            except asyncio.TimeoutError:
                return False
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if (
                message.get("channel") == channel
                and message["parent_header"].get("msg_id") == msg_id
                and message["msg_type"] == msg_type
            ):
                return True
        return False

    try:
        deadline = time.monotonic() + timeout
        while True:  # the kernel answers once it is up (a kernel_info round trip)
            if await replied(send("kernel_info_request", {}), "kernel_info_reply", "shell", 3):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the kernel never answered kernel_info")
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg_id = send("execute_request", content)
        if not await replied(msg_id, "execute_input", "iopub", timeout):
            raise RuntimeError("the kernel never started the cell")
    finally:
        connection.close()


def execute(
    hub: Hub, user: str, kernel_id: str, token: str, code: str, timeout: float = 60
) -> None:
    """Send a cell to a kernel over its websocket through the proxy; return once it runs."""
    url = hub.user_url(user, f"api/kernels/{kernel_id}/channels").replace("http://", "ws://")
    asyncio.run(_execute(url, token, code, timeout))


# Runs in a kernel: allocates 16 MiB at a time (every page touched) into a global list, as a
# leak would, until a deadline: a run nobody stops ends by itself (or meets the OOM killer).
# A leak that an interrupt does not stop (as native code that ignores SIGINT would not): the
# kernel is shut down. A leak that stops at the interrupt may be kept, with its variables, when
# its own limit is below the container's (tests/test_agent_server.py covers that).
RUNAWAY = """
import signal as _signal, time as _time
_signal.signal(_signal.SIGINT, _signal.SIG_IGN)
leak = []
_end = _time.time() + {deadline_s}
while _time.time() < _end:
    leak.append(bytearray({chunk}))
    _time.sleep(0.02)
"""


def runaway_code(deadline_s: float = 60, chunk: int = 16 * MiB) -> str:
    return RUNAWAY.format(deadline_s=deadline_s, chunk=chunk)
