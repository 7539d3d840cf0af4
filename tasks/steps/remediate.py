"""Remediation, per host, in the wave's method order; each method is verified before it counts.

The window matters only for `dhcp_renew`: AMT takes option 15 only while its interface is open,
so a closed window is first reopened by a provisioning attempt (the seed's advice). Direct writes
(`amt_write`) need no window. What is left goes on the technician's MEBx work list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from tasks.adapters import amt_host_tool
from tasks.adapters import os_network
from tasks.steps import renew_check
from tasks.rules.classify import is_pre_provisioning
from tasks.rules.host_state import Cause, Status
from tasks.inventory.model import Host
from tasks.rules.dhcp_option15 import for_scope_host
from tasks.rules.plan import option15_matches
from tasks.store.state import HostRecord
from tasks.rules.suffix import check_suffix
from tasks.steps.context import WaveContext
from tasks.steps.outcome import HostOutcome, Result


log = logging.getLogger(__name__)


@dataclass
class MethodResult:
    ok: bool
    reason: str
    cause: Cause | None = None
    applicable: bool = True
    evidence: dict = field(default_factory=dict)
    verified: bool = True  # False: the step ran, but its effect on AMT could not be read back

    @property
    def outcome(self) -> str:
        if self.ok:
            return "verified" if self.verified else "unverified"
        return "failed" if self.applicable else "not applicable"


def _matches(ctx: WaveContext, host: Host, suffix: str | None) -> bool:
    return suffix is not None and check_suffix(host.version, suffix, ctx.cert_suffix).match


def _pre_provisioning(host: Host, rec: HostRecord) -> bool:
    return is_pre_provisioning(host.legacy_managed, rec.evidence)


# -- amt_write -----------------------------------------------------------------------------------

def amt_write(ctx: WaveContext, host: Host, rec: HostRecord) -> MethodResult:
    """Write the suffix into AMT directly: WS-Man DomainName (legacy-provisioned) or the host interface (pre)."""
    target = ctx.cert_suffix
    if not _pre_provisioning(host, rec):
        client = ctx.wsman(host, rec.evidence)
        if client is None:
            return MethodResult(False, "no legacy AMT credentials for WS-Management", applicable=False)
        from tasks.adapters.wsman import WsmanError

        try:
            client.put_domain_name(target)
            back = (client.get_general_settings().get("DomainName") or "").lower()
        except WsmanError as exc:
            return MethodResult(False, f"WS-Man: {exc.kind}", Cause(exc.cause))
        finally:
            client.close()
        if back != target:
            return MethodResult(False, f"WS-Man read back DomainName {back!r}, not {target!r}", Cause.SUFFIX_MISMATCH)
        return MethodResult(True, f"AMT_GeneralSettings.DomainName set to {target} (read back)",
                            evidence={"domain_name": back})
    if ctx.ssh is None:
        return MethodResult(False, "no SSH for the host-interface write", applicable=False)
    tools = ctx.inv.tools
    missing = tools.missing("hi_set") or tools.missing("hi_get")
    if missing:
        log.info("%s: amt_write via host interface: %s", host.name, missing)
        return MethodResult(False, f"amt_write via host interface: {missing}", applicable=False)
    from tasks.adapters.ssh import SshError

    flavor, port = ctx.inv.os_of(host), ctx.inv.ssh_port_of(host)
    try:
        with ctx.ssh.session(host.address, port=port, os_flavor=flavor) as sh:
            res = sh.run(amt_host_tool.set_dns_suffix_command(target, flavor, tools))
            wrote = amt_host_tool.check_set_dns_suffix(res.exit_status, res.stdout, res.stderr, target)
            if not wrote.ok:
                return MethodResult(False, f"host interface write refused: {wrote.detail}", wrote.cause or Cause.UNKNOWN)
            res = sh.run(amt_host_tool.get_dns_suffix_command(flavor, tools))
            back = amt_host_tool.parse_get_dns_suffix(res.stdout) if res.ok else None
    except SshError as exc:
        return MethodResult(False, f"SSH: {exc.kind}", Cause(exc.cause))
    if back is None or back.trusted != target:
        return MethodResult(False, f"host interface read back {getattr(back, 'trusted', None)!r}, not {target!r}",
                            Cause.SUFFIX_MISMATCH)
    return MethodResult(True, f"trusted suffix set to {target} through the host interface (read back)",
                        evidence={"trusted_suffix": back.trusted, "dhcp_suffix": back.dhcp})


# -- dhcp_renew ----------------------------------------------------------------------------------

def _reopen_window(ctx: WaveContext, host: Host) -> MethodResult | None:
    """A provisioning attempt reopens AMT's interface; if it even succeeds, the host is done."""
    from tasks.steps.provision import as_discovered

    out = ctx.provisioner.provision(as_discovered(host, ctx.store.get(ctx.wave.name, host.name).evidence))
    now = ctx.now()
    if out.transient or not out.reached_device:
        return MethodResult(False, f"could not reopen the window: {out.message}",
                            Cause.SERVER_ERROR if out.transient else Cause.UNREACHABLE)
    ctx.store.record(ctx.wave.name, host.name, stage="remediate", action="reopen-window",
                     outcome="provisioned" if out.ok else "attempted", attempted=True,
                     window_closes_at=now + ctx.inv.window.interface_open,
                     evidence={"reopen_message": out.message[:200]}, flow_run_id=ctx.flow_run_id)
    if out.ok:
        return MethodResult(True, "the attempt made to reopen the window provisioned the host",
                            evidence={"provisioned_while_reopening": True})
    return None


def _amt_dhcp_suffix(ctx: WaveContext, host: Host, rec: HostRecord, sh) -> tuple[str | None, str]:
    """Read back AMT's option-15 suffix where a channel exists (host interface over `sh`, or WS-Man)."""
    from tasks.adapters.ssh import SshError

    tools = ctx.inv.tools
    if _pre_provisioning(host, rec) and tools.hi_get is not None:
        try:
            res = sh.run(amt_host_tool.get_dns_suffix_command(ctx.inv.os_of(host), tools))
        except SshError:
            return None, "host interface unreachable"
        return (amt_host_tool.parse_get_dns_suffix(res.stdout).dhcp, "host interface") if res.ok else (None, "host interface error")
    if _pre_provisioning(host, rec):
        return None, "no channel to AMT (no host_tools.hi_get configured)"
    client = ctx.wsman(host, rec.evidence)
    if client is None:
        return None, "no channel to AMT"
    from tasks.adapters.wsman import WsmanError

    try:
        return (client.get_setup_and_configuration().get("DhcpDNSSuffix") or "").lower(), "WS-Man"
    except WsmanError as exc:
        return None, f"WS-Man {exc.kind}"
    finally:
        client.close()


def _judge(ctx: WaveContext, host: Host, attempt: int, os_suffix: str | None, amt_dhcp: str | None, channel: str,
           stray: str | None, evidence: dict) -> tuple[MethodResult | None, str, Cause | None]:
    """One renew's verdict from what was read back: (a result, or None to try again; why; its cause).
    AMT's own read-back decides; a lease that is not the scope's is never "verified" (``stray``)."""
    if amt_dhcp is not None:
        evidence["dhcp_suffix"] = amt_dhcp
        if _matches(ctx, host, amt_dhcp) and stray is None:
            return MethodResult(True, f"renew {attempt}: AMT took option 15 {amt_dhcp} (read back via {channel})",
                                evidence=evidence), "", None
        if _matches(ctx, host, amt_dhcp):  # AMT holds a good suffix, but not from this scope's lease
            return MethodResult(True, f"renew {attempt}: AMT holds {amt_dhcp} (read back via {channel}), but {stray}; "
                                "pass 2 will tell", evidence={**evidence, "unverified": True}, verified=False), "", None
        last = f"renew {attempt}: OS got {os_suffix!r} but AMT still holds {amt_dhcp!r}"
    elif _matches(ctx, host, os_suffix) and stray is None:
        return MethodResult(True, f"renew {attempt}: OS took {os_suffix}; AMT can't be read ({channel}), "
                            "pass 2 will tell", evidence={**evidence, "unverified": True}, verified=False), "", None
    else:
        last = f"renew {attempt}: OS holds {os_suffix!r}"
    if stray is not None:
        return None, f"renew {attempt}: {stray}", Cause.DHCP_SCOPE_WRONG
    return None, last, None


def dhcp_renew(ctx: WaveContext, host: Host, rec: HostRecord) -> MethodResult:
    if ctx.ssh is None:
        return MethodResult(False, "no SSH credentials for a renew", applicable=False)
    from tasks.adapters.dhcp import live_scope_or_note

    # option 15 that lives on Kea / Windows DHCP is read now (cached per server)
    scope, unread = live_scope_or_note(ctx.inv, ctx.inv.scope_of(host), ssh_runner=ctx.ssh)
    scope_note = f"{unread}; renewing and verifying anyway" if unread else None
    ev = rec.evidence or {}
    option = for_scope_host(scope, host.address, ev)
    if option is not None and option15_matches(option, ctx.cert_suffix) is False:
        # what the server hands THIS host (its reservation, its pool, ...), not the subnet's own value
        origin = f" (read from {scope.live_source})" if scope.live_source else ""
        return MethodResult(False, f"scope {scope.name} hands this host option 15 {option.describe()}{origin}, "
                            f"which does not match {ctx.cert_suffix!r}: renewing is useless", Cause.DHCP_SCOPE_WRONG,
                            evidence={"scope": scope.name, "option15_source": scope.live_source or "inventory",
                                      "option15": option.domain_name, "option15_level": option.level,
                                      "option15_where": option.where})
    pre = _pre_provisioning(host, rec)
    blocker = ev.get("trusted_suffix") if pre else ev.get("domain_name")
    if blocker and not _matches(ctx, host, blocker):
        what = "trusted (PKI) suffix" if pre else "AMT_GeneralSettings.DomainName"
        return MethodResult(False, f"AMT's {what} {blocker!r} takes precedence over option 15: a renew can't fix it",
                            Cause.SUFFIX_MISMATCH)
    from tasks.adapters.ssh import SshError

    flavor, port = ctx.inv.os_of(host), ctx.inv.ssh_port_of(host)
    window = ctx.inv.window.interface_open
    margin = min(timedelta(seconds=30), window / 10)
    closes = rec.window_closes_at
    last, last_cause = "no renew tried", None
    failed_renew: dict = {}  # what judged the last renew that did not reach the adapter (kept as evidence)
    # what the OS's lease should carry after the renew: the option 15 the server hands THIS host (its
    # reservation, its pool...); not judged when that depends on the client (a class it may match)
    expected = option.domain_name if option is not None and not option.alternatives else None
    for attempt in range(1, ctx.renew_attempts + 1):
        if closes is None or closes - margin <= ctx.now():
            reopened = _reopen_window(ctx, host)
            if reopened is not None:
                return reopened
            closes = ctx.now() + window
        try:
            with ctx.ssh.session(host.address, port=port, os_flavor=flavor) as sh:  # renew, then read back
                # the adapter AMT shares (by AMT's wired MAC, else the inventory address), renewed alone
                choice = os_network.read_interface(sh, flavor, amt_mac=ev.get("amt_wired_mac") or "",
                                                   address=host.address)
                if choice.adapter is None:
                    return MethodResult(False, f"no OS adapter to renew: {choice.why}", Cause.UNKNOWN,
                                        evidence=choice.evidence())
                renewed = os_network.renew(sh, flavor, choice.adapter, ctx.inv.tools)
                if not renewed.ok:
                    last, last_cause = f"renew failed: {renewed.detail}", renewed.cause or Cause.UNKNOWN
                    failed_renew = {"renew_failed": renewed.detail[:500], "renew_command": renewed.command,
                                    **renewed.evidence}
                    if renewed.cause is Cause.AUTH_FAILED or not renewed.command:  # refused, or nothing to run
                        return MethodResult(False, last, last_cause, evidence={**choice.evidence(), **failed_renew})
                    continue
                failed_renew = {}
                after = renew_check.settle(sh, flavor, choice.adapter.mac, host.address, expected, ctx.renew_settle)
                os_suffix = after.suffix
                amt_dhcp, channel = _amt_dhcp_suffix(ctx, host, rec, sh)
        except SshError as exc:
            return MethodResult(False, f"SSH: {exc.kind}", Cause(exc.cause))
        evidence = {**after.evidence(), "renew_detail": renewed.detail,
                    "os_suffix": os_suffix, "renew_attempt": attempt, "verified_by": channel}
        if scope_note:
            evidence["scope_note"] = scope_note
        stray = None if expected is None else renew_check.lease_problem(
            scope.name, expected, scope.live_source or "the inventory", after, ctx.renew_settle)
        done, last, last_cause = _judge(ctx, host, attempt, os_suffix, amt_dhcp, channel, stray, evidence)
        if done is not None:
            return done
        if attempt < ctx.renew_attempts:
            time.sleep(ctx.renew_verify_delay)
    cause = last_cause or (Cause.WINDOW_CLOSED if closes is not None and closes <= ctx.now() else Cause.SUFFIX_MISMATCH)
    return MethodResult(False, f"{last} (after {ctx.renew_attempts} renews)", cause, evidence=failed_renew)


METHODS = {"amt_write": amt_write, "dhcp_renew": dhcp_renew}


def remediate_host(ctx: WaveContext, name: str) -> HostOutcome:
    wave, store = ctx.wave.name, ctx.store
    rec = store.get(wave, name)
    from tasks.steps.provision import still_wanted

    if not still_wanted(ctx, "remediate", rec):
        # another run of the wave remediated it since this stage listed it (or it isn't remediable)
        return HostOutcome(name, Result.SKIPPED, detail=rec.status)
    if rec.status not in (Status.REMEDIATING,):
        rec = store.transition(wave, name, Status.REMEDIATING, stage="remediate", action="start", outcome="ok",
                               flow_run_id=ctx.flow_run_id)
    host = ctx.host(name)
    original = Cause(rec.cause) if rec.cause else Cause.SUFFIX_MISMATCH
    tried: list[str] = []
    last_cause: Cause | None = None
    for method in ctx.wave.remediation:
        if method == "mebx":
            cause = last_cause or original
            why = "; ".join(tried) or "no remote method applies"
            store.transition(wave, name, Status.NEEDS_MEBX, stage="remediate", action="mebx", outcome="work list",
                             cause=cause, evidence={"why_remote_failed": why, "method": "mebx", "mebx_done_at": None,
                                                    "mebx_note": None, "mebx_done_by": None, "unverified": None},
                             next_step=f"technician: set the DNS suffix to {ctx.cert_suffix} in the MEBx; record it "
                                       f"with `amt-migrate mebx done`, then rerun --status needs_mebx",
                             flow_run_id=ctx.flow_run_id)
            return HostOutcome(name, Result.NEEDS_MEBX, cause)
        result = METHODS[method](ctx, host, store.get(wave, name))
        store.record(wave, name, stage="remediate", action=method, outcome=result.outcome,
                     cause=None if result.ok else result.cause, evidence={"detail": result.reason, **result.evidence},
                     flow_run_id=ctx.flow_run_id)
        if result.ok:
            # an unverified fix still goes to pass 2 (the attempt is the only reading left), marked as such
            store.transition(wave, name, Status.REMEDIATED, stage="remediate", action=method, outcome=result.outcome,
                             evidence={"method": method, "detail": result.reason,
                                       "unverified": None if result.verified else True},
                             next_step="pass 2" if result.verified else "pass 2 (remediation unverified: AMT could "
                                                                        "not be read back)",
                             flow_run_id=ctx.flow_run_id)
            return HostOutcome(name, Result.REMEDIATED, detail=method)
        tried.append(f"{method}: {result.reason}")
        if result.cause is not None and result.applicable:
            last_cause = result.cause
    store.transition(wave, name, Status.REMEDIATION_FAILED, stage="remediate", action="give-up", outcome="failed",
                     cause=last_cause or original, evidence={"why_remote_failed": "; ".join(tried) or "no method"},
                     next_step="fix the cause, then rerun --from remediate", flow_run_id=ctx.flow_run_id)
    return HostOutcome(name, Result.REMEDIATION_FAILED, last_cause or original)


