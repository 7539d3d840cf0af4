"""Give every provisioning failure a cause, with evidence, because the server won't say why.

The server's error is generic; the cause comes from what discovery learned about the suffix AMT
holds (known), or failing that from the OS suffix and the scope's option 15 (inferred).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.rules.host_state import Cause
from tasks.rules.suffix import AmtVersion, check_suffix


@dataclass
class HostFacts:
    """What is known about one host's suffixes, each with where it came from."""

    amt_version: str
    effective_suffix: str | None = None  # what AMT will be checked against; None = unknown
    effective_source: str | None = None  # e.g. "wsman DomainName", "amt-hi trusted", "inventory"
    os_suffix: str | None = None
    os_source: str | None = None
    scope_name: str | None = None
    scope_option15: str | None = None
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    cause: Cause
    inferred: bool
    evidence: dict

    def as_evidence(self) -> dict:
        return {**self.evidence, "cause": self.cause.value, "inferred": self.inferred}


def is_pre_provisioning(legacy_managed: bool | None, evidence: dict | None) -> bool:
    """What discovery read (ProvisioningState 0 = pre) beats the export's word that the legacy console manages it."""
    state = (evidence or {}).get("provisioning_state")
    return state == 0 if state is not None else legacy_managed is not True


def discovered_activated(evidence: dict | None) -> bool | None:
    """Did discovery read AMT as activated? ProvisioningState 2 (WS-Man, or rpc amtinfo as recorded by
    discovery) is activated; 0 (pre) and 1 (in provisioning) are not; None: discovery read no state."""
    state = (evidence or {}).get("provisioning_state")
    return None if state is None else state == 2


def try_legacy_credentials(legacy_managed: bool | None, evidence: dict | None, amt_state: str | None) -> bool:
    """Should discovery try the legacy console's credentials (WS-Man) on this host?

    The export's explicit word decides (true: yes; false: the console does not manage it, so no
    lockout-counting guesses). When the inventory doesn't say, an activated AMT was activated by
    someone, most likely the console being replaced: its credentials are tried. Activated is what
    discovery read, else what the export said."""
    if legacy_managed is not None:
        return legacy_managed
    found = discovered_activated(evidence)
    return found if found is not None else amt_state == "activated"


def legacy_credentials_apply(legacy_managed: bool | None, evidence: dict | None) -> bool:
    """After discovery: do the legacy console's credentials apply to this host (WS-Man reads and writes,
    the adopt path)? The export's explicit word stands; when it doesn't say, what AMT answered to them
    at discovery (`legacy_credentials`: opened / refused) decides, and before they were tried, an AMT
    discovery read as activated counts as managed by the console."""
    if legacy_managed is not None:
        return legacy_managed
    ev = evidence or {}
    answered = ev.get("legacy_credentials")
    if answered in ("opened", "refused"):
        return answered == "opened"
    return discovered_activated(ev) is True


def effective_amt_suffix(pre_provisioning: bool, trusted: str | None, dhcp: str | None,
                         domain_name: str | None) -> str | None:
    """The suffix AMT checks, or None when what was read can't tell.

    Pre-provisioning: the trusted (PKI) suffix if set, else option 15. Provisioned by the legacy
    console: AMT_GeneralSettings.DomainName if set, else option 15. None inputs are unknowns.
    """
    first = trusted if pre_provisioning else domain_name
    if first:
        return first
    if first is None:
        return None
    return dhcp


def classify_failure(facts: HostFacts, cert_suffix: str, *, error_code: str | None, message: str) -> Classification:
    """Map a failed attempt plus what we know to one cause from the vocabulary."""
    base = {"server_error_code": error_code, "server_message": message[:300], **facts.evidence}
    version = AmtVersion.parse(facts.amt_version)
    if not version.compares_last_two_labels:
        return Classification(Cause.UNSUPPORTED_VERSION, False, {**base, "amt_version": str(version)})
    if error_code == "unsupported_version":
        # the provisioning server refused this firmware itself (RPS Validator.ts verifyAMTVersion): a firmware
        # update, not a suffix, is what it needs
        return Classification(Cause.UNSUPPORTED_VERSION, False, {**base, "amt_version": str(version), "note":
                              "the provisioning server refuses this firmware (RPS: AMT < 7, or 7.0-11.6 below "
                              "build 3000): update the firmware"})
    if error_code in ("device_unreachable", "unreachable"):
        return Classification(Cause.UNREACHABLE, False, base)
    if error_code in ("auth_failed",):
        return Classification(Cause.AUTH_FAILED, False, base)
    if error_code in ("server_error", "http_5xx"):
        return Classification(Cause.SERVER_ERROR, False, base)
    if error_code in ("tool_error", "config_error", "unverified", "already_activated"):
        # rpc could not run, our settings are wrong, the result could not be confirmed, or AMT was activated
        # before: the suffixes say nothing about it, and guessing a suffix cause would send it to remediation
        return Classification(Cause.UNKNOWN, False, {**base, "note": {
            "tool_error": "rpc could not run on the client (see rpc_output)",
            "config_error": "the activation was refused for a setting (URL, profile, TLS, tenant)",
            "unverified": "the outcome could not be verified (see amtinfo / mps)",
            "already_activated": "AMT was already activated and the new server does not hold it: adopt it "
                                 "(credentials.legacy_amt), unprovision it, or a technician clears it in MEBx"}[error_code]})
    lowered = message.lower()
    if error_code == "suffix_blank" or "missing dns suffix" in lowered:
        return Classification(Cause.SUFFIX_BLANK, False, base)
    if error_code == "suffix_mismatch" or "does not match list of available amt domain suffixes" in lowered:
        return Classification(Cause.SUFFIX_MISMATCH, False, base)

    if facts.effective_suffix is not None:
        v = check_suffix(version, facts.effective_suffix, cert_suffix)
        ev = {**base, "amt_suffix": facts.effective_suffix, "amt_suffix_source": facts.effective_source,
              "verdict": v.reason}
        if v.rule == "blank":
            return Classification(Cause.SUFFIX_BLANK, False, ev)
        if not v.match:
            return Classification(Cause.SUFFIX_MISMATCH, False, ev)
        return Classification(Cause.UNKNOWN, False, {**ev, "note": "AMT's suffix matches; the failure has another cause"})

    for source, value in (("os", facts.os_suffix), (f"scope {facts.scope_name} option 15", facts.scope_option15)):
        if value is None:
            continue
        v = check_suffix(version, value, cert_suffix)
        if not v.match:
            cause = Cause.SUFFIX_BLANK if v.rule == "blank" else Cause.SUFFIX_MISMATCH
            return Classification(cause, True, {**base, "inferred_from": source, "inferred_suffix": value,
                                                "verdict": v.reason})
    # Nothing points at the suffix. If discovery was locked out, that is what the operator must fix
    # first: without it the suffix can be neither read nor repaired remotely.
    if facts.evidence.get("ssh_cause") == Cause.AUTH_FAILED or facts.evidence.get("wsman_cause") == Cause.AUTH_FAILED:
        return Classification(Cause.AUTH_FAILED, True, {**base, "note": "generic provisioning error; discovery was "
                                                        "refused, so AMT's suffix could not be read"})
    return Classification(Cause.UNKNOWN, True, {**base, "note": "AMT suffix unknown and no clue mismatches"})
