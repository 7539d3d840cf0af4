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
