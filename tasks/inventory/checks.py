"""Checks that need the whole inventory: uniqueness, wave membership, scopes, TLS trust. Beside schema
errors they run on what was salvaged, and stay quiet where the set-aside part would decide."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from dataclasses import field as dc_field

from tasks.inventory.schema import Inventory
from tasks.inventory.sections import plain_name, selector_matches
from tasks.inventory.yaml_source import Problem, SourceMap

@dataclass
class Lost:
    """What was set aside to cross-check the rest of an inventory with schema errors, so checks that
    would only fail because of it stay quiet (the schema error already says what to fix)."""

    kept: dict[str, list[int]]  # list key -> original indices of the items kept, in order
    host_names: set[str] = dc_field(default_factory=set)  # raw names (lower case) of hosts set aside
    host_tags: set[str] = dc_field(default_factory=set)
    scope_names: set[str] = dc_field(default_factory=set)
    all_scopes: bool = False
    settings: bool = False  # credentials or defaults set aside: the TLS/CA check can't be trusted

    def hides_selector(self, selector: str) -> bool:
        if selector.startswith("tag:"):
            return selector[4:] in self.host_tags
        return any(fnmatch.fnmatchcase(n, selector.lower()) for n in self.host_names)

    def hides_scope(self, name: str) -> bool:
        return self.all_scopes or name in self.scope_names

    def remap(self, smap: SourceMap) -> SourceMap:
        """The source map re-indexed for the kept items; each place still names the field as written."""
        out = SourceMap(smap.default_file)
        for loc, place in smap.places.items():
            if len(loc) > 1 and loc[0] in self.kept and isinstance(loc[1], int):
                if loc[1] not in self.kept[loc[0]]:
                    continue
                loc = (loc[0], self.kept[loc[0]].index(loc[1])) + loc[2:]
            out.places[loc] = place
        return out


def semantic_problems(inv: Inventory, smap: SourceMap, lost: Lost | None = None) -> tuple[list[Problem], list[Problem]]:
    """Checks that need the whole inventory: uniqueness, wave membership, scopes. With `lost`, the
    inventory is what was left of one with schema errors: checks that the set-aside part would decide
    stay quiet. Returns (errors, warnings)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    _unique_names(inv, smap, errors)
    _scopes(inv, smap, lost, errors, warnings)
    member_of = _wave_membership(inv, smap, lost, errors, warnings)
    _tls_trust(inv, smap, lost, errors)
    _locations(inv, smap, warnings)
    if inv.waves:
        lonely = [h.name for h in inv.hosts if h.name.lower() not in member_of]
        if lonely:
            warnings.append(smap.problem(("hosts",), f"{len(lonely)} host(s) in no wave: {', '.join(lonely[:5])}{' ...' if len(lonely) > 5 else ''}", "warning"))
    return errors, warnings


def _unique_names(inv: Inventory, smap: SourceMap, errors: list[Problem]) -> None:
    def unique(items, key, label, where):
        seen: dict = {}
        for i, item in enumerate(items):
            k = key(item)
            if k in seen:
                first_file, first_line = smap.where(where(seen[k]))
                errors.append(smap.problem(where(i), f"duplicate {label} {k!r} (first at {first_file}:{first_line})"))
            else:
                seen[k] = i

    unique(inv.hosts, lambda h: h.name.lower(), "host name", lambda i: ("hosts", i, "name"))
    unique(inv.hosts, lambda h: h.address, "address", lambda i: ("hosts", i, "address"))
    unique(inv.waves, lambda w: w.name, "wave name", lambda i: ("waves", i, "name"))
    unique(inv.dhcp_scopes, lambda s: s.name, "scope name", lambda i: ("dhcp_scopes", i, "name"))


def _scopes(inv: Inventory, smap: SourceMap, lost: Lost | None, errors: list[Problem], warnings: list[Problem]) -> None:
    scope_names = {s.name for s in inv.dhcp_scopes}
    for i, a in enumerate(inv.dhcp_scopes):
        for b in inv.dhcp_scopes[:i]:
            if a.subnet.version == b.subnet.version and a.subnet.overlaps(b.subnet):
                warnings.append(smap.problem(("dhcp_scopes", i, "subnet"), f"overlaps scope {b.name!r}; the narrower subnet wins", "warning"))

    for i, h in enumerate(inv.hosts):
        if h.scope and h.scope not in scope_names:
            if lost is not None and lost.hides_scope(h.scope):
                continue
            errors.append(smap.problem(("hosts", i, "scope"), f"no DHCP scope named {h.scope!r}"))
        elif inv.dhcp_scopes and not h.scope and inv.scope_of(h) is None:
            warnings.append(smap.problem(("hosts", i, "address"), f"{h.name} ({h.address}) is in no DHCP scope's subnet: dhcp_renew can't be checked", "warning"))


def _wave_membership(inv: Inventory, smap: SourceMap, lost: Lost | None, errors: list[Problem],
                     warnings: list[Problem]) -> dict[str, int]:
    """Every selector matches a host, every host is in at most one wave; host name (lower case) -> wave index."""
    member_of: dict[str, int] = {}
    names = {h.name.lower() for h in inv.hosts}
    tags = {t for h in inv.hosts for t in h.tags}
    for wi, w in enumerate(inv.waves):
        for si, sel in enumerate(w.hosts):
            if plain_name(sel):
                matched = sel.lower() in names
            elif sel.startswith("tag:"):
                matched = sel[4:] in tags
            else:
                matched = any(selector_matches(sel, h) for h in inv.hosts)
            if not matched and not (lost is not None and lost.hides_selector(sel)):
                errors.append(smap.problem(("waves", wi, "hosts", si), f"selector {sel!r} matches no host"))
        for h in inv.select(w.hosts):
            key = h.name.lower()
            if key in member_of and member_of[key] != wi:
                errors.append(smap.problem(("waves", wi, "hosts"), f"host {h.name} is already in wave {inv.waves[member_of[key]].name!r}; a host belongs to one wave"))
            member_of.setdefault(key, wi)
        if "dhcp_renew" in w.remediation and inv.credentials.ssh is None:
            warnings.append(smap.problem(("waves", wi, "remediation"), "dhcp_renew needs credentials.ssh; it will be skipped", "warning"))
    return member_of


def _tls_trust(inv: Inventory, smap: SourceMap, lost: Lost | None, errors: list[Problem]) -> None:
    tls_hosts = [i for i, h in enumerate(inv.hosts) if inv.amt_tls_of(h)]
    legacy = inv.credentials.legacy_amt
    if lost is not None and lost.settings:
        pass  # credentials or defaults had schema errors: whether TLS needs a CA bundle is not known
    elif tls_hosts and (legacy is None or not legacy.ca_bundle):
        errors.append(smap.problem(("hosts", tls_hosts[0], "amt_tls") if inv.hosts[tls_hosts[0]].amt_tls else ("defaults", "amt_tls"),
                                   f"{len(tls_hosts)} host(s) speak WS-Man over TLS: name the CA bundle that signed AMT's "
                                   "certificates in credentials.legacy_amt.ca_bundle (or set amt_tls: false where AMT listens "
                                   "on plain 16992)"))
    elif legacy is not None and legacy.ca_bundle and not inv.resolve(legacy.ca_bundle).is_file():
        errors.append(smap.problem(("credentials", "legacy_amt", "ca_bundle"), f"{legacy.ca_bundle}: no such file"))


def _locations(inv: Inventory, smap: SourceMap, warnings: list[Problem]) -> None:
    """A host whose location has no technicians can't get a visit the forecast can schedule."""
    if not inv.technicians:
        return
    for i, h in enumerate(inv.hosts):
        if h.location and h.location not in inv.technicians:
            warnings.append(smap.problem(("hosts", i, "location"), f"no technicians at {h.location!r} (technicians: "
                                         f"{', '.join(inv.technicians)}): a visit to {h.name} can't be forecast",
                                         "warning"))
