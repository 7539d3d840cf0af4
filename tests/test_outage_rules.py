"""The outage rules on their own: which database errors are an outage, the bound, the batch retry delays,
the settings, and a write retried after a lost COMMIT answer that must not be recorded twice. Errors come
from real drivers (a refused PostgreSQL connection, a locked SQLite file), not from mocks."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from flows.outages import FIRST_DELAYS, retry_delays
from lab.openssh import free_port
from tasks.store.outage import OutageGuard, StateUnavailable, outage_kind
from tasks.store.state import StateStore


def _refused() -> DBAPIError:
    """What psycopg says when nothing listens where the database should be."""
    engine = create_engine(f"postgresql+psycopg://amtmig@127.0.0.1:{free_port()}/amtmig",
                           connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("a connection to a closed port succeeded")


def _locked(tmp_path) -> DBAPIError:
    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{db}", connect_args={"timeout": 0.1})
    try:
        with engine.begin() as con:
            con.execute(text("INSERT INTO t VALUES (1)"))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
        holder.execute("ROLLBACK")
        holder.close()
    raise AssertionError("wrote through an exclusive lock")


def test_a_refused_connection_is_an_outage_to_wait_for_and_a_locked_sqlite_file_a_stop(tmp_path):
    assert outage_kind(_refused()) == "retry"
    assert outage_kind(_locked(tmp_path)) == "stop"
    engine = create_engine("sqlite://")
    with engine.begin() as con:
        con.execute(text("CREATE TABLE t (x PRIMARY KEY)"))
        con.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(DBAPIError) as dup:
        with engine.begin() as con:
            con.execute(text("INSERT INTO t VALUES (1)"))
    assert outage_kind(dup.value) is None  # a constraint is a bug to see, not an outage to wait out
    assert outage_kind(ValueError("x")) is None


def test_the_guard_waits_out_its_bound_then_trips_for_every_later_call_and_names_the_database():
    refused = _refused()
    guard = OutageGuard("state database postgresql+psycopg://amtmig@db:5432/amtmig", 1.0, first_delay=0.05)
    tries = []

    def away(_retrying):
        tries.append(time.monotonic())
        raise refused

    with pytest.raises(StateUnavailable) as stop:
        guard.run(away)
    assert len(tries) > 2 and tries[-1] - tries[0] >= 0.9
    assert "postgresql+psycopg://amtmig@db:5432/amtmig did not answer for 1 s" in str(stop.value)
    assert "state_retry_for" in str(stop.value)
    with pytest.raises(StateUnavailable):  # tripped: no second wait
        guard.run(lambda _r: 1)


def test_the_guard_rides_an_outage_shorter_than_its_bound_and_says_the_retry_is_a_retry():
    refused = _refused()
    guard = OutageGuard("state database x", 5.0, first_delay=0.02)
    seen = []

    def blip(retrying):
        seen.append(retrying)
        if len(seen) < 3:
            raise refused
        return "written"

    assert guard.run(blip) == "written"
    assert seen == [False, True, True] and guard.outages == 1 and guard.tripped is None


def test_a_write_whose_commit_answer_was_lost_is_not_recorded_twice(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    store.ensure_hosts("w", [("A", "10.0.0.1")])
    real_run = store.guard.run
    # the first try commits, then the answer is "lost": the guard tries again with retrying=True
    store.guard.run = lambda op: (op(False), op(True))[1]
    rec = store.transition("w", "A", "provisioned", stage="pass1", action="provision", outcome="ok",
                           provisioned_in_pass=1, attempted=True)
    store.guard.run = real_run
    assert rec.status == "provisioned"
    events = [e for e in store.history(["A"], "w") if e.stage == "pass1"]
    assert len(events) == 1 and store.get("w", "A").attempts == 1
    store.close()


def test_batch_retry_delays_add_up_to_the_bound_and_keep_the_first_two():
    assert retry_delays(timedelta(minutes=2))[:2] == list(FIRST_DELAYS)
    assert sum(retry_delays(timedelta(minutes=2))) == 120
    assert retry_delays(timedelta(seconds=6)) == [2, 4]
    assert retry_delays(timedelta(seconds=1)) == [1, 10]  # never fewer than two tries for a 5xx


def test_outage_settings_are_checked_with_the_inventory(tmp_path):
    from tasks.inventory.model import load_inventory
    from tasks.inventory.yaml_source import InputError

    base = ("name: x\nprovisioning: {certificate_suffix: contoso.com}\n"
            "hosts:\n  - {name: A, address: 10.0.0.1, amt_version: '11.8'}\n")
    f = tmp_path / "inv.yaml"
    f.write_text(base + "outages: {state_retry_for: 30s, lease_ttl: 1m}\n")
    inv = load_inventory(f)
    assert inv.outages.state_retry_for == timedelta(seconds=30) and inv.outages.lease_ttl == timedelta(minutes=1)
    assert inv.outages.provisioning_retry_for == timedelta(minutes=2)
    f.write_text(base + "outages: {lease_ttl: 1s}\n")
    with pytest.raises(InputError, match="lease_ttl must be at least 3s"):
        load_inventory(f)
    f.write_text(base + "outages: {state_retry: 30s}\n")
    with pytest.raises(InputError, match="did you mean state_retry_for"):
        load_inventory(f)


def test_a_gateway_that_cannot_reach_the_provisioning_server_is_an_outage_and_a_503_an_answer():
    """502/504 come from a gateway about the server behind it (RFC 9110 15.6.3, 15.6.5): the run's outage;
    503 is the server's own answer (busy) about this request: the host's problem, retried then failed."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tasks.adapters.lab_api import LabProvisioner
    from tasks.inventory.model import Host

    status = {"code": 502}

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><body>Bad Gateway</body></html>"
            self.send_response(status["code"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        p = LabProvisioner(f"http://127.0.0.1:{httpd.server_address[1]}", "amt-migrate")
        host = Host(name="A", address="10.0.0.1", amt_version="11.8")
        got = {}
        for code in (502, 504, 503, 500):
            status["code"] = code
            out = p.provision(host)
            got[code] = (out.error_code, out.transient, out.reached_device)
        p.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got[502] == got[504] == ("server_unreachable", True, False)
    assert got[503] == got[500] == ("server_error", True, True)
