"""`amt-migrate waves propose`: waves designed from the forecast, written as an `include:`-able fragment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import typer
import yaml

from flows.commands.base import _load, fail, out

waves_app = typer.Typer(no_args_is_help=True, help="Waves: propose them from the forecast.")


def _routes(inv) -> dict[str, str]:
    """Each host's route in a forecast of the whole fleet as one wave (who needs a person)."""
    from tasks.forecast.build import StoreData, build_forecast
    from tasks.inventory.model import Wave

    whole = inv.model_copy(update={"waves": [Wave(name="all", hosts=["*"])]})
    fc = build_forecast(whole, "all", store=StoreData(), whatifs=False)
    return {h.name: h.route for h in fc.waves[0].hosts}


def _forecast(inv, waves):
    from tasks.forecast.build import StoreData, build_forecast

    proposed = inv.model_copy(update={"waves": waves})
    return build_forecast(proposed, None, None, store=StoreData(), whatifs=False).waves  # each wave at its start


def _fragment(waves, by: str, max_hosts: int, source: Path) -> str:
    data = {"waves": [{k: v for k, v in w.model_dump(mode="json", include={"name", "start", "hosts"}).items()
                       if v is not None} for w in waves]}
    return (f"# Waves proposed by `amt-migrate waves propose {source.name} --by {by} --max-hosts {max_hosts}`.\n"
            f"# Include it (include: [{{this file}}]) from an inventory that has no waves of its own.\n"
            + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=140))


@waves_app.command("propose")
def propose(
    inventory: Path,
    max_hosts: int = typer.Option(..., "--max-hosts", min=1, help="hosts per wave at most (a bigger group stays whole)"),
    by: str = typer.Option("scope", "--by", help="keep together: scope | tag | location"),
    start: Optional[str] = typer.Option(None, "--start", help="when the first wave starts (default: the next hour)"),
    per_day: Optional[int] = typer.Option(None, "--per-day", min=1, help="hosts started per day at most"),
    output: Path = typer.Option(Path("waves.yaml"), "-o", "--output", help="the fragment to write"),
    force: bool = typer.Option(False, "--force", help="overwrite the fragment"),
):
    """Propose waves that keep a scope, tag or location together, respect the server's rate and the
    technicians' capacity, and put hosts that need a person early; print each wave's forecast and write them
    as an inventory fragment (`include:`-able) that `validate` accepts."""
    from flows.commands.forecast import parse_at
    from tasks.forecast import propose as p
    from tasks.forecast.build import summary_line

    if by not in p.BY:
        fail(f"--by {by!r}: choose from {', '.join(p.BY)}")
    if output.exists() and not force:
        fail(f"{output} exists: give --force to overwrite it")
    inv = _load(inventory, show_warnings=False)
    now = datetime.now(timezone.utc)
    first = parse_at(start) or (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    limit = {loc: r.per_second * inv.window.interface_open.total_seconds() for loc, r in inv.technicians.items()}
    proposed, notes = p.pack(p.groups_of(inv, by, _routes(inv)), max_hosts, limit)
    for w in proposed:
        w.start = first
    busy = [w.server_busy for w in _forecast(inv, p.as_waves(proposed, by, inv))]
    p.day_starts(proposed, first, busy, per_day)
    waves = p.as_waves(proposed, by, inv)
    for w, f in zip(proposed, _forecast(inv, waves)):
        out.print(f"{w.name}: {len(w.hosts)} hosts ({by}: {', '.join(g.key for g in w.groups)}), starts "
                  f"{w.start:%Y-%m-%d %H:%M} UTC", highlight=False, markup=False)
        out.print(f"  forecast {summary_line(f)}", highlight=False, markup=False)
    for n in notes:
        out.print(f"note: {n}", highlight=False, markup=False)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(_fragment(waves, by, max_hosts, inventory), encoding="utf-8")
    tmp.replace(output)
    out.print(f"wrote {output}: include it from {inventory.name} (without its own waves), then `amt-migrate validate`",
              highlight=False, markup=False)
