"""Shared by the outage tests (tests/test_outage_*.py): a small fleet, a wave run as `amt-migrate run`
subprocesses, the points a test interrupts at (read from the store or the lab, never a fixed sleep), and the
checks every outage must pass: nothing lost, nothing done twice, no cause invented.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from tasks.store.state import StateStore
from tests.site_fixtures import device
from tests.test_reliability_crash import history_is_whole, lab_attempts

DECISIONS = "('provision', 'observe', 'skip')"  # the pass's answer for a host (not a route or a 'not asked')


def fleet(prefix: str, n: int, net: int) -> list[dict]:
    """Two in three match (pass 1 provisions them), one in three has a wrong suffix its DHCP scope fixes
    (pass 1 fails it suffix_mismatch, a renew remediates it, pass 2 provisions it): every host ends
    provisioned, so any host left otherwise is the outage's doing."""
    out = []
    for i in range(n):
        kw = (dict(trusted="contoso.com") if i % 3 != 2
              else dict(dhcp="fabrikam.com", os="linux" if i % 2 else "windows"))
        out.append(device(f"{prefix}-{i:02d}", f"127.10.{net}.{i + 1}", **kw))
    return out


def wave(name: str = "w", **kw) -> dict:
    return {"name": name, "hosts": ["*"], "max_concurrency": 4, "batch_size": 4, "remediation": ["dhcp_renew", "mebx"],
            **kw}


def set_outages(inventory: Path, **settings) -> None:
    data = yaml.safe_load(inventory.read_text())
    data["outages"] = settings
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))


def count(url: str, sql: str) -> int:
    """One number from the state database, read on a connection of its own (SQLite read-only: never a lock)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url[len("sqlite:///"):]
        if not Path(path).exists():
            return 0
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
        except sqlite3.Error:
            return 0
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as con:
            return int(con.execute(text(sql)).scalar() or 0)
    except Exception:  # noqa: BLE001 - not created yet, or away: nothing counted
        return 0
    finally:
        engine.dispose()


def decisions(url: str, stage: str = "pass1") -> int:
    return count(url, f"SELECT count(*) FROM amtmig_events WHERE stage = '{stage}' AND action IN {DECISIONS} "
                      f"AND outcome NOT IN ('not asked', 'transient')")


def wait_for(what: str, cond: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 180,
             log: Path | None = None) -> None:
    """Poll `cond` every 50 ms; fail saying `what` if the run ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (rc={proc.returncode}) before {what}\n"
                                 + (log.read_text()[-3000:] if log and log.exists() else ""))
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def successes(dev: dict) -> int:
    return sum(a["result"] == "success" for a in lab_attempts(dev))


def check_against_lab(store: StateStore, wave: str, truth: dict[str, dict], *,
                      unrecorded: dict[str, int] | set[str] = frozenset()) -> dict[str, str]:
    """What every outage must leave: each host's status agrees with the lab, no host provisioned twice or
    asked after its success, one terminal event per provisioned host, a whole history; every attempt the lab
    saw is recorded, except, for the hosts in `unrecorded` (host -> how many; a set: one each), attempts in
    flight when an outage stopped a run: the next run read each back before acting, so an activation among
    them was never asked for again (no after_success). Returns host -> status."""
    if not isinstance(unrecorded, dict):
        unrecorded = {n: 1 for n in unrecorded}
    got = {r.host: r for r in store.hosts(wave)}
    assert set(got) == set(truth), set(got) ^ set(truth)
    for name, rec in got.items():
        dev = truth[name]
        attempts = lab_attempts(dev)
        assert not any(a.get("after_success") for a in attempts), (name, attempts)
        assert successes(dev) == (rec.status == "provisioned"), (name, rec.status, attempts)
        assert (dev["state"] == "provisioned") == (rec.status == "provisioned"), (name, dev["state"], rec.status)
        events = store.history([name], wave)
        terminal = [e for e in events if e.status_after == "provisioned" and e.status_before != "provisioned"]
        assert len(terminal) == (rec.status == "provisioned"), (name, terminal)
        history_is_whole(store, wave, name, rec.status)
        # every attempt the lab saw is in the store, but those the outages kept from it
        assert rec.attempts == len(attempts) - unrecorded.get(name, 0), (name, rec.attempts, attempts)
        # the outage invented no cause: every cause recorded on a status change is one the host really has
        assert not [e for e in events if e.status_before != e.status_after and e.cause == "server_error"], name
    return {n: r.status for n, r in got.items()}


def one_decision_per_run(store: StateStore, wave: str, stage: str = "pass1") -> Counter:
    """How many pass decisions each host got (an outage must not make a host decided twice)."""
    return Counter(e.host for e in store.history(wave=wave) if e.stage == stage and e.action in
                   ("provision", "observe", "skip") and e.outcome != "not asked")


def missing_attempts(store: StateStore, wave: str, truth: dict[str, dict]) -> dict[str, int]:
    """Per host, attempts the lab saw that the store does not count (each an attempt in flight when an outage
    stopped a run)."""
    out = {}
    for name, dev in truth.items():
        n = len(lab_attempts(dev)) - store.get(wave, name).attempts
        assert n >= 0, (name, "the store counts an attempt the lab never saw")
        if n:
            out[name] = n
    return out
