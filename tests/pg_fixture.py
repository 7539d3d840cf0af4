"""A throwaway PostgreSQL cluster for the tests: Debian's `postgresql` binaries, a temp dir, a free port.

`pg_cluster` (session) starts one cluster the first time a test asks for it; `pg_url` (per test) hands out
a fresh database on it, so tests never see each other's rows. initdb and postgres refuse to run as root,
so as root the cluster belongs to the `postgres` system user (created if missing) and runs under runuser.
Skips only when the PostgreSQL server binaries are not installed; any other failure to start is an error.

Use from a test module with `from tests.pg_fixture import pg_cluster, pg_url  # noqa: F401`; the cluster
is a process-wide singleton, so importing the fixtures into several modules still starts one cluster.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.openssh import free_port  # one definition for every test server

PG_USER = "amtmig"  # the cluster's superuser name (trust auth: no password)
# A non-UTC server zone on purpose: the store must hand back UTC whatever the server's TimeZone is.
PG_TIMEZONE = "Europe/Berlin"


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<ver>/bin that has initdb and postgres, or $AMTMIG_PG_BINDIR."""
    env = os.environ.get("AMTMIG_PG_BINDIR")
    cands = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                     key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                                     reverse=True)
    for c in cands:
        if c and os.access(Path(c) / "initdb", os.X_OK) and os.access(Path(c) / "postgres", os.X_OK):
            return Path(c)
    return None


REAPER = """
import os, shutil, signal, sys, time
parent, pgid, sig, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
for s, pause in ((sig, 5), (signal.SIGKILL, 1)):
    try:
        os.killpg(pgid, s)
    except ProcessLookupError:
        break
    time.sleep(pause)
if folder:
    shutil.rmtree(folder, ignore_errors=True)
"""


def start_reaper(pgid: int, sig: int = signal.SIGTERM, folder: str | Path = "") -> subprocess.Popen:
    """A tiny watchdog that stops process group `pgid` (and removes `folder`) if this test process dies
    without its teardown (killed, or SIGTERM, which skips atexit): no server outlives its test run."""
    return subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid()), str(pgid), str(int(sig)), str(folder)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_reaper(reaper: subprocess.Popen | None) -> None:
    if reaper is not None and reaper.poll() is None:
        reaper.kill()
        reaper.wait()


def _run_as() -> list[str]:
    """The command prefix that drops root to the cluster's OS user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                       check=True, capture_output=True)
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgCluster:
    bindir: Path
    dir: Path
    port: int
    proc: subprocess.Popen | None = None
    reaper: subprocess.Popen | None = None
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def sockdir(self) -> Path:
        return self.dir / "sock"

    def url(self, db: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{PG_USER}@127.0.0.1:{self.port}/{db}"

    def _admin(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True,
                               connect_timeout=5)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its name."""
        name = name or f"amtmig_t{next(self._n)}"
        with self._admin() as con:
            # FILE_COPY: 35 ms here against 550 ms for PostgreSQL 15's default WAL_LOG (fsync is off anyway)
            strategy = " STRATEGY FILE_COPY" if con.info.server_version >= 150000 else ""
            con.execute(f'CREATE DATABASE "{name}"{strategy}')
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> PgCluster:
        run_as = _run_as()
        self.datadir.mkdir(parents=True)
        self.sockdir.mkdir()
        if run_as:
            for p in (self.dir, self.datadir, self.sockdir):
                shutil.chown(p, "postgres", "postgres")
        init = subprocess.run([*run_as, str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", PG_USER,
                               "--auth=trust", "--encoding=UTF8", "--no-sync"],
                              capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        # trust for 127.0.0.1 only (initdb --auth=trust already wrote it; be explicit for readers)
        with open(self.datadir / "pg_hba.conf", "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._launch()
        return self

    def _launch(self) -> None:
        """Start the postmaster in its own session (with a reaper) and wait until it accepts connections."""
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [*_run_as(), str(self.bindir / "postgres"), "-D", str(self.datadir), "-k", str(self.sockdir),
             "-p", str(self.port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", f"TimeZone={PG_TIMEZONE}",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        stop_reaper(self.reaper)
        self.reaper = start_reaper(self.proc.pid, signal.SIGINT, self.dir)  # SIGINT: postgres' fast shutdown
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with self._admin():
                    break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections in 60 s:\n{self.log_tail()}") from None
                time.sleep(0.1)

    # -- outages (tests/test_outages_*.py): the server goes away with clients connected, and comes back
    def stop_server(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m MODE -w`: fast rolls back open transactions and disconnects every client; the
        cluster's files stay for start_server()."""
        if self.proc is None:
            return
        res = subprocess.run([*_run_as(), str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", mode,
                              "-w", "-t", "60"], capture_output=True, text=True, timeout=90)
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl stop -m {mode} failed: {res.stdout}{res.stderr}")
        self.proc.wait(30)

    def start_server(self) -> None:
        """The same postgres command line again, on the same port and data directory."""
        self._launch()

    def restart(self, mode: str = "fast") -> None:
        """What `pg_ctl restart -m fast` does (stop in that mode, start with the same options again), with the
        new postmaster kept as this fixture's child so teardown and the reaper still stop it."""
        self.stop_server(mode)
        self.start_server()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.dir / "postgres.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            subprocess.run([*_run_as(), str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast",
                            "-w", "-t", "20"], capture_output=True, timeout=30)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:  # the whole session: postmaster, its children, and runuser
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        stop_reaper(self.reaper)
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster: PgCluster | None = None


def get_cluster() -> PgCluster:
    """The process-wide cluster, started on first use; skips the test when PostgreSQL isn't installed."""
    global _cluster
    if _cluster is None:
        bindir = pg_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries not installed (/usr/lib/postgresql/<ver>/bin/initdb); "
                        "apt-get install postgresql")
        tmp = Path(tempfile.mkdtemp(prefix="amtmig-pg-"))  # under /tmp, reachable by the postgres user
        os.chmod(tmp, 0o700)
        cluster = PgCluster(bindir, tmp, free_port())
        atexit.register(cluster.stop)  # a safety net if the session ends without fixture teardown
        _cluster = cluster.start()
    return _cluster


def stop_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


@pytest.fixture(scope="session")
def pg_cluster():
    yield get_cluster()
    stop_cluster()


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh, empty database on the session's cluster (dropped afterwards)."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    try:
        pg_cluster.drop_database(name)
    except Exception:  # noqa: BLE001 - a leftover database in a throwaway cluster harms nothing
        pass
