"""A real `prefect server start` (SQLite, UI on) for tests, and process workers next to it.

Everything runs in its own session (start_new_session) and is stopped with killpg, so neither the
server's uvicorn children nor a worker's flow-run processes outlive the test module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lab.openssh import free_port  # one definition for every test server

ROOT = Path(__file__).resolve().parent.parent
PREFECT = [sys.executable, "-m", "prefect"]
START_TIMEOUT = 240  # 10-25 s on a quiet machine; minutes when the CI box is busy


def stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 10) -> None:
    """Signal the process group, then SIGKILL what is left: no child (flow runs, uvicorn workers) survives."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the leader may be gone while its children are not
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class PrefectServer:
    url: str  # http://127.0.0.1:PORT
    api_url: str  # http://127.0.0.1:PORT/api
    home: Path
    env: dict[str, str]  # what a client or worker needs to talk to this server
    log: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, pool: str, *, limit: int = 2, extra_env: dict[str, str] | None = None,
                     name: str | None = None) -> subprocess.Popen:
        """`prefect worker start --pool P --limit N --type process`, polling every second; stopped with the server."""
        env = dict(self.env, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5",
                   **(extra_env or {}))
        log = self.home / f"worker-{pool}-{len(self.workers)}.log"
        cmd = PREFECT + ["worker", "start", "--pool", pool, "--limit", str(limit), "--type", "process"]
        if name:
            cmd += ["--name", name]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        while self.workers:
            stop_group(self.workers.pop())

    def logs(self, tail: int = 4000) -> str:
        """The server's and the workers' output, for assertion messages."""
        parts = []
        for p in [self.log, *sorted(self.home.glob("worker-*.log"))]:
            if p.exists():
                parts.append(f"--- {p.name} ---\n{p.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)


def isolated_prefect_env(home: Path, api_url: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* setting, with its own home, profiles and API URL:
    a test server or client never reads the developer's profile or another test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    return env


def server_env(home: Path, port: int) -> dict[str, str]:
    api = f"http://127.0.0.1:{port}/api"
    env = isolated_prefect_env(home, api)
    env.update({
        "PREFECT_UI_API_URL": api,
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "2",
    })
    return env


def start_server(home: Path, timeout: float = START_TIMEOUT, port: int | None = None
                 ) -> tuple[subprocess.Popen, PrefectServer]:
    """A server on `port` (default: a free one); again on the same home and port = the same server restarted."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = server_env(home, port)
    log = home / "server.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(PREFECT + ["server", "start", "--host", "127.0.0.1", "--port", str(port),
                                           "--analytics-off", "--ui"],
                                cwd=home, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    server = PrefectServer(f"http://127.0.0.1:{port}", env["PREFECT_API_URL"], home, env, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return proc, server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_group(proc)
            raise RuntimeError(f"prefect server not healthy after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    """A `prefect server start` of this module's own, with this process's client pointed at it."""
    from prefect.settings import temporary_settings
    from prefect.settings import PREFECT_API_URL

    proc, server = start_server(tmp_path_factory.mktemp("prefect-home"))
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop_workers()
        stop_group(proc)
