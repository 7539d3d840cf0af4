"""Reports, the technician work list and the operator's summary, built from the state store only.

Prefect's API lags and drops records under load; the store is the truth, so everything a person
reads about a wave is derived from it here.
"""

from __future__ import annotations

import csv
import html
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tasks.rules.host_state import Status, counts_toward_failure_limit
from tasks.inventory.model import Inventory
from tasks.store.state import HostRecord, StateStore

HOST_COLUMNS = ["host", "address", "status", "cause", "provisioned_in_pass", "window_closes_at", "attempts", "next_step", "evidence"]
WORKLIST_COLUMNS = ["host", "address", "location", "amt_version", "mebx_menu", "enter_value", "why_remote_failed",
                    "deadline", "done", "note"]

# Where the setting lives in the Intel MEBx (menu names from Intel's "Intel(R) Management Engine BIOS Extension
# (Intel(R) MEBX) User's Guide", 6 Series chipset, rev 1.2, May 2011, sections 3.5.5 Network Setup and
# 3.5.8 Remote Setup and Configuration > TLS PKI; https://manualzilla.com/doc/6909192/). A host not yet
# provisioned is checked against its PKI DNS suffix; one the legacy console provisioned, against AMT's domain
# name (AMT_GeneralSettings.DomainName, see /work/shared/domain-notes.md).
MEBX_PKI_SUFFIX = ("MEBx > Intel(R) AMT Configuration > Remote Setup And Configuration > TLS PKI > PKI DNS Suffix")
MEBX_DOMAIN_NAME = ("MEBx > Intel(R) AMT Configuration > Network Setup > Intel(R) ME Network Name Settings > "
                    "Domain Name")


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    key = "-".join(parts).lower()
    key = re.sub(r"[^a-z0-9-]+", "-", key)
    return re.sub(r"-{2,}", "-", key).strip("-")


def reports_dir(inv: Inventory) -> Path:
    url = inv.state_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):]).parent / "reports"
    return inv.base_dir / "state" / "reports"


def evidence_text(evidence: dict | None, limit: int = 160) -> str:
    if not evidence:
        return ""
    keep = ("verdict", "amt_suffix", "amt_suffix_source", "inferred_from", "inferred_suffix", "detail", "note", "scope",
            "method", "server_message")
    parts = [f"{k}={evidence[k]}" for k in keep if evidence.get(k) not in (None, "")]
    if evidence.get("inferred"):
        parts.insert(0, "inferred")
    text = "; ".join(str(p) for p in parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def host_rows(records: list[HostRecord]) -> list[dict]:
    return [{
        "host": r.host, "address": r.address, "status": r.status, "cause": r.cause or "",
        "provisioned_in_pass": r.provisioned_in_pass or "",
        "window_closes_at": r.window_closes_at.isoformat(timespec="seconds") if r.window_closes_at else "",
        "attempts": r.attempts, "next_step": r.next_step or "", "evidence": evidence_text(r.evidence),
    } for r in records]


@dataclass(frozen=True)
class WaveSummary:
    wave: str
    total: int
    by_status: dict[str, int]
    by_cause: dict[str, int]
    limit_failures: int  # failures that count toward max_fail_percentage
    needs_mebx: list[str]

    @property
    def done(self) -> int:
        return self.by_status.get(Status.PROVISIONED, 0) + self.by_status.get(Status.UNSUPPORTED, 0)


def summarize(records: list[HostRecord], wave: str) -> WaveSummary:
    by_status = Counter(r.status for r in records)
    by_cause = Counter(r.cause for r in records if r.cause and r.status != Status.PROVISIONED)
    limit = sum(1 for r in records if counts_toward_failure_limit(r.status, r.cause))
    return WaveSummary(wave, len(records), dict(by_status), dict(by_cause), limit,
                       [r.host for r in records if r.status == Status.NEEDS_MEBX])


def _inventory_arg(inv: Inventory) -> str:
    path = inv.path if inv.path else Path(f"{inv.name}.yaml")
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def rerun_command(inv: Inventory, wave: str, statuses: list[str] | None = None) -> str:
    """The rerun that takes the unfinished hosts: their statuses as they are (a remediated host waiting for
    pass 2 is not `failed`: a hint naming only failed ones would select nothing)."""
    chosen = statuses or [Status.FAILED, Status.REMEDIATION_FAILED]
    return f"amt-migrate rerun {_inventory_arg(inv)} --wave {wave} " + " ".join(f"--status {st}" for st in chosen)


def summary_markdown(inv: Inventory, s: WaveSummary, *, halted: str | None = None, files: dict[str, Path] | None = None) -> str:
    lines = [f"# {inv.name} / {s.wave}", ""]
    if halted:
        lines += [f"**Halted:** {halted}", ""]
    lines += [f"{s.by_status.get('provisioned', 0)} of {s.total} hosts provisioned; "
              f"{s.by_status.get('unsupported', 0)} unsupported; {len(s.needs_mebx)} need a technician.", "",
              "| status | hosts |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(s.by_status.items())]
    if s.by_cause:
        lines += ["", "| cause (hosts not provisioned) | hosts |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(s.by_cause.items())]
    if s.needs_mebx:
        shown = ", ".join(s.needs_mebx[:30]) + (" …" if len(s.needs_mebx) > 30 else "")
        lines += ["", f"**Technician (MEBx) work list:** {shown}"]
    unfinished = sorted(st for st, n in s.by_status.items()
                        if n and st not in (Status.PROVISIONED, Status.UNSUPPORTED, Status.NEEDS_MEBX))
    if unfinished:
        lines += ["", "Rerun the hosts that are not finished:", "", f"    {rerun_command(inv, s.wave, unfinished)}"]
    if files:
        lines += ["", "Files: " + ", ".join(f"{k}: `{v}`" for k, v in files.items())]
    if s.needs_mebx:
        shown = _inventory_arg(inv)
        worklist = (files or {}).get("worklist_csv")
        lines += ["", "After the technicians' visits, record them and run pass 2 for those hosts:", "",
                  f"    amt-migrate mebx done {shown} --wave {s.wave} HOST... [--note TEXT]"
                  + (f"   (or --csv {worklist} with its `done` column filled)" if worklist else ""),
                  f"    amt-migrate rerun {shown} --wave {s.wave} --status needs_mebx"]
    return "\n".join(lines) + "\n"


def _deadline(r: HostRecord, now: datetime) -> str:
    """The window AMT's interface is open until; after it, pass 2's own attempt reopens it (no hard deadline)."""
    if r.window_closes_at is None or r.window_closes_at <= now:
        return "none: pass 2's attempt reopens the window"
    return r.window_closes_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def worklist_rows(inv: Inventory, records: list[HostRecord], *, now: datetime | None = None) -> list[dict]:
    """What a technician needs at the MEBx prompt: where the host is, the exact menu and value, by when;
    `done` is theirs to fill (yes/no), and the returned file records their visits (`amt-migrate mebx done`)."""
    from tasks.rules.classify import is_pre_provisioning

    out = []
    now = now or datetime.now(timezone.utc)
    hosts = None  # inv.host() scans every host: one scan per MEBx host made big reports quadratic
    for r in records:
        if r.status != Status.NEEDS_MEBX:
            continue
        if hosts is None:
            hosts = {h.name.lower(): h for h in inv.hosts}
        h = hosts.get(r.host.lower())
        ev = r.evidence or {}
        pre = is_pre_provisioning(h.legacy_managed if h else None, ev)
        out.append({"host": r.host, "address": r.address,
                    "location": ", ".join(h.tags) if h and h.tags else "",
                    "amt_version": h.amt_version if h else "",
                    "mebx_menu": MEBX_PKI_SUFFIX if pre else MEBX_DOMAIN_NAME,
                    "enter_value": inv.certificate_suffix,
                    "why_remote_failed": ev.get("why_remote_failed") or evidence_text(ev) or (r.cause or ""),
                    "deadline": _deadline(r, now),
                    "done": "yes" if ev.get("mebx_done_at") else "",
                    "note": ev.get("mebx_note") or ""})
    return out


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def next_commands(inv: Inventory, s: WaveSummary) -> list[tuple[str, str]]:
    """(what, exact command) for each kind of unfinished host, in the order an operator acts."""
    path = inv.path if inv.path else Path(f"{inv.name}.yaml")
    try:
        shown = os.path.relpath(path)
    except ValueError:
        shown = str(path)
    base = f"amt-migrate rerun {shown} --wave {s.wave}"
    out = []
    if s.by_status.get(Status.FAILED) or s.by_status.get(Status.REMEDIATION_FAILED):
        out.append(("failed hosts, once their cause is fixed", rerun_command(inv, s.wave)))
    if s.by_status.get(Status.NEEDS_MEBX):
        out.append(("after the technician has entered the suffix in MEBx, record each visit",
                    f"amt-migrate mebx done {shown} --wave {s.wave} HOST..."))
        out.append(("then provision the recorded hosts", f"{base} --status needs_mebx --from pass2"))
    if s.by_status.get(Status.REMEDIATING):
        out.append(("hosts whose remediation was interrupted", f"{base} --status remediating --from remediate"))
    if s.by_status.get(Status.REMEDIATED):  # the same command a gated wave's go/no-go message gives
        out.append(("remediated hosts waiting for pass 2", f"{base} --status remediated --from pass2"))
    if s.by_status.get(Status.PENDING):
        out.append(("hosts not started yet", f"amt-migrate run {shown} --wave {s.wave}"))
    return out


def _when(at: datetime | None, now: datetime) -> tuple[str, str]:
    """(UTC text, time left) for a window deadline."""
    if not at:
        return "", ""
    secs = int((at - now).total_seconds())
    if secs <= 0:
        left = "closed"
    else:
        h, rem = divmod(secs, 3600)
        left = f"in {h} h {rem // 60:02d} min" if h else f"in {rem // 60} min"
    return at.strftime("%Y-%m-%d %H:%M UTC"), left


UNFINISHED_STATUSES = [Status.FAILED, Status.REMEDIATING, Status.REMEDIATED, Status.NEEDS_MEBX,
                       Status.REMEDIATION_FAILED, Status.PENDING]
STATUS_ORDER = [Status.PROVISIONED, Status.UNSUPPORTED, *UNFINISHED_STATUSES]


def attention_order(records: list[HostRecord]) -> list[HostRecord]:
    """Hosts that need someone first, soonest-closing window first; finished hosts last, by name."""
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(records, key=lambda r: (r.status in (Status.PROVISIONED, Status.UNSUPPORTED),
                                          r.window_closes_at or far, r.host))


def timeline_rows(store: StateStore, wave: str, records: list[HostRecord], limit: int) -> list[dict]:
    """The attempts of the `limit` unfinished hosts whose windows close soonest (history of those only)."""
    chosen = [r for r in attention_order(records)
              if r.status not in (Status.PROVISIONED, Status.UNSUPPORTED, Status.PENDING)][:limit]
    attempts: dict[str, list[datetime]] = {r.host: [] for r in chosen}
    if chosen:
        for e in store.history([r.host for r in chosen], wave):
            if e.action == "provision" and e.outcome in ("ok", "failed"):
                attempts[e.host].append(e.at)
    return [{"host": r.host, "status": r.status, "attempts": attempts[r.host], "closes_at": r.window_closes_at}
            for r in chosen if attempts[r.host] or r.window_closes_at]


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin:0 0 4px}h2{margin:28px 0 8px;border-bottom:1px solid #ddd}.muted{color:#666}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}.halted{background:#fdecea;color:#b71c1c}
.done{background:#e8f5e9;color:#1b5e20}.left{background:#fff3e0;color:#e65100}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{font-size:22px;display:block}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5;position:sticky;top:0;cursor:pointer}
.s{padding:1px 6px;border-radius:3px;color:#fff;font-size:12px;white-space:nowrap}code{background:#f5f5f5;padding:2px 4px}
.chart svg{max-width:100%;height:auto}#filters{margin:8px 0}#filters input{width:320px}.ev{font-size:12px;color:#555}
tr[hidden]{display:none}"""

_JS = """(()=>{const t=document.getElementById('hosts'),tb=t.tBodies[0],rows=[...tb.rows],
txt=rows.map(r=>r.textContent.toLowerCase()),q=document.getElementById('q'),st=document.getElementById('st'),
n=document.getElementById('shown');function f(){const s=q.value.toLowerCase(),v=st.value;let k=0;
rows.forEach((r,i)=>{const ok=(!v||r.dataset.s===v)&&(!s||txt[i].includes(s));r.hidden=!ok;k+=ok});n.textContent=k}
q.addEventListener('input',f);st.addEventListener('change',f);
t.tHead.addEventListener('click',e=>{const th=e.target.closest('th');if(!th)return;const i=th.cellIndex,
d=th.dataset.d=th.dataset.d==='a'?'d':'a',num='num' in th.dataset;const key=r=>{const c=r.cells[i];
const v=c.dataset.k!==undefined?c.dataset.k:c.textContent;return num?+v:v};
const ix=rows.map((r,j)=>[key(r),j]);ix.sort((a,b)=>(a[0]<b[0]?-1:a[0]>b[0]?1:a[1]-b[1])*(d==='a'?1:-1));
const sorted=ix.map(p=>rows[p[1]]),tx=ix.map(p=>txt[p[1]]);rows.splice(0,rows.length,...sorted);
txt.splice(0,txt.length,...tx);tb.append(...rows)});
const h=new URLSearchParams(location.hash.slice(1));if(h.has('q'))q.value=h.get('q');if(h.has('s'))st.value=h.get('s');
f();const by=(h.get('sort')||'').toLowerCase(),th=[...t.tHead.rows[0].cells].find(c=>c.textContent===by);
if(th){th.click();if(h.get('dir')==='d')th.click()}})();"""
#: The page's state can be given in its address, so a lead can send a link to a view:
#: ``report.html#s=needs_mebx&q=floor3&sort=window closes&dir=d`` (status, text filter, sort column, direction).


def _badge(status: str) -> str:
    from tasks.store.charts import STATUS_COLOURS

    return f'<span class="s" style="background:{STATUS_COLOURS.get(status, "#999")}">{html.escape(status)}</span>'


def report_html(inv: Inventory, s: WaveSummary, records: list[HostRecord], timeline: list[dict], *,
                halted: str | None, status_svg: str, timeline_svg: str, chart_files: dict[str, Path],
                now: datetime, forecast_html: str = "") -> str:
    """One self-contained page (inline CSS, SVG and JS; no CDN, no server): what a lead forwards."""
    e = html.escape
    prov, unsup = s.by_status.get(Status.PROVISIONED, 0), s.by_status.get(Status.UNSUPPORTED, 0)
    unfinished = s.total - s.done
    if halted:
        banner = f'<div class="banner halted">Halted: {e(halted)}</div>'
    elif unfinished:
        banner = (f'<div class="banner left">{unfinished} of {s.total} hosts not finished: '
                  f'{s.by_status.get(Status.FAILED, 0) + s.by_status.get(Status.REMEDIATION_FAILED, 0)} failed, '
                  f'{len(s.needs_mebx)} for a technician</div>')
    else:
        banner = f'<div class="banner done">Every host done: {prov} provisioned, {unsup} unsupported</div>'
    cards = "".join(f'<div class="card">{_badge(k)}<b>{s.by_status[k]}</b></div>' for k in STATUS_ORDER
                    if s.by_status.get(k))
    next_by_cause: dict[tuple[str, str], tuple[int, str, list[str]]] = {}
    for r in records:
        if r.status in (Status.PROVISIONED, Status.PENDING):
            continue
        n, step, hosts = next_by_cause.get((r.status, r.cause or ""), (0, r.next_step or "", []))
        if len(hosts) < 5:
            hosts.append(r.host)
        next_by_cause[(r.status, r.cause or "")] = (n + 1, step or (r.next_step or ""), hosts)
    cause_rows = "".join(
        f"<tr><td>{_badge(st)}</td><td>{e(c or '-')}</td><td>{n}</td><td>{e(step)}</td>"
        f"<td>{e(', '.join(h))}{f' and {n - len(h)} more' if n > len(h) else ''}</td></tr>"
        for (st, c), (n, step, h) in sorted(next_by_cause.items(), key=lambda kv: -kv[1][0]))
    cmds = "".join(f"<li>{e(what)}: <code>{e(cmd)}</code></li>" for what, cmd in next_commands(inv, s))
    work = worklist_rows(inv, records)
    work_html = ("<p>No host needs a technician.</p>" if not work else
                 f"<p>At each host's MEBx prompt, enter the DNS suffix <code>{e(inv.certificate_suffix)}</code>.</p>"
                 "<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in WORKLIST_COLUMNS) + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{e(str(w[c]))}</td>" for c in WORKLIST_COLUMNS) + "</tr>"
                           for w in work) + "</tbody></table>")
    body_rows = []
    for r in attention_order(records):
        closes, left = _when(r.window_closes_at, now)
        k = r.window_closes_at.isoformat() if r.window_closes_at else "~"
        body_rows.append(
            f'<tr data-s="{e(r.status)}"><td>{e(r.host)}</td><td>{e(r.address)}</td><td data-k="{e(r.status)}">'
            f'{_badge(r.status)}</td><td>{e(r.cause or "")}</td><td>{r.provisioned_in_pass or ""}</td>'
            f'<td data-k="{k}">{e(closes)} <span class="muted">{e(left)}</span></td><td>{r.attempts}</td>'
            f'<td>{e(r.next_step or "")}</td><td class="ev">{e(evidence_text(r.evidence, 400))}</td></tr>')
    heads = ["host", "address", "status", "cause", "pass", "window closes", "attempts", "next step", "evidence"]
    thead = "".join(f"<th{' data-num' if h in ('pass', 'attempts') else ''}>{h}</th>" for h in heads)
    options = "".join(f'<option value="{k}">{k} ({s.by_status[k]})</option>' for k in STATUS_ORDER
                      if s.by_status.get(k))
    files = ", ".join(f'<a href="{e(p.name)}">{e(p.name)}</a>' for p in chart_files.values())
    timeline_html = (f'<div class="chart" id="timeline-chart">{timeline_svg}</div>'
                     f'<p class="muted">The {len(timeline)} unfinished hosts whose windows close soonest.</p>'
                     if timeline else "<p>No unfinished host has an open window.</p>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(inv.name)} / {e(s.wave)}</title>"
            f"<meta name=viewport content='width=device-width'><style>{_CSS}</style></head><body>"
            f"<h1>{e(inv.name)} / {e(s.wave)}</h1><p class=muted>generated {now:%Y-%m-%d %H:%M:%S} UTC · "
            f"{s.total} hosts · certificate suffix {e(inv.certificate_suffix)}</p>{banner}"
            f'<div class="cards" id="counts">{cards}</div>'
            f'<h2>Hosts per status and cause</h2><div class="chart" id="status-chart">{status_svg}</div>'
            f"<p class=muted>For e-mail: {files}</p>"
            "<h2>Not provisioned: why, and what next</h2>"
            + ("<table id=causes><thead><tr><th>status</th><th>cause</th><th>hosts</th><th>next step</th>"
               f"<th>e.g.</th></tr></thead><tbody>{cause_rows}</tbody></table>" if cause_rows else "<p>Nothing.</p>")
            + (f"<ul id=next>{cmds}</ul>" if cmds else "")
            + (f"<h2>Forecast vs actual</h2>{forecast_html}" if forecast_html else "")
            + f"<h2>Windows: attempts and deadlines</h2>{timeline_html}"
            f"<h2>Technician (MEBx) work list</h2>{work_html}"
            f'<h2>Hosts</h2><div id=filters><input id=q placeholder="filter: host, cause, evidence…"> '
            f'<select id=st><option value="">every status</option>{options}</select> '
            f'<span id=shown>{len(records)}</span> of {len(records)} shown · click a heading to sort</div>'
            f"<table id=hosts><thead><tr>{thead}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
            f"<script>{_JS}</script></body></html>")


def write_wave_reports(inv: Inventory, store: StateStore, wave: str, *, halted: str | None = None,
                       forecast_html: str = "") -> dict[str, Path]:
    """CSV + HTML report, its charts (PNG and SVG, for e-mail) and the MEBx work list, beside the state;
    `forecast_html`: the forecast's section (flows/forecast_view.py), made by the caller."""
    from tasks.store.charts import TIMELINE_HOSTS, status_cause_chart, timeline_chart

    records = store.hosts(wave)
    rows = host_rows(records)
    out = reports_dir(inv) / wave
    files = {"report_csv": out / "hosts.csv", "report_html": out / "report.html", "worklist_csv": out / "mebx-worklist.csv"}
    _atomic_write(files["report_csv"], _csv_text(rows, HOST_COLUMNS))
    _atomic_write(files["worklist_csv"], _csv_text(worklist_rows(inv, records), WORKLIST_COLUMNS))
    summary = summarize(records, wave)
    now = datetime.now(timezone.utc)
    status_svg, status_png, status_file = status_cause_chart(summary.by_status, summary.by_cause,
                                                             [str(x) for x in STATUS_ORDER])
    timeline = timeline_rows(store, wave, records, TIMELINE_HOSTS)
    charts = {"chart_png": out / "chart-status.png", "timeline_png": out / "chart-timeline.png"}
    _atomic_bytes(charts["chart_png"], status_png)
    _atomic_write(out / "chart-status.svg", status_file)
    timeline_svg = ""
    if timeline:
        timeline_svg, timeline_png, timeline_file = timeline_chart(timeline, now)
        _atomic_bytes(charts["timeline_png"], timeline_png)
        _atomic_write(out / "chart-timeline.svg", timeline_file)
    else:
        charts.pop("timeline_png")
    page = report_html(inv, summary, records, timeline, halted=halted, status_svg=status_svg,
                       timeline_svg=timeline_svg, chart_files=charts, now=now, forecast_html=forecast_html)
    _atomic_write(files["report_html"], page)
    return {**files, **charts}


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
