"""Which hosts a stage works on: where each host stands in the store, narrowed by a rerun's filters.

A plain run continues every host from where it stands; a rerun names a subset (status, cause, host
glob) and the stage to start from, like Ansible's retry files.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from tasks.rules.host_state import Cause, Status
from tasks.store.state import HostRecord

REMEDIABLE = {Cause.SUFFIX_MISMATCH.value, Cause.SUFFIX_BLANK.value, Cause.DHCP_SCOPE_WRONG.value,
              Cause.WINDOW_CLOSED.value}


@dataclass(frozen=True)
class Selection:
    statuses: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    hosts: str | None = None  # glob on host names
    explicit: bool = False  # a rerun: the selected hosts are acted on even if a plain run would leave them
    from_stage: str = "discovery"

    @property
    def is_empty(self) -> bool:
        return not self.explicit

    def matches(self, r: HostRecord) -> bool:
        if self.statuses and r.status not in self.statuses:
            return False
        if self.causes and (r.cause or "") not in self.causes:
            return False
        if self.hosts and not fnmatch.fnmatchcase(r.host.lower(), self.hosts.lower()):
            return False
        return True

    def as_dict(self) -> dict:
        return {"statuses": list(self.statuses), "causes": list(self.causes), "hosts": self.hosts,
                "explicit": self.explicit, "from_stage": self.from_stage}

    @classmethod
    def from_dict(cls, d: dict | None) -> Selection:
        if not d:
            return cls()
        for s in d.get("statuses") or []:
            Status(s)
        for c in d.get("causes") or []:
            Cause(c)
        return cls(tuple(d.get("statuses") or ()), tuple(d.get("causes") or ()), d.get("hosts"), bool(d.get("explicit")),
                   d.get("from_stage") or "discovery")

    def resolve(self, records: list[HostRecord]) -> set[str]:
        """Fix the subset once, at the start: hosts keep belonging to a rerun as their status moves."""
        return {r.host for r in records if self.matches(r)}


def wants(stage: str, r: HostRecord, *, explicit: bool, pass2_include_failed: bool = False,
          window_open: bool = False, from_stage: str = "discovery") -> bool:
    """Does this stage act on this host, given where it stands?"""
    st = Status(r.status)
    if st in (Status.PROVISIONED, Status.UNSUPPORTED):
        return False
    if stage == "discovery":
        return st == Status.PENDING or explicit
    if stage == "pass1":
        if explicit:
            return st != Status.REMEDIATING
        return st == Status.PENDING
    if stage == "remediate":
        if st == Status.REMEDIATING:
            return True  # interrupted: continue it
        if st == Status.FAILED and (r.cause in REMEDIABLE) and (explicit or r.last_stage == "pass1"):
            return True
        return explicit and st in (Status.REMEDIATION_FAILED, Status.NEEDS_MEBX) and r.cause != Cause.UNSUPPORTED_VERSION
    if stage == "pass2":
        if st == Status.REMEDIATED:
            return True
        if explicit:
            # after a technician's MEBx visit: `rerun --status needs_mebx --from pass2`
            return st == Status.FAILED or (from_stage == "pass2" and st in (Status.NEEDS_MEBX, Status.REMEDIATION_FAILED))
        return pass2_include_failed and st == Status.FAILED and r.last_stage != "pass2" and window_open
    raise ValueError(f"unknown stage {stage!r}")


def stage_hosts(ctx, stage: str, selected: set[str] | None) -> list[str]:
    """Host names for a stage, in inventory order; `selected` is a rerun's fixed subset (None: a plain run)."""
    now = ctx.now()
    records = {r.host: r for r in ctx.store.hosts(ctx.wave.name)}
    out = []
    for name in ctx.hosts_by_name:
        r = records.get(name)
        if r is None or (selected is not None and name not in selected):
            continue
        if ctx.restrict is not None and name not in ctx.restrict:  # a shard's child run
            continue
        window_open = r.window_closes_at is not None and r.window_closes_at > now
        if wants(stage, r, explicit=selected is not None, pass2_include_failed=ctx.wave.pass2_include_failed,
                 window_open=window_open, from_stage=ctx.from_stage):
            out.append(name)
    return out


def discovery_order(ctx, names: list[str]) -> list[str]:
    """Longest expected work first (list scheduling's LPT rule): a legacy-managed host is read over SSH
    and WS-Management, so an unreachable one costs both protocols' timeouts; started late, one such
    host kept discovery running 30 s after every other host was done. Inventory order otherwise."""
    return sorted(names, key=lambda n: not ctx.hosts_by_name[n].legacy_managed)
