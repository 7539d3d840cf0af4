"""Waves designed, not typed: hosts grouped by DHCP scope, tag or location (a group is never split: renewals
and technician visits cluster), packed first-fit into waves of at most --max-hosts, groups with the most
hosts that need a person first (their technicians start early), no wave holding more technician visits per
location than that location's capacity makes within one AMT window, at most --per-day hosts started a day;
each wave starts when the server has finished the previous one (at provisioning.rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tasks.forecast import model as m
from tasks.inventory.model import Host, Inventory, Wave

BY = ("scope", "tag", "location")


@dataclass
class Group:
    key: str
    hosts: list[Host]
    people: int  # hosts that need a person (technician or someone), from the forecast
    visits: dict[str, int]  # location -> technician visits


@dataclass
class Proposed:
    name: str
    groups: list[Group] = field(default_factory=list)
    start: datetime | None = None

    @property
    def hosts(self) -> list[Host]:
        return [h for g in self.groups for h in g.hosts]

    def visits(self, loc: str) -> int:
        return sum(g.visits.get(loc, 0) for g in self.groups)


def group_key(inv: Inventory, host: Host, by: str) -> str:
    if by == "scope":
        scope = inv.scope_of(host)
        return scope.name if scope else "(no scope)"
    if by == "tag":
        return host.tags[0] if host.tags else "(no tag)"
    return inv.location_of(host) or "(no location)"


def groups_of(inv: Inventory, by: str, routes: dict[str, str]) -> list[Group]:
    """Hosts by group, in inventory order; each group with its people and technician visits per location."""
    found: dict[str, Group] = {}
    for h in inv.hosts:
        g = found.setdefault(group_key(inv, h, by), Group(group_key(inv, h, by), [], 0, {}))
        g.hosts.append(h)
        route = routes.get(h.name)
        if route in (m.TECHNICIAN, m.PERSON):
            g.people += 1
        if route == m.TECHNICIAN:
            loc = inv.location_of(h) or ""
            g.visits[loc] = g.visits.get(loc, 0) + 1
    return list(found.values())


def pack(groups: list[Group], max_hosts: int, visit_limit: dict[str, float]) -> tuple[list[Proposed], list[str]]:
    """First-fit, the groups needing the most people first, then the biggest; a group larger than max_hosts
    gets a wave of its own (never split). Returns the waves and notes."""
    notes = []
    waves: list[Proposed] = []
    for g in sorted(groups, key=lambda g: (-g.people, -len(g.hosts), g.key)):
        if len(g.hosts) > max_hosts:
            notes.append(f"{g.key}: {len(g.hosts)} hosts, more than --max-hosts {max_hosts}: kept whole in a wave of "
                         f"its own")
        over = [f"{n} at {loc} (capacity {visit_limit[loc]:g} a window)" for loc, n in g.visits.items()
                if loc in visit_limit and n > visit_limit[loc]]
        if over:
            notes.append(f"{g.key}: technician visits {', '.join(over)}: no other group shares its wave; its last "
                         f"visits come after the window")
        home = next((w for w in waves if len(w.hosts) + len(g.hosts) <= max_hosts and _visits_fit(w, g, visit_limit)),
                    None)
        if home is None:
            home = Proposed(f"wave-{len(waves) + 1}")
            waves.append(home)
        home.groups.append(g)
    return waves, notes


def _visits_fit(w: Proposed, g: Group, limit: dict[str, float]) -> bool:
    return all(w.visits(loc) + n <= limit[loc] for loc, n in g.visits.items() if loc in limit)


def as_waves(proposed: list[Proposed], by: str, inv: Inventory) -> list[Wave]:
    """Inventory waves: a tag group by `tag:NAME` (or a location taken from a tag), anything else by host names."""
    out = []
    for p in proposed:
        selectors = []
        for g in p.groups:
            if by in ("tag", "location") and not g.key.startswith("(") and all(g.key in h.tags for h in g.hosts) and \
                    all(h.name in {x.name for x in g.hosts} for h in inv.hosts if g.key in h.tags):
                selectors.append(f"tag:{g.key}")
            else:
                selectors += [h.name for h in g.hosts]
        out.append(Wave(name=p.name, start=p.start, hosts=selectors))
    return out


def day_starts(proposed: list[Proposed], start: datetime, busy: list[float], per_day: int | None) -> None:
    """Wave k starts when the server finished wave k-1 (`busy` seconds each), and on a day (from `start`) that
    still has room for its hosts under `per_day`."""
    at = start
    used: dict[int, int] = {}
    for p, seconds in zip(proposed, busy):
        n = len(p.hosts)
        day = math.floor((at - start).total_seconds() / 86400)
        while per_day and used.get(day, 0) and used[day] + n > per_day:
            day += 1
            at = max(at, start + timedelta(days=day))
        used[day] = used.get(day, 0) + n
        p.start = at.astimezone(timezone.utc)
        at = at + timedelta(seconds=math.ceil(seconds / 60) * 60)
