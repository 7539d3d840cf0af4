"""A wave's wall time with its PostgreSQL state database restarted for 10 s in the middle of pass 1, against
the same wave (same generated fleet, same seed, same settings) without.

    python -m bench.outage [--hosts 200] [--concurrency 20] [--down 10]

Each run gets a fresh lab process and a fresh database on a throwaway cluster (tests/pg_fixture.py's
PgCluster: initdb + postgres on a free port). The restart is `pg_ctl stop -m fast`, `--down` seconds, then
the same postgres command line again, started when the store shows half the hosts decided in pass 1. The
wave runs as `amt-migrate run` on Prefect's embedded server, measured from outside (bench.common.run_measured);
stage windows come from the store's own events (first to last event of each stage). Integrity is checked
too: every attempt the lab saw is counted in the store, none after a success.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import yaml
from sqlalchemy import create_engine, text

from bench.common import DUMPER, LOADER, ROOT, LabProcess, machine, make_fleet, now_iso, parse_latency, \
    run_measured, write_result
from bench.wave import STAGES, legacy_password, prepare_inventory


def _cluster():
    from lab.openssh import free_port
    from tests.pg_fixture import PgCluster, pg_bindir

    bindir = pg_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not installed (apt-get install postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="amtmig-bench-pg-"))
    os.chmod(tmp, 0o700)
    return PgCluster(bindir, tmp, free_port()).start()


def _scalar(url: str, sql: str) -> int:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as con:
            return int(con.execute(text(sql)).scalar() or 0)
    except Exception:  # noqa: BLE001 - away or not created yet
        return 0
    finally:
        engine.dispose()


def _stages(url: str) -> dict:
    engine = create_engine(url)
    with engine.connect() as con:
        rows = con.execute(text("SELECT at, host, stage FROM amtmig_events WHERE host <> '*'")).all()
        statuses = dict(con.execute(text("SELECT status, count(*) FROM amtmig_hosts GROUP BY status")).all())
        attempts = dict(con.execute(text("SELECT host, attempts FROM amtmig_hosts")).all())
    engine.dispose()
    spans: dict[str, list[float]] = defaultdict(list)
    hosts: dict[str, set] = defaultdict(set)
    for at, host, stage in rows:
        spans[stage].append(at.timestamp())
        hosts[stage].add(host)
    out = {s: {"hosts": len(hosts[s]), "wall_s": round(max(spans[s]) - min(spans[s]), 2)} for s in STAGES if spans[s]}
    return {"stages": out, "final_status": statuses, "attempts": attempts}


def one_run(label: str, *, hosts: int, concurrency: int, latency: dict, seed: int, cluster, down: float | None) -> dict:
    workdir = (ROOT / "state" / "bench" / f"outage-{label}").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    paths = make_fleet(workdir / "fleet", hosts, seed, latency)
    fleet = paths.pop("fleet_data")
    url = cluster.url(cluster.create_database())
    lab = LabProcess.start(paths["fleet"], workdir, record=False)
    outage: dict = {}
    try:
        inv_path = prepare_inventory(paths, lab, workdir, concurrency, None)
        data = yaml.load(inv_path.read_text(), Loader=LOADER)
        data["state"] = url
        inv_path.write_text(yaml.dump(data, Dumper=DUMPER, sort_keys=False, default_flow_style=None, width=140))
        env = dict(os.environ, AMTMIG_SSH_KEY=str(paths["private_key"]), PREFECT_HOME=str(workdir / "prefect"))
        env.pop("PREFECT_API_URL", None)
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        if legacy_password(fleet):
            env["AMTMIG_LEGACY_AMT_PASSWORD"] = legacy_password(fleet)
        cmd = [str(ROOT / ".venv" / "bin" / "amt-migrate"), "run", str(inv_path), "--wave", "wave-1"]
        result: dict = {}
        with open(workdir / "run.log", "wb") as log:
            runner = threading.Thread(target=lambda: result.update(run_measured(cmd, env=env, stdout=log)))
            runner.start()
            if down:
                half = "SELECT count(*) FROM amtmig_events WHERE stage = 'pass1' AND action IN ('provision', 'observe')"
                while runner.is_alive() and _scalar(url, half) < hosts // 2:
                    time.sleep(0.1)
                if runner.is_alive():
                    t0 = time.monotonic()
                    cluster.stop_server("fast")
                    time.sleep(down)
                    cluster.start_server()
                    outage = {"at_pass1_decisions": hosts // 2, "down_s": round(time.monotonic() - t0, 2)}
            runner.join()
        truth = httpx.get(f"{lab.http_url}/admin/devices", timeout=60).json()
    finally:
        lab.stop()
    store = _stages(url)
    lab_attempts = {d["name"]: [a for a in d["attempts"] if a.get("source") != "self-retry"] for d in truth}
    mismatched = {h: (store["attempts"].get(h), len(a)) for h, a in lab_attempts.items()
                  if store["attempts"].get(h) != len(a)}
    log_text = (workdir / "run.log").read_text(errors="replace")
    return {
        "label": label, "exit": result.get("exit"), "wall_s": round(result.get("wall_s", 0.0), 2),
        "own_cpu_s": round(result.get("own_cpu_s", 0.0), 2), "stages": store["stages"],
        "stages_wall_s": round(sum(s["wall_s"] for s in store["stages"].values()), 2),
        "final_status": store["final_status"], "outage": outage,
        "met_outage": "is not answering" in log_text, "rode_through": "answers again" in log_text,
        "integrity": {"hosts_attempts_differ": mismatched,
                      "after_success": sum(a.get("after_success", False) for v in lab_attempts.values() for a in v),
                      "lab_successes": sum(a["result"] == "success" for v in lab_attempts.values() for a in v)},
    }


def run(hosts: int, concurrency: int, down: float, latency: dict, seed: int = 6) -> dict:
    cluster = _cluster()
    try:
        base = one_run("baseline", hosts=hosts, concurrency=concurrency, latency=latency, seed=seed, cluster=cluster,
                       down=None)
        hit = one_run("db-restart", hosts=hosts, concurrency=concurrency, latency=latency, seed=seed, cluster=cluster,
                      down=down)
    finally:
        cluster.stop()
    return {
        "benchmark": "outage", "name": "outage-db-restart", "date": now_iso(), "machine": machine(),
        "command": f".venv/bin/python -m bench.outage --hosts {hosts} --concurrency {concurrency} --down {down:g}",
        "parameters": {"hosts": hosts, "concurrency": concurrency, "down_s": down, "latency": latency, "seed": seed,
                       "state": "PostgreSQL (throwaway cluster), outages.state_retry_for default 2m",
                       "restart_at": "half the hosts decided in pass 1"},
        "note": "measured while other helpers' test suites shared the machine's 2 cores: read as a ratio",
        "baseline": base, "with_restart": hit,
        "delta_wall_s": round(hit["wall_s"] - base["wall_s"], 2),
        "delta_stages_wall_s": round(hit["stages_wall_s"] - base["stages_wall_s"], 2),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--down", type=float, default=10.0)
    ap.add_argument("--latency", default=None)
    args = ap.parse_args(argv)
    res = run(args.hosts, args.concurrency, args.down, parse_latency(args.latency))
    path = write_result(res["name"], res)
    print(json.dumps({k: res[k] for k in ("delta_wall_s", "delta_stages_wall_s")}, indent=1))
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
