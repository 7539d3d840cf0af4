"""A client OS's network, per flavour: read the adapters, pick the one AMT shares, read its option-15
suffix, renew it through what manages it. Readers live in `tasks.adapters.windows` and
`tasks.adapters.linux`; this module runs them over an open SSH session (anything with
``run(command) -> result`` having ``exit_status``, ``stdout``, ``stderr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from tasks.adapters import dhclient_leases, linux, windows
from tasks.adapters.commands import DEFAULT_TOOLS, HostTools, OsFlavor, quote_posix
from tasks.adapters.linux import ResolvConf, parse_resolv_conf  # noqa: F401 - re-exported
from tasks.adapters.netfacts import InterfaceChoice, NetAdapter, NetFacts, pick_interface
from tasks.adapters.windows import IpConfig, parse_ipconfig  # noqa: F401 - re-exported
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_dns_name


class _Result(Protocol):
    exit_status: int
    stdout: str
    stderr: str


class _Session(Protocol):
    def run(self, command: str) -> _Result: ...


@dataclass(frozen=True)
class RenewOutcome:
    ok: bool
    cause: Cause | None  # None when ok
    detail: str
    command: str = ""
    #: what the renew's judge saw: renew_reached (True / False / None = could not tell), renewed_instead,
    #: renew_output (capped) when it failed
    evidence: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _windows_facts(sh: _Session) -> NetFacts:
    """PowerShell's CIM view first (locale-free JSON); ``ipconfig /all`` read by structure otherwise."""
    res = sh.run(windows.facts_command())
    why = ""
    if res.exit_status == 0:
        facts = windows.parse_powershell_facts(res.stdout)
        if facts.readable:
            return facts
        why = "; ".join(facts.problems)
    else:
        why = f"PowerShell exited {res.exit_status}: {windows.first_error_line(res.stderr)}"
    res = sh.run(windows.ipconfig_all_command())
    if res.exit_status != 0:
        return NetFacts.unreadable("ipconfig /all", f"{why}; ipconfig /all exited {res.exit_status}: "
                                   f"{windows.first_error_line(res.stderr)}", res.stdout + res.stderr)
    facts = windows.ipconfig_facts(res.stdout)
    return NetFacts(facts.source, facts.adapters, facts.search_list, facts.primary_suffix,
                    (f"PowerShell unusable ({why[:200]})", *facts.problems), facts.readable, facts.raw)


def _linux_choice(sh: _Session, amt_mac: str, address: str) -> InterfaceChoice:
    res = sh.run(linux.probe_command())
    facts, sections = linux.parse_probe(res.stdout)
    choice = pick_interface(facts, amt_mac, address)
    if choice.adapter is None:
        return choice
    problems = list(facts.problems)
    try:
        detail = sh.run(linux.detail_command(choice.adapter))
        adapter = linux.apply_detail(choice.adapter, detail.exit_status, detail.stdout,
                                     parse_resolv_conf(sections.get("resolv", "")), problems,
                                     running=linux.parse_ps_clients(sections.get("ps", "")))
        if adapter.manager == linux.DHCPCD and detail.exit_status != 0:  # the daemon did not answer -U
            lease = sh.run(linux.dhcpcd_lease_file_command(adapter))
            adapter = linux.apply_dhcpcd_lease_file(adapter, lease.exit_status, lease.stdout, problems)
        if adapter.manager == linux.DHCLIENT:
            adapter = replace(adapter, client_args=linux.dhclient_args(sections.get("ps", ""), adapter.name, problems))
            # option 15 as dhclient holds it (resolv.conf's search may be option 119's)
            lease = sh.run(dhclient_leases.command(adapter))
            adapter = dhclient_leases.apply(adapter, lease.exit_status, lease.stdout, problems)
    except InvalidValue as exc:  # an interface name no Linux tool would take: report, don't guess
        problems.append(str(exc))
        adapter = choice.adapter
    facts = NetFacts(facts.source, tuple(adapter if a is choice.adapter else a for a in facts.adapters),
                     facts.search_list, facts.primary_suffix, tuple(problems))
    return InterfaceChoice(adapter, choice.why, facts)


def read_interface(sh: _Session, flavor: OsFlavor | str, *, amt_mac: str = "", address: str = "") -> InterfaceChoice:
    """The adapter AMT shares (by AMT's wired MAC, else the inventory address) with its OS suffix.

    ``choice.suffix`` is None when no adapter could be chosen or the output could not be read: the
    reason and the (capped) raw output are in ``choice.evidence()``, never a guessed suffix.
    """
    if OsFlavor(flavor) is OsFlavor.WINDOWS:
        return pick_interface(_windows_facts(sh), amt_mac, address)
    return _linux_choice(sh, amt_mac, address)


# --------------------------------------------------------------------------------------------------
# Renewing
# --------------------------------------------------------------------------------------------------


def renew_command(flavor: OsFlavor | str, adapter: NetAdapter, tools: HostTools = DEFAULT_TOOLS) -> str:
    """The renew of exactly ``adapter``: by InterfaceIndex on Windows (``ipconfig /renew`` for every
    adapter only when the source gave no index), through its managing stack on Linux."""
    if OsFlavor(flavor) is OsFlavor.WINDOWS:
        return windows.renew_command(adapter.index) if adapter.index is not None else windows.IPCONFIG_RENEW
    return linux.renew_command(adapter.manager, adapter.name, tools, adapter.client_args)


def _ipconfig_renew(sh: _Session, adapter: NetAdapter, why: str) -> RenewOutcome:
    """``ipconfig /renew`` renews every adapter; what it printed and ``ipconfig /all`` read right after it
    say whether it reached ``adapter`` (its exit status is not the verdict: see windows.judge_renew)."""
    res = sh.run(windows.IPCONFIG_RENEW)
    back = sh.run(windows.ipconfig_all_command())
    after = (windows.ipconfig_facts(back.stdout) if back.exit_status == 0 else
             NetFacts.unreadable("ipconfig /all", f"exited {back.exit_status}: {windows.first_error_line(back.stderr)}",
                                 back.stdout + back.stderr))
    verdict = windows.judge_renew(res.stdout + ("\n" + res.stderr if res.stderr.strip() else ""), after, adapter)
    evidence: dict = {"renew_reached": verdict.reached, "renewed_instead": list(verdict.renewed_instead)}
    if not verdict.ok:
        evidence["renew_output"] = (res.stdout + res.stderr)[:1000]
    detail = f"{adapter.name}: ipconfig /renew (all adapters: {why}; exit {res.exit_status}): {verdict.detail}"
    return RenewOutcome(verdict.ok, None if verdict.ok else Cause.UNKNOWN, detail, windows.IPCONFIG_RENEW, evidence)


def renew(sh: _Session, flavor: OsFlavor | str, adapter: NetAdapter, tools: HostTools = DEFAULT_TOOLS) -> RenewOutcome:
    if OsFlavor(flavor) is OsFlavor.WINDOWS:
        if adapter.index is None:
            return _ipconfig_renew(sh, adapter, "the adapter has no InterfaceIndex")
        command = renew_command(flavor, adapter, tools)
        res = sh.run(command)
        out = windows.check_renew(res.exit_status, res.stdout, res.stderr)
        if not out.ok and out.code is None and res.exit_status != 0:
            # PowerShell itself unusable (missing, blocked): ipconfig renews every adapter, ours included
            return _ipconfig_renew(sh, adapter, f"PowerShell renew unusable: {out.detail[:150]}")
        return RenewOutcome(out.ok, None if out.ok else Cause.UNKNOWN, f"{adapter.name}: {out.detail}", command)
    try:
        command = renew_command(flavor, adapter, tools)
    except linux.NoClientRunning as exc:  # nothing was sent: the read said no DHCP client runs
        return RenewOutcome(False, Cause.UNKNOWN, f"{adapter.name}: {exc}", "")
    res = sh.run(command)
    out = linux.check_renew(adapter.manager, res.exit_status, res.stdout, res.stderr)
    cause = None if out.ok else (Cause.AUTH_FAILED if out.auth else Cause.UNKNOWN)
    return RenewOutcome(out.ok, cause, f"{adapter.name}: {out.detail}", command)


# --------------------------------------------------------------------------------------------------
# Small readers
# --------------------------------------------------------------------------------------------------


def parse_hostname_domain(text: str) -> str:
    """``hostname -d``: the DNS domain, or an empty line when there is none."""
    first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return normalize_dns_name(first_line)


def hostname_domain_command() -> str:
    return quote_posix(["hostname", "-d"])
