"""The forecast's inputs from what the run itself uses: the inventory (window, retry, scope leases,
technicians, the server's rate), the plan (each host's path, outcome, usable remediation) and what
discovery recorded. No I/O here: the caller reads the store."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from tasks.forecast import model as m
from tasks.forecast.model import HostIn, Setup, WaveIn
from tasks.inventory.model import Host, Inventory, Wave, selector_matches
from tasks.rules.classify import is_pre_provisioning
from tasks.rules.plan import HostPlan, plan_host, scope_matches_certificate
from tasks.rules.suffix import check_suffix


def method_code(text: str) -> str | None:
    """The plan's remediation words (tasks.rules.plan.remediation_for) -> the forecast's method codes;
    None for a method the plan says is skipped."""
    if text == "dhcp_renew":
        return m.DHCP_RENEW
    if text == "mebx":
        return m.MEBX
    if text.startswith("amt_write (WS-Man"):
        return m.AMT_WRITE_WSMAN
    if text.startswith("amt_write (host interface"):
        return m.AMT_WRITE_HI
    return None


def client_retries(inv: Inventory) -> bool:
    """window.client_retries, else by server: the lab's server stands for the seed's in-band client
    (ConfigMgr retries every 24 h); rpc-go/RPS do not retry on their own (domain notes)."""
    said = inv.window.client_retries
    return said if said is not None else inv.provisioning.server == "lab"


def setup_from(inv: Inventory, rate: float | None, discovery: float = 0.0) -> Setup:
    return Setup(window=inv.window.interface_open.total_seconds(), retry=inv.window.retry_interval.total_seconds(),
                 rate=rate, client_retries=client_retries(inv),
                 technicians={loc: r.per_second for loc, r in inv.technicians.items()},
                 periods={loc: r.per.total_seconds() for loc, r in inv.technicians.items()}, discovery=discovery)


def ssh_reachable(inv: Inventory, host: Host, evidence: dict | None, no_ssh: Sequence[str] = ()) -> bool:
    """SSH credentials exist, discovery did not find SSH refused or down, and no --no-ssh selector names it."""
    if inv.credentials.ssh is None or any(selector_matches(s, host) for s in no_ssh):
        return False
    return not (evidence or {}).get("ssh_cause")


def renew_blocker(inv: Inventory, host: Host, evidence: dict | None, cert: str) -> str | None:
    """A suffix AMT holds that wins over option 15 (the trusted suffix before provisioning, DomainName after),
    as discovery read it: then no renewal can fix the host."""
    ev = evidence or {}
    pre = is_pre_provisioning(host.legacy_managed, ev)
    held = ev.get("trusted_suffix") if pre else ev.get("domain_name")
    if held and not check_suffix(host.version, held, cert).match:
        return f"AMT's {'trusted (PKI) suffix' if pre else 'DomainName'} {held!r} wins over option 15"
    return None  # nothing read that wins: a renewal is assumed to reach AMT


def host_in(inv: Inventory, host: Host, wave: Wave, plan: HostPlan, evidence: dict | None,
            suffixes: Sequence[str] | None, no_ssh: Sequence[str] = ()) -> HostIn:
    scope = inv.scope_of(host)
    cert = tuple(suffixes) if suffixes else inv.certificate_suffix
    ssh = ssh_reachable(inv, host, evidence, no_ssh)
    methods = tuple(c for c in (method_code(t) for t in plan.remediation) if c is not None)
    if not ssh:
        methods = tuple(c for c in methods if c not in m.SSH_METHODS)
    return HostIn(
        name=host.name, wave=wave.name, path=plan.path, outcome=plan.outcome, cause=plan.cause, methods=methods,
        ssh=ssh, scope=scope.name if scope else None, lease=scope.lease.total_seconds() if scope else None,
        scope_ok=bool(scope is not None and scope_matches_certificate(scope, cert)),
        renew_blocked=renew_blocker(inv, host, evidence, cert if isinstance(cert, str) else cert[0]),
        location=inv.location_of(host), tags=tuple(host.tags))


def waves_in(inv: Inventory, waves: Sequence[Wave], starts: dict[str, float], evidence: dict[str, dict],
             suffixes: Sequence[str] | None = None, no_ssh: Sequence[str] = ()) -> list[WaveIn]:
    """Each wave with its hosts, in inventory order, planned as `plan` plans them."""
    out = []
    for w in waves:
        hosts = []
        for h in inv.wave_hosts(w):
            ev = evidence.get(h.name)
            hosts.append(host_in(inv, h, w, plan_host(inv, h, w, ev, suffixes), ev, suffixes, no_ssh))
        out.append(WaveIn(w.name, starts[w.name], tuple(hosts),
                          pass2_after=w.pass2_after.total_seconds() if w.pass2_after else 0.0, gate=w.gate))
    return out


def wave_start(w: Wave, at: datetime | None, now: datetime) -> float:
    """--at, else the wave's `start`, else now."""
    return (at or w.start or now).timestamp()
