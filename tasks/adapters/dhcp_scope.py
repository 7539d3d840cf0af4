"""What a DHCP scope hands out and what a change to it does: the types both DHCP adapters answer with.

`ScopeOptions` is a scope as its server applies it: the lease, the option 15 a client gets when nothing
more specific applies (``domain_name``, ``domain_name_level``), and the whole `Option15Layout` (pools,
reservations, classes, the scope-wide levels), so the value for one host is computed from one read
(`ScopeOptions.for_host`). `ScopeChange` is a planned or applied change: the diff per place it writes,
and what stays more specific than the place it wrote (``shadowed``), said rather than hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable

from tasks.rules import dhcp_option15 as o15
from tasks.rules.durations import format_duration
from tasks.rules.suffix import InvalidValue, normalize_dns_name

#: live scope values read in this process, per source: (monotonic time read, ScopeOptions). A wave reads each
#: server once a minute, not once a host (tasks.adapters.dhcp.live_scope); a change made through an adapter
#: in this process empties it, so the wave's next read sees the new values.
SCOPE_CACHE: dict[tuple, tuple] = {}


def forget_cached_scopes() -> None:
    SCOPE_CACHE.clear()


OPTION15 = "option 15 (domain-name)"
LEASE = "lease (valid-lifetime)"


class DhcpError(Exception):
    """The DHCP server could not be read or refused a change. ``kind`` says which step failed."""

    def __init__(self, message: str, *, kind: str = "error", source: str = ""):
        self.kind = kind
        self.source = source
        super().__init__(message)


@dataclass(frozen=True)
class ScopeOptions:
    """What a scope hands out. ``domain_name`` "" = no option 15 for a client nothing more specific applies to;
    ``source`` says where it was read; ``layout`` (None for a hand-declared scope) holds every place option 15
    is set, for the value of one host (`for_host`)."""

    domain_name: str
    lease: timedelta
    source: str
    domain_name_level: str = ""  # subnet / shared-network / global / scope / server / none / inventory
    lease_level: str = ""
    layout: o15.Option15Layout | None = None

    def for_host(self, address: str | None, macs: Iterable[str] = ()) -> o15.HostOption15:
        """The option 15 the client at ``address`` (MACs ``macs``) gets, and where it comes from."""
        if self.layout is None:
            level = self.domain_name_level or o15.INVENTORY
            return o15.HostOption15(self.domain_name, level if self.domain_name else o15.NONE,
                                    "declared in the inventory" if level == o15.INVENTORY else self.source)
        return o15.effective(self.layout, address, macs)

    def placements(self) -> list[tuple[str, str, str]]:
        """Every (value, level, where) a client of this scope can be handed."""
        if self.layout is None:
            return [(self.domain_name, self.domain_name_level or o15.INVENTORY, self.source)]
        return o15.placements(self.layout)

    def as_dict(self) -> dict:
        return {"domain_name": self.domain_name, "lease": format_duration(self.lease),
                "lease_seconds": int(self.lease.total_seconds()), "source": self.source,
                "domain_name_level": self.domain_name_level, "lease_level": self.lease_level,
                "placements": [{"option15": v, "level": lv, "where": w} for v, lv, w in self.placements()]}


@dataclass(frozen=True)
class ScopeChange:
    """A planned (or applied) change. ``diff`` lists (what, before, after); empty = nothing to do.
    ``shadowed``: places that still hand out another option 15 after it (more specific ones, or ones the
    change did not cover), each said in words."""

    source: str
    before: ScopeOptions
    after: ScopeOptions  # planned values (dry run) or the values read back (applied)
    diff: list[tuple[str, str, str]]
    applied: bool = False
    details: list[str] = field(default_factory=list)  # raw config edits, server messages
    shadowed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    def render(self) -> str:
        if not self.diff:
            head = f"{self.source}: no change (option 15 {self.before.domain_name or '(none)'!r}, " \
                   f"lease {format_duration(self.before.lease)})"
            return "\n".join([head] + [f"  ! {s}" for s in self.shadowed])
        lines = [f"{self.source}:" + ("" if self.applied else " (dry run)")]
        lines += [f"  - {what}: {before}" + "\n" + f"  + {what}: {after}" for what, before, after in self.diff]
        lines += [f"  ! {s}" for s in self.shadowed]
        lines += [f"    {d}" for d in self.details]
        return "\n".join(lines)


def dns_value(value: str, what: str = "domain name") -> str:
    name = normalize_dns_name(value, allow_blank=False)
    if not re.fullmatch(r"[a-z0-9.-]+", name):  # belt and braces: nothing else may reach a command line
        raise InvalidValue(f"{what} {value!r} holds characters a DNS name does not need")
    return name


def lease_value(lease: timedelta) -> int:
    seconds = int(lease.total_seconds())
    if seconds < 60 or seconds > 365 * 86400 or seconds != lease.total_seconds():
        raise InvalidValue(f"lease {lease} must be whole seconds between 1 minute and 365 days")
    return seconds


def lease_diff(before: ScopeOptions, lease: timedelta | None) -> list[tuple[str, str, str]]:
    if lease is not None and lease != before.lease:
        return [(LEASE, format_duration(before.lease), format_duration(lease))]
    return []


def option15_diff(writes: list[tuple[str, str | None]], domain_name: str | None) -> list[tuple[str, str, str]]:
    """One diff row per place written: (``option 15 (domain-name) at <where>``, before, after)."""
    if domain_name is None:
        return []
    return [(f"{OPTION15} at {where}", old or "(none)", domain_name) for where, old in writes if old != domain_name]


def shadowed(after: ScopeOptions, domain_name: str | None) -> list[str]:
    """What still hands out another option 15 once ``domain_name`` is written (never silent)."""
    if domain_name is None:
        return []
    out = []
    for value, level, where in after.placements():
        if value == domain_name:
            continue
        if level == o15.CLIENT_CLASS:
            out.append(f"clients matching {where} get {value or '(none)'!r}")
        else:
            out.append(f"{where} still hands out {value or '(none)'!r}")
    return out


def verify_read_back(label: str, planned: ScopeOptions, after: ScopeOptions, domain_name: str | None,
                     lease: timedelta | None) -> None:
    """The read-back must show every planned place: raise `DhcpError` (kind ``verify``) if it does not."""
    want = sorted(planned.placements()) if domain_name is not None else None
    got = sorted(after.placements())
    if (want is not None and want != got) or (lease is not None and after.lease != lease):
        raise DhcpError(f"{label}: read back {after.domain_name!r}/{format_duration(after.lease)} "
                        f"({'; '.join(f'{w}: {v!r}' for v, _, w in got)}) after the change", kind="verify",
                        source=label)


def option15_text(data: object, csv_format: object = True) -> str:
    """An option-data value as text. Kea ARM 2.2 "Standard DHCPv4 Options": with ``csv-format: false``
    "option data must be specified as a hexadecimal string": delimited octets ("ab:cd:ef", "ab cd ef", one or
    two digits each) or a string of digits with or without "0x"; binary data may also be "a single-quoted
    text string within double quotes"."""
    text = str(data or "").strip()
    if csv_format is False and len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    elif csv_format is False:
        if re.search(r"[\s:]", text):
            hexes = "".join(o.rjust(2, "0") for o in re.split(r"[\s:]+", text) if o)
        else:
            hexes = text[2:] if text.lower().startswith("0x") else text
        try:
            # RFC 2132 section 2: NVT ASCII options "SHOULD NOT include a trailing NULL", and "the receiver MUST be
            # prepared to delete trailing NULLs if they exist"
            text = bytes.fromhex(hexes).decode("ascii").rstrip("\x00")
        except (ValueError, UnicodeDecodeError):
            raise InvalidValue(f"option 15 data {text[:40]!r} (csv-format false) is not hex of an ASCII name") from None
    return normalize_dns_name(text)
