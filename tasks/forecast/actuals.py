"""What the state store says happened, as of a time: where each host stands, when it was provisioned,
its last attempt (which opened AMT's window), the server's measured pace. Pure: works on the store's
events (tasks.store.state.Event), read by the caller."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tasks.forecast.model import Now, Step

ATTEMPTS = ("provision", "reopen-window")  # actions whose attempt reached (or tried to reach) AMT
REACHED = ("ok", "failed", "attempted", "provisioned")  # their outcomes when AMT was reached


@dataclass(frozen=True)
class Pace:
    rate: float | None  # attempts per second the server completed in the busiest pass recorded
    discovery: float  # seconds per host of discovery
    source: str


def is_attempt(e) -> bool:
    return e.action in ATTEMPTS and e.outcome in REACHED


def _step(e) -> Step:
    what = f"{e.stage}: {e.action}"
    why = e.outcome + (f" ({e.cause})" if e.cause else "")
    if e.status_after and e.status_after != e.status_before:
        why += f" -> {e.status_after}"
    return Step(e.at.timestamp(), what, why, actual=True)


def host_now(events: list, at: float | None = None) -> Now | None:
    """Where one host stands after its events up to `at` (all of them when None); None: no event yet."""
    seen = [e for e in events if at is None or e.at.timestamp() <= at]
    if not seen:
        return None
    status, since, cause, last_attempt, provisioned, mebx_done = "pending", seen[0].at.timestamp(), None, None, None, False
    steps = []
    for e in seen:
        t = e.at.timestamp()
        if is_attempt(e):
            last_attempt = t
        if e.status_after and e.status_after != status:
            status, since, cause = e.status_after, t, e.cause
            mebx_done = False
            if status == "provisioned":
                provisioned = t
        if e.action == "technician-done":
            mebx_done = True
        if is_attempt(e) or (e.status_after != e.status_before and e.action != "enrol") or e.stage == "mebx":
            steps.append(_step(e))
    return Now(status, since, last_attempt, provisioned, mebx_done, cause, tuple(steps))


def states(events: list, at: float | None = None) -> dict[tuple[str, str], Now]:
    """(wave, host) -> Now, from every event of the store."""
    by: dict[tuple[str, str], list] = defaultdict(list)
    for e in events:
        if e.host:
            by[(e.wave, e.host)].append(e)
    out = {}
    for key, evs in by.items():
        now = host_now(evs, at)
        if now is not None:
            out[key] = now
    return out


def first_events(events: list) -> dict[str, float]:
    """wave -> its first event (the run's start: the plan's enrolment)."""
    out: dict[str, float] = {}
    for e in events:
        t = e.at.timestamp()
        if e.wave not in out or t < out[e.wave]:
            out[e.wave] = t
    return out


def measured_pace(events: list, min_attempts: int = 5) -> Pace | None:
    """The server's throughput in the pass with the most attempts recorded (attempts over the span from the
    first to the last), and discovery's time per host in that wave; None without enough attempts."""
    groups: dict[tuple[str, str, str | None], list[float]] = defaultdict(list)
    disc: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.stage in ("pass1", "pass2") and is_attempt(e):
            groups[(e.wave, e.stage, e.flow_run_id)].append(e.at.timestamp())
        elif e.stage == "discovery":
            disc[e.wave].append(e.at.timestamp())
    best = max(groups.items(), key=lambda kv: len(kv[1]), default=None)
    if best is None or len(best[1]) < min_attempts:
        return None
    (wave, stage, _), times = best
    spread = max(times) - min(times)
    if spread <= 0:
        return None
    rate = (len(times) - 1) / spread
    d = disc.get(wave, [])
    per_host = (max(d) - min(d)) / (len(d) - 1) if len(d) > 1 else 0.0
    return Pace(rate, per_host, f"measured: {len(times)} attempts of {wave} {stage} in the state store")
