"""The forecast where people already look during and after a run: the live view's "forecast vs actual" (the
forecast made when the run starts, and when the run reached 50/90/100 %), and report.html's section with a
full forecast page (forecast.html) beside it. Never allowed to fail a run: callers wrap these."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

SHARES = (0.5, 0.9, 1.0)


def start_forecast(inv, wave: str, store) -> dict | None:
    """{share: when, "start": now}: the forecast as the run starts, from the inventory and where the state store
    says each host stands (a rerun continues from there)."""
    from tasks.forecast.build import StoreData, build_forecast

    now = datetime.now(timezone.utc)
    data = StoreData(store.history(wave=wave), {r.host: r.evidence or {} for r in store.hosts(wave)})
    fc = build_forecast(inv, wave, now, store=data, whatifs=False)
    w = fc.waves[0]
    return {"start": now.timestamp(), **{s: w.quantile(s) for s in SHARES}}


def live_lines(forecast: dict | None, reached: dict[float, datetime]) -> list[str]:
    """Markdown rows for the live view: each share, its forecast and when the run reached it."""
    if not forecast:
        return []
    from tasks.forecast.words import after, when

    start = forecast["start"]
    rows = ["", "## Forecast vs actual", "", "| hosts done | forecast at the run's start | reached |", "|---|---|---|"]
    for s in SHARES:
        f = forecast.get(s)
        got = reached.get(s)
        rows.append(f"| {int(s * 100)} % | {when(f) + ' (' + after(f, start) + ')' if f else 'not without people'} | "
                    f"{got.strftime('%Y-%m-%d %H:%M:%S UTC') + ' (' + after(got.timestamp(), start) + ')' if got else 'not yet'} |")
    return rows


def report_section(inv, wave: str, folder: Path) -> str:
    """report.html's forecast section: the forecast made at the run's start against what the store recorded,
    late hosts, and forecast.html (the whole forecast page) written beside the report."""
    from tasks.forecast.build import build_forecast, read_store
    from tasks.forecast.page import write_page
    from tasks.forecast.words import span, when

    fc = build_forecast(inv, wave, store=read_store(inv), whatifs=True)
    write_page(fc, folder / "forecast.html")
    w = fc.waves[0]
    base = next((b for b in fc.baseline if b.name == wave), None)
    recorded = sorted(h.expected for h in w.hosts if h.actual and h.expected is not None)

    def reached(share: float) -> str:
        import math

        need = max(1, math.ceil(share * len(w.hosts) - 1e-9))
        return when(recorded[need - 1]) if need <= len(recorded) else "not yet"

    e = html.escape
    rows = "".join(
        f"<tr><td>{int(s * 100)} %</td><td>{e(when(base.quantile(s)) if base and base.quantile(s) else '-')}</td>"
        f"<td>{e(when(w.quantile(s)) if w.quantile(s) else 'not without people')}</td><td>{e(reached(s))}</td></tr>"
        for s in SHARES)
    late = sorted((h for h in w.hosts if h.late_by), key=lambda h: -h.late_by)
    late_text = (", ".join(f"{e(h.name)} by {e(span(h.late_by))}" for h in late[:10])
                 + (f" and {len(late) - 10} more" if len(late) > 10 else "")) if late else "none"
    return ("<table id=forecast><thead><tr><th>hosts done</th><th>forecast at the run's start</th><th>forecast now</th>"
            f"<th>recorded</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p>Late against the forecast made at the run's start: {late_text}. The whole forecast (chains, "
            f'what-ifs, assumptions): <a href="forecast.html">forecast.html</a>.</p>')
