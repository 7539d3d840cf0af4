"""Leases on PostgreSQL across real processes: workers sharing a wave never hold the same host.

Two OS processes lease the same 1,000 hosts in chunks at once (SELECT ... FOR UPDATE SKIP LOCKED);
a lease held by a dead process on this machine is free at once, one held on another machine only
when its TTL runs out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tasks.store.state import StateStore, worker_id
from tests.pg_fixture import pg_cluster, pg_url  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"WS-{i:04d}" for i in range(1000)]

LEASER = textwrap.dedent("""
    import json, os, random, sys, time
    from datetime import timedelta
    from tasks.store.state import StateStore, worker_id
    url, go, order, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = StateStore(url, create=False)
    hosts = [f"WS-{i:04d}" for i in range(1000)]
    if order == "reverse":
        hosts.reverse()
    elif order == "shuffle":
        random.Random(7).shuffle(hosts)
    owner = worker_id()
    print(json.dumps({"ready": owner}), flush=True)
    while not os.path.exists(go):  # start together
        time.sleep(0.005)
    claimed = []
    for i in range(0, len(hosts), chunk):
        claimed += store.lease("w1", hosts[i:i + chunk], owner, timedelta(minutes=10))
    print(json.dumps({"owner": owner, "claimed": claimed}), flush=True)
    store.close()
""")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LEASER, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture
def pg_store(pg_url):  # noqa: F811
    s = StateStore(pg_url)
    s.ensure_hosts("w1", [(h, "") for h in HOSTS])
    yield s
    s.close()


def _owners(store: StateStore) -> dict[str, str | None]:
    with store.engine.connect() as con:
        return dict(con.execute(text("SELECT host, lease_owner FROM amtmig_hosts WHERE wave='w1'")).all())


def test_two_processes_leasing_1000_hosts_in_chunks_get_disjoint_sets_covering_all(pg_store, pg_url, tmp_path):  # noqa: F811
    go = tmp_path / "go"
    procs = [_spawn(pg_url, str(go), "forward", "40"), _spawn(pg_url, str(go), "shuffle", "25")]
    try:
        for p in procs:  # both imported, connected and waiting
            line = p.stdout.readline()
            assert "ready" in line, p.stderr.read()
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    a, b = (set(r["claimed"]) for r in results)
    assert len(results[0]["claimed"]) == len(a) and len(results[1]["claimed"]) == len(b)  # no host twice in one
    assert not a & b, f"{len(a & b)} hosts leased by both workers"
    assert a | b == set(HOSTS), f"{1000 - len(a | b)} hosts leased by nobody (split {len(a)}/{len(b)})"
    owners = _owners(pg_store)  # the store agrees with what each worker was told
    assert {h for h, o in owners.items() if o == results[0]["owner"]} == a
    assert {h for h, o in owners.items() if o == results[1]["owner"]} == b


def test_rows_locked_by_another_transaction_are_skipped_not_waited_for(pg_store):
    """SKIP LOCKED: a worker never blocks behind another's open lease transaction."""
    with pg_store.engine.connect() as other, ThreadPoolExecutor(1) as pool:
        other.execute(text("SELECT id FROM amtmig_hosts WHERE wave='w1' AND host IN ('WS-0000', 'WS-0001') "
                           "FOR UPDATE"))
        fut = pool.submit(pg_store.lease, "w1", ["WS-0000", "WS-0001", "WS-0002"], "me", timedelta(minutes=5))
        try:
            got = fut.result(timeout=10)
        except FuturesTimeout:
            got = "blocked behind the other transaction's row locks"
        other.rollback()  # (unblocks a lease that waited, so a regression fails instead of hanging)
        assert got == ["WS-0002"]
    assert pg_store.lease("w1", ["WS-0000", "WS-0001"], "me", timedelta(minutes=5)) == ["WS-0000", "WS-0001"]


def test_a_dead_workers_lease_is_free_at_once_on_this_machine(pg_store, pg_url, tmp_path):  # noqa: F811
    go = tmp_path / "go"
    go.touch()
    p = _spawn(pg_url, str(go), "forward", "1000")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    dead = json.loads(out.strip().splitlines()[-1])
    assert len(dead["claimed"]) == 1000 and set(_owners(pg_store).values()) == {dead["owner"]}
    # its TTL is 10 minutes, but its pid is gone: a restarted run takes the hosts straight back
    me = worker_id()
    assert pg_store.lease("w1", HOSTS[:10], me, timedelta(minutes=10)) == HOSTS[:10]
    # a live process on this machine (this one, under another owner id) keeps its lease until the TTL
    assert pg_store.lease("w1", HOSTS[:10], worker_id(), timedelta(minutes=10)) == []


def test_a_lease_from_another_machine_waits_for_its_ttl(pg_store):
    far = "other-machine.example:4242:deadbeef"  # pid 4242 is meaningless here: only the TTL counts
    assert pg_store.lease("w1", HOSTS[:5], far, timedelta(seconds=2)) == HOSTS[:5]
    me = worker_id()
    assert pg_store.lease("w1", HOSTS[:5], me, timedelta(minutes=1)) == []
    time.sleep(2.2)
    assert pg_store.lease("w1", HOSTS[:5], me, timedelta(minutes=1)) == HOSTS[:5]
    pg_store.release("w1", HOSTS[:5], far)  # releasing someone else's lease is a no-op
    assert set(_owners(pg_store)[h] for h in HOSTS[:5]) == {me}
