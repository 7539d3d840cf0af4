"""The report's charts, drawn by matplotlib (Agg, offline) to SVG for the page and PNG/SVG files for e-mail.

Two figures: hosts per status and per cause (what failed and why), and a timeline of the attempts and
window deadlines of the hosts whose 24 h windows close soonest (the migration's clock). The timeline
is limited to TIMELINE_HOSTS hosts so the page stays readable at 10,000 hosts.
"""

from __future__ import annotations

import io
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: a worker or CI box draws the same
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG: searchable, smaller
matplotlib.rcParams["svg.hashsalt"] = "amt-migrate"  # stable ids: the same data draws the same file

TIMELINE_HOSTS = 40

STATUS_COLOURS = {
    "provisioned": "#2e7d32", "unsupported": "#757575", "pending": "#90a4ae", "failed": "#c62828",
    "remediating": "#f9a825", "remediated": "#1565c0", "needs_mebx": "#ef6c00", "remediation_failed": "#6a1b9a",
}


def _save(fig) -> tuple[str, bytes, str]:
    """(inline SVG without the XML prolog, PNG bytes, standalone SVG)."""
    svg_buf, png_buf = io.StringIO(), io.BytesIO()
    fig.savefig(svg_buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.savefig(png_buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    svg = svg_buf.getvalue()
    inline = svg[svg.index("<svg"):]
    return inline, png_buf.getvalue(), svg


def status_cause_chart(by_status: dict[str, int], by_cause: dict[str, int], order: list[str]):
    """Horizontal bars: hosts per status (coloured as in the table), and hosts not done per cause."""
    statuses = [s for s in order if by_status.get(s)] or ["pending"]
    causes = sorted(by_cause, key=lambda c: by_cause[c])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, max(2.2, 0.38 * max(len(statuses), len(causes), 1) + 1)))
    a.barh(statuses, [by_status.get(s, 0) for s in statuses], color=[STATUS_COLOURS.get(s, "#999") for s in statuses])
    a.set_title("hosts per status")
    a.invert_yaxis()
    for i, s in enumerate(statuses):
        a.annotate(str(by_status.get(s, 0)), (by_status.get(s, 0), i), xytext=(3, 0), textcoords="offset points",
                   va="center", fontsize=9)
    if causes:
        b.barh(causes, [by_cause[c] for c in causes], color="#c62828")
        for i, c in enumerate(causes):
            b.annotate(str(by_cause[c]), (by_cause[c], i), xytext=(3, 0), textcoords="offset points", va="center",
                       fontsize=9)
        b.set_title("hosts not provisioned, per cause")
    else:
        b.text(0.5, 0.5, "every host provisioned", ha="center", va="center", transform=b.transAxes)
        b.set_axis_off()
    for ax in (a, b):
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig)


def timeline_chart(rows: list[dict], now: datetime):
    """One line per host: its attempts (dots) and its window deadline (a bar end); `now` as a line.
    rows: {"host", "status", "attempts": [datetime], "closes_at": datetime | None}."""
    rows = rows[:TIMELINE_HOSTS]
    fig, ax = plt.subplots(figsize=(10, max(2.0, 0.28 * len(rows) + 1.2)))
    for i, r in enumerate(rows):
        colour = STATUS_COLOURS.get(r["status"], "#999")
        times = r["attempts"]
        if times and r["closes_at"]:
            ax.plot([times[-1], r["closes_at"]], [i, i], color=colour, alpha=0.35, linewidth=5,
                    solid_capstyle="butt")
        if times:
            ax.plot(times, [i] * len(times), "o", color=colour, markersize=5)
        if r["closes_at"]:
            ax.plot([r["closes_at"]], [i], "|", color="#000", markersize=12, markeredgewidth=2)
    ax.axvline(now, color="#c62828", linestyle="--", linewidth=1)
    ax.text(now, -0.9, " now", color="#c62828", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{r['host']} ({r['status']})" for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -1.2)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.set_title("attempts (dots) and window deadlines (bars end |), soonest first, UTC")
    ax.spines[["top", "right"]].set_visible(False)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _save(fig)
