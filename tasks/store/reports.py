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


def write_wave_reports(inv: Inventory, store: StateStore, wave: str, *, halted: str | None = None) -> dict[str, Path]:
    """CSV + HTML report and the MEBx work list, beside the state; returns what was written."""
    records = store.hosts(wave)
    rows = host_rows(records)
    out = reports_dir(inv) / wave
    files = {"report_csv": out / "hosts.csv", "report_html": out / "report.html", "worklist_csv": out / "mebx-worklist.csv"}
    _atomic_write(files["report_csv"], _csv_text(rows, HOST_COLUMNS))
    _atomic_write(files["worklist_csv"], _csv_text(worklist_rows(inv, records), WORKLIST_COLUMNS))
    summary = summarize(records, wave)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in HOST_COLUMNS) + "</tr>\n" for r in rows)
    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(inv.name)} / {html.escape(wave)}</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px}}table{{border-collapse:collapse}}</style>"
            f"<h1>{html.escape(inv.name)} / {html.escape(wave)}</h1><p>generated {now}</p>"
            f"<pre>{html.escape(summary_markdown(inv, summary, halted=halted))}</pre>"
            "<table><tr>" + "".join(f"<th>{c}</th>" for c in HOST_COLUMNS) + "</tr>\n" + table + "</table>")
    _atomic_write(files["report_html"], body)
    return files
