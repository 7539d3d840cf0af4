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
    live: bool = typer.Option(True, "--live/--offline", help="read option 15 of scopes with a kea:/windows_dhcp: source"),
):
    """Pre-flight: who will fail and why, from what is known. Touches no host (only DHCP servers named by scopes)."""
    from tasks.rules.plan import build_plan

    inv = _load(inventory, show_warnings=False)  # the plan lists them with its own
    if live:
        from tasks.adapters.dhcp import with_live_dhcp

        inv = with_live_dhcp(inv)  # "option 15 from Kea at URL" in warnings; unreadable sources are warned
    try:
        p = build_plan(inv, wave)
    except KeyError as exc:
        fail(str(exc.args[0]))
    rows = [h.as_dict() for h in p.hosts]
    if as_json:
        sys.stdout.write(json.dumps({"inventory": inv.name, "certificate_suffix": inv.certificate_suffix,
                                     "counts": p.counts(), "warnings": p.warnings, "scopes": p.scopes, "hosts": rows},
                                    indent=2) + "\n")
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
    from tasks.inventory.legacy_import import build_inventory, rows_to_hosts, write_inventory_atomically

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
    from tasks.store.state import StateError, StateStore

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


STAGE_CHOICES = ("discovery", "pass1", "remediate", "pass2")


def _prefect_defaults() -> None:
    """The embedded Prefect server needs 8-23 s to start on a small machine: give it room."""
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here: don't try


def run_wave(inventory: Path, wave: str, *, selection: dict | None = None, state: str | None = None) -> int:
    """Run migrate_wave in this process and print the outcome; returns the exit code."""
    _prefect_defaults()
    inv = _load(inventory)
    try:
        inv.wave(wave)
    except KeyError as exc:
        fail(str(exc.args[0]))
    # an unopenable URL or a newer schema is bad input: say so (exit 2) before Prefect starts, writing nothing
    _open_store(None, state or inv.state_url, create=True).close()
    from prefect import tags

    from flows.migrate import migrate_wave

    from flows import terminal

    with tags(f"wave:{wave}", f"inventory:{inv.name}"), terminal.progress(out):
        final = migrate_wave(str(inventory.resolve()), wave, inventory_name=inv.name, selection=selection,
                             state=state, return_state=True)
    report = None
    try:
        report = final.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - the state message below says what happened
        report = None
    if isinstance(report, dict) and "summary" in report:
        store = _open_store(None, state or inv.state_url)
        lines = terminal.closing_summary(inv, report["summary"], terminal.unfinished_hosts(store, wave),
                                         final.name, final.message or "")
        store.close()
        for name, path in report.get("files", {}).items():
            lines.append(f"{name}: {path}")
        out.print("\n".join(lines), highlight=False, markup=False)
    else:
        out.print(f"{final.name}: {final.message or ''}", highlight=False, markup=False)
    return 0 if final.is_completed() else 1


@app.command()
def run(
    inventory: Path,
    wave: str = typer.Option(..., "--wave", "-w"),
    state: Optional[str] = typer.Option(None, "--state", help="override the inventory's state URL"),
):
    """Run a wave: discovery, pass 1, remediation, pass 2, report. A finished wave is left alone."""
    raise typer.Exit(run_wave(inventory, wave, state=state))


@app.command()
def rerun(
    inventory: Path,
    wave: str = typer.Option(..., "--wave", "-w"),
    status_: list[str] = typer.Option([], "--status", help="only hosts in this status (repeatable)"),
    cause: list[str] = typer.Option([], "--cause", help="only hosts with this cause (repeatable)"),
    hosts: Optional[str] = typer.Option(None, "--hosts", help="only hosts matching this glob"),
    from_stage: str = typer.Option("pass1", "--from", help="discovery | pass1 | remediate | pass2"),
    state: Optional[str] = typer.Option(None, "--state"),
    yes: bool = typer.Option(True, "--yes/--ask", help="act without asking after listing the hosts"),
):
    """Rerun a subset of a wave; lists the hosts it selected before acting."""
    from tasks.rules.host_state import Cause, Status
    from tasks.rules.selection import Selection

    if from_stage not in STAGE_CHOICES:
        fail(f"--from {from_stage!r}: choose one of {', '.join(STAGE_CHOICES)}")
    try:
        [Status(x) for x in status_]
        [Cause(x) for x in cause]
    except ValueError as exc:
        fail(str(exc))
    sel = Selection(tuple(status_), tuple(cause), hosts, explicit=True, from_stage=from_stage)
    inv = _load(inventory)
    store = _open_store(inventory, state, create=True)
    try:
        inv.wave(wave)
    except KeyError as exc:
        fail(str(exc.args[0]))
    chosen = sorted(sel.resolve(store.hosts(wave)))
    store.close()
    if not chosen:
        out.print(f"no host of {wave} matches: nothing to do", highlight=False)
        raise typer.Exit(0)
    out.print(f"rerun from {from_stage}: {len(chosen)} host(s): {', '.join(chosen)}", highlight=False)
    if not yes and not typer.confirm("go ahead?"):
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


def _mount_subcommands() -> None:
    from flows.dhcp_cli import app as dhcp_app

    app.add_typer(dhcp_app, name="dhcp", help="DHCP scopes (Kea, Windows DHCP): show option 15 and lease; set them.")


_mount_subcommands()


def _mount_optional() -> None:
    """Sub-apps from other capabilities (the lab) attach here when present."""
    try:
        from lab.cli import app as lab_app
    except ImportError:
        return
    app.add_typer(lab_app, name="lab", help="The simulated AMT fleet: generate and serve.")
    from lab.demo import demo

    app.command(help="The demo: a whole wave against an in-process lab of ~60 hosts covering every case.")(demo)


_mount_optional()


def main() -> None:
    import logging

    # paramiko logs a traceback for every refused or reset connection; each host's cause says it once
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app()


if __name__ == "__main__":
    main()
