"""A big wave's state: `status --json`, `plan --json` and report generation on N hosts (100,000 in --full).

    python -m bench.state_scale --hosts 100000

Builds a generated inventory of N hosts (lab.generate.build) and a state store holding one row per host
and a realistic history (enrol, discover, pass-1 attempt, remediation steps, pass-2 attempt: 5-7 events
per host, ~6.2 on average) with a final status mix like a real wave's; then times each command in its own
process (wall, CPU, peak RSS from wait4) exactly as an operator runs it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from bench.common import DUMPER, PY, ROOT, file_size_mb, machine, now_iso, run_measured, write_result

AMT = str(ROOT / ".venv" / "bin" / "amt-migrate")

#: final status mix (status, cause, share), close to what the generated case mix ends in
MIX = [("provisioned", None, 0.86), ("needs_mebx", "suffix_mismatch", 0.05), ("failed", "unreachable", 0.02),
       ("failed", "auth_failed", 0.01), ("remediation_failed", "dhcp_scope_wrong", 0.04),
       ("unsupported", "unsupported_version", 0.02)]


def build_state(hosts: int, workdir: Path, seed: int = 3) -> tuple[Path, Path]:
    from lab.generate import build
    from tasks.store.state import StateStore

    _, inv = build(hosts, seed, window="24h", retry_interval="1h")
    db = workdir / "state" / "scale.db"
    inv["name"] = "scale"
    inv["state"] = f"sqlite:///{db}"
    inv_path = workdir / "inventory.yaml"
    inv_path.write_text(yaml.dump(inv, Dumper=DUMPER, sort_keys=False, default_flow_style=None, width=140))
    store = StateStore(inv["state"])
    store.ensure_hosts("wave-1", [(h["name"], h["address"]) for h in inv["hosts"]])
    store.close()
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    events, updates = [], []
    statuses, weights = list(range(len(MIX))), [m[2] for m in MIX]
    for i, h in enumerate(inv["hosts"]):
        name = h["name"]
        status, cause, _ = MIX[rng.choices(statuses, weights)[0]]
        at = t0 + timedelta(seconds=i * 0.01)
        ev_disc = {"os_suffix": "contoso.com", "trusted_suffix": "", "dhcp_suffix": rng.choice(["fabrikam.com", "contoso.com"]),
                   "amt_version_discovered": h["amt_version"], "provisioning_state": 0,
                   "suffix_source": "host interface (amt-hi get-dns-suffix)"}
        events.append((at, name, "discovery", "discover", "ok", "pending", "pending", None, ev_disc))
        first_ok = status == "provisioned" and rng.random() < 0.7
        events.append((at + timedelta(minutes=5), name, "pass1", "provision", "ok" if first_ok else "failed",
                       "pending", "provisioned" if first_ok else "failed", None if first_ok else "suffix_mismatch",
                       {"server_message": "provisioned" if first_ok else "generic failure", "attempt": 1}))
        final_ev = {"server_message": "x", "attempt": 2}
        if not first_ok and status != "unsupported":
            events.append((at + timedelta(minutes=10), name, "remediate", "start", "ok", "failed", "remediating", None, None))
            events.append((at + timedelta(minutes=11), name, "remediate", "amt_write", "failed", "remediating", "remediating",
                           "suffix_mismatch", {"detail": "host interface write refused: not allowed"}))
            events.append((at + timedelta(minutes=12), name, "remediate", "dhcp_renew", "verified", "remediating",
                           "remediated", None, {"detail": "renew 1: AMT took option 15 contoso.com", "renew_attempt": 1}))
            events.append((at + timedelta(minutes=20), name, "pass2", "provision", "ok" if status == "provisioned" else "failed",
                           "remediated", status, cause, final_ev))
        updates.append((status, cause, 2 if status == "provisioned" and not first_ok else (1 if status == "provisioned" else None),
                        json.dumps({**ev_disc, "server_message": "x"}),
                        f"rerun: {cause}" if cause else None, "pass2" if not first_ok else "pass1",
                        1 if first_ok else 2, "wave-1", name))
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.executemany("INSERT INTO amtmig_events (at, wave, host, stage, action, outcome, status_before, status_after, cause, "
                    "evidence) VALUES (?, 'wave-1', ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e[0].isoformat(sep=" ").replace("+00:00", ""), *e[1:8], json.dumps(e[8]) if e[8] else None)
                     for e in events])
    con.executemany("UPDATE amtmig_hosts SET status=?, cause=?, provisioned_in_pass=?, evidence=?, next_step=?, "
                    "last_stage=?, attempts=? WHERE wave=? AND host=?", updates)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return inv_path, db


def report_child(inv_path: str) -> None:
    """Run in a child process: what the report stage does (tasks.store.reports.write_wave_reports)."""
    from tasks.inventory.model import load_inventory
    from tasks.store.reports import write_wave_reports
    from tasks.store.state import StateStore

    t0 = time.monotonic()
    inv = load_inventory(inv_path)
    t1 = time.monotonic()
    store = StateStore(inv.state_url, create=False)
    files = write_wave_reports(inv, store, "wave-1")
    t2 = time.monotonic()
    print(json.dumps({"load_inventory_s": round(t1 - t0, 3), "write_reports_s": round(t2 - t1, 3),
                      "files_mb": {k: round(Path(v).stat().st_size / 1e6, 2) for k, v in files.items()}}))


def run(hosts: int, name: str | None = None) -> dict:
    name = name or f"state-{hosts}"
    workdir = ROOT / "state" / "bench" / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    t0 = time.monotonic()
    inv_path, db = build_state(hosts, workdir)
    build_s = time.monotonic() - t0
    con = sqlite3.connect(db)
    n_events = con.execute("SELECT count(*) FROM amtmig_events").fetchone()[0]
    con.close()
    commands = {
        "status --json": [AMT, "status", str(inv_path), "--json"],
        "status --state URL --json": [AMT, "status", "--state", f"sqlite:///{db}", "--json"],  # no inventory to load
        "plan --json": [AMT, "plan", str(inv_path), "--json"],
        "reports": [PY, "-m", "bench.state_scale", "--report-child", str(inv_path)],
        "inventory validate": [AMT, "validate", str(inv_path)],
    }
    timings = {}
    for label, cmd in commands.items():
        out = workdir / (label.replace(" ", "_").replace("-", "") + ".out")
        with open(out, "wb") as f:
            m = run_measured(cmd, stdout=f, sample=0.05)
        entry = {"wall_s": round(m["wall_s"], 2), "cpu_s": round(m["tree_cpu_s"], 2),
                 "peak_rss_mb": round(m["tree_max_rss_mb"], 1), "exit": m["exit"],
                 "output_mb": round(out.stat().st_size / 1e6, 2)}
        if label == "reports" and m["exit"] == 0:
            entry.update(json.loads(out.read_text().strip().splitlines()[-1]))
        timings[label] = entry
        print(f"{label}: {entry}", flush=True)
    return {"benchmark": "state_scale", "name": name, "date": now_iso(), "machine": machine(),
            "command": f".venv/bin/python -m bench.state_scale --hosts {hosts}",
            "parameters": {"hosts": hosts, "events": n_events, "status_mix": MIX},
            "build_s": round(build_s, 1), "state_db_mb": round(file_size_mb(db), 1),
            "inventory_mb": round(inv_path.stat().st_size / 1e6, 1), "timings": timings}


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--name", default=None)
    ap.add_argument("--report-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.report_child:
        report_child(args.report_child)
        return None
    res = run(args.hosts, args.name)
    print(f"wrote {write_result(res['name'], res)}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
