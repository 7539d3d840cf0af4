"""A host that no run can fix remotely may fix itself: its OS renews the DHCP lease at T1 = 0.5 × lease
(RFC 2131 §4.4.5), AMT takes option 15 from that renewal only while its interface is open (W after each
provisioning attempt: the seed), and the client retries a failed provisioning every R (the seed's 24 h);
the first retry after a renewal AMT took succeeds. Pure arithmetic on seconds.

When the lease was last renewed is unknown (no inventory or store records it), so the first renewal is
anywhere in [t0, t0 + lease/2): every answer is computed over that range (`PHASES` evenly spaced phases)
and given as earliest, expected (mean) and latest.
"""

from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass

PHASES = 16  # phases of the unknown lease age sampled over [0, lease/2)
HORIZON_RENEWALS = 2000  # give up after this many renewals (a lease whose renewals never meet a window)


@dataclass(frozen=True)
class Heal:
    """Seconds from the forecast's origin; None = never within the horizon. `latest` is None as soon as
    one lease age never heals (renewals that always fall between windows: W shorter than R)."""

    earliest: float | None
    expected: float | None  # mean over the lease ages that heal
    latest: float | None
    renew_at: float | None  # the renewal AMT took, in the latest case that heals
    retries: int  # failed retries before the successful one, in that case
    never_phases: int  # lease ages (of PHASES) for which no renewal ever meets a window

    @property
    def chance(self) -> float:
        """The share of lease ages that heal at all."""
        return 1 - self.never_phases / PHASES


def first_heal(first_attempt: float, renew_origin: float, lease: float, window: float, retry: float,
               phase: float) -> tuple[float, float, int] | None:
    """(success time, renewal taken, retries before) for one lease phase, or None.

    Attempts at first_attempt + k·retry (k ≥ 0), each opening AMT's window for `window`; renewals at
    renew_origin + phase + j·lease/2. A renewal at or after the first attempt, inside a window, is taken;
    the next attempt after it succeeds."""
    half = lease / 2
    r = renew_origin + phase
    if r < first_attempt:  # renewals before the first attempt met a closed window (assumed closed before)
        r += math.ceil((first_attempt - r) / half) * half
    for _ in range(HORIZON_RENEWALS):
        since = r - first_attempt
        k = math.floor(since / retry)
        if since - k * retry < window:  # inside the window the k-th attempt opened
            success = first_attempt + (k + 1) * retry
            return success, r, k + 1
        r += half
    return None


@lru_cache(maxsize=1 << 16)  # what-ifs ask the same question again and again
def heal(first_attempt: float, renew_origin: float, lease: float, window: float, retry: float) -> Heal:
    """Over PHASES lease ages: the earliest, mean and latest success (among phases that succeed)."""
    results = []
    never = 0
    worst = None
    for i in range(PHASES):
        phase = (lease / 2) * i / PHASES
        got = first_heal(first_attempt, renew_origin, lease, window, retry, phase)
        if got is None:
            never += 1
            continue
        results.append(got[0])
        if worst is None or got[0] >= worst[0]:
            worst = got
    if not results:
        return Heal(None, None, None, None, 0, never)
    return Heal(min(results), sum(results) / len(results), max(results) if not never else None, worst[1],
                worst[2] - 1, never)
