"""report.html as a lead forwards it: one self-contained page with the summary, matplotlib charts, the
windows timeline, the technician list and a sortable, filterable hosts table, usable at 10,000 hosts."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

from tasks.inventory.model import load_inventory
from tasks.store.charts import TIMELINE_HOSTS, status_cause_chart, timeline_chart
from tasks.store.reports import STATUS_ORDER, attention_order, report_html, summarize, write_wave_reports
from tasks.store.state import HostRecord, StateStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
KINDS = [("provisioned", None), ("failed", "unreachable"), ("needs_mebx", "suffix_mismatch"),
         ("remediated", None), ("unsupported", "unsupported_version"), ("failed", "auth_failed"),
         ("provisioned", None), ("provisioned", None), ("pending", None), ("remediation_failed", "dhcp_scope_wrong")]


def _inventory(tmp_path, n_hosts: int = 2):
    hosts = "".join(f"  - {{name: H{i:05d}, address: 10.0.{i // 250}.{i % 250 + 1}, amt_version: '11.8'}}\n"
                    for i in range(n_hosts))
    f = tmp_path / "inv.yaml"
    f.write_text(f"name: site\nstate: sqlite:///{tmp_path}/state/state.db\n"
                 "provisioning: {certificate_suffix: contoso.com}\n"
                 "waves:\n  - {name: w, hosts: ['*']}\n" f"hosts:\n{hosts}")
    return load_inventory(f)


def _records(n: int) -> list[HostRecord]:
    out = []
    for i in range(n):
        status, cause = KINDS[i % len(KINDS)]
        closes = NOW + timedelta(minutes=(i * 7919) % 1440) if status not in ("provisioned", "pending") else None
        out.append(HostRecord("w", f"H{i:05d}", f"10.0.{i // 250}.{i % 250 + 1}", status, cause,
                              1 if status == "provisioned" else None, closes, 1 + i % 3,
                              {"verdict": f"AMT holds fabrikam.com <{i}>"} if cause else None,
                              "check the host is on and reachable, then rerun" if cause == "unreachable" else None, NOW))
    return out


class _Counter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.ids: set[str] = set()
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("src", "href"):
            if a.get(k, "").startswith(("http:", "https:", "//")):
                self.external.append(a[k])


def test_a_10000_host_report_is_one_self_contained_page_with_charts_and_every_host(tmp_path):
    inv = _inventory(tmp_path)
    records = _records(10_000)
    s = summarize(records, "w")
    started = time.monotonic()
    status_svg, png, _ = status_cause_chart(s.by_status, s.by_cause, [str(x) for x in STATUS_ORDER])
    timeline = [{"host": r.host, "status": r.status, "attempts": [r.window_closes_at - timedelta(hours=24)],
                 "closes_at": r.window_closes_at}
                for r in attention_order(records) if r.window_closes_at][:TIMELINE_HOSTS]
    timeline_svg, tpng, _ = timeline_chart(timeline, NOW)
    page = report_html(inv, s, records, timeline, halted=None, status_svg=status_svg, timeline_svg=timeline_svg,
                       chart_files={}, now=NOW)
    elapsed = time.monotonic() - started
    print(f"\n10,000-host report: {len(page) / 1e6:.1f} MB in {elapsed:.1f} s")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and tpng[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(page) < 10_000_000
    p = _Counter()
    p.feed(page)
    assert not p.external, p.external[:5]  # no CDN, no remote font: it opens offline from an e-mail
    assert {"counts", "status-chart", "timeline-chart", "causes", "hosts", "q", "st", "next"} <= p.ids
    assert p.tags["script"] == 1 and "<script src" not in page
    assert p.tags["svg"] >= 2  # two matplotlib figures inline
    rows = re.findall(r'<tr data-s="([a-z_]+)">', page)
    assert len(rows) == 10_000
    # hosts needing someone come first (soonest window first), finished hosts last
    unfinished = s.total - s.done
    assert set(rows[:unfinished]) == {"failed", "needs_mebx", "remediated", "remediation_failed", "pending"}
    assert set(rows[unfinished:]) == {"provisioned", "unsupported"}
    assert rows[0] != "pending"  # a host with a window closing comes before one not started
    # the summary is HTML, not markdown in a <pre>
    assert "<pre>" not in page and "| status |" not in page
    assert f'<b>{s.by_status["provisioned"]}</b>' in page and "1000 of 10000" not in page
    assert "and 995 more" in page  # hosts per cause: the first five named, then the count
    # the technician list names what to type
    assert "enter the DNS suffix <code>contoso.com</code>" in page
    # the timeline is limited to the soonest-closing hosts, with a "now" line
    assert len(timeline) == TIMELINE_HOSTS and ">H" in timeline_svg and "now" in timeline_svg


def test_written_report_has_chart_files_for_email_and_the_summary_as_html(tmp_path):
    inv = _inventory(tmp_path, 3)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
    store.transition("w", "H00000", "provisioned", stage="pass1", action="provision", outcome="ok",
                     provisioned_in_pass=1, attempted=True, window_closes_at=NOW)
    store.transition("w", "H00001", "failed", stage="pass1", action="provision", outcome="failed",
                     cause="unreachable", attempted=True, window_closes_at=datetime.now(timezone.utc) + timedelta(hours=2),
                     next_step="check the host is on and reachable, then rerun")
    files = write_wave_reports(inv, store, "w", halted="2 of 3 hosts failed")
    assert files["chart_png"].read_bytes()[:4] == b"\x89PNG"
    assert files["timeline_png"].exists() and (files["chart_png"].parent / "chart-status.svg").exists()
    page = files["report_html"].read_text()
    assert '<div class="banner halted">Halted: 2 of 3 hosts failed</div>' in page
    assert "H00001" in page and ("in 1 h 59 min" in page or "in 2 h 00 min" in page)
    assert "amt-migrate rerun" in page and "--status failed" in page
    assert "amt-migrate run" in page  # one host never started
