"""A jupyter_server with memguard in a subprocess (for restarts, the CLI, cgroups, benchmarks)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    step: float = 0.25,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        sleep(step)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def stop_process(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM ``process``; SIGKILL it if it has not exited within ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ServerProcess:
    """`python -m jupyter_server` with memguard on, its own root dir, token and port."""

    def __init__(
        self,
        *settings: str,
        root: Path | None = None,
        journal: Path | None = None,
        cgroup_procs: Path | None = None,
        lifetime_s: float | None = None,
        ready_path: str = "api/memguard/status",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.root = Path(root or tempfile.mkdtemp(prefix="memguard-server-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.journal = journal or self.root / "journal.sqlite"
        self.url = f"http://127.0.0.1:{self.port}/"
        self.command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ServerApp.allow_root=True",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.jpserver_extensions={'jupyter_memguard': True}",
            f"--MemGuard.journal_path={self.journal}",
            *settings,
        ]
        if lifetime_s is not None:
            # A server that outlives a failed test ends by itself (and with it its kernels).
            self.command = ["timeout", "-s", "KILL", str(int(lifetime_s)), *self.command]
        self.cgroup_procs = cgroup_procs
        self.extra_env = env or {}
        self.ready_path = ready_path  # answered once the server (and memguard) is up
        self.runtime_dir = self.root / ".runtime"
        self.log_path = self.root / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            **self.extra_env,
        }
        procs = self.cgroup_procs

        def join_cgroup() -> None:  # runs in the child before exec: all it starts is inside
            if procs is not None:
                procs.write_text(str(os.getpid()))

        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
                preexec_fn=join_cgroup if procs is not None else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log()[-3000:]}")
            try:
                self.get(self.ready_path)
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def request(self, path: str, method: str = "GET", body: Any = None, timeout: float = 60) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request(path)

    def start_kernel(self, path: str | None = None) -> str:
        if path:
            session = self.request(
                "api/sessions",
                "POST",
                {"path": path, "type": "notebook", "kernel": {"name": "python3"}},
            )
            return session["kernel"]["id"]
        return self.request("api/kernels", "POST", {"name": "python3"})["id"]

    def wait_idle(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        kernels: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            kernels = self.get("api/memguard/kernels")["kernels"]
            # Without a client on its channels, jupyter_server leaves a kernel "starting".
            ready = [
                k
                for k in kernels
                if k["execution_state"] in ("idle", "starting")
                and k["memory"]
                and k["memory"]["rss_bytes"] > 40 * 2**20
            ]
            if len(ready) >= count:
                return kernels
            time.sleep(0.5)
        raise RuntimeError(f"kernels not ready: {kernels}")

    def connection_file(self, kernel_id: str) -> Path:
        """The kernel's connection file (in this server's own runtime dir)."""
        return self.runtime_dir / f"kernel-{kernel_id}.json"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=30)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
