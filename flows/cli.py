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

from tasks.inventory import Inventory, load_inventory
from tasks.suffix_rules import InvalidValue, check_suffix
from tasks.yaml_source import InputError

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


def _emit_rows(rows: list[dict], columns: list[str], *, as_json: bool, as_csv: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    elif as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)) for k, v in r.items()})
        sys.stdout.write(buf.getvalue())
    else:
        t = Table(title=title, show_lines=False)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*("" if r.get(c) is None else (", ".join(r[c]) if isinstance(r.get(c), list) else str(r[c])) for c in columns))
        out.print(t)


@app.command()
def validate(inventory: Path = typer.Argument(..., help="inventory YAML")):
    """Check an inventory: every problem is printed as FILE:LINE: field: message (exit 2)."""
    inv = _load(inventory)
    waves = ", ".join(f"{w.name} ({len(inv.wave_hosts(w))})" for w in inv.waves) or "no waves"
    out.print(f"{inventory}: ok — {len(inv.hosts)} hosts, waves: {waves}, certificate suffix {inv.certificate_suffix}",
              highlight=False)


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
):
    """Pre-flight: who will fail and why, from what is known. Touches no host."""
    from tasks.plan import build_plan

    inv = _load(inventory, show_warnings=False)  # the plan lists them with its own
    try:
        p = build_plan(inv, wave)
    except KeyError as exc:
        fail(str(exc.args[0]))
    rows = [h.as_dict() for h in p.hosts]
    if as_json:
        sys.stdout.write(json.dumps({"inventory": inv.name, "certificate_suffix": inv.certificate_suffix,
                                     "counts": p.counts(), "warnings": p.warnings, "hosts": rows}, indent=2) + "\n")
        return
    cols = ["host", "wave", "amt_version", "outcome", "cause", "suffix_source", "suffix_used", "rule", "remediation", "reason"]
    if as_csv:
        _emit_rows(rows, cols, as_json=False, as_csv=True, title="")
        return
    for r in rows:
        r["suffix"] = f"{r['suffix_used'] or '-'} ({r['suffix_source']})" if r["suffix_used"] is not None else f"- ({r['suffix_source']})"
        r["version"] = r["amt_version"]
    table_cols = ["host", "wave", "version", "outcome", "cause", "suffix", "remediation"] + (["reason"] if why else [])
    _emit_rows(rows, table_cols, as_json=False, as_csv=False,
               title=f"Plan for {inv.name}{' / ' + wave if wave else ''} — certificate suffix {inv.certificate_suffix}")
    out.print("  ".join(f"{k}: {v}" for k, v in sorted(p.counts().items())), highlight=False)
    for w in p.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


@app.command("import-legacy")
def import_legacy(
    export: Path = typer.Argument(..., help="the legacy console's export (CSV, or XLSX with openpyxl)"),
    output: Path = typer.Option(..., "-o", "--output", help="inventory YAML to write"),
    cert_suffix: str = typer.Option(..., "--cert-suffix", help="the new provisioning certificate's suffix"),
    name: Optional[str] = typer.Option(None, "--name", help="inventory name (default: the output file's stem)"),
    server: str = typer.Option("lab", "--server"),
    url: Optional[str] = typer.Option(None, "--url"),
    mapping: list[str] = typer.Option([], "--map", help="COLUMN=field, e.g. 'Machine=name'"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing inventory"),
):
    """Read a legacy export into an inventory; bad rows are reported by row number and nothing is written."""
    from tasks.legacy_import import build_inventory, rows_to_hosts, write_inventory_atomically

    overrides = {}
    for m in mapping:
        if "=" not in m:
            fail(f"--map {m!r}: expected COLUMN=field")
        col, fld = m.rsplit("=", 1)
        overrides[col.strip()] = fld.strip()
    try:
        hosts, problems = rows_to_hosts(export, overrides)
        if problems:
            for p in problems:
                err.print(str(p), highlight=False, markup=False)
            fail(f"{len(problems)} bad row(s) in {export}; nothing written")
        if not hosts:
            fail(f"{export}: no host rows")
        data = build_inventory(name or output.stem, cert_suffix, hosts, server, url)
        write_inventory_atomically(data, output, force=force)
    except InputError as exc:
        for p in exc.problems:
            err.print(str(p), highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    out.print(f"wrote {output}: {len(hosts)} hosts in wave-1 — review waves and credentials, then "
              f"`amt-migrate plan {output}`", highlight=False)


def _open_store(inventory: Optional[Path], state: Optional[str], *, create: bool = False):
    from tasks.state import StateError, StateStore

    if inventory is None and state is None:
        fail("give an INVENTORY or --state URL")
    url = state or _load(inventory).state_url
    try:
        return StateStore(url, create=create)
    except StateError as exc:
        fail(str(exc))


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
    """Where every host stands, from the state store."""
    store = _open_store(inventory, state)
    rows = [r.as_dict() for r in store.hosts(wave, status=status_ or None, cause=cause or None, pattern=hosts)]
    cols = ["host", "wave", "status", "cause", "provisioned_in_pass", "window_closes_at", "attempts", "next_step"]
    _emit_rows(rows, cols, as_json=as_json, as_csv=as_csv, title="Host status")


@app.command()
def history(
    hosts: list[str] = typer.Argument(..., help="host names"),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i"),
    state: Optional[str] = typer.Option(None, "--state"),
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    as_json: bool = typer.Option(False, "--json"),
):
    """The append-only history of one or more hosts."""
    store = _open_store(inventory, state)
    events = [e.as_dict() for e in store.history(hosts, wave)]
    if not events and not as_json:
        fail(f"no history for {', '.join(hosts)}", 1)
    cols = ["at", "wave", "host", "stage", "action", "outcome", "status_before", "status_after", "cause", "evidence"]
    _emit_rows(events, cols, as_json=as_json, as_csv=False, title="History")


def _mount_optional() -> None:
    """Sub-apps from other capabilities (the lab) attach here when present."""
    try:
        from lab.cli import app as lab_app
    except ImportError:
        return
    app.add_typer(lab_app, name="lab", help="The simulated AMT fleet: generate and serve.")


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
