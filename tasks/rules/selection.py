"""Which hosts a stage works on: where each host stands in the store, narrowed by a rerun's filters.

A plain run continues every host from where it stands; a rerun names a subset (status, cause, host
glob) and the stage to start from, like Ansible's retry files.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.rules.host_state import Cause, Status

if TYPE_CHECKING:  # a rule reads records; it does not open the store
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

    def starts(self, records: list[HostRecord]) -> dict[str, str]:
        """The stage each selected host starts at: --from for all, or (auto) by its status and cause."""
        return {r.host: (start_stage(r) if self.from_stage == AUTO else self.from_stage)
                for r in records if self.matches(r)}


STAGES = ("discovery", "pass1", "remediate", "pass2")
AUTO = "auto"  # rerun without --from: each host starts where its status and cause call for

#: Where a rerun starts a host when --from is not given, by cause: a host nobody reached or logged into
#: must be read again; a suffix problem needs remediation, not another attempt that fails the same way.
START_BY_CAUSE = {
    Cause.UNREACHABLE.value: "discovery", Cause.AUTH_FAILED.value: "discovery",
    Cause.SUFFIX_MISMATCH.value: "remediate", Cause.SUFFIX_BLANK.value: "remediate",
    Cause.DHCP_SCOPE_WRONG.value: "remediate", Cause.WINDOW_CLOSED.value: "remediate",
    Cause.SERVER_ERROR.value: "pass1", Cause.UNKNOWN.value: "pass1",
}


def start_stage(r: HostRecord) -> str:
    """The stage a rerun without --from starts this host at."""
    st = Status(r.status)
    if st == Status.PENDING:
        return "discovery"
    if st in (Status.REMEDIATED, Status.NEEDS_MEBX):
        return "pass2"  # a needs_mebx host goes on only once a technician's change is recorded
    if st == Status.REMEDIATING:
        return "remediate"
    return START_BY_CAUSE.get(r.cause or "", "pass1")


def start_reason(r: HostRecord) -> str:
    st = Status(r.status)
    if st == Status.NEEDS_MEBX:
        return "technician's MEBx change recorded" if mebx_confirmed(r) else \
            "waits for `amt-migrate mebx done` (stays on the work list)"
    if st == Status.REMEDIATED:
        return "remediated" + (" (unverified)" if (r.evidence or {}).get("unverified") else "")
    return f"{r.status}" + (f" ({r.cause})" if r.cause else "")


def mebx_confirmed(r: HostRecord) -> bool:
    """Has a technician's MEBx change been recorded since the host went on the work list?"""
    return Status(r.status) == Status.NEEDS_MEBX and bool((r.evidence or {}).get("mebx_done_at"))


def wants(stage: str, r: HostRecord, *, explicit: bool, pass2_include_failed: bool = False,
          window_open: bool = False, from_stage: str = "discovery", start: str | None = None) -> bool:
    """Does this stage act on this host, given where it stands? `start` is where a rerun starts this host:
    the stages before it leave the host alone."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    st = Status(r.status)
    if st in (Status.PROVISIONED, Status.UNSUPPORTED):
        return False
    if explicit and start is not None and STAGES.index(stage) < STAGES.index(start):
        return False
    if stage == "discovery":
        return st == Status.PENDING or explicit
    if stage == "pass1":
        if explicit:
            return st not in (Status.REMEDIATING, Status.REMEDIATED, Status.NEEDS_MEBX)
        return st == Status.PENDING
    if stage == "remediate":
        if st == Status.REMEDIATING:
            return True  # interrupted: continue it
        if st == Status.FAILED and (r.cause in REMEDIABLE) and (explicit or r.last_stage == "pass1"):
            return True
        if not explicit or r.cause == Cause.UNSUPPORTED_VERSION:
            return False
        # a needs_mebx host waiting for its technician is remediated again only when the lead asked for
        # exactly that (`--from remediate`, e.g. after fixing the DHCP scope); it ends remediated or back on the list
        return st == Status.REMEDIATION_FAILED or (st == Status.NEEDS_MEBX and start == "remediate")
    # pass 2: only hosts whose remediation succeeded (verified or unverified), whose technician's MEBx
    # change was recorded, or - under pass2_include_failed - failed hosts whose window is open
    if st == Status.REMEDIATED or mebx_confirmed(r):
        return True
    if st != Status.FAILED or not pass2_include_failed or not window_open:
        return False
    return explicit or r.last_stage != "pass2"
