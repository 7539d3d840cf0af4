"""What one step did to one host, as plain data (Nornir's per-host Result, not a string to parse).

Every per-host step (discover, provision, remediate) returns a `HostOutcome`; the batch tasks hand
them back to the flow, which logs them grouped and counts them. The store keeps the full record;
this is the run's short answer per host.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tasks.rules.host_state import Cause


class Result(StrEnum):
    DISCOVERED = "discovered"
    PROVISIONED = "provisioned"
    ALREADY_PROVISIONED = "already provisioned"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"
    TRANSIENT = "transient"  # the server had a passing problem: Prefect retries the batch
    SKIPPED = "skipped"  # nothing to do (done already, or another run handled it)
    LEASED_ELSEWHERE = "leased elsewhere"  # another live worker holds the host
    REMEDIATED = "remediated"
    NEEDS_MEBX = "needs_mebx"
    REMEDIATION_FAILED = "remediation_failed"
    ERROR = "error"  # a bug met on this host; the batch goes on


@dataclass(frozen=True)
class HostOutcome:
    host: str
    result: Result
    cause: Cause | None = None
    detail: str = ""  # what was learned, the method that worked, the exception's type

    @property
    def label(self) -> str:
        """Short text for grouping in logs: the result, then its cause or detail."""
        extra = self.cause.value if self.cause else self.detail
        return f"{self.result.value}:{extra}" if extra else self.result.value


def results_line(outcomes: list[HostOutcome]) -> str:
    """A batch's outcomes as one log line: each label with its count and hosts, most common first."""
    by_label: dict[str, list[str]] = {}
    for o in outcomes:
        by_label.setdefault(o.label, []).append(o.host)
    parts = [f"{label} {len(names)}: {', '.join(names)}"
             for label, names in sorted(by_label.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return f"{len(outcomes)} host(s): " + "; ".join(parts) if parts else "no host"
