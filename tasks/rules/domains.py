"""The new server's domains: several provisioning certificates, each for one DNS suffix, each expiring.

RPS holds one "domain" per provisioning certificate (``GET /api/v1/admin/domains``: ``domainSuffix``,
``expirationDate``; research/rpc.md 4.3). A site migrating several DNS zones uploads one per zone, so a
host can be activated when AMT's suffix passes the firmware's rule (tasks.rules.suffix.check_suffix)
against ANY of them. Plain Python: no I/O, so plan, validate and tests share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Sequence

from tasks.rules.suffix import AmtVersion, InvalidValue, SuffixVerdict, check_suffix, normalize_dns_name

#: How long a wave is expected to take after it starts: pass 1 opens AMT's interface window, pass 2
#: (after remediation) opens it again, so a wave spans about two windows. A certificate must still be
#: valid at the end of pass 2, or the hosts remediated for it fail there.
WAVE_WINDOWS = 2


@dataclass(frozen=True)
class Domain:
    """One provisioning certificate the new server holds: its suffix, when it expires, its name there."""

    suffix: str
    expires: datetime | None = None
    name: str = ""


def domain_suffixes(suffixes: Sequence[str] | str) -> tuple[str, ...]:
    """Normalised, de-duplicated, in the order given; refuses an empty list (nothing could match)."""
    items = [suffixes] if isinstance(suffixes, str) else list(suffixes)
    out: list[str] = []
    for s in items:
        n = normalize_dns_name(s, allow_blank=False)
        if n not in out:
            out.append(n)
    if not out:
        raise InvalidValue("no certificate suffix: the new server holds no domain, so no host can be activated in ACM")
    return tuple(out)


def check_any_suffix(amt_version: str | AmtVersion, amt_suffix: str | None,
                     cert_suffixes: Sequence[str] | str) -> SuffixVerdict:
    """AMT's rule against every certificate suffix: a match if ANY passes.

    With one suffix this is exactly `check_suffix`. With several, a match names the certificate that
    passes; a refusal lists them all (a blank or unsupported verdict is the same for every certificate).
    """
    suffixes = domain_suffixes(cert_suffixes)
    verdicts = [check_suffix(amt_version, amt_suffix, c) for c in suffixes]
    if len(verdicts) == 1:
        return verdicts[0]
    for c, v in zip(suffixes, verdicts):
        if v.match:
            return replace(v, reason=f"{v.reason} (certificate {c!r}, one of {len(suffixes)})")
    first = verdicts[0]
    if first.rule == "blank" or not first.supported:
        return replace(first, reason=f"{first.reason}; the same for all {len(suffixes)} certificates "
                                     f"({', '.join(suffixes)})")
    return replace(first, reason=f"none of the {len(suffixes)} certificate suffixes passes: "
                                 + "; ".join(v.reason for v in verdicts))


def wave_end(start: datetime | None, window: timedelta, now: datetime) -> datetime:
    """When a wave is expected to be over: its start (or now, when it has none) plus two AMT windows
    (`WAVE_WINDOWS`: pass 1, then pass 2 after remediation)."""
    return (start or now) + WAVE_WINDOWS * window


def expiry_warnings(domains: Sequence[Domain], ends: dict[str, datetime], now: datetime) -> list[str]:
    """One warning per certificate that expires before a wave ends (``ends``: wave name -> end), or
    that has already expired. A certificate without an expiry date is warned about too: it can't be told."""
    out: list[str] = []
    for d in domains:
        label = f"certificate for {d.suffix!r}{f' (RPS domain {d.name})' if d.name else ''}"
        if d.expires is None:
            out.append(f"{label}: RPS gives no expirationDate; check it before the waves run")
            continue
        if d.expires <= now:
            out.append(f"{label} expired at {d.expires.isoformat()}: every activation with it fails")
            continue
        late = [(name, end) for name, end in ends.items() if d.expires < end]
        if late:
            names = ", ".join(f"{n} (ends ~{e.isoformat(timespec='minutes')})" for n, e in late[:5])
            more = f" and {len(late) - 5} more" if len(late) > 5 else ""
            out.append(f"{label} expires at {d.expires.isoformat(timespec='minutes')}, before wave(s) end: "
                       f"{names}{more} (a wave is taken to end {WAVE_WINDOWS} windows after its start); "
                       f"renew it in RPS first")
    return out
