"""The large-install Prefect server for tests: `prefect server start` on PostgreSQL with Redis messaging.

PostgreSQL is the throwaway cluster of tests/pg_fixture.py (a database of its own); redis-server is
started here with its own config (a free port, no RDB snapshots, no AOF, its dir in a temp folder).
Every process runs in its own session (start_new_session) and is stopped with killpg, and a reaper
stops it too if the test process dies without its teardown: no server outlives the test run.

Skips only when redis-server, the PostgreSQL binaries or prefect-redis (the `scale` extra) are absent.
Use with `from tests.prefect_scale_fixture import prefect_scale_server  # noqa: F401`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.pg_fixture import free_port, get_cluster, start_reaper, stop_reaper
from tests.prefect_server_fixture import isolated_prefect_env, stop_group

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 150  # migrations on a fresh PostgreSQL database: 10-40 s on a loaded 2-core machine


def scale_env(api_url: str, db_url: str, redis_port: int, home: Path) -> dict[str, str]:
    """The environment of a Prefect server on PostgreSQL + Redis (docs/postgresql.md explains each line)."""
    env = isolated_prefect_env(home, api_url)
    env.update({
        "PREFECT_API_DATABASE_CONNECTION_URL": db_url,
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1",
        "PREFECT_REDIS_MESSAGING_PORT": str(redis_port),
        "PREFECT_REDIS_MESSAGING_DB": "0",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    })
    return env


# Test-only: services a 200-task probe doesn't use, off so the 2-core machine spends its CPU on the ones that
# record task runs (task_run_recorder, event_persister stay on); and clients don't ship their logs to the API.
TEST_ONLY_ENV = {
    **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
       for name in ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "REPOSSESSOR",
                    "TRIGGERS", "EVENT_LOGGER", "CLEANUP_RECONCILER")},
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}


@dataclass
class ScaleServer:
    api_url: str
    env: dict[str, str]  # what a client or worker needs to talk to this server
    db_url: str  # the server's own database (postgresql+asyncpg://...)
    redis_port: int
    dir: Path

    def logs(self, tail: int = 3000) -> str:
        out = []
        for name in ("server.log", "redis.log"):
            p = self.dir / name
            if p.exists():
                out.append(f"--- {name} ---\n{p.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def redis(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True, timeout=10).stdout.strip()


def _start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = folder / "redis.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\n"
                    f"dir {folder}\nlogfile {folder / 'redis.log'}\ndaemonize no\n")
    proc = subprocess.Popen(["redis-server", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: "
                               f"{(folder / 'redis.log').read_text(errors='replace')[-2000:]}")
        ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "PING"], capture_output=True,
                              text=True, timeout=5)
        if ping.stdout.strip() == "PONG":
            return proc, port
        if time.monotonic() > deadline:
            stop_group(proc)
            raise RuntimeError("redis-server did not answer PING in 20 s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def prefect_scale_server() -> Iterator[ScaleServer]:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install redis-server)")
    try:
        import prefect_redis  # noqa: F401
    except ImportError:
        pytest.skip("prefect-redis not installed (pip install -e '.[scale]')")
    cluster = get_cluster()  # skips when PostgreSQL isn't installed
    db = cluster.create_database("prefect_server")
    folder = Path(tempfile.mkdtemp(prefix="amtmig-prefect-scale-"))
    redis = server = None
    reapers = []
    try:
        redis, redis_port = _start_redis(folder)
        reapers.append(start_reaper(redis.pid))
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = scale_env(api, cluster.url(db, driver="asyncpg"), redis_port, folder / "home")
        env.update(TEST_ONLY_ENV)
        (folder / "home").mkdir()
        with open(folder / "server.log", "wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                       "--port", str(port), "--analytics-off", "--no-ui"],
                                      cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        reapers.append(start_reaper(server.pid))
        scale = ScaleServer(api, env, cluster.url(db), redis_port, folder)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited with {server.returncode}:\n{scale.logs()}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {START_TIMEOUT}s:\n{scale.logs()}")
            time.sleep(0.5)
        yield scale
    finally:
        stop_group(server)
        stop_group(redis)
        for r in reapers:
            stop_reaper(r)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            cluster.drop_database(db)
        except Exception:  # noqa: BLE001 - the cluster is thrown away at the end of the session anyway
            pass
