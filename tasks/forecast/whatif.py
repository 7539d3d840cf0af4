"""What-ifs, computed: the forecast run again with one change, ranked by host-days saved.

Changes tried (each only where it can matter):
- a scope's lease shortened to min(1 h, window / 2), so a client's own renewal (T1 = lease/2) falls
  inside AMT's window, for scopes with hosts that heal by themselves or wait for a person;
- one more technician visit per period (6/day -> 7/day) at a location with hosts waiting for visits;
- renew over SSH unavailable for a tag whose hosts are fixed by a renew or a host-interface write
  (a risk: its saving is negative);
- the provisioning server twice as fast, when its rate is known.

Each change is simulated on the waves it touches (their hosts' scope, location or tag), and compared with
those waves simulated without it: a wave it does not touch is not simulated again (at 10,000 hosts the
what-ifs would otherwise cost a full forecast each). Effects through the shared server queue on waves it
does not touch are left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from tasks.forecast import model as m
from tasks.forecast.model import WaveIn, WaveOut
from tasks.forecast.simulate import simulate
from tasks.forecast.words import span, when

DAY = 86400.0
SHORT_LEASE_MAX = 3600.0  # 1 h: a lease a site can hand out for a migration week
TOP = 8  # candidates per kind, the most hosts first


@dataclass
class WhatIf:
    change: str
    kind: str  # lease | technician | no_ssh | rate
    hosts: int  # hosts whose forecast moves
    host_days_saved: float  # over hosts done in both forecasts (negative: lost)
    newly_done: int = 0  # hosts that finish only with the change
    newly_stuck: int = 0  # hosts that no longer finish with it
    waves: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # wave -> 100 % before/after

    def text(self) -> str:
        if not self.hosts:
            return f"{self.change}: no host's forecast moves"
        days = self.host_days_saved
        timed = self.hosts - self.newly_done - self.newly_stuck
        parts = []
        if timed:
            avg = days / timed
            parts.append(f"{timed} host(s) done {span(abs(avg) * DAY)} {'earlier' if days >= 0 else 'later'} on "
                         f"average ({days:+.2f} host-days)")
        if self.newly_done:
            parts.append(f"{self.newly_done} host(s) finish that would not without a person")
        if self.newly_stuck:
            parts.append(f"{self.newly_stuck} host(s) no longer finish without a person")
        head = f"{self.change}: " + "; ".join(parts)
        moved = [f"{w} 100 % {when(b)} -> {when(a)}" for w, (b, a) in self.waves.items() if b != a]
        return head + (f" ({'; '.join(moved)})" if moved else "")

    def as_dict(self) -> dict:
        return {"change": self.change, "kind": self.kind, "hosts": self.hosts,
                "host_days_saved": round(self.host_days_saved, 3), "newly_done": self.newly_done,
                "newly_stuck": self.newly_stuck, "text": self.text(),
                "waves": {w: {"before": b, "after": a} for w, (b, a) in self.waves.items()}}


def compare(change: str, kind: str, before: list[WaveOut], after: list[WaveOut]) -> WhatIf:
    old = {h.name: h.expected for w in before for h in w.hosts}
    moved = saved = 0.0
    new_done = stuck = 0
    for w in after:
        for h in w.hosts:
            b, a = old.get(h.name), h.expected
            if b == a or (b is not None and a is not None and abs(b - a) < 1e-6):
                continue
            moved += 1
            if b is None:
                new_done += 1
            elif a is None:
                stuck += 1
            else:
                saved += (b - a) / DAY
    waves = {w.name: (bw.quantile(1.0), w.quantile(1.0)) for w, bw in zip(after, before)}
    return WhatIf(change, kind, int(moved), saved, new_done, stuck, waves)


def _rank(w: WhatIf) -> tuple:
    return (-(w.newly_done - w.newly_stuck), -w.host_days_saved, w.change)


def what_ifs(fc) -> list[WhatIf]:
    """Every candidate change, computed against the forecast `fc` (tasks.forecast.build.Forecast), ranked.
    Each is simulated on the waves it touches, against those same waves simulated without it."""
    found = []
    before: dict[frozenset, list[WaveOut]] = {}
    for change, kind, setup, inputs, waves in candidates(fc):
        key = frozenset(waves)
        if key not in before:
            before[key] = with_change(fc, None, [w for w in fc.inputs if w.name in key])
        changed = [w for w in (inputs or fc.inputs) if w.name in key]
        found.append(compare(change, kind, before[key], with_change(fc, setup, changed)))
    return sorted((w for w in found if _matters(w)), key=_rank)


def _matters(w: WhatIf) -> bool:
    """A change that moves no host, or moves them by less than a second in all, is not worth a line."""
    return bool(w.hosts) and (w.newly_done or w.newly_stuck or abs(w.host_days_saved) * DAY >= 1.0)


def with_change(fc, setup=None, inputs=None) -> list[WaveOut]:
    """The forecast's waves (or `inputs`) simulated with `setup`: the same facts from the store, the same time."""
    return simulate(setup or fc.setup, fc.inputs if inputs is None else inputs, fc.states, fc.made_at, "")


def candidates(fc):
    """(description, kind, changed Setup or None, changed inputs or None, the waves it touches) per change."""
    hosts = [h for w in fc.waves for h in w.hosts if not h.actual]
    yield from _leases(fc, hosts)
    yield from _technicians(fc, hosts)
    yield from _no_ssh(fc, hosts)
    if fc.setup.rate:
        yield ("provisioning server twice as fast", "rate", replace(fc.setup, rate=fc.setup.rate * 2), None,
               {w.name for w in fc.inputs})


def _waves_with(fc, test) -> set[str]:
    return {w.name for w in fc.inputs if any(test(h) for h in w.hosts)}


def _map_hosts(inputs: list[WaveIn], change) -> list[WaveIn]:
    return [replace(w, hosts=tuple(change(h) for h in w.hosts)) for w in inputs]


def _leases(fc, hosts):
    waiting = {h.name for h in hosts if h.route in (m.SELF_HEAL, m.TECHNICIAN, m.PERSON)}
    short = min(SHORT_LEASE_MAX, fc.setup.window / 2)
    by_scope = Counter(h.scope for w in fc.inputs for h in w.hosts
                       if h.name in waiting and h.scope and h.lease and h.lease > short and h.scope_ok)
    for scope, _ in by_scope.most_common(TOP):
        lease = next(h.lease for w in fc.inputs for h in w.hosts if h.scope == scope)
        inputs = _map_hosts(fc.inputs, lambda h, s=scope: replace(h, lease=short) if h.scope == s else h)
        yield (f"scope {scope} lease {span(lease)} -> {span(short)}", "lease", None, inputs,
               _waves_with(fc, lambda h, s=scope: h.scope == s))


def _technicians(fc, hosts):
    waiting = Counter(h.location for h in hosts if h.route in (m.TECHNICIAN, m.PERSON) and h.location)
    for loc, _ in waiting.most_common(TOP):
        per_s = fc.setup.technicians.get(loc)
        if per_s:
            period = fc.setup.periods.get(loc, DAY)
            more = {**fc.setup.technicians, loc: per_s + 1 / period}
            label = (f"one more technician visit per period at {loc} ({m.capacity_text(fc.setup, loc)} -> "
                     f"{m.capacity_text(fc.setup, loc, more[loc])})")
            periods = fc.setup.periods
        else:
            more = {**fc.setup.technicians, loc: 1 / DAY}
            label, periods = f"a technician at {loc} (none now -> 1/day)", {**fc.setup.periods, loc: DAY}
        yield (label, "technician", replace(fc.setup, technicians=more, periods=periods), None,
               _waves_with(fc, lambda h, x=loc: h.location == x))


def _no_ssh(fc, hosts):
    remote = {h.name for h in hosts if h.route == m.REMOTE_FIX}
    tags = Counter(t for w in fc.inputs for h in w.hosts if h.name in remote and h.ssh
                   and any(x in m.SSH_METHODS for x in h.methods[:1]) for t in h.tags)
    for tag, _ in tags.most_common(TOP):
        inputs = _map_hosts(fc.inputs, lambda h, t=tag: h.without_ssh() if t in h.tags else h)
        yield (f"renew over SSH unavailable for tag {tag}", "no_ssh", None, inputs,
               _waves_with(fc, lambda h, t=tag: t in h.tags))
