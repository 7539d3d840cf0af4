"""AMT's DNS-suffix check, as the firmware applies it.

Provisioning fails silently when the suffix AMT holds does not match the provisioning certificate's
suffix; everything else in the tool exists to predict, detect and repair that. This module is plain
Python so plans, the lab and tests share one definition of the rule.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import total_ordering

#: First firmware that compares only the last two labels (and the first the seed's console supports).
LAST_TWO_LABELS_SINCE = (3, 2, 1)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^\d{1,5}(?:\.\d{1,6}){0,4}$")


class InvalidValue(ValueError):
    """A name, suffix or version that can't be used (and must never reach a remote shell)."""


def normalize_dns_name(value: str | None, *, allow_blank: bool = True) -> str:
    """Fold case, drop whitespace and a trailing dot, and reject anything that is not a DNS name.

    Rejecting here is what keeps shell metacharacters out of every remote command built later.
    """
    if value is None:
        if allow_blank:
            return ""
        raise InvalidValue("a DNS name is required")
    if not isinstance(value, str):
        raise InvalidValue(f"expected a DNS name as text, got {type(value).__name__}")
    name = value.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        if allow_blank:
            return ""
        raise InvalidValue("a DNS name is required, got an empty string")
    if len(name) > 253:
        raise InvalidValue(f"DNS name is {len(name)} characters long (at most 253)")
    for label in name.split("."):
        if not label:
            raise InvalidValue(f"{value.strip()!r}: empty label")
        if len(label) > 63:
            raise InvalidValue(f"{value.strip()!r}: label {label[:20]!r}... is {len(label)} characters (at most 63)")
        if not _LABEL.match(label):
            raise InvalidValue(
                f"{value.strip()!r}: label {label!r} may hold only letters, digits and inner hyphens"
            )
    return name


def normalize_host_name(value: str) -> str:
    """A host name: one or more DNS labels, kept in the case the user wrote for display."""
    normalize_dns_name(value, allow_blank=False)
    name = value.strip()
    return name[:-1] if name.endswith(".") else name


@total_ordering
@dataclass(frozen=True)
class AmtVersion:
    """AMT firmware version as dotted integers ("3.2.1", "11.8.50.3425")."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, value: str | int | float | AmtVersion) -> AmtVersion:
        if isinstance(value, AmtVersion):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidValue(f"AMT version must be text like \"11.8.50\", got {type(value).__name__}")
        text = str(value).strip()
        if not _VERSION.match(text):
            raise InvalidValue(f"AMT version {text!r} is not dotted integers like \"11.8.50\" or \"3.2.1\"")
        return cls(tuple(int(p) for p in text.split(".")))

    def _padded(self) -> tuple[int, ...]:
        return self.parts + (0,) * (4 - len(self.parts))

    def __lt__(self, other: AmtVersion) -> bool:
        return self._padded() < other._padded()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmtVersion) and self._padded() == other._padded()

    def __hash__(self) -> int:
        return hash(self._padded())

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)

    @property
    def compares_last_two_labels(self) -> bool:
        return self._padded() >= LAST_TWO_LABELS_SINCE + (0,)


MIN_SUPPORTED = AmtVersion(LAST_TWO_LABELS_SINCE)


@dataclass(frozen=True)
class SuffixVerdict:
    """Whether provisioning would pass AMT's suffix check.

    ``match`` is true only when the check passes *and* the firmware is supported: a caller that
    only reads ``match`` never provisions a host that will fail.
    """

    match: bool
    rule: str  # last-two-labels | full-suffix | blank
    supported: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _last_two(name: str) -> str:
    return ".".join(name.split(".")[-2:])


def check_suffix(amt_version: str | AmtVersion, amt_suffix: str | None, cert_suffix: str) -> SuffixVerdict:
    """Apply the firmware's rule to the suffix AMT holds and the certificate's suffix."""
    version = AmtVersion.parse(amt_version)
    amt = normalize_dns_name(amt_suffix)
    cert = normalize_dns_name(cert_suffix, allow_blank=False)
    supported = version.compares_last_two_labels
    rule = "last-two-labels" if supported else "full-suffix"

    if not amt:
        return SuffixVerdict(
            False, "blank", supported,
            f"AMT {version} holds a blank DNS suffix; it never matches certificate suffix {cert!r}",
        )
    if supported:
        a, c = _last_two(amt), _last_two(cert)
        ok = a == c
        return SuffixVerdict(
            ok, rule, True,
            f"AMT {version} compares the last two labels: {amt!r} -> {a!r} "
            f"{'==' if ok else '!='} {c!r} <- certificate {cert!r}",
        )
    would = amt == cert
    return SuffixVerdict(
        False, rule, False,
        f"AMT {version} is older than {MIN_SUPPORTED}: unsupported (needs Intel's translator); "
        f"its full-suffix comparison {amt!r} {'==' if would else '!='} certificate {cert!r}",
    )


def suffix_from_certificate_cn(common_name: str) -> str:
    """The certificate's suffix is its subject CN minus the first label (amtprov.contoso.com -> contoso.com)."""
    cn = normalize_dns_name(common_name, allow_blank=False)
    if "." not in cn:
        raise InvalidValue(f"certificate CN {cn!r} has a single label, so it carries no DNS suffix")
    return cn.split(".", 1)[1]
