"""The pre-flight plan: who will fail and why, from what the inventory already knows. No network.

This is the step the seed's console could not do; it predicts with the same suffix rules the
firmware applies, and says when a prediction is inferred rather than known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

from tasks.rules import dhcp_option15 as o15
from tasks.rules.classify import legacy_credentials_apply
from tasks.rules.durations import format_duration
from tasks.rules.host_state import Cause
from tasks.inventory.model import DhcpScope, Host, Inventory, Wave
from tasks.rules.domains import check_any_suffix
from tasks.rules.suffix import MIN_SUPPORTED

# Predicted outcomes, most certain first.
PROVISION = "provision"
FAIL = "fail"
LIKELY_PROVISION = "likely_provision"
LIKELY_FAIL = "likely_fail"
UNSUPPORTED = "unsupported"
UNKNOWN = "unknown"

# Per-host paths: what work the host needs, decided from its legacy state (export, then discovery).
REPROVISION = "reprovision"  # pre-provisioning/unprovisioned: the seed's two passes
ADOPT = "adopt"  # activated (ACM) and the migration holds its admin credentials: rpc activate with them
UNPROVISION_FIRST = "unprovision_first"  # CCM (local deactivate needs no password), or the legacy record goes first
TECHNICIAN = "technician"  # activated and nobody holds the credentials: MEBx at the desk
PATHS = (REPROVISION, ADOPT, UNPROVISION_FIRST, TECHNICIAN)

#: rpc amtinfo's "Control Mode" words (tasks.adapters.rpc_cli) -> acm/ccm/pre.
_DISCOVERED_MODES = {"admin": "acm", "client": "ccm", "pre-provisioning": None}


@dataclass(frozen=True)
class HostPlan:
    host: str
    address: str
    wave: str | None
    amt_version: str
    outcome: str
    cause: str | None
    suffix_source: str  # amt (known), os (inferred), scope (inferred), none
    suffix_used: str | None
    rule: str | None
    match: bool | None
    reason: str
    remediation: list[str] = field(default_factory=list)
    path: str = REPROVISION
    path_reason: str = ""
    option15: str | None = None  # what the host's DHCP server hands it (None: no scope, or not read)
    option15_from: str | None = None  # the level and place it comes from, what it overrides, what may differ

    def as_dict(self) -> dict:
        return asdict(self)


def scope_matches_certificate(scope: DhcpScope, cert_suffix: str | Sequence[str]) -> bool:
    """Would this scope's option 15, once AMT learns it, pass the check (3.2.1+ rule) against the
    certificate suffix (or any of several: the new server's domains)?

    A scope whose option 15 lives on a DHCP server (kea/windows_dhcp) and was not read has no value
    yet: False here; callers that can wait for the live read check `scope.known` first."""
    return scope.known and bool(scope.domain_name) and \
        check_any_suffix(str(MIN_SUPPORTED), scope.domain_name, cert_suffix).match


def scope_origin(scope: DhcpScope) -> str:
    """Where a scope's option 15 comes from, for warnings: 'from Kea at URL (subnet N)' or 'declared'."""
    if scope.live_source:
        return f"from {scope.live_source}"
    return f"from {scope.source_label} (not read)" if scope.has_source else "declared in the inventory"


def host_option15(inv: Inventory, host: Host, evidence: dict | None = None) -> o15.HostOption15 | None:
    """The option 15 the host's scope really hands this host (pool, reservation, class...); None if unknown."""
    return o15.for_scope_host(inv.scope_of(host), host.address, evidence)


def option15_value_matches(value: str, cert_suffix: str | Sequence[str]) -> bool:
    """Would this option 15, once AMT learns it, pass the check (3.2.1+ rule)? A blank never does."""
    return bool(value) and check_any_suffix(str(MIN_SUPPORTED), value, cert_suffix).match


def option15_matches(option: o15.HostOption15, cert_suffix: str | Sequence[str]) -> bool | None:
    """Would AMT (3.2.1+ rule) accept what this host gets? True / False / None (it depends: a class it may
    match, a pool when its address is unknown, hand out something else)."""
    return o15.verdict(option, lambda v: option15_value_matches(v, cert_suffix))


def remediation_for(inv: Inventory, host: Host, wave: Wave | None, cause: str | None,
                    suffixes: Sequence[str] | None = None, evidence: dict | None = None) -> list[str]:
    """Methods that can actually apply to this host, in the wave's order (mebx is always possible)."""
    if cause in (None, Cause.UNSUPPORTED_VERSION):
        return []
    order = wave.remediation if wave else ["amt_write", "dhcp_renew", "mebx"]
    scope = inv.scope_of(host)
    managed = legacy_credentials_apply(host.legacy_managed, evidence)  # discovery's answer when the export is silent
    usable = []
    for method in order:
        if method == "amt_write":
            if managed and inv.credentials.legacy_amt:
                usable.append("amt_write (WS-Man DomainName)")
            elif not managed and inv.credentials.ssh:
                missing = inv.tools.missing("hi_set")
                usable.append("amt_write (host interface over SSH)" if missing is None
                              else f"amt_write via host interface skipped: {missing}")
        elif method == "dhcp_renew":
            # a scope not read yet (live source) is checked by dhcp_renew itself right before it renews;
            # what counts is what the server hands THIS host (its pool, its reservation...), not the subnet
            option = host_option15(inv, host, evidence)
            if inv.credentials.ssh and scope is not None and (
                    option is None or option15_matches(option, suffixes or inv.certificate_suffix) is not False):
                usable.append("dhcp_renew")
        else:
            usable.append("mebx")
    return usable


def _discovered(evidence: dict | None) -> tuple[str | None, str | None]:
    """(amt_state, control_mode) discovery read from the host, None where it read nothing."""
    ev = evidence or {}
    state = ev.get("provisioning_state")
    amt_state = {0: "pre_provisioning", 1: "in_provisioning", 2: "activated"}.get(state) if state is not None else None
    text = str(ev.get("control_mode") or "").lower()
    mode = next((m for word, m in _DISCOVERED_MODES.items() if word in text), None)
    return amt_state, mode


def host_path(inv: Inventory, host: Host, evidence: dict | None = None) -> tuple[str, str]:
    """The host's path and the evidence for it. What discovery read (evidence) beats the export.

    - reprovision: pre-/in-provisioning, or nothing says it is activated;
    - unprovision_first: the legacy record must go first, or activated in client control mode
      (`rpc deactivate -local` needs no password);
    - adopt: activated in admin control mode (or mode unknown) and credentials.legacy_amt opens it
      (legacy_managed; when the inventory doesn't say, discovery's WS-Man answer, or before that the
      activation it read): RPS takes it over given the current password (rpc activate with it);
    - technician: activated and nobody holds its credentials (ConfigMgr Detected/Externally Provisioned).
    """
    found_state, found_mode = _discovered(evidence)
    state = found_state or host.amt_state
    mode = found_mode if found_state == "activated" and found_mode else (host.control_mode if state == "activated" else None)
    src = "discovery" if found_state else (f"{host.legacy.console} export" if host.legacy else "inventory")
    said = f" ({host.legacy.status})" if host.legacy and host.legacy.status else ""
    disagree = ""
    if found_state and host.amt_state and found_state != host.amt_state:
        disagree = f"; the export said {host.amt_state}, discovery read {found_state}: discovery wins"
    if host.legacy and host.legacy.remove_first:
        return UNPROVISION_FIRST, f"the {host.legacy.console} record must be removed before the new server takes it{disagree}"
    if state != "activated":
        if state is None:
            return REPROVISION, f"activation state unknown ({src}){said}: treated as not activated until discovery reads it"
        return REPROVISION, f"{state.replace('_', '-')} per {src}{said}{disagree}"
    opens = legacy_credentials_apply(host.legacy_managed, evidence)
    creds = opens and inv.credentials.legacy_amt is not None
    tried = (evidence or {}).get("legacy_credentials")
    if mode == "ccm":
        return UNPROVISION_FIRST, (f"activated in client control mode per {src}{said}: `rpc deactivate -local` needs no "
                                   f"password, then reprovision{disagree}")
    if creds:
        how = ("opens it" if host.legacy_managed else
               "opened it at discovery (the inventory doesn't say legacy_managed; AMT's answer does)"
               if tried == "opened" else
               "is taken to open it (the inventory doesn't say legacy_managed; an activated AMT was most likely "
               "activated by the console: discovery tries them over WS-Man)")
        return ADOPT, (f"activated in {'admin control mode' if mode == 'acm' else 'an unknown control mode'} per {src}{said}"
                       f" and credentials.legacy_amt ({inv.credentials.legacy_amt.user}) {how}: rpc activate with the "
                       f"current password, RPS rotates it{disagree}")
    if host.legacy_managed is False:
        why = "legacy_managed is false"
    elif tried == "refused":
        why = "AMT refused credentials.legacy_amt at discovery"
    elif inv.credentials.legacy_amt is None:
        why = "the inventory holds no credentials.legacy_amt"
    else:
        why = "legacy_managed is not set"
    return TECHNICIAN, (f"activated{' in admin control mode' if mode == 'acm' else ''} per {src}{said} and nobody holds its "
                        f"admin credentials ({why}): unprovision in MEBx at the desk, or set legacy_managed: true if "
                        f"credentials.legacy_amt opens it{disagree}")


def plan_host(inv: Inventory, host: Host, wave: Wave | None, evidence: dict | None = None,
              suffixes: Sequence[str] | None = None) -> HostPlan:
    """``suffixes``: the certificate suffixes the new server holds (RPS domains); else the inventory's one."""
    path, path_reason = host_path(inv, host, evidence)
    plan = _suffix_plan(inv, host, wave, suffixes, evidence)
    option = host_option15(inv, host, evidence)
    return replace(plan, path=path, path_reason=path_reason,
                   option15=option.domain_name if option else None,
                   option15_from=option.describe() if option else None)


def _suffix_plan(inv: Inventory, host: Host, wave: Wave | None, suffixes: Sequence[str] | None = None,
                 evidence: dict | None = None) -> HostPlan:
    cert = tuple(suffixes) if suffixes else inv.certificate_suffix
    version = host.version
    scope = inv.scope_of(host)

    def made(outcome, cause, source, used, verdict, reason):
        # an unknown host gets the remediation it would get if pass 1 finds its suffix wrong
        fix_cause = Cause.SUFFIX_MISMATCH.value if outcome == UNKNOWN else cause
        return HostPlan(host.name, host.address, wave.name if wave else None, str(version), outcome, cause, source,
                        used, verdict.rule if verdict else None, verdict.match if verdict else None, reason,
                        remediation_for(inv, host, wave, fix_cause, suffixes, evidence))

    if not version.compares_last_two_labels:
        verdict = check_any_suffix(version, host.amt_suffix or "", cert)
        return made(UNSUPPORTED, Cause.UNSUPPORTED_VERSION.value, "amt" if host.amt_suffix is not None else "none",
                    host.amt_suffix, verdict, verdict.reason)

    if host.amt_suffix is not None:
        verdict = check_any_suffix(version, host.amt_suffix, cert)
        if verdict.match:
            return made(PROVISION, None, "amt", host.amt_suffix, verdict, verdict.reason)
        cause = Cause.SUFFIX_BLANK if verdict.rule == "blank" else Cause.SUFFIX_MISMATCH
        return made(FAIL, cause.value, "amt", host.amt_suffix, verdict, verdict.reason)

    # AMT's suffix is unknown: infer from what the OS holds (it took the same option 15, unless the
    # window was closed when it changed) and from what the scope hands out.
    clues = []
    if host.os_suffix:
        clues.append(("os", host.os_suffix))
    option = host_option15(inv, host, evidence)
    if option is not None and option.domain_name:
        at = f"{option.where}, from {scope.live_source}" if scope.live_source else option.where
        may = "; it may get " + ", ".join(f"{v!r} {w}" for v, w in option.alternatives) if option.alternatives else ""
        clues.append((f"scope {scope.name} option 15 ({at}{may})", option.domain_name))
    if not clues:
        return made(UNKNOWN, None, "none", None, None,
                    "unknown: no AMT suffix, no OS suffix and no DHCP scope known; discovery or pass 1 will tell")
    verdicts = [(src, sfx, check_any_suffix(version, sfx, cert)) for src, sfx in clues]
    bad = [(src, sfx, v) for src, sfx, v in verdicts if not v.match]
    if bad:
        src, sfx, v = bad[0]
        return made(LIKELY_FAIL, Cause.SUFFIX_MISMATCH.value, src.split()[0], sfx, v, f"inferred from {src}: {v.reason}")
    src, sfx, v = verdicts[0]
    return made(LIKELY_PROVISION, None, src.split()[0], sfx, v,
                f"inferred from {' and '.join(s for s, _, _ in verdicts)}: {v.reason}")


@dataclass(frozen=True)
class Plan:
    hosts: list[HostPlan]
    warnings: list[str]
    scopes: list[dict] = field(default_factory=list)  # each scope: source, option 15, lease, match

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for h in self.hosts:
            out[h.outcome] = out.get(h.outcome, 0) + 1
        return out

    def path_counts(self) -> dict[str, dict[str, int]]:
        """wave (or "(no wave)") -> path -> hosts: the work each wave holds."""
        out: dict[str, dict[str, int]] = {}
        for h in self.hosts:
            per = out.setdefault(h.wave or "(no wave)", {p: 0 for p in PATHS})
            per[h.path] += 1
        return out


def build_plan(inv: Inventory, wave: str | None = None, evidence: dict[str, dict] | None = None,
               suffixes: Sequence[str] | None = None) -> Plan:
    """The plan; ``evidence`` (host name -> what discovery recorded) overrides the export where it disagrees.
    ``suffixes``: the new server's certificate suffixes (RPS domains, read by the caller); a host
    matches if any passes AMT's rule. None = the inventory's certificate suffix alone."""
    evidence = evidence or {}
    warnings = [str(w) for w in inv.warnings]
    cert = tuple(suffixes) if suffixes else inv.certificate_suffix
    scopes = []
    members: dict[str, list[Host]] = {}  # each host under its scope, computed once (100,000 hosts × scopes)
    for h in inv.hosts:
        found = inv.scope_of(h)
        if found is not None:
            members.setdefault(found.name, []).append(h)
    for scope in inv.dhcp_scopes:
        entry, said = scope_report(inv, scope, cert, evidence, members.get(scope.name, []))
        scopes.append(entry)
        warnings.extend(said)
    waves = [inv.wave(wave)] if wave else list(inv.waves)
    seen: set[str] = set()
    plans: list[HostPlan] = []
    for w in waves:
        for h in inv.wave_hosts(w):
            plans.append(plan_host(inv, h, w, evidence.get(h.name), suffixes))
            seen.add(h.name)
    if not wave:
        plans.extend(plan_host(inv, h, None, evidence.get(h.name), suffixes) for h in inv.hosts if h.name not in seen)
    return Plan(plans, warnings, scopes)


def scope_report(inv: Inventory, scope: DhcpScope, cert, evidence: dict[str, dict],
                 hosts: list[Host]) -> tuple[dict, list[str]]:
    """A scope for the plan: its entry (source, every place it sets option 15 and whether each matches) and
    its warnings. A place warns only where an inventory host gets its value (a subnet value no host of the
    inventory receives, because its pool sets its own, is no reason to send anyone to a technician); a
    scope holding no inventory host warns for every place that does not match."""
    entry = {"scope": scope.name, "subnet": str(scope.subnet), "source": scope.source_label,
             "read": scope.known, "option15": scope.domain_name if scope.known else None,
             "lease": format_duration(scope.lease) if scope.known else None, "matches_certificate": None,
             "origin": f"option 15 {scope_origin(scope)}", "error": scope.live_error, "placements": []}
    if not scope.known:
        return entry, [f"scope {scope.name}: option 15 {scope_origin(scope)}"
                       f"{': ' + scope.live_error if scope.live_error else ''}: dhcp_renew will check it live"]
    live = scope.live_values
    places = live.placements() if live is not None else [(scope.domain_name, o15.INVENTORY, "the inventory")]

    def ok(value: str) -> bool:
        return option15_value_matches(value, cert)

    entry["placements"] = [{"option15": v, "level": lv, "where": w, "matches_certificate": ok(v)} for v, lv, w in places]
    entry["matches_certificate"] = all(ok(v) for v, _, _ in places)
    wrong: dict[tuple[str, str], list[str]] = {}
    unsure: dict[str, list[str]] = {}
    for h in hosts:
        option = o15.for_scope_host(scope, h.address, evidence.get(h.name))
        verdict = option15_matches(option, cert) if option is not None else True
        if verdict is False:
            wrong.setdefault((option.domain_name, option.where), []).append(h.name)
        elif verdict is None:
            unsure.setdefault(option.describe(), []).append(h.name)
    if not hosts:
        wrong = {(v, w): [] for v, _, w in places if not ok(v)}
    said = []
    for (value, where), names in wrong.items():
        at = f", set at {where}," if live is not None else ""
        who = f" for {len(names)} host(s): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}" if names else ""
        said.append(f"scope {scope.name}: option 15 {value or '(none)'!r} {scope_origin(scope)}{at} does not match "
                    f"{_cert_words(cert)}{who}: a DHCP renew there can't fix a suffix (dhcp_scope_wrong)")
    for what, names in unsure.items():
        said.append(f"scope {scope.name}: {len(names)} host(s) ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''}) "
                    f"get option 15 {what}: whether it matches {_cert_words(cert)} depends on the client; "
                    f"dhcp_renew is tried and verified")
    if scope.lease > inv.window.interface_open:
        said.append(f"scope {scope.name}: lease {format_duration(scope.lease)} is longer than the AMT window "
                    f"{format_duration(inv.window.interface_open)}: clients renew on their own only at half the "
                    f"lease, after the window closes; shorten it or force renews")
    return entry, said


def _cert_words(cert: str | tuple[str, ...]) -> str:
    if isinstance(cert, str) or len(cert) == 1:
        return f"certificate suffix {(cert if isinstance(cert, str) else cert[0])!r}"
    return f"any of the certificate suffixes {', '.join(cert)}"
