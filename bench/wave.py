"""A whole wave (discovery, pass 1, remediation, pass 2) against a generated lab fleet with latency.

    python -m bench.wave --hosts 1000 [--concurrency 50] [--latency ssh=20ms-80ms,provision=1s-3s,...]

The lab runs in its own process (`bench.labserve`, which records every delay it injects); the wave runs
as ``amt-migrate run`` in another, measured from outside (CPU from /proc, peak RSS = VmHWM). Stage times
come from the state store's own history: a stage runs from its first lab operation (or first event)
to its last event; stages run one after the other, so their windows do not overlap.

Latency bound of a stage (what no orchestration can beat at this concurrency):

    wait(host)  = sum of the delays the lab injected into that host's operations in the stage window
                  (every SSH command, renew, provisioning call, WS-Man request; recorded, not modelled)
                + the configured timeouts the host's failures cost (an SSH connect/banner timeout:
                  credentials.ssh.connect_timeout; a WS-Man timeout: 20 s), read from its events
                + the deliberate pauses of the procedure (dhcp_renew waits renew_verify_delay = 1 s
                  between renews), read from its events
    bound(stage) = max( sum(wait) / concurrency , max(wait) )

The wave's bound is the sum of its stages' bounds; the ratio is (sum of stage wall times) / bound.
Not in the bound: Prefect's start (ephemeral server), the flow's own set-up and the report stage, which
are reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

from bench.common import (
    DUMPER,
    LOADER,
    ROOT,
    LabProcess,
    file_size_mb,
    latency_means,
    machine,
    make_fleet,
    now_iso,
    parse_latency,
    run_measured,
    write_result,
)

STAGES = ("discovery", "pass1", "remediate", "pass2")
WSMAN_TIMEOUT = 20.0  # tasks.steps.context.WaveContext.wsman: WsmanClient(timeout=20.0)
RENEW_VERIFY_DELAY = 1.0  # tasks.steps.context.WaveContext.renew_verify_delay


def prepare_inventory(paths: dict, lab: LabProcess, workdir: Path, concurrency: int, batch_size: int | None) -> Path:
    data = yaml.load(paths["inventory"].read_text(), Loader=LOADER)
    data["name"] = "bench"
    data["state"] = f"sqlite:///{(workdir / 'state' / 'bench.db').resolve()}"
    data["provisioning"]["url"] = lab.http_url
    data["defaults"]["ssh_port"] = lab.ssh_port
    data["defaults"]["amt_port"] = lab.amt_port
    data["credentials"]["ssh"]["known_hosts"] = str(lab.known_hosts_path.resolve())
    for w in data["waves"]:
        w["max_concurrency"] = concurrency
        if batch_size:
            w["batch_size"] = batch_size
    path = workdir / "bench-inventory.yaml"
    path.write_text(yaml.dump(data, Dumper=DUMPER, sort_keys=False, default_flow_style=None, width=140))
    return path


def legacy_password(fleet: dict) -> str | None:
    for d in fleet["devices"]:
        if d.get("legacy"):
            return d["legacy"]["password"]
    return None


def _ts(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        from datetime import timezone

        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def read_events(db: Path) -> list[tuple[float, str, str, str, str, dict]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT at, host, stage, action, outcome, evidence FROM amtmig_events ORDER BY id").fetchall()
    finally:
        con.close()
    return [(_ts(at), host, stage, action, outcome, (json.loads(ev) if ev else None) or {}) for at, host, stage, action, outcome, ev in rows]


def _extra_wait(stage: str, action: str, ev: dict, connect_timeout: float) -> tuple[float, float]:
    """(timeout seconds, deliberate pause seconds) one event says its host spent."""
    timeouts = pause = 0.0
    if stage == "discovery":  # later events may carry discovery's errors as evidence: count them once
        if ev.get("ssh_error") in ("timeout", "banner"):
            timeouts += connect_timeout
        if ev.get("wsman_error") == "timeout":
            timeouts += WSMAN_TIMEOUT
    detail = str(ev.get("detail") or "")
    if detail.startswith(("SSH: timeout", "SSH: banner")):
        timeouts += connect_timeout
    if detail.startswith("WS-Man: timeout"):
        timeouts += WSMAN_TIMEOUT
    if stage == "remediate" and action == "dhcp_renew":
        attempt = ev.get("renew_attempt")
        if attempt is None and "after " in detail and " renews)" in detail:
            try:
                attempt = int(detail.rsplit("after ", 1)[1].split()[0])
            except ValueError:
                attempt = None
        if attempt:
            pause += (int(attempt) - 1) * RENEW_VERIFY_DELAY
    return timeouts, pause


def analyse(events: list, ops: list, *, run_start: float, concurrency: int, connect_timeout: float) -> dict:
    """Per-stage wall, hosts, latency bound; see the module docstring for the model."""
    by_stage: dict[str, list] = defaultdict(list)
    for e in events:
        by_stage[e[2]].append(e)
    ops = sorted(ops)
    stages = {}
    prev_end = run_start
    for stage in STAGES:
        evs = [e for e in by_stage.get(stage, []) if e[1] != "*"]
        if not evs:
            continue
        first_ev, last_ev = min(e[0] for e in evs), max(e[0] for e in evs)
        window_ops = [o for o in ops if prev_end < o[0] <= last_ev]
        start = min([first_ev] + [o[0] for o in window_ops])
        waits: dict[str, float] = defaultdict(float)
        injected = defaultdict(float)
        op_counts = defaultdict(int)
        for t, dev, op, delay in window_ops:
            if dev:
                waits[dev] += delay
            injected[op] += delay
            op_counts[op] += 1
        timeouts = pauses = 0.0
        for _, host, _, action, _, ev in evs:
            to, pa = _extra_wait(stage, action, ev, connect_timeout)
            waits[host] += to + pa
            timeouts += to
            pauses += pa
        hosts = {e[1] for e in evs}
        total_wait = sum(waits.values())
        longest = max(waits.values()) if waits else 0.0
        bound = max(total_wait / concurrency, longest)
        wall = last_ev - start
        stages[stage] = {
            "hosts": len(hosts), "start_offset_s": round(start - run_start, 3), "wall_s": round(wall, 3),
            "hosts_per_s": round(len(hosts) / wall, 2) if wall > 0 else None,
            "latency_bound_s": round(bound, 3), "ratio_to_bound": round(wall / bound, 3) if bound else None,
            "sum_wait_s": round(total_wait, 2), "longest_host_wait_s": round(longest, 2),
            "injected_s_by_op": {k: round(v, 2) for k, v in injected.items()},
            "ops": dict(op_counts), "timeouts_s": timeouts, "pauses_s": pauses,
            "mean_wait_per_host_s": round(total_wait / max(1, len(hosts)), 3),
        }
        prev_end = last_ev
    return stages


def run(hosts: int, *, concurrency: int = 50, latency: dict | None = None, seed: int = 6, batch_size: int | None = None,
        workdir: Path | None = None, name: str | None = None, profile: bool = False, keep: bool = False) -> dict:
    latency = latency or parse_latency(None)
    name = name or f"wave-{hosts}"
    workdir = (workdir or ROOT / "state" / "bench" / name).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    t0 = time.monotonic()
    paths = make_fleet(workdir / "fleet", hosts, seed, latency)
    gen_s = time.monotonic() - t0
    fleet = paths.pop("fleet_data")
    cases = defaultdict(int)
    for d in fleet["devices"]:
        cases[",".join(d["faults"]) or d["state"]] += 1
    lab = LabProcess.start(paths["fleet"], workdir)
    try:
        inv_path = prepare_inventory(paths, lab, workdir, concurrency, batch_size)
        env = dict(os.environ)
        env["AMTMIG_SSH_KEY"] = str(paths["private_key"])
        pw = legacy_password(fleet)
        if pw:
            env["AMTMIG_LEGACY_AMT_PASSWORD"] = pw
        env["PREFECT_HOME"] = str(workdir / "prefect")
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        cmd = [str(ROOT / ".venv" / "bin" / "amt-migrate"), "run", str(inv_path), "--wave", "wave-1"]
        if profile:
            # the run process only (not Prefect's server subprocess); --gil: samples of the thread holding the GIL
            cmd = [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--gil", "--nonblocking", "-r", "100", "-f", "raw",
                   "-o", str(workdir / "profile.raw"), "--"] + cmd
        lab_cpu0 = lab.cpu_seconds()
        run_start = time.time()
        with open(workdir / "run.log", "wb") as log:
            measured = run_measured(cmd, env=env, stdout=log)
        lab_cpu = lab.cpu_seconds() - lab_cpu0
        lab_rss = lab.rss_mb()
    finally:
        ops = lab.stop()
    db = workdir / "state" / "bench.db"
    events = read_events(db)
    inv = yaml.load(inv_path.read_text(), Loader=LOADER)
    from tasks.rules.durations import parse_duration

    ct = inv["credentials"]["ssh"].get("connect_timeout")
    connect_timeout = parse_duration(ct).total_seconds() if ct else 10.0
    stages = analyse(events, ops, run_start=run_start, concurrency=concurrency, connect_timeout=connect_timeout)
    con = sqlite3.connect(db)
    statuses = dict(con.execute("SELECT status, count(*) FROM amtmig_hosts GROUP BY status").fetchall())
    con.close()
    stage_wall = sum(s["wall_s"] for s in stages.values())
    stage_bound = sum(s["latency_bound_s"] for s in stages.values())
    first_start = min((s["start_offset_s"] for s in stages.values()), default=0.0)
    last_end = max((s["start_offset_s"] + s["wall_s"] for s in stages.values()), default=0.0)
    prefect_db = workdir / "prefect" / "prefect.db"
    result = {
        "benchmark": "wave", "name": name, "date": now_iso(), "machine": machine(),
        "command": f".venv/bin/python -m bench.wave --hosts {hosts} --concurrency {concurrency}",
        "parameters": {"hosts": hosts, "concurrency": concurrency, "seed": seed, "latency": latency,
                       "latency_mean_s": latency_means(latency), "batch_size": batch_size or 50,
                       "window": "1h", "connect_timeout_s": connect_timeout, "case_mix": dict(cases)},
        "generate_s": round(gen_s, 2), "lab_startup_s": lab.startup,
        "run": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in measured.items()},
        "stages": stages,
        "wave": {
            "stages_wall_s": round(stage_wall, 2), "latency_bound_s": round(stage_bound, 2),
            "ratio_to_bound": round(stage_wall / stage_bound, 3) if stage_bound else None,
            "first_stage_start_s": first_start, "last_stage_end_s": round(last_end, 2),
            "between_stages_s": round(last_end - first_start - stage_wall, 2),
            "after_stages_s": round(measured["wall_s"] - last_end, 2),
            "hosts_per_s": round(hosts / stage_wall, 2) if stage_wall else None,
        },
        "orchestration_cpu_ms_per_host": round(1000 * measured["own_cpu_s"] / hosts, 2),
        "orchestration_cpu_incl_prefect_server_ms_per_host": round(1000 * measured["tree_cpu_s"] / hosts, 2),
        "peak_rss_mb": round(measured["own_peak_rss_mb"], 1),
        "lab": {"cpu_s": round(lab_cpu, 2), "cpu_ms_per_host": round(1000 * lab_cpu / hosts, 2), "rss_mb": round(lab_rss, 1),
                "ops_recorded": len(ops)},
        "state_db_mb": round(file_size_mb(db, Path(f"{db}-wal")), 2),
        "state_events": len(events),
        "prefect_db_mb": round(file_size_mb(prefect_db, Path(f"{prefect_db}-wal")), 2),
        "final_status": statuses,
        "workdir": str(workdir),
    }
    if not keep:
        shutil.rmtree(workdir / "fleet" / "keys", ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--latency", default=None, help="e.g. ssh=20ms-80ms,provision=1s-3s,renew=500ms-2s,wsman=20ms-80ms")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--name", default=None)
    ap.add_argument("--profile", action="store_true", help="run the wave under py-spy record --gil (profile.raw in the workdir; bench.profile_summary reads it)")
    args = ap.parse_args(argv)
    res = run(args.hosts, concurrency=args.concurrency, latency=parse_latency(args.latency), seed=args.seed,
              batch_size=args.batch_size, name=args.name, profile=args.profile)
    path = write_result(res["name"], res)
    print(json.dumps({k: res[k] for k in ("stages", "wave", "orchestration_cpu_ms_per_host", "peak_rss_mb",
                                          "state_db_mb", "final_status")}, indent=1))
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
