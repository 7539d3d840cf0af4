"""`amt-migrate forecast`: when each host and wave will be done, why, and what would make it sooner."""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from flows.commands.base import _check_wave, _emit_rows, _load, _one_format, app, fail, out


def parse_at(text: str | None) -> datetime | None:
    """--at: ISO 8601 with a zone (2026-12-01T20:00:00Z), or `now`; a time without a zone is refused."""
    if text is None:
        return None
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        fail(f"--at {text!r}: not a time like 2026-12-01T20:00:00Z")
    if value.tzinfo is None:
        fail(f"--at {text!r}: give a time zone, e.g. 2026-12-01T20:00:00Z")
    return value.astimezone(timezone.utc)


def check_selectors(option: str, selectors: list[str]) -> None:
    for sel in selectors:
        body = sel[4:] if sel.startswith("tag:") else sel
        if not body or not all(c.isalnum() or c in "-_.*?[]!" for c in body):
            fail(f"{option} {sel!r}: a name glob (WS-00*) or tag:NAME")


def make_forecast(inventory: Path, wave: str | None, at: str | None, no_ssh: list[str], *, whatifs: bool = True,
                  state: str | None = None):
    """Load, check and forecast; exit 2 on bad input."""
    from tasks.forecast.build import build_forecast, read_store

    check_selectors("--no-ssh", no_ssh)
    when = parse_at(at)
    inv = _load(inventory, show_warnings=False)
    if wave is not None:
        _check_wave(inv, wave)
    if not inv.waves:
        fail(f"{inventory}: no waves to forecast")
    store = read_store(inv, state)
    return inv, build_forecast(inv, wave, when, store=store, no_ssh=no_ssh, whatifs=whatifs)


def wave_forecasts(inv, wave: str | None, suffixes=None, *, read_store_too: bool = True) -> list[dict]:
    """Each wave's forecast (tasks.forecast.render.wave_dict, with its `line`) for `plan`; [] without waves."""
    from tasks.forecast.build import StoreData, build_forecast, read_store
    from tasks.forecast.render import wave_dict

    if not inv.waves:
        return []
    url = inv.state_url
    store = read_store(inv) if read_store_too or url.startswith("sqlite:///") else StoreData()
    fc = build_forecast(inv, wave, store=store, suffixes=suffixes, whatifs=False)
    return [wave_dict(w) for w in fc.waves]


def late_hosts(inventory: Path, wave: str | None = None) -> dict[tuple[str, str], float]:
    """(wave, host) -> seconds late against the forecast made at its wave's start (for `status`)."""
    from tasks.forecast.build import build_forecast, read_store

    inv = _load(inventory, show_warnings=False)
    waves = [w.name for w in inv.waves]
    if not waves or (wave is not None and wave not in waves):
        return {}
    fc = build_forecast(inv, wave, store=read_store(inv), whatifs=False)
    return {(w.name, h.name): h.late_by for w in fc.waves for h in w.hosts if h.late_by}


def forecast_vs_actual(inventory: Path, wave: str) -> list[str]:
    """The forecast made at the wave's run start against what the store recorded: 50/90/100 % then and now,
    who is late and by how much (the demo's closing lines)."""
    from tasks.forecast.build import StoreData, build_forecast, read_store
    from tasks.forecast.words import after, span

    inv = _load(inventory, show_warnings=False)
    store = read_store(inv)
    now = build_forecast(inv, wave, store=store, whatifs=False)
    start = now.ran.get(wave)
    if start is None:
        return [f"{wave} has not run: nothing to hold its forecast against"]
    then = build_forecast(inv, wave, datetime.fromtimestamp(start, tz=timezone.utc),
                          store=StoreData(evidence=store.evidence), whatifs=False).waves[0]
    w = now.waves[0]
    recorded = sorted(h.expected for h in w.hosts if h.actual and h.expected is not None)

    def q(times: list[float], share: float, missing: str) -> str:
        need = max(1, math.ceil(share * len(w.hosts) - 1e-9))
        return after(times[need - 1], start) if need <= len(times) else missing

    planned = sorted(h.expected for h in then.hosts if h.expected is not None)
    lines = [f"forecast of {wave} made at its run's start, against what happened ({len(w.hosts)} hosts, times after "
             f"the start):",
             "  forecast: " + ", ".join(f"{int(x * 100)} % {q(planned, x, 'not without people')}"
                                        for x in (0.5, 0.9, 1.0))
             + f"; {len(then.people)} need a person, {sum(1 for h in then.hosts if h.route == 'never')} never",
             "  happened: " + ", ".join(f"{int(x * 100)} % {q(recorded, x, 'not yet')}" for x in (0.5, 0.9, 1.0))
             + f"; {len(recorded)} provisioned"]
    late = sorted((h for h in w.hosts if h.late_by), key=lambda h: -h.late_by)
    if late:
        lines.append(f"  late: {len(late)} host(s), " + ", ".join(f"{h.name} by {span(h.late_by)}" for h in late[:5])
                     + (" ..." if len(late) > 5 else ""))
    lines.append(f"  why, per host: amt-migrate forecast {inventory} --wave {wave} --why (or --html FILE)")
    return lines


@app.command()
def forecast(
    inventory: Path,
    wave: Optional[str] = typer.Option(None, "--wave", "-w"),
    at: Optional[str] = typer.Option(None, "--at", help="the forecast's time: a wave not yet run starts then (default: "
                                     "its `start`, else now); for a wave that ran, what the store holds up to then is fact"),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write the forecast as one self-contained page"),
    why: bool = typer.Option(False, "--why", help="add each host's chain of events (time and why) to the table"),
    no_ssh: list[str] = typer.Option([], "--no-ssh", help="take SSH as unavailable for these hosts (glob or tag:NAME)"),
    state: Optional[str] = typer.Option(None, "--state", help="override the inventory's state URL"),
):
    """Per host its path, predicted outcome, when it is done and the chain of events that gets it there; per
    wave when 50/90/100 % are done, who needs a person, the server's throughput; what-ifs ranked by host-days
    saved; hosts late against the forecast made at their wave's start. Touches no host."""
    from tasks.forecast import render

    _one_format(as_json, as_csv)
    inv, fc = make_forecast(inventory, wave, at, no_ssh, state=state)
    if html is not None:
        from tasks.forecast.page import write_page

        write_page(fc, html)
    if as_json:
        sys.stdout.write(json.dumps(render.as_json(fc), indent=2) + "\n")
        return
    if as_csv:
        rows = [render.host_row(h, w) for w in fc.waves for h in w.hosts]
        _emit_rows(rows, render.CSV_COLUMNS, as_json=False, as_csv=True, title="")
        return
    cols = render.TABLE_COLUMNS + (["chain"] if why else [])
    from tasks.forecast.words import when

    _emit_rows(render.table_rows(fc, why), cols, as_json=False, as_csv=False,
               title=f"Forecast for {inv.name}{' / ' + wave if wave else ''} as of {when(fc.made_at)}")
    out.print("\n".join(render.closing_lines(fc)), highlight=False, markup=False)
    if html is not None:
        out.print(f"wrote {html}", highlight=False, markup=False)
