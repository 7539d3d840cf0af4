"""The forecast as rows (table, CSV), a JSON document and text lines."""

from __future__ import annotations

from tasks.forecast import model as m
from tasks.forecast.build import Forecast, summary_line
from tasks.forecast.model import HostOut, WaveOut
from tasks.forecast.words import after, iso, span, when

ROUTE_WORDS = {
    m.PASS1: "pass 1", m.REMOTE_FIX: "remote fix + pass 2", m.TECHNICIAN: "technician + pass 2",
    m.SELF_HEAL: "own renewal + retry", m.NEVER: "never", m.PERSON: "needs a person", m.DONE: "done (recorded)",
}
CSV_COLUMNS = ["host", "wave", "path", "outcome", "route", "earliest", "expected", "latest", "chance", "person",
               "location", "actual", "late_by_s", "forecast_at_start", "chain"]


def chain_text(h: HostOut, origin: float, why: bool = True) -> str:
    parts = []
    for s in h.steps:
        t = "" if s.at is None else f" {after(s.at, origin)}"
        parts.append(f"{s.what}{t}" + (f": {s.why}" if why else "") + (" [recorded]" if s.actual else ""))
    return "; ".join(parts)


def host_row(h: HostOut, w: WaveOut) -> dict:
    return {
        "host": h.name, "wave": h.wave, "path": h.path, "outcome": h.outcome, "route": h.route,
        "earliest": iso(h.earliest), "expected": iso(h.expected), "latest": iso(h.latest),
        "chance": round(h.chance, 3), "person": h.person, "location": h.location, "actual": h.actual,
        "late_by_s": None if h.late_by is None else round(h.late_by, 1),
        "forecast_at_start": iso(h.baseline), "chain": chain_text(h, w.start),
    }


def table_rows(fc: Forecast, why: bool = False) -> list[dict]:
    rows = []
    for w in fc.waves:
        for h in w.hosts:
            late = f"late {span(h.late_by)}" if h.late_by else ""
            done = when(h.expected) if h.expected is not None else ("never" if h.route == m.NEVER else "-")
            if h.expected is not None and not h.actual and h.latest != h.expected:
                done += f" (latest {when(h.latest) if h.latest is not None else 'never'})"
            row = {"host": h.name, "wave": h.wave, "path": h.path, "outcome": h.outcome,
                   "how": ROUTE_WORDS[h.route], "done": done + (" [recorded]" if h.actual else ""),
                   "after start": after(h.expected, w.start) if h.expected is not None else "",
                   "person": h.person or "", "late": late}
            if why:
                row["chain"] = chain_text(h, w.start)
            rows.append(row)
    return rows


TABLE_COLUMNS = ["host", "wave", "path", "outcome", "how", "done", "after start", "person", "late"]


def wave_dict(w: WaveOut) -> dict:
    return {
        "wave": w.name, "start": iso(w.start), "hosts": len(w.hosts),
        "done_50": iso(w.quantile(0.5)), "done_90": iso(w.quantile(0.9)), "done_100": iso(w.quantile(1.0)),
        "need_a_person": [h.name for h in w.people], "never": [h.name for h in w.hosts if h.route == m.NEVER],
        "late": {h.name: round(h.late_by, 1) for h in w.hosts if h.late_by},
        "server": {"rate_per_hour": None if w.rate is None else round(w.rate * 3600, 3), "rate_source": w.rate_source,
                   "attempts": w.attempts, "busy_s": round(w.server_busy, 1)},
        "routes": {r: sum(1 for h in w.hosts if h.route == r) for r in m.ROUTES},
        "line": summary_line(w),
    }


def as_json(fc: Forecast) -> dict:
    return {
        "inventory": fc.inventory, "as_of": iso(fc.made_at),
        "waves": [wave_dict(w) for w in fc.waves],
        "hosts": [{**host_row(h, w), "steps": [{"at": iso(s.at), "what": s.what, "why": s.why, "recorded": s.actual}
                                               for s in h.steps]} for w in fc.waves for h in w.hosts],
        "what_ifs": [x.as_dict() for x in fc.whatifs],
        "assumptions": [{"name": a.name, "value": a.value, "source": a.source} for a in fc.assumptions],
    }


def closing_lines(fc: Forecast) -> list[str]:
    """Per wave its line and who is late; the what-ifs, ranked; the assumptions."""
    lines = []
    for w in fc.waves:
        lines.append(summary_line(w))
        late = sorted((h for h in w.hosts if h.late_by), key=lambda h: -h.late_by)
        if late:
            lines.append(f"  late against the forecast made at {w.name}'s start: " + ", ".join(
                f"{h.name} by {span(h.late_by)}" for h in late[:10]) + (f" and {len(late) - 10} more" if len(late) > 10 else ""))
    if fc.whatifs:
        lines.append("what-ifs, most host-days saved first:")
        lines += [f"  {i}. {x.text()}" for i, x in enumerate(fc.whatifs, start=1)]
    lines.append("assumptions:")
    lines += [f"  - {a.name}: {a.value} ({a.source})" for a in fc.assumptions]
    return lines
