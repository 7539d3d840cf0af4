"""Commands that run waves or prepare them: run, rerun, schedule, trust-hosts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from flows.commands.base import (EXIT_BAD_INPUT, EXIT_HOSTS_LEFT, EXIT_WAITING, STAGE_CHOICES, _check_choices, _check_wave,
                                 _emit_rows, _load, _open_store, _valid_filters, app, err, fail, out)
from tasks.inventory.model import Inventory


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


