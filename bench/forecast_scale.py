"""The forecast at scale: `amt-migrate forecast --json` (with its what-ifs) and `--html` on N hosts.

    python -m bench.forecast_scale --hosts 10000

Builds an inventory of N hosts in 5 waves over 40 sites (a DHCP scope and a technician location each; leases
of 1 h, 1 d and 8 d), the case mix of a real fleet (matching suffixes, mismatches fixed by a renew or a WS-Man
write, kiosks without SSH that wait for their own renewal, activated hosts nobody holds the password of, old
firmware), a provisioning rate and technicians per site; then times each command in its own process (wall,
CPU, peak RSS from wait4) exactly as a lead runs it. No state store: the forecast of waves not yet run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys

import yaml

from bench.common import DUMPER, ROOT, machine, now_iso, run_measured, write_result

AMT = str(ROOT / ".venv" / "bin" / "amt-migrate")
SITES = 40
LEASES = ["1h", "1d", "8d"]
MIX = [("match", 0.55), ("renew", 0.2), ("wsman", 0.08), ("kiosk", 0.1), ("technician", 0.05), ("old", 0.02)]


def _host(i: int, site: int, case: str, rng: random.Random) -> dict:
    h = {"name": f"WS-{i:05d}", "address": f"10.{site}.{i // 250 % 250}.{i % 250 + 1}", "amt_version": "11.8.50",
         "tags": [f"site-{site:02d}"]}
    if case == "match":
        h["amt_suffix"] = "contoso.com"
    elif case in ("renew", "kiosk"):
        h["amt_suffix"] = "fabrikam.com"
        if case == "kiosk":
            h["tags"].append("kiosk")
    elif case == "wsman":
        h.update(amt_suffix="fabrikam.com", legacy_managed=True)
    elif case == "technician":
        h.update(amt_state="activated", control_mode="acm", legacy_managed=False)
    else:
        h["amt_version"] = rng.choice(["3.0.1", "2.6.3"])
    return h


def build_inventory(hosts: int, seed: int = 5) -> dict:
    rng = random.Random(seed)
    cases, weights = [c for c, _ in MIX], [w for _, w in MIX]
    out_hosts = [_host(i, i % SITES, rng.choices(cases, weights)[0], rng) for i in range(hosts)]
    per_wave = -(-hosts // 5)
    for i, h in enumerate(out_hosts):
        h["tags"].append(f"wave-{i // per_wave + 1}")
    return {
        "name": "forecast-scale",
        "provisioning": {"server": "lab", "url": "http://127.0.0.1:9", "certificate_suffix": "contoso.com",
                         "rate": "20/min"},
        "window": {"interface_open": "24h", "retry_interval": "24h"},
        "credentials": {"ssh": {"user": "migrator", "key_env": "AMTMIG_SSH_KEY"},
                        "legacy_amt": {"user": "admin", "password_env": "AMTMIG_LEGACY_AMT_PASSWORD"}},
        "technicians": {f"site-{s:02d}": f"{rng.choice([2, 4, 6])}/day" for s in range(SITES)},
        "dhcp_scopes": [{"name": f"site-{s:02d}", "subnet": f"10.{s}.0.0/16", "domain_name": "contoso.com",
                         "lease": LEASES[s % len(LEASES)]} for s in range(SITES)],
        "hosts": out_hosts,
        "waves": [{"name": f"wave-{w + 1}", "start": f"2027-0{1 + w}-04T07:00:00Z",
                   "hosts": [f"tag:wave-{w + 1}"],
                   "remediation": ["amt_write", "dhcp_renew", "mebx"]} for w in range(5)],
    }


def run(hosts: int, name: str | None = None) -> dict:
    name = name or f"forecast-{hosts}"
    workdir = ROOT / "state" / "bench" / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    inv_path = workdir / "inventory.yaml"
    inv_path.write_text(yaml.dump(build_inventory(hosts), Dumper=DUMPER, sort_keys=False, default_flow_style=None,
                                  width=140))
    commands = {
        "forecast --json": [AMT, "forecast", str(inv_path), "--json", "--no-ssh", "tag:kiosk"],
        "forecast --html": [AMT, "forecast", str(inv_path), "--csv", "--no-ssh", "tag:kiosk", "--html",
                            str(workdir / "forecast.html")],
        "plan --json": [AMT, "plan", str(inv_path), "--json", "--offline"],
    }
    timings = {}
    for label, cmd in commands.items():
        out = workdir / (label.replace(" ", "_").replace("-", "") + ".out")
        with open(out, "wb") as f:
            m = run_measured(cmd, stdout=f, sample=0.05)
        timings[label] = {"wall_s": round(m["wall_s"], 2), "cpu_s": round(m["tree_cpu_s"], 2),
                          "peak_rss_mb": round(m["tree_max_rss_mb"], 1), "exit": m["exit"],
                          "output_mb": round(out.stat().st_size / 1e6, 2)}
        print(f"{label}: {timings[label]}", flush=True)
    import json

    doc = json.loads((workdir / "forecast_json.out").read_text())
    return {"benchmark": "forecast_scale", "name": name, "date": now_iso(), "machine": machine(),
            "command": f".venv/bin/python -m bench.forecast_scale --hosts {hosts}",
            "parameters": {"hosts": hosts, "waves": 5, "sites": SITES, "mix": MIX, "leases": LEASES},
            "timings": timings, "what_ifs": len(doc["what_ifs"]),
            "page_mb": round((workdir / "forecast.html").stat().st_size / 1e6, 2),
            "waves": {w["wave"]: {"done_100": w["done_100"], "need_a_person": len(w["need_a_person"])}
                      for w in doc["waves"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--name")
    args = ap.parse_args(argv)
    result = run(args.hosts, args.name)
    print(write_result(result["name"], result))
    return 0 if all(t["exit"] == 0 for t in result["timings"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_inventory", "run"]
