"""bench/results/README.md from the JSON results (smoke runs, named *-smoke, are left out)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import RESULTS

HEADER = """# Benchmark results

Produced by `make bench` (= `.venv/bin/python -m bench.run --quick`) or `make bench BENCH_ARGS=--full`;
one part alone: `.venv/bin/python -m bench.wave --hosts 1000`, `.venv/bin/python -m bench.ssh_peers`,
`.venv/bin/python -m bench.state_scale --hosts 100000`, `.venv/bin/python -m bench.outage` (a wave with its
PostgreSQL state store restarted for 10 s, against the same wave without; not part of `make bench`). Every number below comes from the JSON file named
in its section (machine, date, parameters inside). Single machine, 2 cores shared by the lab, the SSH
servers and the client: read the numbers as ratios. How each number is measured: `bench/wave.py`,
`bench/ssh_peers.py`, `bench/state_scale.py` (module docstrings).
"""


def _load() -> list[dict]:
    out = []
    for p in sorted(RESULTS.glob("*.json")):
        if p.stem.endswith("-smoke"):
            continue
        try:
            d = json.loads(p.read_text())
        except ValueError:
            continue
        d["_file"] = p.name
        out.append(d)
    return out


def _f(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def wave_section(d: dict) -> list[str]:
    p = d["parameters"]
    lat = ", ".join(f"{k} {v}" for k, v in p["latency"].items())
    lines = [f"## Whole wave: {p['hosts']:,} hosts, concurrency {p['concurrency']} (`{d['_file']}`)", "",
             f"`{d['command']}` — latency {lat}; {d['date']}", "",
             "| stage | hosts | wall (s) | hosts/s | latency bound (s) | wall ÷ bound | injected delay Σ (s) | timeouts Σ (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in d["stages"].items():
        inj = sum(s["injected_s_by_op"].values())
        lines.append(f"| {name} | {_f(s['hosts'])} | {_f(s['wall_s'], 1)} | {_f(s['hosts_per_s'], 1)} | "
                     f"{_f(s['latency_bound_s'], 1)} | {_f(s['ratio_to_bound'])} | {_f(inj, 0)} | {_f(s['timeouts_s'], 0)} |")
    w = d["wave"]
    lines.append(f"| **wave (4 stages)** | {_f(p['hosts'])} | **{_f(w['stages_wall_s'], 1)}** | {_f(w['hosts_per_s'], 1)} | "
                 f"{_f(w['latency_bound_s'], 1)} | **{_f(w['ratio_to_bound'])}** | | |")
    run = d["run"]
    lines += ["",
              f"- whole `amt-migrate run` process: {_f(run['wall_s'], 1)} s wall, of which {_f(w['first_stage_start_s'], 1)} s "
              f"before discovery starts (imports, Prefect's ephemeral server on a fresh database, flow set-up), "
              f"{_f(w['between_stages_s'], 1)} s between stages, {_f(w['after_stages_s'], 1)} s after pass 2 (report stage, shutdown)",
              f"- orchestration CPU: **{_f(d['orchestration_cpu_ms_per_host'], 1)} ms per host** (the run process alone; "
              f"{_f(d['orchestration_cpu_incl_prefect_server_ms_per_host'], 1)} ms with Prefect's server subprocess); "
              f"peak RSS {_f(d['peak_rss_mb'], 0)} MB",
              f"- state store {_f(d['state_db_mb'], 1)} MB ({_f(d['state_events'])} events); Prefect's database "
              f"{_f(d['prefect_db_mb'], 1)} MB; the lab used {_f(d['lab']['cpu_ms_per_host'], 1)} ms CPU per host",
              f"- final: " + ", ".join(f"{k} {v:,}" for k, v in sorted(d["final_status"].items())), ""]
    return lines


def peers_section(d: dict) -> list[str]:
    p = d["parameters"]
    lat = ", ".join(f"{k} {v}" for k, v in p["latency"].items())
    lines = [f"## DHCP-renew fan-out: project vs bare paramiko vs Ansible (`{d['_file']}`)", "",
             f"`{d['command']}` — command `{p['command']}`, latency {lat}; project and paramiko on {p['hosts']:,} hosts "
             f"(median of {p['rounds']}), Ansible `-m raw` on {p['ansible_hosts']:,} ({p['ansible_rounds']} run, KEX {p['ansible_kex']}; "
             f"`ansible_default_kex`: OpenSSH's default); "
             f"{d['date']}", "",
             "| server | conc. | client | hosts | wall (s) | ms per host | client CPU ms/host | server CPU ms/conn | ratio |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in d["configs"]:
        r = c["ratios"]
        for tool, s in c["summary"].items():
            srv = " + ".join(f"{k} {v:.1f}" for k, v in s["server_cpu_ms_per_conn"].items())
            ratio = ""
            if tool == "project" and "project_over_floor" in r:
                ratio = f"{r['project_over_floor']:.2f}× floor"
            if tool == "ansible" and "ansible_over_project" in r:
                ratio = f"{r['ansible_over_project']:.1f}× project"
            if tool == "ansible_default_kex" and "ansible_default_kex_over_project" in r:
                ratio = f"{r['ansible_default_kex_over_project']:.1f}× project"
            ok = "" if s["all_ok"] else " (errors)"
            bridge = f" ({c['bridge']} bridge)" if c.get("bridge") and tool == "project" else ""
            lines.append(f"| {c['server']}{bridge} | {c['concurrency']} | {tool}{ok} | {_f(s['hosts'])} | {_f(s['wall_s_median'], 1)} | "
                         f"{_f(s['ms_per_host'], 1)} | {_f(s['client_cpu_ms_per_host'], 1)} | {srv} | {ratio} |")
    bound = p.get("latency_bound_ms_per_host", {})
    if bound:
        lines += ["", "Latency bound of the fan-out (mean injected delay ÷ concurrency): "
                  + ", ".join(f"{v} ms/host at {k}" for k, v in bound.items()) + "."]
    return lines + [""]


def state_section(d: dict) -> list[str]:
    p = d["parameters"]
    lines = [f"## State at scale: {p['hosts']:,} hosts, {p['events']:,} events (`{d['_file']}`)", "",
             f"`{d['command']}` — state DB {_f(d['state_db_mb'], 1)} MB, inventory {_f(d['inventory_mb'], 1)} MB; {d['date']}", "",
             "| command | wall (s) | CPU (s) | peak RSS (MB) | output (MB) |", "|---|---:|---:|---:|---:|"]
    for label, t in d["timings"].items():
        extra = ""
        if "load_inventory_s" in t:
            extra = f" (load inventory {t['load_inventory_s']:.1f} s, write reports {t['write_reports_s']:.1f} s)"
        out = t["output_mb"] if label != "reports" else sum(t.get("files_mb", {}).values())
        lines.append(f"| `{label}`{extra} | {_f(t['wall_s'], 1)} | {_f(t['cpu_s'], 1)} | {_f(t['peak_rss_mb'], 0)} | {_f(out, 1)} |")
    return lines + [""]


def forecast_section(d: dict) -> list[str]:
    p = d["parameters"]
    lines = [f"## Forecast at scale: {p['hosts']:,} hosts, {p['waves']} waves, {p['sites']} sites (`{d['_file']}`)", "",
             f"`{d['command']}` — {d['what_ifs']} what-ifs computed; page {_f(d['page_mb'], 1)} MB; {d['date']}", "",
             "| command | wall (s) | CPU (s) | peak RSS (MB) | output (MB) |", "|---|---:|---:|---:|---:|"]
    for label, t in d["timings"].items():
        lines.append(f"| `{label}` | {_f(t['wall_s'], 1)} | {_f(t['cpu_s'], 1)} | {_f(t['peak_rss_mb'], 0)} | "
                     f"{_f(t['output_mb'], 1)} |")
    return lines + [""]


def _outage_rows(d: dict) -> list[str]:
    rows = ["| run | exit | `run` wall (s) | stages wall (s) | " + " | ".join(f"{st} (s)" for st in
                                                                         ("discovery", "pass1", "remediate", "pass2"))
            + " | final |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, r in (("without", d["baseline"]), (f"{d['parameters']['down_s']:g} s restart", d["with_restart"])):
        st = r["stages"]
        rows.append(f"| {label} | {r['exit']} | {_f(r['wall_s'], 1)} | {_f(r['stages_wall_s'], 1)} | "
                    + " | ".join(_f(st.get(k, {}).get("wall_s"), 1) for k in ("discovery", "pass1", "remediate", "pass2"))
                    + " | " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["final_status"].items())) + " |")
    return rows


def outage_section(d: dict) -> list[str]:
    p, hit = d["parameters"], d["with_restart"]
    return [f"## The state database restarted mid-wave: {p['hosts']:,} hosts (`{d['_file']}`)", "",
            f"`{d['command']}` — {p['state']}; restart at {p['restart_at']}; {d['date']}; {d['note']}", "",
            *_outage_rows(d), "",
            f"- the restart lasted {_f(hit['outage'].get('down_s'), 1)} s; the run met it: {hit['met_outage']}, rode it "
            f"through: {hit['rode_through']}; wall +{_f(d['delta_wall_s'], 1)} s, stages +{_f(d['delta_stages_wall_s'], 1)} s",
            f"- integrity (both runs): hosts whose store attempts differ from the lab's: "
            f"{len(d['baseline']['integrity']['hosts_attempts_differ'])} / {len(hit['integrity']['hosts_attempts_differ'])}; "
            f"attempts after a success: {d['baseline']['integrity']['after_success']} / {hit['integrity']['after_success']}",
            ""]


def write_readme(path: Path | None = None) -> Path:
    path = path or RESULTS / "README.md"
    lines = [HEADER]
    results = _load()
    for kind, fn in (("wave", wave_section), ("outage", outage_section), ("ssh_peers", peers_section),
                     ("state_scale", state_section), ("forecast_scale", forecast_section)):
        for d in sorted((x for x in results if x.get("benchmark") == kind),
                        key=lambda x: x.get("parameters", {}).get("hosts", 0)):
            lines += fn(d)
    notes = RESULTS / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text()]
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path




# -- the README's benchmark block: every figure in README.md comes from here ------------------------

README = RESULTS.parent.parent / "README.md"
BEGIN = "<!-- bench:begin: generated by `python -m bench.report` from bench/results/*.json; edit there, not here -->"
END = "<!-- bench:end -->"


def _by_name(results: list[dict]) -> dict[str, dict]:
    return {d["_file"][:-len(".json")]: d for d in results}


def _wave_rows(d: dict) -> list[str]:
    rows = ["| stage | hosts | wall (s) | hosts/s | latency bound (s) | wall ÷ bound |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in d["stages"].items():
        rows.append(f"| {name} | {_f(s['hosts'])} | {_f(s['wall_s'], 1)} | {_f(s['hosts_per_s'], 1)} | "
                    f"{_f(s['latency_bound_s'], 1)} | {_f(s['ratio_to_bound'])} |")
    w = d["wave"]
    rows.append(f"| **wave** | {_f(d['parameters']['hosts'])} | **{_f(w['stages_wall_s'], 1)}** | {_f(w['hosts_per_s'], 1)} | "
                f"{_f(w['latency_bound_s'], 1)} | **{_f(w['ratio_to_bound'])}** |")
    return rows


def _wave_facts(d: dict) -> str:
    return (f"Orchestration CPU {_f(d['orchestration_cpu_ms_per_host'], 1)} ms per host "
            f"({_f(d['orchestration_cpu_incl_prefect_server_ms_per_host'], 1)} ms with Prefect's server), peak RSS "
            f"{_f(d['peak_rss_mb'], 0)} MB, state store {_f(d['state_db_mb'], 1)} MB; final: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(d["final_status"].items())) + ".")


def readme_block(results: list[dict] | None = None) -> str:
    named = _by_name(results if results is not None else _load())
    out = [BEGIN, ""]
    for key in ("wave-1000", "wave-10000"):
        d = named.get(key)
        if not d:
            continue
        p = d["parameters"]
        lat = ", ".join(f"{k} {v}" for k, v in p["latency"].items())
        out += [f"Whole wave, {p['hosts']:,} lab hosts, concurrency {p['concurrency']}, latency {lat} "
                f"(`bench/results/{key}.json`, {d['date'][:10]}):", "", *_wave_rows(d), "", _wave_facts(d), ""]
    outage = named.get("outage-db-restart")
    if outage:
        p, hit = outage["parameters"], outage["with_restart"]
        out += [f"The same kind of wave, {p['hosts']:,} hosts at concurrency {p['concurrency']} on a PostgreSQL state store, "
                f"with the database restarted for {p['down_s']:g} s ({p['restart_at']}) and without "
                f"(`bench/results/outage-db-restart.json`, {outage['date'][:10]}; {outage['note']}):", "",
                *_outage_rows(outage), "",
                f"The run {'rode the restart through' if hit['rode_through'] else 'did not ride the restart through'}: "
                f"its stages took +{_f(outage['delta_stages_wall_s'], 1)} s (pass 1 "
                f"+{_f(hit['stages']['pass1']['wall_s'] - outage['baseline']['stages']['pass1']['wall_s'], 1)} s for "
                f"{_f(hit['outage'].get('down_s'), 1)} s down), the whole process +{_f(outage['delta_wall_s'], 1)} s "
                f"(the rest is Prefect's embedded server starting, which varies run to run); in both runs every attempt "
                f"the lab saw is counted in the store ({len(hit['integrity']['hosts_attempts_differ'])} hosts differ) and "
                f"none came after a success ({hit['integrity']['after_success']}).", ""]
    before, after = named.get("wave-1000-before-restructure"), named.get("wave-1000-after-restructure")
    if before and after:
        out += ["The layout change of issue 9 (rooms, the story in flows/migrate.py, dataclass outcomes), measured side "
                "by side in one session on the same fleet (`bench/results/wave-1000-before-restructure.json`, "
                "`wave-1000-after-restructure.json`):", "",
                "| | wave wall (s) | wall ÷ bound | orchestration CPU ms/host | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
        for label, d in (("before", before), ("after", after)):
            out.append(f"| {label} | {_f(d['wave']['stages_wall_s'], 1)} | {_f(d['wave']['ratio_to_bound'])} | "
                       f"{_f(d['orchestration_cpu_ms_per_host'], 1)} | {_f(d['peak_rss_mb'], 0)} |")
        out.append("")
    peers = named.get("ssh-peers")
    if peers:
        p = peers["parameters"]
        out += [f"DHCP renew fan-out, the same command on the same hosts, side by side (`bench/results/ssh-peers.json`, "
                f"{peers['date'][:10]}; project and bare paramiko on {p['hosts']:,} hosts, Ansible on "
                f"{p['ansible_hosts']:,}; medians of {p['rounds']}):", "",
                "| server | concurrency | project ms/host (client CPU) | bare paramiko | Ansible | Ansible ÷ project | "
                "project ÷ paramiko |", "|---|---:|---|---|---|---:|---:|"]
        for c in peers["configs"]:
            s, r = c["summary"], c["ratios"]

            def cell(tool):
                t = s.get(tool)
                return f"{_f(t['ms_per_host'], 1)} ({_f(t['client_cpu_ms_per_host'], 1)})" if t else "–"
            ansible = cell("ansible")
            ratio = f"{r['ansible_over_project']:.1f}×" if "ansible_over_project" in r else "–"
            if "ansible_default_kex" in s:
                ansible += f"; OpenSSH default kex {cell('ansible_default_kex')}"
                ratio += f" / {r['ansible_default_kex_over_project']:.1f}×"
            out.append(f"| {c['server']} | {c['concurrency']} | {cell('project')} | {cell('paramiko')} | {ansible} | "
                       f"{ratio} | {_f(r.get('project_over_floor'))}× |")
        out.append("")
    state = named.get("state-100000") or named.get("state-10000")
    if state:
        hosts = state["parameters"]["hosts"]
        t = state["timings"]
        out += [f"State at {hosts:,} hosts (`bench/results/{state['_file']}`): "
                + "; ".join(f"`{k}` {_f(v['wall_s'], 1)} s / {_f(v['peak_rss_mb'], 0)} MB" for k, v in t.items()) + ".", ""]
    fc = named.get("forecast-10000")
    if fc:
        t = fc["timings"]
        out += [f"Forecast of {fc['parameters']['hosts']:,} hosts in {fc['parameters']['waves']} waves with "
                f"{fc['what_ifs']} what-ifs (`bench/results/forecast-10000.json`, {fc['date'][:10]}): "
                + "; ".join(f"`{k}` {_f(v['wall_s'], 1)} s wall / {_f(v['cpu_s'], 1)} s CPU / "
                            f"{_f(v['peak_rss_mb'], 0)} MB" for k, v in t.items()) + ".", ""]
    out.append(END)
    return "\n".join(out)


def write_main_readme(path: Path | None = None) -> Path:
    """Replace README.md's benchmark block with the one generated from the JSON files."""
    path = path or README
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + readme_block() + text[end:])
    return path


if __name__ == "__main__":
    print(write_readme())
    print(write_main_readme())
