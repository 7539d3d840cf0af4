"""Import a legacy AMT console's export (ConfigMgr, EMA, MeshCentral, SCS, or any table) into inventory hosts.

`import_export` reads the file as Windows wrote it (reading.py), picks the console from its columns
unless told (consoles.py), maps each record, and reports every row it cannot map as
FILE:LINE: row N: COLUMN: message. It also says what it left unknown and why — above all AMT's DNS
suffix, which no legacy export carries (legacy.md §0.1): discovery reads it from the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tasks.inventory.legacy.consoles import (
    BY_NAME, CONSOLES, SUFFIX_UNKNOWN, Row, RowError, Skip, alternates, match_columns, os_of, pick_address, tags_of, version,
    detect,
)
from tasks.inventory.legacy.reading import Table, read_table
from tasks.inventory.model import Host
from tasks.inventory.yaml_source import InputError, Problem

__all__ = ["CONSOLES", "ImportResult", "import_export"]


@dataclass
class ImportResult:
    console: str
    detected: bool
    table: Table
    hosts: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # line, name, why
    row_notes: list[str] = field(default_factory=list)
    console_credentials: list[str] = field(default_factory=list)  # hosts whose console holds AMT credentials
    mapping: dict[str, str] = field(default_factory=dict)

    def _count(self, pred) -> int:
        return sum(1 for h in self.hosts if pred(h))

    def summary(self) -> list[str]:
        """What was mapped, what was left unknown and why: the lines a migration lead reads before `plan`."""
        label = BY_NAME[self.console].label
        out = [f"{self.table.path.name}: {label} export ({'detected from its columns' if self.detected else '--from'}); "
               + "; ".join(self.table.notes)]
        used = ", ".join(f"{f} <- {c}" for f, c in self.mapping.items() if not f.startswith("_"))
        out.append(f"columns: {used}")
        n = len(self.hosts)
        out.append(f"mapped {n} host(s); skipped {len(self.skipped)} row(s) that are not migration targets")
        for line, name, why in self.skipped:
            out.append(f"  skipped line {line} {name}: {why}")
        states = {}
        for h in self.hosts:
            key = h.get("amt_state") or "unknown"
            if h.get("amt_state") == "activated":
                key += f" ({(h.get('control_mode') or 'mode unknown').upper() if h.get('control_mode') else 'control mode unknown'})"
            states[key] = states.get(key, 0) + 1
        out.append("AMT state per the export: " + ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
        unknown_suffix = self._count(lambda h: "amt_suffix" not in h)
        if unknown_suffix:
            out.append(f"left unknown: amt_suffix on {unknown_suffix} host(s): {SUFFIX_UNKNOWN[self.console]}; "
                       "discovery reads it from each host before pass 1")
        missing_os = self._count(lambda h: "os" not in h)
        if missing_os:
            out.append(f"left unknown: os on {missing_os} host(s): no operating system in the export; "
                       "defaults.os applies")
        creds = self._count(lambda h: h.get("amt_state") == "activated" and h.get("legacy_managed") is None)
        if creds:
            note = BY_NAME[self.console].credentials_note
            out.append(f"left unknown: legacy_managed on {creds} activated host(s): whether credentials.legacy_amt opens "
                       f"them is not in the export ({note}); set legacy_managed: true where it does, so they can be adopted")
        if self.console_credentials:
            out.append(f"the console holds AMT credentials for: {', '.join(self.console_credentials)}")
        no_mode = self._count(lambda h: h.get("amt_state") == "activated" and not h.get("control_mode"))
        if no_mode:
            out.append(f"left unknown: control_mode on {no_mode} activated host(s): the export does not say; "
                       "discovery (rpc amtinfo) reads it")
        unknown_state = self._count(lambda h: not h.get("amt_state"))
        if unknown_state:
            out.append(f"left unknown: amt_state on {unknown_state} host(s): the export does not say; discovery reads it")
        tls = self._count(lambda h: h.get("amt_tls"))
        if tls:
            out.append(f"{tls} host(s) answer WS-Man over TLS (16993): the inventory names the CA that issued AMT's certificates")
        out.extend(self.row_notes)
        return out


def mapping_of(row: Row, fld: str) -> str:
    return row.primary.get(fld, fld)


def _entry(console, row: Row) -> dict:
    entry: dict = {}
    console.decode(row, entry)  # may raise Skip before the required fields are checked
    entry["name"] = row.checked_text("name")
    if not entry["name"]:
        row.fail("name", "empty: every host needs a name")
    if console.name in ("scs",) and "." in entry["name"] and row.col("name").lower() == "fqdn":
        entry["name"] = entry["name"].split(".", 1)[0]
    entry["address"] = pick_address(row)
    if row.col("address") != mapping_of(row, "address"):
        entry.setdefault("_notes", []).append(f"address from {row.col('address')} ({mapping_of(row, 'address')} is empty)")
    entry["amt_version"] = version(row)
    for fld in ("amt_suffix", "os_suffix"):
        if row.has(fld):
            entry[fld] = row.checked_text(fld)
    if row.has("os"):
        found = os_of(row.text("os"), row.col("os"))
        if found:
            entry["os"] = found
    if row.has("tags"):
        entry["tags"] = tags_of(row.raw("tags"))
    legacy = {"console": console.name}
    if row.has("legacy_id"):
        legacy["id"] = row.text("legacy_id")
    if entry.get("_status"):
        legacy["status"] = entry["_status"]
    entry["legacy"] = legacy
    return entry


_ORDER = ("name", "address", "amt_version", "amt_suffix", "os_suffix", "os", "tags", "legacy_managed", "amt_state",
          "control_mode", "amt_tls", "legacy")


def import_export(path: Path, source: str | None = None, overrides: dict[str, str] | None = None) -> ImportResult:
    """Map every record of an export; raises InputError for a file or header that can't be placed at all."""
    table = read_table(Path(path))
    if source is not None and source not in CONSOLES:
        raise InputError([Problem(str(path), 0, "", f"--from {source!r}: choose one of {', '.join(CONSOLES)}")])
    name = source or detect(table)
    console = BY_NAME[name]
    mapping, col_problems = match_columns(console, table, overrides or {})
    if col_problems:
        raise InputError([Problem(str(path), 1 if table.type_line is None else 2, "", p) for p in col_problems])
    result = ImportResult(name, source is None, table, mapping=mapping)
    label = "record" if table.kind in ("json", "xml") else "row"
    first: dict[tuple[str, str], int] = {}
    more = {f: c for f, c in alternates(console, table, mapping).items() if f not in (overrides or {}).values()}
    for index, (line, record) in enumerate(table.records, start=1):
        row = Row(line, record, mapping, more)
        where = f"{label} {index}"
        try:
            entry = _entry(console, row)
        except Skip as exc:
            result.skipped.append((line, row.text("name") or where, str(exc)))
            continue
        except RowError as exc:
            result.problems.append(Problem(str(path), line, f"{where}: {exc.column}", exc.message))
            continue
        for note in entry.pop("_notes", []):
            result.row_notes.append(f"line {line} {entry['name']}: {note}")
        if entry.pop("_console_credentials", False):
            result.console_credentials.append(entry["name"])
        entry.pop("_status", None)
        entry = {k: entry[k] for k in _ORDER if k in entry and entry[k] is not None}
        try:
            Host.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                fld = str(err["loc"][0]) if err["loc"] else ""
                msg = err["msg"].removeprefix("Value error, ")
                result.problems.append(Problem(str(path), line, f"{where}: {mapping.get(fld, fld)}", msg))
            continue
        bad = False
        for fld in ("name", "address"):
            key = (fld, str(entry[fld]).lower())
            if key in first:
                prev = first[key]
                result.problems.append(Problem(str(path), line, f"{where}: {mapping[fld]}",
                                               f"duplicate {'host name' if fld == 'name' else 'address'} "
                                               f"{entry[fld]!r} (first at line {prev})"))
                bad = True
            else:
                first[key] = line
        if not bad:
            result.hosts.append(entry)
            result.lines.append(line)
    result.problems.sort(key=lambda p: p.line)
    return result
