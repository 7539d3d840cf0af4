"""Column names as consoles spell them (`AMTFullVersion`, `ComputerName`, `intelamt.state`) matched to fields."""

from __future__ import annotations

import re


def norm(column: str) -> str:
    """'AMTFullVersion' -> 'amt full version', 'IPAddresses' -> 'ip addresses', 'intelamt.state' -> 'intelamt state'.

    PascalCase and camelCase are split (an acronym ends before the capital that starts a word), then
    separators (space, '_', '-', '.') collapse to one space."""
    text = re.sub(r"IPv([46])", r"_ipv\1_", str(column).strip())  # 'IPv4Address': not 'I Pv4'
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return re.sub(r"[\s_\-.]+", " ", text).strip().lower()


def find(columns: list[str], synonyms: tuple[str, ...], taken: set[str] = frozenset()) -> str | None:
    """The first column (in synonym order) whose normalised name is a synonym, or None."""
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(norm(c), c)
    for syn in synonyms:
        col = by_norm.get(norm(syn))
        if col is not None and col not in taken:
            return col
    return None
