"""Discovery: read, before pass 1, the suffixes a host's AMT and OS hold, and record where each came from.

This is what the seed's console could not do ("cannot discover the DNS suffix in AMT prior to
provisioning"): over SSH rpc-go and the host interface read AMT locally; over WS-Management the
legacy console's credentials read both AMT suffixes and its DomainName.
"""

from __future__ import annotations

from tasks.adapters import amt_host_tool
from tasks.adapters import os_network
from tasks.adapters import rpc_cli
from tasks.adapters import windows
from tasks.adapters.netfacts import normalize_mac
from tasks.inventory.model import Host
from tasks.rules.classify import try_legacy_credentials
from tasks.rules.suffix import InvalidValue
from tasks.steps.context import WaveContext
from tasks.steps.outcome import HostOutcome, Result


def _amt_facts(ctx: WaveContext, sh, flavor: str, tools) -> dict:
    """rpc amtinfo (and the host-interface read when the site has that tool)."""
    ev: dict = {}
    res = sh.run(rpc_cli.amtinfo_command(flavor, tools))
    if not res.ok:
        ev["amtinfo_error"] = f"exit {res.exit_status}: {windows.first_error_line(res.stderr, '')[:120]}"
        return ev
    try:
        info = rpc_cli.parse_amtinfo(res.stdout)
    except InvalidValue as exc:  # a form no reader knows: "could not read", the raw text kept
        ev["amtinfo_error"] = str(exc)[:300]
        ev["amtinfo_output"] = rpc_cli.cap(res.stdout, 1000)
        return ev
    if info.version:
        ev["amt_version_discovered"] = info.version
    ev["control_mode"] = info.control_mode
    if info.uuid:
        ev["uuid"] = info.uuid  # the close-out names the device by it in the new server
    mac = normalize_mac((info.wired_adapter or {}).get("macAddress") or (info.wired_adapter or {}).get("MAC Address"))
    if mac:
        ev["amt_wired_mac"] = mac
    if "unknown" in info.control_mode.lower() or info.heci_available is False:
        # rpc-go prints "unknown state" when the ME can't be read: neither pre-provisioning nor activated
        ev["control_mode_unreadable"] = True
        return ev
    if info.pre_provisioning is not None:
        ev["provisioning_state"] = 0 if info.pre_provisioning else 2
    if info.pre_provisioning:
        ev["trusted_suffix"] = info.dns_suffix  # amtinfo's dnsSuffix is the trusted one only
        ev["suffix_source"] = "rpc amtinfo"
        # the host interface reads option 15 too, which amtinfo never shows
        missing = tools.missing("hi_get")
        if missing:
            ev["host_interface_read"] = f"skipped: {missing}"
        else:
            res = sh.run(amt_host_tool.get_dns_suffix_command(flavor, tools))
            if res.ok:
                sfx = amt_host_tool.parse_get_dns_suffix(res.stdout)
                ev["trusted_suffix"], ev["dhcp_suffix"] = sfx.trusted, sfx.dhcp
                ev["suffix_source"] = f"host interface ({' '.join(tools.hi_get)})"
    return ev


def _ssh_facts(ctx: WaveContext, host: Host) -> dict:
    from tasks.adapters.ssh import SshError

    flavor = ctx.inv.os_of(host)
    port = ctx.inv.ssh_port_of(host)
    tools = ctx.inv.tools
    ev: dict = {}
    try:
        with ctx.ssh.session(host.address, port=port, os_flavor=flavor) as sh:  # one handshake for all
            ev.update(_amt_facts(ctx, sh, flavor, tools))
            # the OS adapter AMT shares: by AMT's wired MAC, else the inventory address
            choice = os_network.read_interface(sh, flavor, amt_mac=ev.get("amt_wired_mac", ""), address=host.address)
            ev.update(choice.evidence())
            if choice.suffix is not None:
                ev["os_suffix"] = choice.suffix
    except SshError as exc:
        ev["ssh_error"] = exc.kind
        ev["ssh_cause"] = exc.cause
    return ev


def _wsman_facts(ctx: WaveContext, host: Host) -> dict:
    """AMT's suffixes and state over WS-Man with the legacy console's credentials; `legacy_credentials`
    records AMT's answer to them (opened / refused), which decides the host's path when the inventory
    doesn't say whether the console manages it."""
    from tasks.adapters.wsman import WsmanAuthError, WsmanError

    client = ctx.wsman_client(host)
    if client is None:
        return {}
    ev: dict = {}
    try:
        setup = client.get_setup_and_configuration()
        general = client.get_general_settings()
    except WsmanAuthError as exc:  # HTTP 401 after the digest exchange: AMT's answer to these credentials
        if host.legacy_managed is None:
            # a try on an activated AMT nobody said the console manages: a refusal is an answer about
            # the credentials (path: technician), not a fault of the host's discovery
            return {"legacy_credentials": "refused", "legacy_credentials_note": f"WS-Man: {exc.kind}"}
        return {"wsman_error": exc.kind, "wsman_cause": exc.cause, "legacy_credentials": "refused"}
    except WsmanError as exc:  # unreachable, TLS identity, protocol: nothing learned about the credentials
        return {"wsman_error": exc.kind, "wsman_cause": exc.cause, "wsman_detail": exc.detail[:200]}
    finally:
        client.close()
    ev["legacy_credentials"] = "opened"
    state = setup.get("ProvisioningState")
    if state is not None:
        ev["provisioning_state"] = int(state)
    ev["trusted_suffix"] = (setup.get("TrustedDNSSuffix") or "").lower()
    ev["dhcp_suffix"] = (setup.get("DhcpDNSSuffix") or "").lower()
    ev["domain_name"] = (general.get("DomainName") or "").lower()
    ev["suffix_source"] = "WS-Management (AMT_SetupAndConfigurationService, AMT_GeneralSettings)"
    return ev


def discover_host(ctx: WaveContext, name: str) -> HostOutcome:
    host = ctx.host(name)
    ev: dict = {}
    if ctx.ssh is not None:
        ev.update(_ssh_facts(ctx, host))
    else:
        ev["ssh_skipped"] = ctx.unavailable.get("ssh", "no SSH")
    if try_legacy_credentials(host.legacy_managed, ev, host.amt_state):  # ev: what SSH read of AMT's state
        ev.update(_wsman_facts(ctx, host))
    for stale in ("ssh_error", "ssh_cause", "wsman_error", "wsman_cause", "wsman_detail", "amtinfo_error",
                  "os_raw_output", "os_read_problems", "control_mode_unreadable", "legacy_credentials",
                  "legacy_credentials_note"):
        ev.setdefault(stale, None)  # evidence merges across runs: clear what this discovery didn't see
    learned = [k for k in ("os_suffix", "trusted_suffix", "dhcp_suffix", "domain_name", "amt_version_discovered") if k in ev]
    outcome = "ok" if learned else ("unreachable" if ev.get("ssh_cause") == "unreachable" else "nothing learned")
    ctx.store.record(ctx.wave.name, name, stage="discovery", action="discover", outcome=outcome, evidence=ev,
                     flow_run_id=ctx.flow_run_id)
    return HostOutcome(name, Result.DISCOVERED, detail=",".join(learned) or "nothing")
