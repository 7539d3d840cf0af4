"""Provisioning passes, per host: attempt, record, classify. Plain Python under the Prefect tasks.

Every decision reads the state store first, so a retried batch, a resumed run or a second worker
never provisions a host that already succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from tasks.rules.classify import HostFacts, classify_failure, effective_amt_suffix, is_pre_provisioning
from tasks.rules.dhcp_option15 import for_scope_host
from tasks.rules.host_state import Cause, Status
from tasks.inventory.model import Host
from tasks.rules.suffix import AmtVersion, InvalidValue
from tasks.steps.context import WaveContext
from tasks.steps.outcome import HostOutcome, Result
from tasks.store.state import StateUnavailable

log = logging.getLogger("amt_migrate")

NEXT_STEP = {
    Cause.SUFFIX_MISMATCH: "remediate the AMT suffix, then pass 2",
    Cause.SUFFIX_BLANK: "remediate the AMT suffix, then pass 2",
    Cause.UNSUPPORTED_VERSION: "firmware < 3.2.1: needs Intel's translator or a firmware update",
    Cause.UNREACHABLE: "check the host is on and reachable, then rerun",
    Cause.AUTH_FAILED: "check credentials and host keys (amt-migrate trust-hosts), then rerun",
    Cause.SERVER_ERROR: "rerun when the provisioning server is healthy",
    Cause.DHCP_SCOPE_WRONG: "fix option 15 on the host's DHCP scope, then rerun --from remediate",
    Cause.WINDOW_CLOSED: "rerun --from remediate (an attempt reopens the window)",
    Cause.CREDENTIALS_UNKNOWN: "unprovision in MEBx at the desk (nobody holds its AMT admin password), then rerun",
    Cause.UNKNOWN: "inspect the provisioning server's log, then rerun",
}


def next_step_for(cause: Cause, evidence: dict | None) -> str:
    """The next step for a cause, sharpened by what discovery met: an `unknown` failure of a host whose
    AMT answered WS-Man with a fault is not a provisioning-server question, nor a powered-off host (a
    fault is an answer; wsa:DestinationUnreachable = AMT does not serve that resource)."""
    ev = evidence or {}
    if cause == Cause.UNSUPPORTED_VERSION and ev.get("server_error_code") == "unsupported_version":
        return "the provisioning server refuses this firmware (RPS: AMT < 7, or 7.0-11.6 below build 3000): " \
               "update the AMT firmware, then rerun"
    if cause == Cause.UNKNOWN and ev.get("wsman_error") in ("fault", "protocol"):
        said = f" ({ev['wsman_detail']})" if ev.get("wsman_detail") else ""
        return (f"AMT is on and answered WS-Management with a {ev['wsman_error']}{said}, so its suffix could not be "
                f"read: check which AMT classes this firmware serves (or read the suffix in the MEBx), then rerun")
    return NEXT_STEP[cause]


class TransientHosts(Exception):
    """Some hosts met a transient server problem; raising lets Prefect retry the batch with backoff.
    `unreachable`: those for which the server did not answer at all (an outage of the run's own
    infrastructure, retried for outages.provisioning_retry_for), as against a 5xx answer for that host."""

    def __init__(self, hosts: list[str], unreachable: list[str] | None = None):
        self.hosts = hosts
        self.unreachable = list(unreachable or [])
        what = "could not reach the provisioning server" if self.unreachable else \
            "met a transient provisioning-server error"
        super().__init__(f"{len(hosts)} host(s) {what}: {', '.join(hosts[:10])}")


def host_version(host: Host, evidence: dict | None) -> AmtVersion:
    """Discovery's reading of the firmware beats what the legacy console exported."""
    found = (evidence or {}).get("amt_version_discovered")
    if found:
        try:
            return AmtVersion.parse(found)
        except InvalidValue:
            pass
    return host.version


def facts_for(ctx: WaveContext, host: Host, evidence: dict | None) -> HostFacts:
    """Assemble what is known about the host's suffixes, discovery first, then the inventory."""
    ev = evidence or {}
    pre = is_pre_provisioning(host.legacy_managed, ev)
    effective = effective_amt_suffix(pre, ev.get("trusted_suffix"), ev.get("dhcp_suffix"), ev.get("domain_name"))
    source = ev.get("suffix_source")
    if effective is None and host.amt_suffix is not None:
        effective, source = host.amt_suffix, "inventory (legacy console export)"
    from tasks.adapters.dhcp import live_scope_or_note

    # what the DHCP server hands THIS host (its reservation, its pool...), read (cached) when it lives on a
    # server; None when that server can't be read: no clue then, never the empty default of an unread scope
    scope, _ = live_scope_or_note(ctx.inv, ctx.inv.scope_of(host), ssh_runner=ctx.ssh)
    option = for_scope_host(scope, host.address, ev)
    os_suffix = ev.get("os_suffix", host.os_suffix)
    problems = {k: ev[k] for k in ("ssh_error", "ssh_cause", "wsman_error", "wsman_cause", "wsman_detail") if ev.get(k)}
    return HostFacts(
        amt_version=str(host_version(host, ev)), effective_suffix=effective, effective_source=source,
        os_suffix=os_suffix, os_source="discovery" if "os_suffix" in ev else "inventory",
        scope_name=scope.name if scope else None, scope_option15=option.domain_name if option else None,
        evidence=problems)


def as_discovered(host: Host, evidence: dict | None) -> Host:
    """The host as a provisioner must see it: where the inventory doesn't say legacy_managed, discovery's
    answer stands in (an adopting provisioner, e.g. rpc with AMT_PASSWORD, reads `legacy_managed`)."""
    from tasks.rules.classify import legacy_credentials_apply

    if host.legacy_managed is None and legacy_credentials_apply(None, evidence):
        return host.model_copy(update={"legacy_managed": True})
    return host


def provision_host(ctx: WaveContext, name: str, pass_no: int) -> HostOutcome:
    """One provisioning attempt for one host."""
    wave, store = ctx.wave.name, ctx.store
    stage = f"pass{pass_no}"
    rec = store.get(wave, name)
    if rec.status in (Status.PROVISIONED, Status.UNSUPPORTED):
        return HostOutcome(name, Result.SKIPPED, detail=rec.status)
    if name in ctx.answered(pass_no):
        return HostOutcome(name, Result.SKIPPED, detail="answered")  # a retried batch: it had its answer in this pass
    if not still_wanted(ctx, stage, rec):
        # another run handled it between this pass listing it and this batch leasing it
        return HostOutcome(name, Result.SKIPPED, detail="handled elsewhere")
    host = ctx.host(name)
    version = host_version(host, rec.evidence)
    if not version.compares_last_two_labels:
        store.transition(wave, name, Status.UNSUPPORTED, stage=stage, action="skip", outcome="unsupported",
                         cause=Cause.UNSUPPORTED_VERSION, evidence={"amt_version": str(version)},
                         next_step=NEXT_STEP[Cause.UNSUPPORTED_VERSION], flow_run_id=ctx.flow_run_id)
        return HostOutcome(name, Result.UNSUPPORTED, Cause.UNSUPPORTED_VERSION)
    # never ask twice: the client's own retry, or a run killed after the server said yes, may have done it
    if ctx.provisioner.is_provisioned(host):
        store.transition(wave, name, Status.PROVISIONED, stage=stage, action="observe", outcome="ok",
                         provisioned_in_pass=pass_no, evidence={"note": "already provisioned on the server"},
                         flow_run_id=ctx.flow_run_id)
        return HostOutcome(name, Result.ALREADY_PROVISIONED)
    routed = _route_by_path(ctx, host, rec, stage)
    if routed is not None:
        return routed
    outcome = ctx.provisioner.provision(as_discovered(host, rec.evidence))
    if outcome.error_code == "already_activated":
        outcome, routed = _after_already_activated(ctx, host, stage, outcome)
        if routed is not None:
            return routed
    now = ctx.now()
    if outcome.transient:
        # the host's status and cause stay what they were: the event says this run could not get an answer
        unreachable = outcome.error_code == "server_unreachable"
        store.record(wave, name, stage=stage, action="provision", outcome="not asked" if unreachable else "transient",
                     cause=Cause.SERVER_ERROR, evidence={"run_problem" if unreachable else "server_message":
                                                         outcome.message, **outcome.evidence},
                     flow_run_id=ctx.flow_run_id)
        return HostOutcome(name, Result.TRANSIENT, Cause.SERVER_ERROR, detail="unreachable" if unreachable else "")
    reached = outcome.reached_device
    closes = now + ctx.inv.window.interface_open if reached else None  # every attempt reopens the window
    if outcome.ok:
        return _provisioned(ctx, name, stage, pass_no, outcome, closes)
    facts = facts_for(ctx, host, rec.evidence)
    c = classify_failure(facts, ctx.cert_suffix, error_code=outcome.error_code, message=outcome.message)
    if pass_no == 2 and c.cause in PASS2_TO_TECHNICIAN and rec.status in (Status.REMEDIATED, Status.NEEDS_MEBX):
        out = _after_failed_pass2(ctx, rec, c, outcome, attempted=reached, closes=closes)
        if out is not None:
            return out
    status = Status.UNSUPPORTED if c.cause == Cause.UNSUPPORTED_VERSION else Status.FAILED
    store.transition(wave, name, status, stage=stage, action="provision", outcome="failed", cause=c.cause,
                     evidence={**c.as_evidence(), "run_problem": None, **outcome.evidence}, attempted=reached,
                     window_closes_at=closes,
                     next_step=next_step_for(c.cause, c.evidence), flow_run_id=ctx.flow_run_id)
    ctx.answered(pass_no).add(name)
    return HostOutcome(name, Result(status.value), c.cause)


def _provisioned(ctx: WaveContext, name: str, stage: str, pass_no: int, outcome, closes) -> HostOutcome:
    evidence = {"server_message": outcome.message, "run_problem": None, **outcome.evidence}
    if outcome.warning:  # what AMT and the new server read back overruled what the tool said: in the history
        evidence["warning"] = outcome.warning
        log.warning("%s: provisioned, with a warning: %s", name, outcome.warning)
    ctx.store.transition(ctx.wave.name, name, Status.PROVISIONED, stage=stage, action="provision", outcome="ok",
                         provisioned_in_pass=pass_no, attempted=True, window_closes_at=closes, evidence=evidence,
                         flow_run_id=ctx.flow_run_id)
    return HostOutcome(name, Result.PROVISIONED, detail="with a warning" if outcome.warning else "")


def _after_already_activated(ctx: WaveContext, host: Host, stage: str, outcome):
    """rpc says AMT is already activated, and the new server does not hold it (the provisioner's read-back
    asked it: held would have been provisioned). What AMT reads goes into the host's evidence, so the plan's
    path takes it from here: a technician or unprovision-first host is routed there now; an adopt host is
    tried once more, with AMT's current password, by a provisioner that adopts. Returns (the outcome to
    record, the HostOutcome when the host was routed instead)."""
    from tasks.rules.plan import ADOPT, host_path

    wave, name = ctx.wave.name, host.name
    ctx.store.record(wave, name, stage=stage, action="provision", outcome="already activated",
                     evidence={"server_message": outcome.message, **outcome.evidence}, flow_run_id=ctx.flow_run_id)
    if "adopt" in outcome.evidence:  # the current password went with it already: that answer stands
        return outcome, None
    rec = ctx.store.get(wave, name)
    routed = _route_by_path(ctx, host, rec, stage)
    if routed is not None or host_path(ctx.inv, host, rec.evidence)[0] != ADOPT:
        return outcome, routed
    return ctx.provisioner.provision(as_discovered(host, rec.evidence)), None


PASS2_TO_TECHNICIAN = {Cause.SUFFIX_MISMATCH, Cause.SUFFIX_BLANK, Cause.DHCP_SCOPE_WRONG}


def _after_failed_pass2(ctx: WaveContext, rec, c, outcome, *, attempted: bool, closes) -> HostOutcome | None:
    """Remediation said the suffix was fixed (or a technician did), yet pass 2 still fails on the suffix:
    the wave's remote methods are spent, so the host goes (back) on the technician's list with why,
    instead of leaving as `failed` with advice to remediate again. None: the wave has no MEBx step."""
    wave, name = ctx.wave.name, rec.host
    if "mebx" not in ctx.wave.remediation:
        return None
    ev = rec.evidence or {}
    verdict = c.evidence.get("verdict") or c.cause.value
    if rec.status == Status.NEEDS_MEBX:
        why = f"pass 2 still failed after the technician's MEBx change ({ev.get('mebx_done_at')}): {verdict}"
    else:
        how = "unverified" if ev.get("unverified") else "verified"
        why = f"{ev.get('method') or 'remediation'} reported success ({how}), but pass 2 still failed: {verdict}"
    ctx.store.record(wave, name, stage="pass2", action="provision", outcome="failed", cause=c.cause,
                     evidence={**c.as_evidence(), **outcome.evidence}, attempted=attempted, window_closes_at=closes,
                     flow_run_id=ctx.flow_run_id)
    ctx.store.transition(wave, name, Status.REMEDIATING, stage="pass2", action="to-technician", outcome="ok",
                         flow_run_id=ctx.flow_run_id)
    ctx.store.transition(wave, name, Status.NEEDS_MEBX, stage="pass2", action="mebx", outcome="work list",
                         cause=c.cause, evidence={"why_remote_failed": why, "method": "mebx", "mebx_done_at": None,
                                                  "mebx_note": None, "mebx_done_by": None, "unverified": None},
                         next_step=f"technician: set the DNS suffix to {ctx.cert_suffix} in the MEBx; record it with "
                                   f"`amt-migrate mebx done`, then rerun --status needs_mebx",
                         flow_run_id=ctx.flow_run_id)
    ctx.answered(2).add(name)
    return HostOutcome(name, Result.NEEDS_MEBX, c.cause)


def _route_by_path(ctx: WaveContext, host: Host, rec, stage: str) -> HostOutcome | None:
    """Hosts the plan does not reprovision are never provisioned as if they were pre-provisioning.

    technician -> needs_mebx(credentials_unknown) with the reason, no attempt; unprovision_first ->
    not attempted (recorded with the next step); adopt -> attempted only by a provisioner that
    adopts activated devices (`adopts_activated`; the lab's provisioning API takes legacy-managed
    devices over with their credentials, the seed's model), otherwise not attempted."""
    from tasks.rules.plan import ADOPT, REPROVISION, TECHNICIAN, UNPROVISION_FIRST, host_path

    path, why = host_path(ctx.inv, host, rec.evidence)
    if path == REPROVISION:
        return None
    wave, name = ctx.wave.name, host.name
    ev = {"path": path, "path_reason": why}
    if path == TECHNICIAN:
        if rec.status != Status.NEEDS_MEBX:
            ctx.store.transition(wave, name, Status.NEEDS_MEBX, stage=stage, action="route", outcome="technician",
                                 cause=Cause.CREDENTIALS_UNKNOWN, evidence=ev,
                                 next_step=f"MEBx at the desk: {why}", flow_run_id=ctx.flow_run_id)
        return HostOutcome(name, Result.SKIPPED, Cause.CREDENTIALS_UNKNOWN, detail="technician path")
    adopts = getattr(ctx.provisioner, "adopts_activated", ctx.inv.provisioning.server == "lab")
    if path == ADOPT and adopts:
        ctx.store.record(wave, name, stage=stage, action="route", outcome="adopt", evidence=ev,
                         flow_run_id=ctx.flow_run_id)
        return None
    step = ("`rpc deactivate -local` on the host (client control mode needs no password), then rerun"
            if path == UNPROVISION_FIRST and host.control_mode != "acm" and not (host.legacy and host.legacy.remove_first)
            else f"remove the {host.legacy.console} record, then rerun" if path == UNPROVISION_FIRST and host.legacy
            else "adopt with `rpc activate -n -password` (AMT_PASSWORD env) — this provisioner can't adopt yet")
    ctx.store.record(wave, name, stage=stage, action="route", outcome="not_attempted",
                     evidence={**ev, "next_step": step}, flow_run_id=ctx.flow_run_id)
    return HostOutcome(name, Result.SKIPPED, detail=f"{path}: not attempted")


def still_wanted(ctx: WaveContext, stage: str, rec) -> bool:
    """Once leased, does the stage still want the host? Two runs of one wave list a stage's hosts at
    different moments; the lease stops them working a host at once, this stops the second one working
    it again after the first released it."""
    from tasks.rules.selection import wants

    window_open = rec.window_closes_at is not None and rec.window_closes_at > ctx.now()
    return wants(stage, rec, explicit=ctx.selected is not None, pass2_include_failed=ctx.wave.pass2_include_failed,
                 window_open=window_open, from_stage=ctx.from_stage,
                 start=(ctx.start_at or {}).get(rec.host))


def give_up_transient(ctx: WaveContext, names: Iterable[str], pass_no: int, unreachable: Iterable[str] = ()) -> None:
    """After Prefect's retries are spent, a host still meeting server errors is failed(server_error); one the
    server never answered for (`unreachable`: the run's own outage) keeps its status and cause."""
    unreachable = set(unreachable)
    for name in names:
        if name in ctx.answered(pass_no):
            continue
        rec = ctx.store.get(ctx.wave.name, name)
        if rec.status in (Status.PROVISIONED, Status.UNSUPPORTED, Status.REMEDIATING):
            continue
        if rec.status != Status.PENDING or name in unreachable:
            # the run's own infrastructure failed, not the host: its recorded status and cause (pending,
            # auth_failed, remediated, needs_mebx, ...) still say what is true of it; the event says this run
            # could not ask
            why = ("provisioning server did not answer within outages.provisioning_retry_for" if name in unreachable
                   else "provisioning server kept failing after retries")
            ctx.store.record(ctx.wave.name, name, stage=f"pass{pass_no}", action="provision", outcome="not asked",
                             cause=Cause.SERVER_ERROR,
                             evidence={"run_problem": f"{why}; the host's status and cause are unchanged"},
                             flow_run_id=ctx.flow_run_id)
            continue
        ctx.store.transition(ctx.wave.name, name, Status.FAILED, stage=f"pass{pass_no}", action="provision",
                             outcome="failed", cause=Cause.SERVER_ERROR,
                             evidence={"server_message": "provisioning server kept failing after retries"},
                             next_step=NEXT_STEP[Cause.SERVER_ERROR], flow_run_id=ctx.flow_run_id)


def run_hosts(names: list[str], step: Callable[[str], HostOutcome], pool: ThreadPoolExecutor) -> list[HostOutcome]:
    """Run a per-host step for a batch on the wave's shared host pool; an unexpected exception is
    that host's outcome, not the batch's — except the state database gone past its bound, which stops the
    batch (and the run): no host is worked on that could not be recorded.

    The pool (max_concurrency threads) is shared by every batch of the wave: it, not the batch,
    bounds hosts in flight, so a batch waiting on one dead host never leaves the others idle.
    """
    lost: list[StateUnavailable] = []

    def guarded(name: str) -> HostOutcome:
        try:
            return step(name)
        except StateUnavailable as exc:  # the run's outage, not this host's: no traceback per host
            lost.append(exc)
            return HostOutcome(name, Result.ERROR, detail="state database unavailable")
        except Exception as exc:  # noqa: BLE001 - one host's bug must not sink its batch
            log.exception("%s: unexpected error", name)
            return HostOutcome(name, Result.ERROR, detail=type(exc).__name__)

    futures = [pool.submit(guarded, name) for name in names]
    outcomes = [f.result() for f in futures]
    if lost:
        raise lost[0]
    return outcomes


def run_leased(ctx: WaveContext, names: list[str], step: Callable[[str], HostOutcome]) -> list[HostOutcome]:
    """Claim the batch's hosts in the store first, so two runs or workers on one wave never work
    the same host at once; a host another live worker holds is left to it (the stage offers it again
    once that worker released it or its lease ran out: flows/stages.py)."""
    claimed = ctx.store.lease(ctx.wave.name, names, ctx.worker, ctx.lease_ttl)
    ctx.lease_keeper.start()
    outcomes = [HostOutcome(n, Result.LEASED_ELSEWHERE) for n in names if n not in claimed]
    if names:
        ctx.hosts_done(names, len(names) - len(claimed))
    try:
        outcomes += run_hosts([n for n in names if n in claimed], ctx.counted(names, step), ctx.host_pool)
    finally:
        if not ctx.store.guard.tripped:  # a store that is gone can't release: the leases run out instead
            ctx.store.release(ctx.wave.name, claimed, ctx.worker)
    return outcomes
