"""The state store: guarded transitions, an append-only history, atomic writes, schema versions, leases."""

import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.host_state import IllegalTransition
from tasks.state import SCHEMA_VERSION, StateError, StateStore

runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    s = StateStore(f"sqlite:///{tmp_path}/state/s.db")
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


def test_a_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    StateStore(url).close()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("UPDATE amtmig_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StateError, match="newer"):
        StateStore(url)


def test_an_unopenable_url_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="cannot open state"):
        StateStore("nosuchdialect://x/y")
    with pytest.raises(StateError):
        StateStore(f"sqlite:///{tmp_path}/missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_leases_keep_workers_apart_and_expire(store):
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
