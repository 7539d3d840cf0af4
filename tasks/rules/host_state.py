"""The life of one host in one wave: statuses, causes, and which moves between them are legal.

Kept free of the database so the rules can be property-tested and shared by every stage; the store
(`tasks.store.state`) refuses any write this module calls illegal.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    PROVISIONED = "provisioned"
    FAILED = "failed"
    REMEDIATING = "remediating"
    REMEDIATED = "remediated"
    NEEDS_MEBX = "needs_mebx"
    REMEDIATION_FAILED = "remediation_failed"
    UNSUPPORTED = "unsupported"


class Cause(StrEnum):
    SUFFIX_MISMATCH = "suffix_mismatch"
    SUFFIX_BLANK = "suffix_blank"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    DHCP_SCOPE_WRONG = "dhcp_scope_wrong"
    WINDOW_CLOSED = "window_closed"
    SERVER_ERROR = "server_error"
    CREDENTIALS_UNKNOWN = "credentials_unknown"  # activated by someone else, nobody holds its password: MEBx
    UNKNOWN = "unknown"


#: Failures the migration expects and remediates; they never count toward max_fail_percentage.
SUFFIX_CAUSES = frozenset({Cause.SUFFIX_MISMATCH, Cause.SUFFIX_BLANK})

TERMINAL = frozenset({Status.PROVISIONED, Status.UNSUPPORTED})

_AFTER_REMEDIATION = {Status.PROVISIONED, Status.FAILED, Status.REMEDIATING}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # pending/failed -> needs_mebx: the plan's technician path (activated, credentials unknown) puts a
    # host on the MEBx work list without an attempt (cause credentials_unknown).
    Status.PENDING: frozenset({Status.PROVISIONED, Status.FAILED, Status.UNSUPPORTED, Status.NEEDS_MEBX}),
    # failed -> failed: a later attempt failed again (its cause may change); -> unsupported once
    # discovery learns the firmware is too old.
    Status.FAILED: frozenset({Status.REMEDIATING, Status.PROVISIONED, Status.FAILED, Status.UNSUPPORTED,
                              Status.NEEDS_MEBX}),
    Status.REMEDIATING: frozenset({Status.REMEDIATED, Status.NEEDS_MEBX, Status.REMEDIATION_FAILED}),
    Status.REMEDIATED: frozenset(_AFTER_REMEDIATION),
    Status.NEEDS_MEBX: frozenset(_AFTER_REMEDIATION),
    Status.REMEDIATION_FAILED: frozenset(_AFTER_REMEDIATION),
    Status.PROVISIONED: frozenset(),
    Status.UNSUPPORTED: frozenset(),
}

#: Statuses that must carry a cause, and those that must not.
NEEDS_CAUSE = frozenset({Status.FAILED, Status.NEEDS_MEBX, Status.REMEDIATION_FAILED, Status.UNSUPPORTED})


class IllegalTransition(ValueError):
    """A stage tried to move a host where the state machine does not allow it."""


def check_transition(current: Status | str, new: Status | str, cause: Cause | str | None = None) -> None:
    cur, nxt = Status(current), Status(new)
    if nxt not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(TRANSITIONS[cur])) or "nothing (terminal)"
        raise IllegalTransition(f"{cur} -> {nxt} is not allowed; from {cur} a host may go to {allowed}")
    if nxt in NEEDS_CAUSE and cause is None:
        raise IllegalTransition(f"{cur} -> {nxt} needs a cause")
    if cause is not None:
        Cause(cause)


def counts_toward_failure_limit(status: Status | str, cause: Cause | str | None) -> bool:
    """Ansible-style max_fail_percentage counts unreachable hosts but not the suffix problems we fix."""
    return Status(status) in (Status.FAILED, Status.REMEDIATION_FAILED) and (
        cause is None or Cause(cause) not in SUFFIX_CAUSES
    )
