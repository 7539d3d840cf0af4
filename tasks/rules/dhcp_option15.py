"""Which DHCP option 15 (domain name) a client really gets, from where its server sets it. Pure: no I/O.

A scope is not one value. The server picks option 15 for each client from the most specific place that
sets it:

* Kea (DHCPv4): host reservation > pool > subnet > shared network > client class > global. Kea ARM,
  "The DHCPv4 Server" → "Standard DHCPv4 Options": "The current Kea options precedence order is (from
  most important to least): host reservation, pool, subnet, shared network, class, global" — the same
  sentence in the ARM of Kea 2.2.0 (the version Debian ships and the tests run) and of the current 3.x
  tree; `Dhcpv4Srv::buildCfgOptionList` (src/bin/dhcp4/dhcp4_srv.cc, 2.2.0 and current) appends the
  option sets in exactly that order. Among classes, "the value from the first class examined is used;
  classes are examined in the order they were associated" (ARM "Client Classification"): classes whose
  test matches come first, classes a host reservation names after them.
* Kea 2.4+ ``never-send``: "if the never-send flag is set to true for a particular option the server does
  not add it to the response", and the flag is sticky: "if they are enabled at least once along the
  configuration inheritance chain, they get applied regardless of them being disabled in other places which
  would usually be more prioritized" (Kea ARM, dhcp4-srv.rst, "Standard DHCPv4 Options"). So a never-send
  option 15 anywhere in a client's chain means no option 15 for that client, whatever a more specific level
  sets.
* Windows Server DHCP: reservation > scope > server (MS-DHCPM DHCP_OPTION_SCOPE_TYPE: DhcpGlobalOptions,
  DhcpSubnetOptions, DhcpReservedOptions; `Get-DhcpServerv4OptionValue` reads each level on its own:
  no -ScopeId = server, -ScopeId = scope, -ReservedIP = reservation).

An adapter describes a scope as an `Option15Layout` (the scope-wide chain, its pools, reservations and
classes); `effective(layout, address, macs)` answers for one client, says at which level the value was
found, what it hides (``shadowed``) and what the client may get instead (``alternatives``: a class it may
match, a pool when its address is unknown).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable

# levels, most specific first (Kea; Windows uses reservation / scope / server)
RESERVATION = "reservation"
POOL = "pool"
SUBNET = "subnet"
SHARED_NETWORK = "shared-network"
CLIENT_CLASS = "client-class"
GLOBAL = "global"
SCOPE = "scope"
SERVER = "server"
INVENTORY = "inventory"
NONE = "none"


def client_ids(value: object) -> str:
    """A MAC or client identifier as bare lowercase hex (``AA-BB-..``, ``aa:bb:..``, ``aabb..``); "" if not hex."""
    if not isinstance(value, str):
        return ""
    hexes = re.sub(r"[\s:\-.]", "", value).lower()
    return hexes if hexes and re.fullmatch(r"(?:[0-9a-f]{2})+", hexes) else ""


@dataclass(frozen=True)
class Level:
    """A scope-wide level (subnet, shared network, global; scope, server) and its option 15 (None = not set)."""

    level: str
    domain_name: str | None
    label: str
    never_send: bool = False  # Kea "never-send": true on option 15 here (see NEVER_SEND)


@dataclass(frozen=True)
class Pool:
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    domain_name: str | None
    label: str
    never_send: bool = False

    def holds(self, ip: ipaddress.IPv4Address) -> bool:
        return self.first <= ip <= self.last


@dataclass(frozen=True)
class Reservation:
    """A host reservation: matched by one of its identifiers (MAC, client id as hex) or by its address."""

    ip: str | None
    ids: tuple[str, ...]
    domain_name: str | None
    label: str
    classes: tuple[str, ...] = ()  # Kea: client classes the reservation puts its client in
    never_send: bool = False

    def matches(self, ip: str | None, macs: Iterable[str]) -> bool:
        for mac in macs:
            if mac and any(i == mac or i == "01" + mac for i in self.ids):  # client-id = htype 01 + MAC
                return True
        return ip is not None and self.ip == ip


@dataclass(frozen=True)
class ClassOption:
    """A client class that sets option 15. ``test`` "" = assigned only by a reservation naming it (or listed
    for additional evaluation); ``evaluated`` False = no client of this scope can be put in it."""

    name: str
    domain_name: str
    test: str
    evaluated: bool = True
    never_send: bool = False


@dataclass(frozen=True)
class Option15Layout:
    """How one scope hands out option 15. ``chain``: the scope-wide levels, most specific first; classes
    sit before ``class_before`` (Kea: before the global level; Windows has none)."""

    chain: tuple[Level, ...]
    pools: tuple[Pool, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    classes: tuple[ClassOption, ...] = ()
    class_before: str = GLOBAL


@dataclass(frozen=True)
class HostOption15:
    """What one client gets: the value ("" = none), the level and place it comes from, what it hides, and
    values it may get instead (each with the condition)."""

    domain_name: str
    level: str
    where: str
    shadowed: tuple[tuple[str, str], ...] = ()
    alternatives: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        text = f"{self.domain_name or '(none)'!r} ({self.where})" if self.level != NONE else \
            f"'(none)' ({self.where})"
        if self.shadowed:
            text += "; it overrides " + ", ".join(f"{v!r} at {w}" for v, w in self.shadowed)
        if self.alternatives:
            text += "; but " + ", ".join(f"{w}: {v!r}" for v, w in self.alternatives)
        return text

    def as_dict(self) -> dict:
        return {"option15": self.domain_name, "level": self.level, "where": self.where,
                "overrides": [{"option15": v, "where": w} for v, w in self.shadowed],
                "may_get_instead": [{"option15": v, "when": w} for v, w in self.alternatives]}


def _ipv4(address: str | None) -> ipaddress.IPv4Address | None:
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return None
    return ip if isinstance(ip, ipaddress.IPv4Address) else None


def _below(found: list[tuple[str, str, str]], value: str) -> tuple[tuple[str, str], ...]:
    """Less specific values that differ from the one chosen: what it shadows."""
    return tuple((v, w) for _, v, w in found if v != value)


def effective(layout: Option15Layout, address: str | None, macs: Iterable[str] = ()) -> HostOption15:
    """Option 15 for the client at ``address`` (with MACs ``macs``, if known), by the server's precedence."""
    ip = _ipv4(address)
    macs = tuple(m for m in (client_ids(m) for m in macs) if m)
    res = next((r for r in layout.reservations if r.matches(str(ip) if ip else None, macs)), None)
    if ip is None and res is not None:
        ip = _ipv4(res.ip)  # the reservation's address is the one the client gets
    places: list[tuple[str, str | None, str]] = []  # (level, value, where), most specific first
    maybe: list[tuple[str, str, str]] = []  # (level it would act at, value, condition)
    cancel: list[str] = []  # where a never-send in this client's chain is set
    if res is not None:
        places.append((RESERVATION, res.domain_name, res.label))
        cancel += [res.label] if res.never_send else []
    pool = next((p for p in layout.pools if ip is not None and p.holds(ip)), None)
    if pool is not None:
        places.append((POOL, pool.domain_name, pool.label))
        cancel += [pool.label] if pool.never_send else []
    elif ip is None:  # address unknown: any pool may be its pool
        maybe += [(POOL, "" if p.never_send else p.domain_name, f"if its address is in {p.label}")
                  for p in layout.pools if p.domain_name is not None or p.never_send]
    for lvl in layout.chain:
        if lvl.level == layout.class_before:
            places.extend(_class_places(layout.classes, res, maybe, cancel))
        places.append((lvl.level, lvl.domain_name, lvl.label))
        cancel += [lvl.label] if lvl.never_send else []
    found = [(lv, v, w) for lv, v, w in places if v is not None]
    if cancel:  # sticky: no option 15 for this client, whatever a more specific level sets
        return HostOption15("", NONE, f"never-send at {cancel[0]}: Kea sends no option 15",
                            _below(found, ""), ())
    level, value, where = found[0] if found else (NONE, "", "no level sets option 15")
    # a possible value counts only where it would win over the one found (a pool over the subnet, a class
    # the client may match over the global value)
    rank = [RESERVATION, POOL] + [lvl.level for lvl in layout.chain]
    if layout.class_before in rank:
        rank.insert(rank.index(layout.class_before), CLIENT_CLASS)
    mine = rank.index(level) if level in rank else len(rank)
    alternatives = [(v, why) for at, v, why in maybe if rank.index(at) <= mine and v != value]
    return HostOption15(value, level, where, _below(found[1:], value), _distinct(alternatives, value))


def _below_classes(level: str, layout: Option15Layout) -> bool:
    """Would a matching class override a value found at ``level`` (the class slot's level, a later one, none)?"""
    names = [lvl.level for lvl in layout.chain]
    if level == NONE:
        return True
    if layout.class_before not in names or level not in names:
        return False
    return names.index(level) >= names.index(layout.class_before)


def _class_places(classes, res: Reservation | None, maybe: list, cancel: list) -> list[tuple[str, str | None, str]]:
    """Classes at their slot: the first one the client's reservation names (certain); classes with a test
    the client may match go to ``maybe`` (they are examined first, so they would win). A never-send class
    the reservation names cancels option 15 (``cancel``); one the client may match may leave it without."""
    named = res.classes if res is not None else ()
    for c in classes:
        if c.test and c.evaluated and c.name not in named:
            maybe.append((CLIENT_CLASS, "" if c.never_send else c.domain_name,
                          f"if it matches class '{c.name}' (test: {c.test})"))
    cancel += [f"class '{c.name}'" for c in classes if c.name in named and c.never_send]
    for c in classes:
        if c.name in named:
            return [(CLIENT_CLASS, c.domain_name, f"class '{c.name}' (named by {res.label})")]
    return []


def _distinct(alternatives, value) -> tuple[tuple[str, str], ...]:
    seen, out = set(), []
    for v, why in alternatives:
        if v != value and (v, why) not in seen:
            seen.add((v, why))
            out.append((v, why))
    return tuple(out)


def _chain_cancel(layout: Option15Layout) -> str:
    """Where a scope-wide level sets a never-send option 15 ("" = none): it holds for every client."""
    return next((lvl.label for lvl in layout.chain if lvl.never_send), "")


def scope_value(layout: Option15Layout) -> tuple[str, str, str]:
    """(value, level, where) for a client no pool, reservation or class of its own applies to."""
    cancelled = _chain_cancel(layout)
    if cancelled:
        return "", NONE, f"never-send at {cancelled}: Kea sends no option 15"
    for lvl in layout.chain:
        if lvl.domain_name is not None:
            return lvl.domain_name, lvl.level, lvl.label
    return "", NONE, "no level sets option 15"


def placements(layout: Option15Layout) -> list[tuple[str, str, str]]:
    """Every (value, level, where) a client of this scope can be handed: the scope's own value (when some
    address can reach it), each pool and reservation with its own option 15, each class that can apply."""
    out = []
    value, level, where = scope_value(layout)
    if _chain_cancel(layout):
        return [(value, level, where)]
    reachable = not layout.pools or any(p.domain_name is None and not p.never_send for p in layout.pools) or \
        any(r.domain_name is None and not r.never_send and r.ip is not None and not in_pools(r.ip, layout.pools)
            for r in layout.reservations)
    if reachable:
        out.append((value, level, where))
    out += [("" if p.never_send else p.domain_name, POOL, p.label) for p in layout.pools
            if p.domain_name is not None or p.never_send]
    out += [("" if r.never_send else r.domain_name, RESERVATION, r.label) for r in layout.reservations
            if r.domain_name is not None or r.never_send]
    if _below_classes(level, layout):
        out += [("" if c.never_send else c.domain_name, CLIENT_CLASS, f"class '{c.name}'") for c in layout.classes
                if c.evaluated]
    return out


def in_pools(ip: str | None, pools) -> bool:
    addr = _ipv4(ip)
    return addr is not None and any(p.holds(addr) for p in pools)


def verdict(option: HostOption15, matches) -> bool | None:
    """True when the value and every alternative pass ``matches``; False when none does; None = it depends."""
    values = [option.domain_name] + [v for v, _ in option.alternatives]
    results = {bool(v) and bool(matches(v)) for v in values}
    return results.pop() if len(results) == 1 else None


def host_macs(evidence: dict | None) -> tuple[str, ...]:
    """The MACs discovery read for a host (AMT's wired MAC, the OS adapter it shares): how a reservation knows it."""
    ev = evidence or {}
    return tuple(m for m in (ev.get("amt_wired_mac"), ev.get("os_interface_mac")) if isinstance(m, str) and m)


def for_scope_host(scope, address: str | None, evidence: dict | None = None) -> HostOption15 | None:
    """What an inventory scope (`tasks.inventory.model.DhcpScope`) hands this host: from its server's layout
    when it was read live, else the value declared in the inventory; None while its server is unread."""
    if scope is None or not scope.known:
        return None
    live = scope.live_values
    if live is not None:
        return live.for_host(address, host_macs(evidence))
    return HostOption15(scope.domain_name, INVENTORY if scope.domain_name else NONE, "declared in the inventory")
