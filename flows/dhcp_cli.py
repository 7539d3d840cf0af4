"""`amt-migrate dhcp`: what each DHCP scope really hands out (option 15, lease), and changing it on purpose.

Scopes that name a `kea:` or `windows_dhcp:` source are read live; hand-declared scopes show the inventory's
values. `set` is a dry run unless `--apply` is given: it prints the diff first, and with `--apply` writes
(Kea: config-test, config-set, config-write) and reads the scope back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tasks.adapters.dhcp import DhcpError, adapter_for, read_scope
from tasks.rules.durations import format_duration, parse_duration
from tasks.inventory.model import Inventory, load_inventory
from tasks.rules import dhcp_option15 as o15
from tasks.rules.plan import option15_matches, option15_value_matches
from tasks.rules.suffix import InvalidValue
from tasks.inventory.yaml_source import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_SERVER = 1


def _load(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InputError as exc:
        for p in exc.problems:
            err.print(str(p), highlight=False, markup=False)
        err.print(f"{len(exc.problems)} error(s) in {path}", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)


def _fail(message: str, code: int) -> None:
    err.print(f"error: {message}", highlight=False, markup=False)
    raise typer.Exit(code)


def _scope_row(inv: Inventory, scope, cert, timeout: float, hosts: list) -> dict:
    """One scope as its server hands it out: the scope's own value, every place that sets option 15, and
    what each inventory host in it gets (its pool, its reservation...)."""
    row = {"scope": scope.name, "subnet": str(scope.subnet), "source": scope.source_label,
           "option15": None, "lease": None, "level": None, "matches_certificate": None, "error": None,
           "placements": [], "hosts": []}
    try:
        values = read_scope(inv, scope, timeout=timeout)
    except (DhcpError, InvalidValue, Exception) as exc:  # noqa: BLE001 - show every scope, then fail
        row["error"] = str(exc)
        return row
    live = scope.with_live(values) if scope.has_source else scope
    matches = lambda v: option15_value_matches(v, cert)  # noqa: E731
    row.update(option15=values.domain_name, lease=format_duration(values.lease), level=values.domain_name_level,
               source=values.source)
    row["placements"] = [{"option15": v, "level": lv, "where": w, "matches_certificate": matches(v)}
                         for v, lv, w in values.placements()]
    row["matches_certificate"] = all(p["matches_certificate"] for p in row["placements"])
    for h in hosts:
        got = o15.for_scope_host(live, h.address)
        row["hosts"].append({"host": h.name, "address": h.address, **got.as_dict(),
                             "matches_certificate": option15_matches(got, cert)})
    return row


@app.command()
def show(inventory: Path, as_json: bool = typer.Option(False, "--json"),
         timeout: float = typer.Option(10.0, "--timeout", help="seconds per DHCP server request")):
    """Each scope: source, option 15 (every place that sets it: subnet, pools, reservations, classes...),
    lease, whether it matches the provisioning certificate, and what each inventory host in it gets."""
    inv = _load(inventory)
    cert = inv.certificate_suffix
    members: dict[str, list] = {}
    for h in inv.hosts:
        found = inv.scope_of(h)
        if found is not None:
            members.setdefault(found.name, []).append(h)
    rows = [_scope_row(inv, scope, cert, timeout, members.get(scope.name, [])) for scope in inv.dhcp_scopes]
    failed = sum(1 for r in rows if r["error"])
    if as_json:
        sys.stdout.write(json.dumps({"inventory": inv.name, "certificate_suffix": cert, "scopes": rows}, indent=2) + "\n")
        raise typer.Exit(EXIT_SERVER if failed else 0)
    t = Table(title=f"DHCP scopes of {inv.name} — certificate suffix {cert}")
    for c in ("scope", "subnet", "source", "option 15", "lease", "matches certificate"):
        t.add_column(c, overflow="fold")
    for r in rows:
        match = "-" if r["matches_certificate"] is None else ("yes" if r["matches_certificate"] else "NO")
        places = [f"{p['option15'] or '(none)'} ({p['where']})" for p in r["placements"]]
        opt15 = f"unreadable: {r['error']}" if r["error"] else "\n".join(places) or "(none)"
        t.add_row(r["scope"], r["subnet"], r["source"], opt15, r["lease"] or "-", match)
    out.print(t)
    for r in rows:
        for h in r["hosts"]:
            if h["matches_certificate"] is not True:
                verdict = "does NOT match" if h["matches_certificate"] is False else "may not match"
                out.print(f"{h['host']} ({h['address']}) gets option 15 {h['option15'] or '(none)'!r} from "
                          f"{h['where']}: {verdict} {cert}", highlight=False, markup=False)
    raise typer.Exit(EXIT_SERVER if failed else 0)


@app.command("set")
def set_scope(
    inventory: Path,
    scope: str = typer.Option(..., "--scope", help="scope name in the inventory"),
    domain_name: Optional[str] = typer.Option(None, "--domain-name", help="new option 15"),
    lease: Optional[str] = typer.Option(None, "--lease", help="new lease, e.g. 1h"),
    level: Optional[str] = typer.Option(None, "--level", help="where to write option 15 (Kea: subnet, pool, "
                                        "shared-network, global; Windows: scope, server); default: the level the "
                                        "scope already uses (its pools, else the subnet/scope)"),
    reservations: bool = typer.Option(False, "--reservations", help="also rewrite host reservations that set "
                                      "their own option 15 (else they are listed as still overriding)"),
    apply: bool = typer.Option(False, "--apply", help="write it (default: dry run, print the diff)"),
    as_json: bool = typer.Option(False, "--json"),
    timeout: float = typer.Option(10.0, "--timeout"),
):
    """Change a scope's option 15 and/or lease on its DHCP server. Dry run unless --apply."""
    inv = _load(inventory)
    target = next((s for s in inv.dhcp_scopes if s.name == scope), None)
    if target is None:
        _fail(f"no scope {scope!r} in {inventory} (scopes: {', '.join(s.name for s in inv.dhcp_scopes) or 'none'})",
              EXIT_BAD_INPUT)
    if domain_name is None and lease is None:
        _fail("give --domain-name and/or --lease", EXIT_BAD_INPUT)
    try:
        lease_td = parse_duration(lease) if lease is not None else None
        found = adapter_for(inv, target, timeout=timeout)
    except (ValueError, InvalidValue, DhcpError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    if found is None:
        _fail(f"scope {scope} is declared in the inventory (no kea: or windows_dhcp: source): change it on the "
              "DHCP server, then in the YAML", EXIT_BAD_INPUT)
    adapter, ref = found
    try:
        if apply:
            change = adapter.apply_change(ref, domain_name=domain_name, lease=lease_td, level=level,
                                          reservations=reservations)
        else:
            change = adapter.plan_change(ref, domain_name=domain_name, lease=lease_td, level=level,
                                         reservations=reservations)
    except InvalidValue as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except DhcpError as exc:  # a level the scope does not have is a wrong question (2); the server's refusal 1
        _fail(str(exc), EXIT_BAD_INPUT if exc.kind == "config" else EXIT_SERVER)
    finally:
        close = getattr(adapter, "close", None)
        if close:
            close()
    _print_change(inv, scope, change, apply, as_json)


def _print_change(inv: Inventory, scope: str, change, apply: bool, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"scope": scope, "source": change.source, "applied": change.applied,
                                     "diff": [{"what": w, "before": b, "after": a} for w, b, a in change.diff],
                                     "before": change.before.as_dict(), "after": change.after.as_dict(),
                                     "details": change.details, "still_overriding": change.shadowed},
                                    indent=2) + "\n")
        return
    out.print(change.render(), highlight=False, markup=False)
    if change.changed and not apply:
        out.print("dry run: nothing written; add --apply to write it and read it back", highlight=False)
    elif change.applied:
        cert = inv.certificate_suffix
        ok = all(option15_value_matches(v, cert) for v, _, _ in change.after.placements())
        out.print(f"read back: option 15 {change.after.domain_name or '(none)'}, lease "
                  f"{format_duration(change.after.lease)}; matches certificate {cert}: {'yes' if ok else 'NO'}"
                  + (f" ({len(change.shadowed)} place(s) still hand out another value: the ! lines)"
                     if change.shadowed else ""), highlight=False)
