"""The close-out of a wave: what the new server now holds, what the legacy console's owner removes, what is open.

Built from the state store (the truth about each host) and the inventory (the legacy record each host
came from). A lead hands the removal CSV to the legacy console's owner: one file per console, keyed by
the console's own id for the device (ConfigMgr ResourceID, EMA EndpointId, MeshCentral node id, SCS
UUID) so the owner can act on it in bulk; only hosts the new server holds are in it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from tasks.inventory.model import Inventory
from tasks.rules.host_state import Status
from tasks.store.state import StateStore

#: Removal CSV columns per console: (id column, name column), in the console's own spelling.
REMOVAL_COLUMNS = {
    "configmgr": ("ResourceID", "Name"),
    "ema": ("EndpointId", "ComputerName"),
    "meshcentral": ("NodeId", "Name"),
    "scs": ("UUID", "Name"),
    "csv": ("Id", "Name"),
}


@dataclass(frozen=True)
class Migrated:
    host: str
    address: str
    uuid: str | None
    control_mode: str | None
    provisioned_at: str | None
    provisioned_in_pass: int | None
    path: str
    legacy_console: str | None
    legacy_id: str | None


@dataclass(frozen=True)
class Open:
    host: str
    address: str
    status: str
    cause: str | None
    path: str
    next_step: str
    deadline: str | None
    deadline_why: str


@dataclass
class Closeout:
    wave: str
    migrated: list[Migrated] = field(default_factory=list)
    open: list[Open] = field(default_factory=list)
    not_in_store: list[str] = field(default_factory=list)

    def removal_csvs(self) -> dict[str, str]:
        """console -> CSV text: the legacy records to remove (migrated hosts only)."""
        by_console: dict[str, list[Migrated]] = {}
        for m in self.migrated:
            by_console.setdefault(m.legacy_console or "csv", []).append(m)
        out = {}
        for console, rows in sorted(by_console.items()):
            id_col, name_col = REMOVAL_COLUMNS[console]
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")  # the consoles run on Windows: CRLF, as Import-Csv expects
            w.writerow([id_col, name_col, "Address", "NewServerUuid", "MigratedAt", "Wave"])
            for m in rows:
                w.writerow([m.legacy_id or "", m.host, m.address, m.uuid or "", m.provisioned_at or "", self.wave])
            out[console] = buf.getvalue()
        return out

    def markdown(self) -> str:
        lines = [f"# Close-out of wave {self.wave}", "",
                 f"{len(self.migrated)} host(s) in the new server, {len(self.open)} still open"
                 + (f", {len(self.not_in_store)} never enrolled" if self.not_in_store else "") + ".", "",
                 "## In the new server", "", "| host | uuid | control mode | when | pass | path | legacy record |",
                 "|---|---|---|---|---|---|---|"]
        for m in self.migrated:
            rec = f"{m.legacy_console} {m.legacy_id}" if m.legacy_console and m.legacy_id else (m.legacy_console or "-")
            lines.append(f"| {m.host} | {m.uuid or 'not recorded'} | {m.control_mode or 'not recorded'} | "
                         f"{m.provisioned_at or '-'} | {m.provisioned_in_pass or '-'} | {m.path} | {rec} |")
        lines += ["", "## Still open", "", "| host | status | cause | path | next step | deadline |", "|---|---|---|---|---|---|"]
        for o in self.open:
            lines.append(f"| {o.host} | {o.status} | {o.cause or '-'} | {o.path} | {o.next_step} | "
                         f"{o.deadline or '-'} {('(' + o.deadline_why + ')') if o.deadline_why else ''} |")
        if self.not_in_store:
            lines += ["", f"Never enrolled (run the wave): {', '.join(self.not_in_store)}"]
        return "\n".join(lines) + "\n"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _control_mode(ev: dict) -> str | None:
    for key in ("control_mode_after", "control_mode"):
        if ev.get(key):
            return str(ev[key])
    rpc = ev.get("rpc")
    if isinstance(rpc, dict) and rpc.get("control_mode"):
        return str(rpc["control_mode"])
    return None


def build_closeout(inv: Inventory, store: StateStore, wave: str) -> Closeout:
    """Every host of the wave: migrated (with when, from the event that made it so) or open (with the next step)."""
    w = inv.wave(wave)
    hosts = {h.name: h for h in inv.wave_hosts(w)}
    records = {r.host: r for r in store.hosts(wave)}
    when: dict[str, str] = {}
    for e in store.history(list(records), wave):
        if e.status_after == Status.PROVISIONED.value and e.status_before != Status.PROVISIONED.value:
            when[e.host] = _iso(e.at)
    out = Closeout(wave)
    for name, host in hosts.items():
        rec = records.get(name)
        if rec is None:
            out.not_in_store.append(name)
            continue
        ev = rec.evidence or {}
        path = ev.get("path") or "reprovision"
        legacy = host.legacy
        if rec.status == Status.PROVISIONED:
            mode = _control_mode(ev)
            # discovery's control mode was read before provisioning; say so rather than pass it off as the new one
            if mode and "control_mode_after" not in ev:
                mode = f"{mode} (read before provisioning)"
            out.migrated.append(Migrated(name, rec.address, ev.get("uuid") or None, mode, when.get(name),
                                         rec.provisioned_in_pass, path, legacy.console if legacy else None,
                                         legacy.id if legacy else None))
            continue
        step = rec.next_step or ev.get("next_step") or ("run the wave" if rec.status == Status.PENDING else "see history")
        if rec.window_closes_at is not None and rec.status != Status.UNSUPPORTED:
            deadline, why = _iso(rec.window_closes_at), "AMT's provisioning window closes: act before"
        else:
            deadline, why = None, "no window open" if rec.status != Status.UNSUPPORTED else "firmware too old"
        out.open.append(Open(name, rec.address, rec.status, rec.cause, path, step, deadline, why))
    return out
