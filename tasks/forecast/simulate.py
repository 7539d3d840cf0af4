"""A wave's run, simulated: pass 1, remediation, pass 2, the technicians' visits and the clients' own healing,
each host's chain of events with its time and why. Pure: the same inputs give the same forecast.

The run's order is the flow's (flows/migrate.py): discovery of every host, then pass 1 of every host in
inventory order, then remediation of the failed ones, then pass 2 of the remediated ones. The provisioning
server completes attempts at `Setup.rate`, one queue shared by every wave in start order; technicians visit
each location at its capacity, earliest deadline first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.forecast import model as m
from tasks.forecast.model import HostIn, HostOut, Now, Setup, Step, WaveIn, WaveOut
from tasks.forecast.selfheal import heal
from tasks.forecast.words import span

INF = float("inf")
SUFFIX_CAUSES = ("suffix_mismatch", "suffix_blank")
FAILING = ("fail", "likely_fail", "unknown")  # outcomes the run remediates (unknown: assumed to fail)


class Server:
    """The provisioning server: attempts complete one after another at `rate` per second, in the order asked."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.free = -INF
        self.attempts = 0

    def take(self, at: float) -> float:
        """The attempt asked at `at` completes at the returned time (it queues behind earlier ones)."""
        start = max(at, self.free)
        self.free = start + self.interval
        self.attempts += 1
        return self.free

    def aside(self, at: float) -> float:
        """A rerun's single attempt (after a technician's visit): no queue, its own time at the rate."""
        self.attempts += 1
        return at + self.interval


@dataclass
class Waiting:
    """A host on the technician's work list, waiting for a visit (and maybe healing by itself meanwhile)."""

    host: HostIn
    ready: float
    deadline: float
    steps: list[Step]
    first_attempt: float | None  # its last attempt: the client's retries count from here
    renew_origin: float
    out: HostOut | None = None


@dataclass
class Plan:
    """What one wave's simulation leaves: hosts decided, hosts waiting for technicians."""

    done: list[HostOut] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)


def fixed(h: HostIn, route: str, at: float | None, steps: list[Step], person: str | None = None,
          actual: bool = False) -> HostOut:
    return HostOut(h.name, h.wave, h.path, h.outcome, route, at, at, at, steps, person=person,
                   location=h.location, actual=actual)


def can_heal(setup: Setup, h: HostIn) -> bool:
    """Can the client fix itself: it retries on its own, its scope hands out a suffix AMT accepts, and no
    suffix AMT holds wins over option 15."""
    return (setup.client_retries and h.scope_ok and bool(h.lease) and not h.renew_blocked
            and h.path == "reprovision" and (h.cause in SUFFIX_CAUSES or h.outcome == "unknown"))


class WaveRun:
    """One run of one wave from `origin`: the stages in order, each host's events recorded as steps."""

    def __init__(self, setup: Setup, server: Server, wave: WaveIn, origin: float):
        self.setup, self.server, self.wave, self.origin = setup, server, wave, origin
        self.plan = Plan()
        self.p1_start = self.p1_end = self.end = origin
        self.fixes: list[tuple[HostIn, float, list[Step]]] = []  # remediated, waiting for pass 2

    def pass1(self, hosts: list[HostIn]) -> dict[str, float]:
        """Every host once, in inventory order, after discovery; returns each attempt's completion."""
        start = self.origin + self.setup.discovery * len(hosts)
        p1: dict[str, float] = {}
        for h in hosts:
            if h.outcome != "unsupported" and h.path in ("reprovision", "adopt"):
                p1[h.name] = self.server.take(start)
        self.p1_start, self.p1_end = start, max(p1.values(), default=start)
        for h in hosts:
            self._after_pass1(h, p1.get(h.name))
        return p1

    def _after_pass1(self, h: HostIn, at: float | None) -> None:
        s0 = self.p1_start
        if h.outcome == "unsupported":
            self.plan.done.append(fixed(h, m.NEVER, None, [Step(s0, "pass 1", "firmware older than 3.2.1: skipped, "
                                                                     "never provisioned (Intel's translator or a firmware update)")]))
        elif h.path == "technician":
            self.wait(h, s0, [Step(s0, "pass 1: routed", "activated and nobody holds its admin password: on the "
                                                         "technician's work list (unprovision in the MEBx)")], None)
        elif h.path == "unprovision_first":
            self.plan.done.append(fixed(h, m.PERSON, None, [Step(s0, "pass 1: not attempted", "the legacy record goes "
                                                                 "first, or `rpc deactivate -local` (client control mode)")],
                                        person="an operator: unprovision first, then rerun"))
        elif h.path == "adopt":
            self.plan.done.append(fixed(h, m.PASS1, at, [Step(at, "pass 1", "adopted with the legacy console's "
                                                             "credentials (no suffix check): provisioned")]))
        elif h.outcome not in FAILING:
            how = "inferred to match" if h.outcome.startswith("likely") else "AMT's suffix matches"
            self.plan.done.append(fixed(h, m.PASS1, at, [Step(at, "pass 1", f"{how}: provisioned")]))
        else:
            self.remediate(h, at, self.p1_end, [self._failed_step(h, at)])

    def _failed_step(self, h: HostIn, at: float) -> Step:
        what = h.cause or "suffix_mismatch (assumed: AMT's suffix is unknown)"
        return Step(at, "pass 1", f"fails: {what}; AMT's window opens until {span(self.setup.window)} later")

    def remediate(self, h: HostIn, attempt: float, at: float, steps: list[Step]) -> None:
        """The remediation stage at `at` for a host whose last attempt was at `attempt`."""
        method = h.methods[0] if h.methods else None
        window = self.setup.window
        if method in (m.AMT_WRITE_WSMAN, m.AMT_WRITE_HI):
            how = "WS-Man DomainName with the legacy credentials" if method == m.AMT_WRITE_WSMAN else \
                "the host-interface tool over SSH"
            self.fixes.append((h, at, steps + [Step(at, "remediation: amt_write", f"{how}: no window needed")]))
        elif method == m.DHCP_RENEW:
            if at >= attempt + window - min(30.0, window / 10):
                attempt = self.server.take(at)
                steps = steps + [Step(attempt, "remediation: reopen the window", "the window closed before the "
                                      "remediation reached it: an attempt reopens it")]
                at = attempt
            self.fixes.append((h, at, steps + [Step(at, "remediation: dhcp_renew", f"a renew over SSH while AMT's window "
                                                    f"is open: AMT takes scope {h.scope}'s option 15")]))
        elif method == m.MEBX:
            self.wait(h, at, steps + [Step(at, "remediation: mebx", "no remote method applies: on the technician's "
                                           "work list")], attempt)
        else:
            self.nothing_applies(h, attempt, steps)

    def nothing_applies(self, h: HostIn, attempt: float, steps: list[Step]) -> None:
        if can_heal(self.setup, h):
            w = Waiting(h, INF, INF, steps, attempt, self.origin)
            self.plan.waiting.append(w)
        else:
            self.plan.done.append(fixed(h, m.PERSON, None, steps + [Step(None, "remediation", why_stuck(self.setup, h))],
                                        person="someone: no remediation in this wave applies"))

    def wait(self, h: HostIn, ready: float, steps: list[Step], attempt: float | None) -> None:
        self.plan.waiting.append(Waiting(h, ready, ready + self.setup.window, steps, attempt, self.origin))

    def pass2(self, extra_delay: float = 0.0) -> None:
        """Pass 2 of every remediated host, after the remediation stage (and pass2_after)."""
        if not self.fixes:
            return
        start = max(max(at for _, at, _ in self.fixes), self.p1_end) + self.wave.pass2_after + extra_delay
        why = "remediated" + (f"; pass 2 runs {span(self.wave.pass2_after)} later (pass2_after)"
                              if self.wave.pass2_after else "")
        for h, _, steps in self.fixes:
            done = self.server.take(start)
            self.end = max(self.end, done)
            self.plan.done.append(fixed(h, m.REMOTE_FIX, done, steps + [Step(done, "pass 2", f"{why}: provisioned")]))
        self.fixes = []

    def publish_work_list(self) -> None:
        """The technicians' work list is the wave's report (mebx-worklist.csv), written when the run ends:
        no visit before then."""
        end = max(self.end, self.p1_end)
        for w in self.plan.waiting:
            if w.ready != INF and w.ready < end:
                w.ready = end
                w.steps = w.steps + [Step(end, "work list", "the run ends: its report publishes the MEBx work list")]


def why_stuck(setup: Setup, h: HostIn) -> str:
    """Why nothing fixes a failing host without a person."""
    if h.renew_blocked:
        return f"{h.renew_blocked}; no remote method in this wave"
    if not h.scope_ok:
        return (f"scope {h.scope}'s option 15 does not match the certificate" if h.scope else "in no DHCP scope") + \
            ": neither a renew nor the client's own renewal can fix it; no remote method in this wave"
    if not setup.client_retries:
        return "no remote method in this wave, and the client does not retry on its own (rpc-go)"
    return "no remote method in this wave"


def finish_waiting(setup: Setup, server: Server, waiting: list[Waiting]) -> list[HostOut]:
    """Schedule the technicians (per location, earliest deadline first), then each waiting host's end: the
    visit and a rerun's pass 2, or its own healing when that comes first."""
    visits = schedule_visits(setup.technicians, [w for w in waiting if w.ready != INF])
    return [_decide(setup, server, w, visits.get(w.host.name)) for w in waiting]


def schedule_visits(capacity: dict[str, float], waiting: list[Waiting]) -> dict[str, tuple[float, int]]:
    """host -> (visit time, its place in the location's queue); hosts at a location without capacity get none."""
    out: dict[str, tuple[float, int]] = {}
    by_loc: dict[str, list[Waiting]] = {}
    for w in waiting:
        by_loc.setdefault(w.host.location or "", []).append(w)
    for loc, items in by_loc.items():
        rate = capacity.get(loc)
        if not rate:
            continue
        free = -INF
        for n, w in enumerate(sorted(items, key=lambda w: (w.deadline, w.host.name)), start=1):
            t = max(w.ready, free)
            free = t + 1.0 / rate
            out[w.host.name] = (t, n)
    return out


def _decide(setup: Setup, server: Server, w: Waiting, visit: tuple[float, int] | None) -> HostOut:
    h = w.host
    by_visit = None
    visit_steps: list[Step] = []
    if visit is not None:
        v, n = visit
        by_visit = server.aside(v)
        visit_steps = [Step(v, "technician visit", f"{h.location}: {m.capacity_text(setup, h.location)}, visits in "
                                                   f"deadline order; "
                                                   f"visit {n} there"),
                       Step(by_visit, "pass 2 (rerun)", "after `amt-migrate mebx done`: provisioned")]
    healed = None
    if w.first_attempt is not None and can_heal(setup, h):
        healed = heal(w.first_attempt, w.renew_origin, h.lease, setup.window, setup.retry)
    if healed is not None and healed.expected is not None and (by_visit is None or healed.expected < by_visit):
        return _healed(setup, w, healed, by_visit)
    if by_visit is not None:
        return fixed(h, m.TECHNICIAN, by_visit, w.steps + visit_steps, person=f"a technician at {h.location}")
    if w.ready == INF:  # not on the work list: nothing in the wave applies and it does not heal
        return fixed(h, m.PERSON, None, w.steps + [Step(None, "remediation", why_stuck(setup, h))],
                     person="someone: no remediation in this wave applies")
    where = f"no technicians at {h.location}" if h.location else "no location with technicians (location: or a tag)"
    return fixed(h, m.PERSON, None, w.steps + [Step(None, "technician visit", f"{where}: can't be scheduled")],
                 person="a technician (no capacity known)")


def _healed(setup: Setup, w: Waiting, hl, by_visit: float | None) -> HostOut:
    h = w.host
    half = h.lease / 2
    steps = list(w.steps) + [
        Step(hl.renew_at, "client renewal (T1)", f"the OS renews at half scope {h.scope}'s lease ({span(h.lease)}: every "
                                                 f"{span(half)}; when it last renewed is unknown) while AMT's window "
                                                 f"is open: AMT takes option 15"),
    ]
    if hl.retries:
        steps.append(Step(None, "client retries", f"{hl.retries} earlier retr{'y' if hl.retries == 1 else 'ies'} "
                                                  f"fail, each reopening the window ({span(setup.retry)} apart)"))
    latest = hl.latest if hl.latest is not None else by_visit
    steps.append(Step(hl.latest, "client retry", f"the client's own retry (every {span(setup.retry)}): provisioned"
                      + (f"; {hl.never_phases} of 16 lease ages never meet a window" if hl.never_phases else "")))
    out = HostOut(h.name, h.wave, h.path, h.outcome, m.SELF_HEAL, hl.earliest, hl.expected, latest, steps,
                  location=h.location, chance=hl.chance)
    if by_visit is not None:
        out.steps.append(Step(by_visit, "(technician visit)", "would come later: the host heals first"))
    return out


def resume(run: WaveRun, h: HostIn, now: Now, at: float) -> None:
    """A host the state store has seen, continued from where it stands at `at` (a rerun at that time)."""
    steps = list(now.events)
    if now.status in ("failed", "remediating") and (now.cause in SUFFIX_CAUSES + ("window_closed",) or
                                                    now.status == "remediating"):
        run.remediate(h, now.last_attempt if now.last_attempt is not None else at, at, steps)
    elif now.status == "remediated" or (now.status == "needs_mebx" and now.mebx_done):
        run.fixes.append((h, at, steps + [Step(at, "rerun", "pass 2 is next")]))
    elif now.status == "needs_mebx":
        run.plan.waiting.append(Waiting(h, now.since, now.since + run.setup.window, steps, now.last_attempt, at))
    else:
        why = f"{now.status}" + (f" ({now.cause})" if now.cause else "")
        run.plan.done.append(fixed(h, m.PERSON, None, steps + [Step(None, "rerun", f"{why}: fix the cause, then rerun")],
                                   person="an operator: fix the cause, then rerun"))


def simulate(setup: Setup, waves: list[WaveIn], states: dict[tuple[str, str], Now] | None = None,
             at: float | None = None, rate_source: str = "") -> list[WaveOut]:
    """Every wave, in start order, on one server and one set of technicians. `states` (wave, host) -> Now:
    where the store says hosts stand at time `at`; provisioned hosts keep their recorded time, the rest
    continue from `at`."""
    states = states or {}
    server = Server(setup.rate)
    outs, waiting_all = [], []
    for wave in sorted(waves, key=lambda w: w.start):
        seen = {h.name: states.get((wave.name, h.name)) for h in wave.hosts}
        started = any(s is not None and s.status != "pending" for s in seen.values())
        origin = max(at, wave.start) if (started and at is not None) else wave.start
        before = server.attempts
        run, results = WaveRun(setup, server, wave, origin), []
        fresh = []
        for h in wave.hosts:
            now = seen[h.name]
            if now is not None and now.status in ("provisioned", "unsupported"):
                results.append(_recorded(h, now))
            elif now is not None and now.status != "pending":
                resume(run, h, now, origin)
            else:
                fresh.append(h)
        run.pass1(fresh)
        run.pass2()
        run.publish_work_list()
        results.extend(run.plan.done)
        waiting_all.extend(run.plan.waiting)
        outs.append((wave, results, server.attempts - before))
    decided = {o.name: o for o in finish_waiting(setup, server, waiting_all)}
    return [_wave_out(setup, wave, results, decided, n, rate_source) for wave, results, n in outs]


def _recorded(h: HostIn, now: Now) -> HostOut:
    if now.status == "unsupported":
        return fixed(h, m.NEVER, None, list(now.events), actual=True)
    return fixed(h, m.DONE, now.provisioned_at, list(now.events), actual=True)


def _wave_out(setup: Setup, wave: WaveIn, results: list[HostOut], decided: dict[str, HostOut], attempts: int,
              rate_source: str) -> WaveOut:
    order = {h.name: i for i, h in enumerate(wave.hosts)}
    hosts = results + [decided[h.name] for h in wave.hosts if h.name in decided]
    hosts.sort(key=lambda o: order[o.name])
    busy = attempts / setup.rate if setup.rate else 0.0
    return WaveOut(wave.name, wave.start, hosts, setup.rate, rate_source, attempts, busy)


__all__ = ["simulate", "Server", "schedule_visits", "can_heal"]
