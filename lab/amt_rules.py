"""How the simulated AMT firmware and provisioning server judge a DNS suffix - the lab's own copy.

The lab is the independent judge of the product (``tasks/``, ``flows/``), so it must not borrow the
product's rule: if both ran the same code, a wrong rule would pass every end-to-end test. Everything
here is written from the seed text (seed/amt-dns-suffix-and-dhcp.txt) and the domain notes:

- AMT 3.2.1 and later compare only the last two labels of the suffix AMT holds with the last two labels
  of the provisioning certificate's suffix (``sales.contoso.com`` matches ``marketing.contoso.com``, not
  ``marketing.northwindtraders.com``).
- Earlier firmware compares the whole suffix. The provisioning server the lab stands in for does not
  support such firmware at all (Intel's translator is needed), so its provisioning always fails.
- A blank suffix never matches. Case does not matter; a trailing dot and surrounding whitespace are not
  part of a name.

The lab's words for why a provisioning is refused are :data:`BLANK`, :data:`MISMATCH` and
:data:`FIRMWARE_TOO_OLD`.

Wire compatibility: the lab's admin API (``/admin/devices``) has always reported the true cause of a
failed attempt as ``suffix_blank`` / ``suffix_mismatch`` / ``unsupported_version`` (``true_reason`` of an
attempt, ``true_last_failure.cause``), and ``suffix_check`` with the keys ``match rule supported reason``.
Those values are a contract with the people and tests reading that API, so :data:`WIRE_CAUSE` and
:meth:`SuffixCheck.as_wire` keep producing them - spelled out here, not imported from the product. The
product never reads them (it only sees the provisioning API's ``error_code``, which is always
``internal_error`` on a failure, as ConfigMgr's generic error is).

Name and duration parsing here accept what fleet files, the lab's CLI and its API accept, with the
same error texts the lab has always printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ------------------------------------------------------------------------------ names


class InvalidName(ValueError):
    """A DNS name, host name or firmware version the lab refuses (the message is what the lab prints)."""


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def dns_name(value: object, *, blank_ok: bool = True) -> str:
    """A DNS name as the lab stores it: lower case, no surrounding whitespace, no trailing dot.

    ``""`` (or None) is a blank suffix when ``blank_ok``; anything that is not letters, digits and
    inner hyphens in dot-separated labels is refused.
    """
    if value is None:
        if blank_ok:
            return ""
        raise InvalidName("a DNS name is required")
    if not isinstance(value, str):
        raise InvalidName(f"expected a DNS name as text, got {type(value).__name__}")
    shown = value.strip()
    name = shown.lower()
    name = name.removesuffix(".")
    if name == "":
        if blank_ok:
            return ""
        raise InvalidName("a DNS name is required, got an empty string")
    if len(name) > 253:
        raise InvalidName(f"DNS name is {len(name)} characters long (at most 253)")
    for label in name.split("."):
        if label == "":
            raise InvalidName(f"{shown!r}: empty label")
        if len(label) > 63:
            raise InvalidName(f"{shown!r}: label {label[:20]!r}... is {len(label)} characters (at most 63)")
        if not _DNS_LABEL.fullmatch(label):
            raise InvalidName(f"{shown!r}: label {label!r} may hold only letters, digits and inner hyphens")
    return name


def host_name(value: str) -> str:
    """A host name (one or more labels) validated like a DNS name but kept in the case it was written."""
    dns_name(value, blank_ok=False)
    shown = value.strip()
    return shown.removesuffix(".")


# --------------------------------------------------------------------------- firmware

_FIRMWARE = re.compile(r"\d{1,5}(\.\d{1,6}){0,4}")

#: The first firmware that compares only the last two labels; older firmware is refused by the server.
LAST_TWO_LABELS_FROM = (3, 2, 1)


@dataclass(frozen=True, order=False)
class Firmware:
    """An AMT firmware version: dotted integers ("3.2.1", "11.8.50.3425"); missing parts count as 0."""

    numbers: tuple[int, ...]

    @classmethod
    def parse(cls, value: object) -> Firmware:
        if isinstance(value, Firmware):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidName(f"AMT version must be text like \"11.8.50\", got {type(value).__name__}")
        text = str(value).strip()
        if not _FIRMWARE.fullmatch(text):
            raise InvalidName(f"AMT version {text!r} is not dotted integers like \"11.8.50\" or \"3.2.1\"")
        return cls(tuple(int(n) for n in text.split(".")))

    def _key(self) -> tuple[int, ...]:
        return self.numbers + (0,) * (5 - len(self.numbers))

    def at_least(self, *numbers: int) -> bool:
        return self._key() >= tuple(numbers) + (0,) * (5 - len(numbers))

    def __lt__(self, other: Firmware) -> bool:
        return self._key() < Firmware.parse(other)._key()

    def __le__(self, other: Firmware) -> bool:
        return self._key() <= Firmware.parse(other)._key()

    def __gt__(self, other: Firmware) -> bool:
        return self._key() > Firmware.parse(other)._key()

    def __ge__(self, other: Firmware) -> bool:
        return self._key() >= Firmware.parse(other)._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Firmware) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return ".".join(map(str, self.numbers))

    @property
    def compares_last_two_labels(self) -> bool:
        return self.at_least(*LAST_TWO_LABELS_FROM)


# ----------------------------------------------------------------------------- the rule

#: The lab's reasons for refusing a provisioning.
BLANK = "blank"
MISMATCH = "mismatch"
FIRMWARE_TOO_OLD = "firmware-too-old"

#: The admin API's historical spelling of each reason (a wire contract, see the module docstring).
WIRE_CAUSE = {BLANK: "suffix_blank", MISMATCH: "suffix_mismatch", FIRMWARE_TOO_OLD: "unsupported_version"}


def _tail(name: str, labels: int) -> str:
    return ".".join(name.split(".")[-labels:])


def _same(fw: Firmware, mine: str, cert: str) -> bool:
    if not mine:
        return False
    if fw.compares_last_two_labels:
        return _tail(mine, 2) == _tail(cert, 2)
    return mine == cert


def firmware_accepts(firmware: object, amt_suffix: object, cert_suffix: object) -> bool:
    """AMT's own comparison, firmware as shipped: last two labels from 3.2.1 on, the whole suffix before."""
    return _same(Firmware.parse(firmware), dns_name(amt_suffix), dns_name(cert_suffix, blank_ok=False))


@dataclass(frozen=True)
class SuffixCheck:
    """The lab's verdict on one provisioning: ``refused`` is None when it goes through."""

    refused: str | None      # None | BLANK | MISMATCH | FIRMWARE_TOO_OLD
    compared: str            # "last-two-labels" | "whole-suffix": what this firmware compares
    firmware_match: bool     # what AMT's comparison alone says (the server still refuses old firmware)
    suffix: str              # the suffix AMT holds, as compared ("" = blank)
    explanation: str

    @property
    def accepted(self) -> bool:
        return self.refused is None

    def as_wire(self) -> dict:
        """The admin API's ``suffix_check`` object in the shape it has always had, plus ``refused``."""
        rule = "blank" if not self.suffix else "last-two-labels" if self.compared == "last-two-labels" else "full-suffix"
        return {"match": self.accepted, "rule": rule, "supported": self.refused != FIRMWARE_TOO_OLD,
                "reason": self.explanation, "refused": self.refused}


def check_provisioning(firmware: object, amt_suffix: object, cert_suffix: object) -> SuffixCheck:
    """Would the new provisioning server succeed with this device? Old firmware is refused outright."""
    fw = Firmware.parse(firmware)
    mine = dns_name(amt_suffix)
    cert = dns_name(cert_suffix, blank_ok=False)
    ok = _same(fw, mine, cert)
    if fw.compares_last_two_labels:
        compared = "last-two-labels"
        what = f"AMT {fw} compares the last two labels: {_tail(mine, 2)!r} vs {_tail(cert, 2)!r}"
    else:
        compared = "whole-suffix"
        what = f"AMT {fw} compares the whole suffix: {mine!r} vs {cert!r}"
    if not mine:
        why = f"AMT {fw} holds a blank suffix: it never matches certificate suffix {cert!r}"
    else:
        why = f"{what} ({'same' if ok else 'different'}; certificate suffix {cert!r})"
    if not fw.compares_last_two_labels:
        return SuffixCheck(FIRMWARE_TOO_OLD, compared, ok, mine,
                           f"{why}; firmware older than 3.2.1 is not supported by the provisioning server")
    if not mine:
        return SuffixCheck(BLANK, compared, False, mine, why)
    return SuffixCheck(None if ok else MISMATCH, compared, ok, mine, why)


# ---------------------------------------------------------------------------- durations

_DURATION_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_ALL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def seconds(value: object) -> float:
    """"90s", "20m", "24h", "8d", "6h30m", "50ms" -> seconds; a bare number is already seconds."""
    if isinstance(value, bool):
        raise ValueError("duration must be like 90s, 20m, 24h or 8d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"duration must be like 90s, 20m, 24h or 8d, got {type(value).__name__}")
    text = value.strip().lower().replace(" ", "")
    if not _DURATION_ALL.fullmatch(text):
        raise ValueError(f"duration {value!r} is not like 90s, 20m, 24h, 8d or 1h30m")
    return sum(float(n) * _DURATION_UNIT[unit] for n, unit in _DURATION_PART.findall(text))
