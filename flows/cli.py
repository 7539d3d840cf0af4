"""The `amt-migrate` command line: tables for people, --json/--csv for scripts, exit 2 on bad input."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tasks.inventory.model import Inventory, load_inventory
from tasks.rules.suffix import InvalidValue, check_suffix
from tasks.inventory.yaml_source import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT):
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _load(path: Path, *, show_warnings: bool = True) -> Inventory:
    try:
        inv = load_inventory(path)
    except InputError as exc:
        for p in exc.problems:
            err.print(str(p), highlight=False, markup=False)
        err.print(f"{len(exc.problems)} error(s) in {path}", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    for w in inv.warnings if show_warnings else []:
        err.print(f"{w} (warning)", highlight=False, markup=False)
    return inv


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        fail("--json and --csv together: choose one")


def _check_choices(option: str, given: list[str] | tuple[str, ...], valid) -> None:
    """An unknown filter value would select nothing and read as "nothing wrong": refuse it, listing the valid ones."""
    valid = [str(v) for v in valid]
    bad = [g for g in given if g not in valid]
    if bad:
        fail(f"{option} {', '.join(repr(b) for b in bad)}: not a valid value; choose from {', '.join(valid)}")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _plain_table(rows: list[dict], columns: list[str]) -> str:
    """Columns padded to their widest cell, one row per line: a pipe or a file never wraps a word in two."""
    cells = [[_cell(r.get(c)).replace("\n", " ") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _emit_rows(rows: list[dict], columns: list[str], *, as_json: bool, as_csv: bool, title: str) -> None:
    _one_format(as_json, as_csv)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    elif as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
        sys.stdout.write(buf.getvalue())
    elif not out.is_terminal:
        sys.stdout.write(_plain_table(rows, columns))
    else:
        t = Table(title=title, show_lines=False)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*("" if r.get(c) is None else (", ".join(r[c]) if isinstance(r.get(c), list) else str(r[c])) for c in columns))
        out.print(t)


@app.command()
def validate(inventory: Path = typer.Argument(..., help="inventory YAML"),
             offline: bool = typer.Option(False, "--offline", help="do not read the new server's domains "
                                          "(provisioning.api)")):
    """Check an inventory: every problem is printed as FILE:LINE: field: message (exit 2).
    With provisioning.api the new server's domains are read too (exit 2 when it can't be reached)."""
    inv = _load(inventory)
    domains, warnings = _server_domains(inv, offline=offline)
    waves = ", ".join(f"{w.name} ({len(inv.wave_hosts(w))})" for w in inv.waves) or "no waves"
    suffixes = (f"certificate suffixes {', '.join(d.suffix for d in domains)} (from RPS at {inv.provisioning.api.url})"
                if domains else f"certificate suffix {inv.certificate_suffix}")
    out.print(f"{inventory}: ok — {len(inv.hosts)} hosts, waves: {waves}, {suffixes}", highlight=False)
    for w in warnings:
        err.print(f"{w} (warning)", highlight=False, markup=False)


def _server_domains(inv: Inventory, *, offline: bool, wave: str | None = None):
    """The new server's domains (RPS) when the inventory names provisioning.api, and the warnings they
    raise (a certificate expiring before a wave ends; the inventory's suffix served by no domain).

    (None, [note]) without an API or --offline. An API that can't be read is an error (exit 2)
    naming its URL: a plan or validation against the wrong certificates must not pass silently."""
    from datetime import datetime, timezone

    from tasks.rules.domains import Domain, expiry_warnings, wave_end

    api = inv.provisioning.api
    if api is None:
        return None, []
    if offline:
        return None, [f"--offline: the new server's domains at {api.url} were not read; using certificate suffix "
                      f"{inv.certificate_suffix} from the inventory"]
    from tasks.adapters.dmt_api import DmtApiError, make_dmt_client
    from tasks.inventory.secrets import SecretUnavailable

    try:
        client = make_dmt_client(inv)
    except SecretUnavailable as exc:
        fail(f"provisioning.api at {api.url}: {exc} (or run with --offline)")
    try:
        read = client.domains()
    except DmtApiError as exc:
        fail(f"provisioning.api at {api.url} can't be read: {exc} (fix it, or run with --offline to use "
             f"certificate suffix {inv.certificate_suffix} alone)")
    finally:
        client.close()
    if not read:
        fail(f"RPS at {api.url} holds no domains: no host can be activated in admin control mode")
    domains = [Domain(d.suffix, d.expires, d.profile_name) for d in read]
    now = datetime.now(timezone.utc)
    waves = [inv.wave(wave)] if wave else list(inv.waves)
    ends = {w.name: wave_end(w.start, inv.window.interface_open, now) for w in waves} or \
        {"(no wave)": wave_end(None, inv.window.interface_open, now)}
    warnings = expiry_warnings(domains, ends, now)
    if inv.certificate_suffix not in {d.suffix for d in domains}:
        warnings.append(f"certificate_suffix {inv.certificate_suffix} (the suffix remediation writes) is no RPS domain's "
                        f"suffix ({', '.join(d.suffix for d in domains)}): RPS compares the suffix rpc-go reports "
                        f"exactly, so remediated hosts would be refused")
    return domains, warnings


@app.command("suffix-check")
def suffix_check(
    amt_version: str = typer.Option(..., "--amt-version", help="AMT firmware version, e.g. 11.8.50"),
    amt_suffix: str = typer.Option(..., "--amt-suffix", help='the DNS suffix AMT holds ("" for blank)'),
    cert_suffix: str = typer.Option(..., "--cert-suffix", help="the provisioning certificate's suffix"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Would AMT accept this certificate? Exit 0 on match, 1 on mismatch/blank/unsupported, 2 on bad input."""
    try:
        verdict = check_suffix(amt_version, amt_suffix, cert_suffix)
    except InvalidValue as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(verdict.as_dict()) + "\n")
    else:
        colour = "green" if verdict.match else "red"
        out.print(f"[{colour}]{'match' if verdict.match else 'no match'}[/{colour}] ({verdict.rule}"
                  f"{'' if verdict.supported else ', unsupported firmware'}): {verdict.reason}", highlight=False)
    raise typer.Exit(0 if verdict.match else 1)


@app.command()
def plan(
    inventory: Path,
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
    why: bool = typer.Option(False, "--why", help="add each verdict's reason to the table"),
    live: bool = typer.Option(True, "--live/--offline", help="read option 15 of scopes with a kea:/windows_dhcp: "
                              "source, and the new server's domains (provisioning.api)"),
):
    """Pre-flight: who will fail and why, from what is known. Touches no host (only DHCP servers named by
    scopes, and the new server's API when provisioning.api names it: its domains are the certificate suffixes)."""
    from tasks.rules.plan import build_plan

    _one_format(as_json, as_csv)
    inv = _load(inventory, show_warnings=False)  # the plan lists them with its own
    if live:
        from tasks.adapters.dhcp import with_live_dhcp

        inv = with_live_dhcp(inv)  # "option 15 from Kea at URL" in warnings; unreadable sources are warned
    if wave is not None:
        _check_wave(inv, wave)
    domains, domain_warnings = _server_domains(inv, offline=not live, wave=wave)
    suffixes = [d.suffix for d in domains] if domains else None
    try:
        p = build_plan(inv, wave, _discovered_evidence(inv, live), suffixes)
    except KeyError as exc:
        fail(str(exc.args[0]))
    p.warnings.extend(domain_warnings)
    rows = [h.as_dict() for h in p.hosts]
    if as_json:
        sys.stdout.write(json.dumps({"inventory": inv.name, "certificate_suffix": inv.certificate_suffix,
                                     "certificate_suffixes": suffixes or [inv.certificate_suffix],
                                     "domains": [{"suffix": d.suffix, "profile_name": d.name,
                                                  "expires": d.expires.isoformat() if d.expires else None}
                                                 for d in domains or []],
                                     "counts": p.counts(), "paths": p.path_counts(), "warnings": p.warnings,
                                     "scopes": p.scopes, "hosts": rows}, indent=2) + "\n")
        return
    cols = ["host", "address", "wave", "amt_version", "outcome", "cause", "suffix_source", "suffix_used", "rule",
            "remediation", "reason", "path", "path_reason"]  # new columns last: scripts reading by position keep working
    if as_csv:
        _emit_rows(rows, cols, as_json=False, as_csv=True, title="")
        return
    for r in rows:
        r["suffix"] = f"{r['suffix_used'] or '-'} ({r['suffix_source']})" if r["suffix_used"] is not None else f"- ({r['suffix_source']})"
        r["version"] = r["amt_version"]
    table_cols = ["host", "wave", "path", "version", "outcome", "cause", "suffix", "remediation"] + (
        ["reason", "path_reason"] if why else [])
    _emit_rows(rows, table_cols, as_json=False, as_csv=False,
               title=f"Plan for {inv.name}{' / ' + wave if wave else ''} — "
                     + (f"certificate suffixes {', '.join(suffixes)} (RPS)" if suffixes
                        else f"certificate suffix {inv.certificate_suffix}"))
    out.print("  ".join(f"{k}: {v}" for k, v in sorted(p.counts().items())), highlight=False)
    for w_name, per in p.path_counts().items():
        out.print(f"paths in {w_name}: " + "  ".join(f"{k}: {v}" for k, v in per.items()), highlight=False)
    for w in p.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def _discovered_evidence(inv: Inventory, live: bool) -> dict[str, dict]:
    """What discovery recorded per host, when the inventory's state store already exists (never created here).
    A SQLite file is read even --offline; a database server only when the plan may use the network."""
    from tasks.store.state import StateError, StateStore

    url = inv.state_url
    if url.startswith("sqlite:///"):
        if not Path(url[len("sqlite:///"):]).exists():
            return {}
    elif not live:
        return {}
    try:
        store = StateStore(url, create=False)
    except StateError:
        return {}
    try:
        return {r.host: r.evidence or {} for r in store.hosts()}
    except Exception:  # noqa: BLE001 - an unreadable store leaves the plan to the export, as before a run
        return {}
    finally:
        store.close()


@app.command("import-legacy")
def import_legacy(
    export: Path = typer.Argument(..., help="the legacy console's export: CSV (any Windows encoding), XLSX, JSON or SCS XML"),
    output: Path = typer.Option(..., "-o", "--output", help="inventory YAML to write"),
    cert_suffix: str = typer.Option(..., "--cert-suffix", help="the new provisioning certificate's suffix"),
    source: Optional[str] = typer.Option(None, "--from", help="configmgr | ema | meshcentral | scs | csv "
                                         "(default: detected from the columns)"),
    name: Optional[str] = typer.Option(None, "--name", help="inventory name (default: the output file's stem)"),
    server: str = typer.Option("lab", "--server"),
    url: Optional[str] = typer.Option(None, "--url"),
    ca_bundle: Optional[Path] = typer.Option(None, "--ca-bundle", help="PEM of the CA that issued AMT's TLS "
                                             "certificates (needed when the console provisioned AMT with TLS)"),
    no_tls: bool = typer.Option(False, "--no-tls", help="write amt_tls: false: reach AMT on plain 16992 everywhere"),
    mapping: list[str] = typer.Option([], "--map", help="COLUMN=field, e.g. 'Machine=name'"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing inventory"),
):
    """Read a legacy export into an inventory; bad rows are reported by row number and nothing is written."""
    from tasks.inventory.legacy_import import build_inventory, import_export, write_inventory_atomically

    overrides = {}
    for m in mapping:
        if "=" not in m:
            fail(f"--map {m!r}: expected COLUMN=field")
        col, fld = m.rsplit("=", 1)
        overrides[col.strip()] = fld.strip()
    try:
        result = import_export(export, source, overrides)
        if result.problems:
            for p in result.problems:
                err.print(str(p), highlight=False, markup=False)
            fail(f"{len(result.problems)} bad row(s) in {export}; nothing written")
        if not result.hosts:
            fail(f"{export}: no host rows" + (f" ({len(result.skipped)} skipped: no AMT)" if result.skipped else ""))
        hosts = result.hosts
        if no_tls:
            hosts = [{**h, "amt_tls": False} for h in hosts]
        tls = [h["name"] for h in hosts if h.get("amt_tls")]
        if tls and ca_bundle is None:
            fail(f"{len(tls)} host(s) ({', '.join(tls[:5])}{' ...' if len(tls) > 5 else ''}) were provisioned with TLS "
                 "by the legacy console: WS-Man reaches them on 16993, verifying AMT's certificate: pass --ca-bundle "
                 "PEM (the CA that issued AMT's certificates), or --no-tls if AMT listens on plain 16992; nothing written")
        bundle = str(ca_bundle.resolve()) if ca_bundle is not None else None
        data = build_inventory(name or output.stem, cert_suffix, hosts, server, url, bundle)
        write_inventory_atomically(data, output, force=force)
    except InputError as exc:
        for p in exc.problems:
            err.print(str(p), highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    for line in result.summary():
        out.print(line, highlight=False, markup=False)
    out.print(f"wrote {output}: {len(hosts)} hosts in wave-1 — review waves and credentials, then "
              f"`amt-migrate plan {output}`", highlight=False)


def _check_wave(inv: Inventory, wave: str) -> None:
    names = [w.name for w in inv.waves]
    if wave not in names:
        fail(f"--wave: no wave {wave!r} in {inv.name}; choose from {', '.join(names) or '(no waves)'}")


@app.command()
def closeout(
    inventory: Path,
    wave: str = typer.Option(..., "--wave", "-w"),
    state: Optional[str] = typer.Option(None, "--state", help="override the inventory's state URL"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for the report and removal CSVs "
                                           "(default: the state store's reports folder)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Close out a wave: each host's record in the new server, the legacy records to remove (a CSV per
    console, for its owner's bulk removal), and hosts still open with their next step and deadline."""
    from dataclasses import asdict

    from tasks.store.closeout import build_closeout
    from tasks.store.reports import reports_dir

    inv = _load(inventory, show_warnings=False)
    _check_wave(inv, wave)
    store = _open_store(None, state or inv.state_url)
    try:
        report = build_closeout(inv, store, wave)
    finally:
        store.close()
    folder = out_dir or reports_dir(inv)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    md = folder / f"closeout-{wave}.md"
    md.write_text(report.markdown(), encoding="utf-8")
    written.append(md)
    for console, text in report.removal_csvs().items():
        f = folder / f"legacy-removal-{wave}-{console}.csv"
        f.write_text(text, encoding="utf-8-sig")  # BOM: Excel and Windows PowerShell 5.1 Import-Csv read UTF-8 right
        written.append(f)
    if as_json:
        sys.stdout.write(json.dumps({"wave": wave, "migrated": [asdict(m) for m in report.migrated],
                                     "open": [asdict(o) for o in report.open], "not_in_store": report.not_in_store,
                                     "files": [str(f) for f in written]}, indent=2) + "\n")
        return
    out.print(report.markdown(), highlight=False, markup=False)
    for f in written:
        out.print(f"wrote {f}", highlight=False, markup=False)


def _open_store(inventory: Optional[Path], state: Optional[str], *, create: bool = False):
    from tasks.store.state import StateError, StateStore

    if inventory is None and state is None:
        fail("give an INVENTORY or --state URL")
    url = state or _load(inventory).state_url
    try:
        return StateStore(url, create=create)
    except StateError as exc:
        fail(str(exc))


def _check_store_wave(store, wave: Optional[str]) -> None:
    """A wave the store has never heard of would show an empty table: say so, listing the ones it has."""
    if wave is None:
        return
    known = store.waves()
    if wave not in known:
        fail(f"--wave {wave!r}: no such wave in the state store; choose from {', '.join(known) or '(none run yet)'}")


def _ago(delta_seconds: float) -> str:
    """3 h 12 min / 45 min / 20 s: what a lead reads at a glance."""
    s = int(abs(delta_seconds))
    h, rem = divmod(s, 3600)
    m = rem // 60
    if h >= 48:
        return f"{h // 24} d {h % 24} h"
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min"
    return f"{s} s"


def window_text(closes_at, now=None) -> str:
    """'2025-03-04 10:00:00 UTC (closes in 3 h 12 min)' or '... (closed 2 h ago)'; '' when never opened."""
    from datetime import datetime, timezone

    if closes_at is None:
        return ""
    now = now or datetime.now(timezone.utc)
    when = closes_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = (closes_at - now).total_seconds()
    return f"{when} (closes in {_ago(left)})" if left > 0 else f"{when} (closed {_ago(left)} ago)"


def _valid_filters(status_: list[str], cause: list[str]) -> None:
    from tasks.rules.host_state import Cause, Status

    _check_choices("--status", status_, [x.value for x in Status])
    _check_choices("--cause", cause, [x.value for x in Cause])


@app.command()
def status(
    inventory: Optional[Path] = typer.Argument(None),
    state: Optional[str] = typer.Option(None, "--state", help="SQLAlchemy URL of the state store"),
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    status_: list[str] = typer.Option([], "--status"),
    cause: list[str] = typer.Option([], "--cause"),
    hosts: Optional[str] = typer.Option(None, "--hosts", help="host name glob"),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
):
    """Where every host stands, from the state store: totals, and each window as time left."""
    from collections import Counter

    _one_format(as_json, as_csv)
    _valid_filters(status_, cause)
    store = _open_store(inventory, state)
    _check_store_wave(store, wave)
    records = store.hosts(wave, status=status_ or None, cause=cause or None, pattern=hosts)
    rows = [r.as_dict() for r in records]
    for r in rows:  # the plan's path, once the run routed the host (technician, adopt, unprovision_first)
        ev = r.get("evidence") or {}
        r["path"] = ev.get("path") or "reprovision"
        r["next_step"] = r["next_step"] or ev.get("next_step")
    for r, rec in zip(rows, records):
        if rec.window_closes_at is not None:
            r["window_closes_at"] = rec.window_closes_at.isoformat(timespec="seconds")
        if (rec.evidence or {}).get("unverified") and rec.status == "remediated":
            r["status"] = "remediated (unverified)" if not (as_json or as_csv) else r["status"]
    if as_json or as_csv:
        cols = ["host", "wave", "status", "cause", "provisioned_in_pass", "window_closes_at", "attempts", "next_step",
                "path"]  # new column last: scripts reading the CSV by position keep working
        _emit_rows(rows, cols, as_json=as_json, as_csv=as_csv, title="Host status")
        return
    for r, rec in zip(rows, records):
        r["window"] = window_text(rec.window_closes_at)
    cols = ["host", "wave", "status", "cause", "provisioned_in_pass", "window", "attempts", "next_step", "path"]
    _emit_rows(rows, cols, as_json=False, as_csv=False, title="Host status")
    totals = Counter(r.status for r in records)
    out.print(f"{len(records)} host(s): " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none"),
              highlight=False)


@app.command()
def history(
    hosts: list[str] = typer.Argument(..., help="host names (any case)"),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i"),
    state: Optional[str] = typer.Option(None, "--state"),
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    as_json: bool = typer.Option(False, "--json"),
):
    """The append-only history of one or more hosts."""
    store = _open_store(inventory, state)
    _check_store_wave(store, wave)
    events = [e.as_dict() for e in store.history(hosts, wave)]
    if not events and not as_json:
        fail(f"no history for {', '.join(hosts)}", 1)
    for e in events:
        e["at"] = e["at"][:19].replace("T", " ") + " UTC" if not as_json else e["at"]
    cols = ["at", "wave", "host", "stage", "action", "outcome", "status_before", "status_after", "cause", "evidence"]
    _emit_rows(events, cols, as_json=as_json, as_csv=False, title="History")


STAGE_CHOICES = ("discovery", "pass1", "remediate", "pass2")


def _prefect_defaults() -> None:
    """The embedded Prefect server needs 8-23 s to start on a small machine: give it room."""
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here: don't try


def _refuse_missing_infrastructure(inv: Inventory) -> None:
    """The provisioning server and every referenced credential, checked before any host is touched: a run
    without them would record its own failure against every host."""
    from flows.preflight import infrastructure_problems

    problems = infrastructure_problems(inv)
    if problems:
        for p in problems:
            err.print(f"error: {p}", highlight=False, markup=False)
        fail(f"{len(problems)} problem(s) with this run's own infrastructure; no host was touched")


def run_wave(inventory: Path, wave: str, *, selection: dict | None = None, state: str | None = None) -> int:
    """Run migrate_wave in this process and print the outcome; returns the exit code."""
    _prefect_defaults()
    inv = _load(inventory)
    _check_wave(inv, wave)
    # an unopenable URL or a newer schema is bad input: say so (exit 2) before Prefect starts, writing nothing
    _open_store(None, state or inv.state_url, create=True).close()
    _refuse_missing_infrastructure(inv)
    from prefect import tags

    from flows.migrate import migrate_wave

    from flows import terminal

    try:
        with tags(f"wave:{wave}", f"inventory:{inv.name}"), terminal.progress(out):
            final = migrate_wave(str(inventory.resolve()), wave, inventory_name=inv.name, selection=selection,
                                 state=state, return_state=True)
    except Exception as exc:  # its Prefect server gone past the client's retries: a clean stop (flows/outages.py)
        from rich.markup import escape

        from flows.outages import prefect_api_lost, stopped_message

        lost = prefect_api_lost(exc)
        if lost is None:
            raise
        fail(escape(f"Stopped: {stopped_message(lost, str(inventory), wave)}"))
    report = None
    try:
        report = final.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - the state message below says what happened
        report = None
    # a gated wave is not done: never "Completed", whatever else its hosts are
    waiting = isinstance(report, dict) and bool(report.get("waiting"))
    shown = "Waiting" if waiting else final.name
    if isinstance(report, dict) and "summary" in report:
        store = _open_store(None, state or inv.state_url)
        lines = terminal.closing_summary(inv, report["summary"], terminal.unfinished_hosts(store, wave),
                                         shown, final.message or "")
        store.close()
        for name, path in report.get("files", {}).items():
            lines.append(f"{name}: {path}")
        out.print("\n".join(lines), highlight=False, markup=False)
    else:
        out.print(f"{shown}: {final.message or ''}", highlight=False, markup=False)
    if waiting:
        return EXIT_WAITING
    if final.is_completed():
        return 0
    if (final.name or "").startswith("Stopped:"):  # its own infrastructure went away mid-run (flows/outages.py)
        return EXIT_BAD_INPUT
    return EXIT_HOSTS_LEFT if (final.name or "").startswith("Completed with") else 1


EXIT_WAITING = 3  # the wave is waiting for a decision (a gate): not done, not failed
EXIT_HOSTS_LEFT = 4  # the wave ran to its end, but hosts are left failed or for a technician (the summary says who)


@app.command()
def run(
    inventory: Path,
    wave: str = typer.Option(..., "--wave", "-w"),
    state: Optional[str] = typer.Option(None, "--state", help="override the inventory's state URL"),
):
    """Run a wave: discovery, pass 1, remediation, pass 2, report. A finished wave is left alone.

    Exit 0 done, 1 halted or failed, 2 bad input or missing infrastructure (nothing touched), 3 waiting for a
    go/no-go decision (the output says the command that continues it), 4 ran to its end with hosts left
    failed or for a technician (the summary names them and the next commands)."""
    raise typer.Exit(run_wave(inventory, wave, state=state))


@app.command()
def rerun(
    inventory: Path,
    wave: str = typer.Option(..., "--wave", "-w"),
    status_: list[str] = typer.Option([], "--status", help="only hosts in this status (repeatable)"),
    cause: list[str] = typer.Option([], "--cause", help="only hosts with this cause (repeatable)"),
    hosts: Optional[str] = typer.Option(None, "--hosts", help="only hosts matching this glob"),
    from_stage: Optional[str] = typer.Option(
        None, "--from", help="discovery | pass1 | remediate | pass2; default: from each host's cause "
                             "(unreachable/auth_failed: discovery; suffix causes: remediate; needs_mebx: pass2)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the hosts and the stage each would start at; change nothing"),
    state: Optional[str] = typer.Option(None, "--state"),
    yes: bool = typer.Option(False, "--yes", "-y", help="don't ask on a terminal before acting"),
):
    """Rerun a subset of a wave; lists the hosts and where each starts before acting.

    A needs_mebx host goes on to pass 2 only once its technician's change is recorded
    (`amt-migrate mebx done`); until then it stays on the work list."""
    from tasks.rules.selection import AUTO, Selection, mebx_confirmed, start_reason

    if from_stage is not None:
        _check_choices("--from", [from_stage], STAGE_CHOICES)
    _valid_filters(status_, cause)
    inv = _load(inventory)
    _check_wave(inv, wave)
    sel = Selection(tuple(status_), tuple(cause), hosts, explicit=True, from_stage=from_stage or AUTO)
    store = _open_store(None, state or inv.state_url, create=True)
    # a provisioned or unsupported host is never acted on again: listing it would promise work that won't happen
    records = [r for r in store.hosts(wave) if sel.matches(r) and r.status not in ("provisioned", "unsupported")]
    starts = sel.starts(records)
    store.close()
    if not records:
        out.print(f"no host of {wave} matches: nothing to do", highlight=False)
        raise typer.Exit(0)
    how = f"--from {from_stage}" if from_stage else "--from not given: each host starts where its cause calls for"
    by_stage: dict[str, int] = {}
    for r in records:
        by_stage[starts[r.host]] = by_stage.get(starts[r.host], 0) + 1
    out.print(f"rerun of {len(records)} host(s) of {wave} ({how}): "
              + ", ".join(f"{n} from {st}" for st, n in sorted(by_stage.items(), key=lambda kv: STAGE_CHOICES.index(kv[0]))),
              highlight=False)
    rows = [{"host": r.host, "status": r.status, "cause": r.cause or "", "starts_at": starts[r.host],
             "why": start_reason(r) if not from_stage else "--from"} for r in records]
    waiting = [r.host for r in records if r.status == "needs_mebx" and not mebx_confirmed(r)]
    if dry_run or len(rows) <= 50 or not yes:
        _emit_rows(rows, ["host", "status", "cause", "starts_at", "why"], as_json=False, as_csv=False,
                   title=f"Rerun of {wave}")
    if waiting:
        out.print(f"{len(waiting)} needs_mebx host(s) wait for their technician and stay on the work list: "
                  f"record each visit with `amt-migrate mebx done {inventory} --wave {wave} HOST...`", highlight=False)
    if dry_run:
        from flows.preflight import infrastructure_problems

        for p in infrastructure_problems(inv):
            err.print(f"warning: a real rerun would stop here: {p}", highlight=False, markup=False)
        out.print("dry run: nothing changed", highlight=False)
        raise typer.Exit(0)
    if not yes and sys.stdin.isatty() and not typer.confirm("go ahead?"):
        raise typer.Exit(1)
    raise typer.Exit(run_wave(inventory, wave, selection=sel.as_dict(), state=state))


@app.command()
def schedule(
    inventory: Path,
    pool: str = typer.Option("amt-migrate", "--pool", help="Prefect process work pool"),
    wave: list[str] = typer.Option([], "--wave", "-w", help="only these waves"),
):
    """Register a deployment per wave (its `start` as the schedule) on a process work pool."""
    from flows.deployments import register_deployments

    inv = _load(inventory)
    try:
        made = register_deployments(inv, inventory, pool, waves=wave or None)
    except Exception as exc:  # noqa: BLE001 - the API or pool may be missing: say so plainly
        fail(f"could not register deployments: {exc}", 1)
    for name, when in made:
        out.print(f"deployment {name}: {'scheduled for ' + when if when else 'no schedule (run on demand)'}",
                  highlight=False)


@app.command("trust-hosts")
def trust_hosts(
    inventory: Path,
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    hosts: Optional[str] = typer.Option(None, "--hosts", help="only hosts matching this glob"),
):
    """Record each host's SSH key in known_hosts, once, like an operator would (logged, never automatic).

    One line per host: the key and fingerprint recorded (or already known), or why nothing was
    recorded. A key that differs from the recorded one is never replaced (exit 1): remove the old
    entry deliberately if the change is expected.
    """
    import fnmatch
    import logging

    from tasks.adapters.ssh import HostKeyChanged, SshError, add_known_host, fingerprint, scan_host_key

    log = logging.getLogger("amt_migrate.trust_hosts")
    inv = _load(inventory)
    if inv.credentials.ssh is None:
        fail("the inventory has no credentials.ssh")
    path = inv.resolve(inv.credentials.ssh.known_hosts)
    chosen = inv.wave_hosts(wave) if wave else inv.hosts
    if hosts:
        chosen = [h for h in chosen if fnmatch.fnmatchcase(h.name.lower(), hosts.lower())]
    counts = {"recorded": 0, "already known": 0, "changed": 0, "failed": 0}
    for h in chosen:
        port = inv.ssh_port_of(h)
        where = f"{h.name} ({h.address}:{port})"
        try:
            key = scan_host_key(h.address, port)
            added = add_known_host(path, h.address, port, key)
        except HostKeyChanged as exc:
            counts["changed"] += 1
            log.warning("%s: host key changed, refused: %s", where, exc.detail)
            err.print(f"{where}: {exc.kind}: {exc.detail}: refused, not recorded", highlight=False, markup=False)
            continue
        except SshError as exc:
            counts["failed"] += 1
            err.print(f"{where}: {exc.kind}: {exc.detail}: not recorded", highlight=False, markup=False)
            continue
        except OSError as exc:
            fail(f"cannot write {path}: {exc.strerror or exc}", 1)
        status = "recorded" if added else "already known"
        counts[status] += 1
        log.info("%s: %s %s %s %s", where, key.get_name(), fingerprint(key), status, path)
        out.print(f"{where}: {key.get_name()} {fingerprint(key)} {status}", highlight=False)
    out.print(f"known_hosts {path}: {counts['recorded']} recorded, {counts['already known']} already known, "
              f"{counts['changed']} changed (refused), {counts['failed']} not reached", highlight=False)
    raise typer.Exit(1 if counts["changed"] or counts["failed"] else 0)


mebx_app = typer.Typer(no_args_is_help=True, help="The technician's (MEBx) work list: record the visits.")

DONE_WORDS = {"yes", "y", "x", "done", "true", "1", "ok"}


def _done_from_csv(path: Path) -> dict[str, str]:
    """Hosts whose `done` cell a technician filled in the returned work list, with their notes."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "host" not in reader.fieldnames or "done" not in reader.fieldnames:
                fail(f"{path}: needs `host` and `done` columns (the work list amt-migrate wrote); "
                     f"found {', '.join(reader.fieldnames or []) or 'none'}")
            return {row["host"].strip(): (row.get("note") or "").strip() for row in reader
                    if (row.get("done") or "").strip().lower() in DONE_WORDS and (row.get("host") or "").strip()}
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


@mebx_app.command("done")
def mebx_done(
    inventory: Path = typer.Argument(..., help="inventory YAML"),
    hosts: list[str] = typer.Argument(None, help="hosts a technician changed (any case)"),
    wave: str = typer.Option(..., "--wave", "-w"),
    note: str = typer.Option("", "--note", help="what the technician did or saw"),
    from_csv: Optional[Path] = typer.Option(None, "--csv", help="the returned work list with its `done` column filled"),
    state: Optional[str] = typer.Option(None, "--state"),
):
    """Record technicians' MEBx changes; only recorded hosts go on to pass 2 (`rerun --status needs_mebx`).
    Every name is checked before anything is written: one unknown or not-waiting host writes nothing."""
    import getpass

    from tasks.store.state import StateError

    inv = _load(inventory)
    _check_wave(inv, wave)
    wanted: dict[str, str] = {h: note for h in hosts or []}
    if from_csv is not None:
        wanted.update({h: n or note for h, n in _done_from_csv(from_csv).items()})
    if not wanted:
        fail("name the hosts (HOST...) or give --csv with the `done` column filled")
    store = _open_store(None, state or inv.state_url)
    records = {r.host.lower(): r for r in store.hosts(wave)}
    problems, chosen = [], []
    for name in wanted:
        r = records.get(name.lower())
        if r is None:
            problems.append(f"{name}: not in wave {wave}")
        elif r.status != "needs_mebx":
            problems.append(f"{name}: is {r.status}, not on the work list (needs_mebx)")
        else:
            chosen.append((r.host, wanted[name]))
    if problems:
        for p in problems:
            err.print(p, highlight=False, markup=False)
        fail(f"{len(problems)} host(s) can't be confirmed; nothing recorded")
    who = getpass.getuser()
    try:
        for host, n in chosen:
            store.confirm_mebx(wave, host, note=n, by=who)
    except StateError as exc:
        fail(str(exc))
    left = [r.host for r in store.hosts(wave, status="needs_mebx") if not (r.evidence or {}).get("mebx_done_at")]
    out.print(f"recorded {len(chosen)} technician visit(s): {', '.join(h for h, _ in chosen)}", highlight=False)
    out.print(f"{len(left)} host(s) still wait for a technician" + (f": {', '.join(left[:20])}" if left else ""),
              highlight=False)
    out.print(f"next: amt-migrate rerun {inventory} --wave {wave} --status needs_mebx", highlight=False)


def _mount_subcommands() -> None:
    from flows.dhcp_cli import app as dhcp_app

    app.add_typer(dhcp_app, name="dhcp", help="DHCP scopes (Kea, Windows DHCP): show option 15 and lease; set them.")
    app.add_typer(mebx_app, name="mebx")


_mount_subcommands()


def _mount_optional() -> None:
    """Sub-apps from other capabilities (the lab) attach here when present."""
    from flows.demo import mount  # the CLI's one way into the lab

    mount(app)


_mount_optional()


def main() -> None:
    import logging

    # paramiko logs a traceback for every refused or reset connection; each host's cause says it once
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app()


if __name__ == "__main__":
    main()
