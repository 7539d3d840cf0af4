"""Commands that read an inventory and touch no host: validate, suffix-check, plan, import-legacy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from flows.commands.base import (EXIT_BAD_INPUT, _check_wave, _emit_rows, _load, _one_format, app, err, fail,
                                 out)
from tasks.inventory.model import Inventory
from tasks.inventory.yaml_source import InputError
from tasks.rules.suffix import InvalidValue, check_suffix


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
    from flows.commands.forecast import wave_forecasts

    forecasts = wave_forecasts(inv, wave, suffixes, read_store_too=live)
    if as_json:
        _plan_json(inv, p, rows, suffixes, domains, forecasts)
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
    for f in forecasts:
        out.print(f"forecast {f['line']}", highlight=False, markup=False)
    for w in p.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def _plan_json(inv: Inventory, p, rows: list[dict], suffixes, domains, forecasts: list[dict]) -> None:
    sys.stdout.write(json.dumps({"inventory": inv.name, "certificate_suffix": inv.certificate_suffix,
                                 "certificate_suffixes": suffixes or [inv.certificate_suffix],
                                 "domains": [{"suffix": d.suffix, "profile_name": d.name,
                                              "expires": d.expires.isoformat() if d.expires else None}
                                             for d in domains or []],
                                 "counts": p.counts(), "paths": p.path_counts(), "warnings": p.warnings,
                                 "scopes": p.scopes, "hosts": rows, "forecast": forecasts}, indent=2) + "\n")


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

