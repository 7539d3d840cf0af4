"""What every `amt-migrate` command shares: the typer app, the consoles, exit codes, loading an inventory or
a state store with exit 2 on bad input, and the table/--json/--csv printer."""

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
from tasks.inventory.yaml_source import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The `amt-migrate` command line: tables for people, --json/--csv for scripts, exit 2 on bad input.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_WAITING = 3  # the wave is waiting for a decision (a gate): not done, not failed
EXIT_HOSTS_LEFT = 4  # the wave ran to its end, but hosts are left failed or for a technician (the summary says who)
STAGE_CHOICES = ("discovery", "pass1", "remediate", "pass2")

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



def _check_wave(inv: Inventory, wave: str) -> None:
    names = [w.name for w in inv.waves]
    if wave not in names:
        fail(f"--wave: no wave {wave!r} in {inv.name}; choose from {', '.join(names) or '(no waves)'}")



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

