"""The forecast as one self-contained page (inline CSS, SVG and JS, like report.html): per wave when 50/90/100 %
are done, a matplotlib chart of hosts done over time (forecast, its latest bound, and what the store
recorded), the what-ifs, late hosts, the assumptions, and every host with its chain of events."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

from tasks.forecast import model as m
from tasks.forecast.build import Forecast, summary_line
from tasks.forecast.render import ROUTE_WORDS, chain_text
from tasks.forecast.words import after, span, when

ROUTE_COLOURS = {m.PASS1: "#2e7d32", m.REMOTE_FIX: "#1565c0", m.SELF_HEAL: "#00838f", m.TECHNICIAN: "#ef6c00",
                 m.PERSON: "#c62828", m.NEVER: "#757575", m.DONE: "#1b5e20"}
WAVE_COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#455a64"]


def done_over_time_chart(fc: Forecast) -> str:
    """Per wave: hosts done over time as forecast (solid; for a wave that ran, the forecast made at its start),
    at the latest (dotted), as recorded (thick) and, for a wave under way, as forecast now (dash-dot)."""
    from tasks.store.charts import _save, plt  # matplotlib set up once, for every chart of the project

    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(10, 4.2))
    start = {b.name: b for b in fc.baseline}
    for i, w in enumerate(fc.waves):
        colour = WAVE_COLOURS[i % len(WAVE_COLOURS)]
        planned = start.get(w.name, w)
        made = "forecast at its start" if w.name in start else "forecast"
        for key, style, label in (("expected", "-", made), ("latest", ":", "at the latest")):
            _steps(ax, [getattr(h, key) for h in planned.hosts], colour, style, 1.5, f"{w.name} {label}")
        if w.name in start:
            _steps(ax, [h.expected for h in w.hosts if h.actual], colour, "-", 4.0, f"{w.name} recorded", alpha=0.45)
            _steps(ax, [h.expected for h in w.hosts], colour, "-.", 1.0, f"{w.name} forecast now")
        ax.axhline(len(w.hosts), color=colour, linewidth=0.6, alpha=0.4)
    ax.axvline(_dt(fc.made_at), color="#c62828", linestyle="--", linewidth=1)
    ax.text(_dt(fc.made_at), 0, " as of", color="#c62828", fontsize=8)
    ax.set_ylabel("hosts done")
    ax.set_title("hosts done over time (UTC)")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.legend(fontsize=8, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig)[0]


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def _steps(ax, times, colour, style, width, label, alpha=1.0):
    xs = [_dt(t) for t in sorted(t for t in times if t is not None)]
    if xs:
        ax.step(xs, range(1, len(xs) + 1), where="post", color=colour, linestyle=style, linewidth=width, label=label,
                alpha=alpha)


CSS_EXTRA = ".route{padding:1px 6px;border-radius:3px;color:#fff;font-size:12px;white-space:nowrap}.chain{font-size:12px}"


def _badge(route: str) -> str:
    return f'<span class="route" style="background:{ROUTE_COLOURS[route]}">{html.escape(ROUTE_WORDS[route])}</span>'


def _waves_table(fc: Forecast) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(w.name)}</td><td>{len(w.hosts)}</td><td>{e(when(w.start))}</td>"
        + "".join(f"<td>{e(when(w.quantile(q)) if w.quantile(q) is not None else 'not without people')}</td>"
                  for q in (0.5, 0.9, 1.0))
        + f"<td>{len(w.people)}</td><td>{sum(1 for h in w.hosts if h.route == m.NEVER)}</td>"
        f"<td>{e(summary_line(w).rsplit('; ', 1)[-1])}</td></tr>" for w in fc.waves)
    return ("<table id=waves><thead><tr><th>wave</th><th>hosts</th><th>start</th><th>50 %</th><th>90 %</th>"
            "<th>100 %</th><th>need a person</th><th>never</th><th>provisioning server</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _whatifs(fc: Forecast) -> str:
    if not fc.whatifs:
        return "<p>No single change moves a host's forecast.</p>"
    e = html.escape
    rows = "".join(f"<tr><td>{i}</td><td>{e(x.change)}</td><td>{x.hosts}</td><td>{x.host_days_saved:+.2f}</td>"
                   f"<td>{e(x.text())}</td></tr>" for i, x in enumerate(fc.whatifs, start=1))
    return ("<table id=whatifs><thead><tr><th>#</th><th>change</th><th>hosts</th><th>host-days saved</th>"
            f"<th>what it does</th></tr></thead><tbody>{rows}</tbody></table>")


def _hosts(fc: Forecast) -> str:
    e = html.escape
    rows = []
    for w in fc.waves:
        for h in w.hosts:
            k = f"{h.expected:.0f}" if h.expected is not None else "9e99"
            rows.append(
                f'<tr data-s="{h.route}"><td>{e(h.name)}</td><td>{e(h.wave)}</td><td>{e(h.path)}</td>'
                f'<td>{e(h.outcome)}</td><td data-k="{h.route}">{_badge(h.route)}</td>'
                f'<td data-k="{k}">{e(when(h.expected))}{" (recorded)" if h.actual else ""}</td>'
                f"<td>{e(after(h.expected, w.start))}</td><td>{e(when(h.latest)) if not h.actual else ''}</td>"
                f"<td>{e(h.person or '')}</td><td>{e(span(h.late_by)) if h.late_by else ''}</td>"
                f'<td class="chain">{e(chain_text(h, w.start))}</td></tr>')
    heads = ["host", "wave", "path", "outcome", "how", "done", "after start", "latest", "person", "late", "chain"]
    options = "".join(f'<option value="{r}">{e(ROUTE_WORDS[r])}</option>' for r in m.ROUTES)
    n = len(rows)
    return (f'<div id=filters><input id=q placeholder="filter: host, path, chain…"> <select id=st><option value="">'
            f'every route</option>{options}</select> <span id=shown>{n}</span> of {n} shown · click a heading to sort'
            f"</div><table id=hosts><thead><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def forecast_html(fc: Forecast) -> str:
    from tasks.store.reports import _CSS, _JS

    e = html.escape
    late = [(w.name, h) for w in fc.waves for h in w.hosts if h.late_by]
    late.sort(key=lambda x: -x[1].late_by)
    late_html = ("<p>No host is late against the forecast made at its wave's start.</p>" if not late else
                 f"<p>{len(late)} host(s) late against the forecast made at their wave's start; the latest first "
                 "(all in the table below, column <i>late</i>):</p><ul id=late>"
                 + "".join(f"<li>{e(h.name)} ({e(wn)}): late by {e(span(h.late_by))}</li>" for wn, h in late[:12])
                 + (f"<li>and {len(late) - 12} more</li>" if len(late) > 12 else "") + "</ul>")
    assumptions = "".join(f"<li><b>{e(a.name)}</b>: {e(a.value)} <span class=muted>({e(a.source)})</span></li>"
                          for a in fc.assumptions)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(fc.inventory)}: forecast</title>"
            f"<meta name=viewport content='width=device-width'><style>{_CSS}{CSS_EXTRA}</style></head><body>"
            f"<h1>{e(fc.inventory)}: when will we be done?</h1><p class=muted>forecast as of {e(when(fc.made_at))} · "
            f"{sum(len(w.hosts) for w in fc.waves)} hosts in {len(fc.waves)} wave(s)</p>"
            f"<h2>Waves</h2>{_waves_table(fc)}"
            f'<h2>Hosts done over time</h2><div class="chart" id="done-chart">{done_over_time_chart(fc)}</div>'
            f"<h2>What would make it sooner</h2>{_whatifs(fc)}"
            f"<h2>Late</h2>{late_html}"
            f"<h2>Assumptions</h2><ul id=assumptions>{assumptions}</ul>"
            f"<h2>Hosts</h2>{_hosts(fc)}<script>{_JS}</script></body></html>")


def write_page(fc: Forecast, path: Path) -> Path:
    from tasks.store.reports import _atomic_write

    _atomic_write(Path(path), forecast_html(fc))
    return Path(path)
