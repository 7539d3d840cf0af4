"""`amt-migrate mebx done`: record the technicians' MEBx visits."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import typer

from flows.commands.base import _check_wave, _load, _open_store, err, fail, out

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

