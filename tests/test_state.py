"""The state store: guarded transitions, an append-only history, atomic writes, schema versions, leases.

Every test runs on SQLite and on PostgreSQL (a throwaway cluster, tests/pg_fixture.py).
"""

import json
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from sqlalchemy import create_engine, text

from flows.cli import app
from tasks.rules.host_state import IllegalTransition
from tasks.store.state import SCHEMA_VERSION, StateError, StateStore
from tests.pg_fixture import pg_cluster, pg_url  # noqa: F401 - fixtures

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    """A URL of a fresh, empty store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/s.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(state_url):
    s = StateStore(state_url)
    s.ensure_hosts("w1", [("WS-1", "10.0.0.1"), ("WS-2", "10.0.0.2"), ("WS-3", "10.0.0.3")])
    yield s
    s.close()


def _fail(store, host, cause="suffix_mismatch"):
    return store.transition("w1", host, "failed", stage="pass1", action="provision", outcome="failed", cause=cause,
                            evidence={"amt_suffix": "fabrikam.com", "source": "wsman"}, attempted=True)


def test_enrolling_twice_keeps_status(store):
    _fail(store, "WS-1")
    assert store.ensure_hosts("w1", [("WS-1", "10.0.0.1"), ("WS-4", "10.0.0.4")]) == 1
    assert store.get("w1", "WS-1").status == "failed"
    assert store.get("w1", "WS-4").status == "pending"


def test_full_path_records_pass_cause_and_history(store):
    closes = datetime(2026, 12, 2, 20, 0, tzinfo=timezone.utc)
    _fail(store, "WS-1")
    store.transition("w1", "WS-1", "remediating", stage="remediate", action="start", outcome="ok")
    store.record("w1", "WS-1", stage="remediate", action="reopen", outcome="ok", window_closes_at=closes, attempted=True)
    store.transition("w1", "WS-1", "remediated", stage="remediate", action="dhcp_renew", outcome="verified")
    rec = store.transition("w1", "WS-1", "provisioned", stage="pass2", action="provision", outcome="ok",
                           provisioned_in_pass=2, attempted=True)
    assert (rec.status, rec.cause, rec.provisioned_in_pass, rec.attempts) == ("provisioned", None, 2, 3)
    assert rec.window_closes_at == closes
    # read back in UTC whatever the server's TimeZone (the test cluster runs in Europe/Berlin)
    got = store.get("w1", "WS-1")
    assert got.as_dict()["window_closes_at"] == "2026-12-02T20:00:00+00:00"
    assert got.updated_at.utcoffset() == timedelta(0) and store.history(["WS-1"])[-1].at.utcoffset() == timedelta(0)
    hist = store.history(["WS-1"])
    assert [e.action for e in hist] == ["enrol", "provision", "start", "reopen", "dhcp_renew", "provision"]
    assert hist[1].cause == "suffix_mismatch" and hist[1].evidence["source"] == "wsman"
    with pytest.raises(IllegalTransition):
        _fail(store, "WS-1")
    assert len(store.history(["WS-1"])) == 6  # the refused move wrote nothing


def test_a_crash_inside_a_write_leaves_nothing_half_written(store):
    """If the history insert fails after the status update, the update must roll back with it."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    real = store._insert_event
    store._insert_event = text("INSERT INTO no_such_table VALUES (1)")  # fails inside the transaction
    with pytest.raises(SQLAlchemyError):
        _fail(store, "WS-2")
    store._insert_event = real
    assert store.get("w1", "WS-2").status == "pending"
    assert [e.action for e in store.history(["WS-2"])] == ["enrol"]


def test_filters(store):
    _fail(store, "WS-1")
    _fail(store, "WS-2", "unreachable")
    assert [r.host for r in store.hosts("w1", status="failed", cause="suffix_mismatch")] == ["WS-1"]
    assert [r.host for r in store.hosts("w1", pattern="ws-[23]")] == ["WS-2", "WS-3"]
    assert store.counts("w1") == {"failed": 2, "pending": 1}


def test_a_newer_schema_is_refused(state_url):
    StateStore(state_url).close()
    engine = create_engine(state_url)
    with engine.begin() as con:
        con.execute(text("UPDATE amtmig_meta SET value=:v WHERE key='schema_version'"), {"v": str(SCHEMA_VERSION + 1)})
    engine.dispose()
    with pytest.raises(StateError, match="newer"):
        StateStore(state_url)


def test_opening_without_create_refuses_an_empty_database(state_url):
    if state_url.startswith("sqlite"):
        with pytest.raises(StateError, match="does not exist"):
            StateStore(state_url, create=False)
        StateStore(state_url).close()  # now it exists, with the schema
    else:
        with pytest.raises(StateError, match="holds no amt-migrate data"):
            StateStore(state_url, create=False)
        StateStore(state_url).close()
    StateStore(state_url, create=False).close()


def test_reopening_keeps_rows_and_two_openers_of_a_new_database_both_succeed(state_url):
    """Two processes opening a brand-new database at once must not race on creating the schema."""
    from concurrent.futures import ThreadPoolExecutor

    def open_and_enrol(i):
        s = StateStore(state_url)
        try:
            s.ensure_hosts("w1", [(f"WS-{n}", "") for n in range(50)])  # the same wave, at once
        finally:
            s.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(open_and_enrol, range(4)))
    s = StateStore(state_url, create=False)
    assert len(s.hosts("w1")) == 50 and len(s.history()) == 50  # each host enrolled once
    s.close()


def test_many_openers_of_new_sqlite_files_all_succeed(tmp_path):
    """Switching a new file to WAL answered 'database is locked' without waiting (~8 % of 4-opener races)."""
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(40):
        url = f"sqlite:///{tmp_path}/{attempt}/s.db"

        def open_and_enrol(i, url=url):
            s = StateStore(url)
            try:
                s.ensure_hosts("w1", [(f"WS-{n}", "") for n in range(5)])
            finally:
                s.close()

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(open_and_enrol, range(6)))
        s = StateStore(url, create=False)
        assert len(s.hosts("w1")) == 5 and len(s.history()) == 5
        s.close()


def test_sqlite_reads_neither_wait_for_a_writer_nor_see_its_uncommitted_change(tmp_path):
    """Reads used to begin IMMEDIATE like writes: each queued behind every writer of every process."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    store = StateStore(f"sqlite:///{tmp_path}/s.db")
    store.ensure_hosts("w1", [("WS-1", "10.0.0.1")])
    writer = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock, mid-transaction
    writer.execute("UPDATE amtmig_hosts SET status = 'failed' WHERE host = 'WS-1'")
    try:
        with ThreadPoolExecutor(1) as pool:
            read = pool.submit(lambda: (store.get("w1", "WS-1").status, store.counts("w1"), len(store.history())))
            assert read.result(timeout=30) == ("pending", {"pending": 1}, 1)  # (a blocked read waits 60 s)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        store.close()


def test_an_unopenable_url_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="cannot open state"):
        StateStore("nosuchdialect://x/y")
    with pytest.raises(StateError):
        StateStore(f"sqlite:///{tmp_path}/missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StateError, match="cannot open state") as err:
        StateStore(f"postgresql+psycopg://amtmig:Secret-pw@127.0.0.1:{port}/x")
    assert "Secret-pw" not in str(err.value)


def test_leases_keep_workers_apart_and_expire(store):  # (PostgreSQL across processes: test_state_pg_leases.py)
    got_a = store.lease("w1", ["WS-1", "WS-2"], "a", timedelta(minutes=5))
    got_b = store.lease("w1", ["WS-1", "WS-2", "WS-3"], "b", timedelta(minutes=5))
    assert got_a == ["WS-1", "WS-2"] and got_b == ["WS-3"]
    assert store.lease("w1", ["WS-1"], "c", timedelta(seconds=-1)) == []
    expired = store.lease("w1", ["WS-3"], "b", timedelta(seconds=-1))  # b's own lease, now expired at once
    assert expired == ["WS-3"] and store.lease("w1", ["WS-3"], "c", timedelta(minutes=1)) == ["WS-3"]


def test_concurrent_writers_lose_nothing(store):
    """Threads writing events at once: every event lands (WAL + immediate transactions)."""
    errors = []

    def work(i):
        try:
            for _ in range(20):
                store.record("w1", f"WS-{1 + i % 3}", stage="discovery", action="probe", outcome="ok", evidence={"i": i})
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert len([e for e in store.history() if e.action == "probe"]) == 120


def test_status_and_history_cli(store, tmp_path):
    _fail(store, "WS-1")
    url = store.url
    res = runner.invoke(app, ["status", "--state", url, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {"host", "wave", "status", "cause", "provisioned_in_pass", "window_closes_at"} <= set(rows[0])
    assert {r["host"]: r["status"] for r in rows} == {"WS-1": "failed", "WS-2": "pending", "WS-3": "pending"}
    res = runner.invoke(app, ["status", "--state", url, "--csv", "--cause", "suffix_mismatch"])
    assert res.stdout.splitlines()[0].startswith("host,wave,status,cause") and len(res.stdout.splitlines()) == 2
    res = runner.invoke(app, ["history", "WS-1", "--state", url, "--json"])
    assert [e["action"] for e in json.loads(res.stdout)] == ["enrol", "provision"]
    res = runner.invoke(app, ["status", "--state", f"sqlite:///{tmp_path}/nope/none.db"])
    assert res.exit_code == 2 and "does not exist" in res.stderr
