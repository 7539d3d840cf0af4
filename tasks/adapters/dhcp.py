"""Live DHCP scope values: option 15 (domain name) and the lease, read from the DHCP server itself.

AMT takes a new DNS suffix only from DHCP option 15 while its interface window is open, so what the
server *really* hands a host out decides whether `dhcp_renew` can work — and a scope is not one value:
a pool, a host reservation, a client class, the shared network or the server level may set it
(tasks/rules/dhcp_option15.py). Two adapters, one shape (`tasks.adapters.protocols.DhcpServer`):

* `KeaAdapter` (dhcp_kea.py) — ISC Kea 2.2+ through its control agent (HTTP/JSON).
* `WindowsDhcpAdapter` (dhcp_windows.py) — Windows Server DHCP through its PowerShell cmdlets over SSH.

Both answer `read(ref) -> ScopeOptions` (with the whole layout: `ScopeOptions.for_host(address, macs)`),
`plan_change(ref, ...) -> ScopeChange` (a dry run: nothing is written) and `apply_change(ref, ...)` (writes,
then reads back). This module is the inventory glue: `resolve_scopes(inv)` reads every scope that names a
source; `Inventory.with_live_scopes` puts the values in; `live_scope` reads one (cached) for a renew.
"""

from __future__ import annotations

import time

from tasks.adapters.dhcp_kea import KEA_DEFAULT_VALID_LIFETIME, KeaAdapter, KeaSubnetRef
from tasks.adapters.dhcp_scope import SCOPE_CACHE, DhcpError, ScopeChange, ScopeOptions
from tasks.adapters.dhcp_windows import (WindowsDhcpAdapter, WindowsScopeRef, format_timespan, parse_format_list,
                                         parse_timespan)
from tasks.adapters.windows import powershell_command  # one builder for every PowerShell line (re-exported)
from tasks.rules.suffix import InvalidValue

__all__ = ["DhcpError", "KEA_DEFAULT_VALID_LIFETIME", "KeaAdapter", "KeaSubnetRef", "ScopeChange", "ScopeOptions",
           "WindowsDhcpAdapter", "WindowsScopeRef", "adapter_for", "format_timespan", "live_scope",
           "parse_format_list", "parse_timespan", "powershell_command", "read_scope", "resolve_scopes",
           "live_scope_or_note", "ssh_runner_for", "with_live_dhcp"]


# --------------------------------------------------------------------------------------------------
# Inventory glue
# --------------------------------------------------------------------------------------------------


def adapter_for(inv, scope, *, ssh_runner=None, timeout: float = 10.0):
    """(adapter, ref) for a scope that names a source; None for a hand-declared scope."""
    if scope.kea is not None:
        ref = KeaSubnetRef(scope.kea.subnet_id, None if scope.kea.subnet_id is not None else str(scope.subnet))
        return KeaAdapter(scope.kea.url, timeout), ref
    if scope.windows_dhcp is not None:
        if ssh_runner is None:
            ssh_runner = ssh_runner_for(inv)
        w = scope.windows_dhcp
        ref = WindowsScopeRef(w.scope_id or str(scope.subnet.network_address))
        return WindowsDhcpAdapter(ssh_runner, w.server, w.port or inv.defaults.ssh_port), ref
    return None


def ssh_runner_for(inv):
    """An SshRunner from the inventory's credentials.ssh (the same key the fleet uses)."""
    from tasks.inventory.secrets import ssh_private_key
    from tasks.adapters.ssh import SshRunner, SshSettings

    creds = inv.credentials.ssh
    if creds is None:
        raise DhcpError("a windows_dhcp scope needs credentials.ssh in the inventory", kind="config")
    key = ssh_private_key(inv)
    if key is None:
        raise DhcpError("credentials.ssh names no key for the Windows DHCP server", kind="config")
    return SshRunner(SshSettings(
        user=creds.user, known_hosts=inv.resolve(creds.known_hosts), port=inv.defaults.ssh_port,
        key_text=key.reveal(), connect_timeout=creds.connect_timeout.total_seconds(),
        command_timeout=creds.command_timeout.total_seconds()))


def read_scope(inv, scope, *, ssh_runner=None, timeout: float = 10.0) -> ScopeOptions:
    found = adapter_for(inv, scope, ssh_runner=ssh_runner, timeout=timeout)
    if found is None:
        return ScopeOptions(scope.domain_name, scope.lease, "inventory", "inventory", "inventory")
    adapter, ref = found
    try:
        return adapter.read(ref)
    finally:
        if isinstance(adapter, KeaAdapter):
            adapter.close()


def resolve_scopes(inv, *, ssh_runner=None, timeout: float = 10.0,
                   errors: dict[str, str] | None = None) -> dict[str, ScopeOptions]:
    """Live values for every scope that names a source (Kea or Windows DHCP). A scope that can't be read is
    left out, with its reason in ``errors`` when given."""
    out: dict[str, ScopeOptions] = {}
    for scope in inv.dhcp_scopes:
        if not scope.has_source:
            continue
        try:
            out[scope.name] = read_scope(inv, scope, ssh_runner=ssh_runner, timeout=timeout)
        except (DhcpError, InvalidValue, Exception) as exc:  # noqa: BLE001 - one broken server must not stop a plan
            if errors is not None:
                errors[scope.name] = f"{scope.source_label}: {exc}"
    return out


def with_live_dhcp(inv, *, ssh_runner=None, timeout: float = 10.0):
    """The inventory with live scope values in; scopes that could not be read keep a note of why."""
    if not any(s.has_source for s in inv.dhcp_scopes):
        return inv
    errors: dict[str, str] = {}
    values = resolve_scopes(inv, ssh_runner=ssh_runner, timeout=timeout, errors=errors)
    return inv.with_live_scopes(values, errors)


_CACHE = SCOPE_CACHE
_CACHE_TTL = 60.0


def live_scope(inv, scope, *, ssh_runner=None, ttl: float = _CACHE_TTL):
    """The scope with live values (cached ``ttl`` seconds per source, so a wave reads each server once a
    minute, not once a host). Raises `DhcpError` if the source can't be read."""
    if not scope.has_source or scope.live_source:
        return scope
    key = (scope.source_label, str(scope.subnet))
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > ttl:
        hit = (now, read_scope(inv, scope, ssh_runner=ssh_runner))
        _CACHE[key] = hit
    return scope.with_live(hit[1])


def live_scope_or_note(inv, scope, *, ssh_runner=None):
    """(the scope with live values, None) — or, when its server can't be read, (the scope as it was, why):
    a step that can go on without the value (a verified renew, an inferred classification) says why it did."""
    if scope is None or scope.known:
        return scope, None
    try:
        return live_scope(inv, scope, ssh_runner=ssh_runner), None
    except Exception as exc:  # noqa: BLE001 - an unreadable DHCP server must not stop the step
        return scope, f"{scope.source_label} unreadable ({exc})"
