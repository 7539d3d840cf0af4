"""Commands that read the state store: closeout, status, history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from flows.commands.base import (_ago, _check_store_wave, _check_wave, _emit_rows, _load, _one_format, _open_store,
                                 _valid_filters, app, fail, out, window_text)


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
    late = _late(inventory, state, wave)
    for r, rec in zip(rows, records):
        if rec.window_closes_at is not None:
            r["window_closes_at"] = rec.window_closes_at.isoformat(timespec="seconds")
        if (rec.evidence or {}).get("unverified") and rec.status == "remediated":
            r["status"] = "remediated (unverified)" if not (as_json or as_csv) else r["status"]
        r["late_by_s"] = None if (rec.wave, rec.host) not in late else round(late[(rec.wave, rec.host)], 1)
    if as_json or as_csv:
        cols = ["host", "wave", "status", "cause", "provisioned_in_pass", "window_closes_at", "attempts", "next_step",
                "path", "late_by_s"]  # new columns last: scripts reading the CSV by position keep working
        _emit_rows(rows, cols, as_json=as_json, as_csv=as_csv, title="Host status")
        return
    for r, rec in zip(rows, records):
        r["window"] = window_text(rec.window_closes_at)
        r["late"] = "" if r["late_by_s"] is None else f"late {_ago(r['late_by_s'])}"
    cols = ["host", "wave", "status", "cause", "provisioned_in_pass", "window", "attempts", "next_step", "path"] + (
        ["late"] if late else [])
    _emit_rows(rows, cols, as_json=False, as_csv=False, title="Host status")
    totals = Counter(r.status for r in records)
    out.print(f"{len(records)} host(s): " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none"),
              highlight=False)
    shown_late = sum(1 for r in rows if r["late_by_s"] is not None)
    if shown_late:
        out.print(f"{shown_late} host(s) late against the forecast made at their wave's start "
                  f"(`amt-migrate forecast` says why)", highlight=False)


def _late(inventory: Optional[Path], state: Optional[str], wave: Optional[str]) -> dict:
    """Hosts late against their forecast; only with an INVENTORY (the forecast needs it) and its own store."""
    if inventory is None or state is not None:
        return {}
    from flows.commands.forecast import late_hosts

    return late_hosts(inventory, wave)


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
