"""Read a legacy console's export as Windows and the consoles really write it.

Facts (sources in /work/research/legacy.md §1.4): Windows PowerShell 5.1 `Export-Csv` writes a first
line `#TYPE <type name>` unless `-NoTypeInformation`, renders arrays as `System.String[]`, `$null` as an
empty unquoted field; `Out-File`/`>` write UTF-16LE with a BOM; Excel writes cp1252 or UTF-8 with a
BOM. JSON comes from EMA's REST API and `meshctrl ListDevices --json`; SCS discovery is XML. Every
record keeps the line it started on so each problem can be reported as FILE:LINE.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.inventory.yaml_source import InputError, Problem


@dataclass
class Table:
    """An export as records of column -> text (nested JSON flattened to `a.b`), each with its line."""

    path: Path
    kind: str  # csv | xlsx | json | xml
    columns: list[str]
    records: list[tuple[int, dict[str, Any]]]
    notes: list[str] = field(default_factory=list)
    type_line: str | None = None  # PowerShell's `#TYPE ...` text, which names the exported class


def decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding used: BOMs first (UTF-16 from PowerShell 5.1 redirection), then UTF-8, then cp1252."""
    if raw.startswith(b"\xff\xfe"):
        return raw[2:].decode("utf-16-le"), "UTF-16LE (BOM)"
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be"), "UTF-16BE (BOM)"
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "UTF-8 (BOM)"
    if len(raw) >= 4 and raw[1:4:2] == b"\x00\x00" and raw[0:4:2] != b"\x00\x00":
        return raw.decode("utf-16-le"), "UTF-16LE (no BOM)"
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252 (not UTF-8: read as Windows-1252)"


def _problem(path: Path, line: int, message: str) -> InputError:
    return InputError([Problem(str(path), line, "", message)])


def read_table(path: Path) -> Table:
    if not path.exists():
        raise _problem(path, 0, "file not found")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if suffix == ".xls":
        raise _problem(path, 0, "old Excel .xls is not read: save it as .xlsx or CSV")
    text, encoding = decode(path.read_bytes())
    stripped = text.lstrip()
    if suffix == ".json" or stripped.startswith(("[", "{")):
        return _read_json(path, text, encoding)
    if suffix == ".xml" or stripped.startswith("<"):
        return _read_xml(path, text, encoding)
    return _read_csv(path, text, encoding)


def _read_csv(path: Path, text: str, encoding: str) -> Table:
    notes = [f"read as {encoding}"]
    type_line = None
    offset = 0
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("#TYPE"):
        type_line = lines[0].strip()[len("#TYPE"):].strip()
        notes.append(f"skipped PowerShell's type line (#TYPE {type_line})")
        text, offset = "".join(lines[1:]), 1
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header: list[str] | None = None
    header_line = 0
    records: list[tuple[int, dict[str, Any]]] = []
    previous_end = 0
    try:
        for row in reader:
            start = offset + previous_end + 1
            previous_end = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if header is None:
                header, header_line = [c.strip() for c in row], start
                continue
            rec = {col: (row[i].strip() if i < len(row) else "") for i, col in enumerate(header) if col}
            if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
                raise _problem(path, start, f"{len(row)} cells but the header (line {header_line}) has {len(header)} columns")
            records.append((start, rec))
    except csv.Error as exc:
        raise _problem(path, offset + reader.line_num, f"cannot parse the CSV: {exc}") from None
    if header is None:
        raise _problem(path, 1, "empty export: no header line")
    return Table(path, "csv", header, records, notes, type_line)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path) -> Table:
    try:
        import openpyxl
    except ImportError:
        raise _problem(path, 0, "reading .xlsx needs openpyxl (pip install openpyxl)") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises zipfile/KeyError/... on a damaged file
        raise _problem(path, 0, f"cannot open the workbook: {exc}") from None
    ws = wb.worksheets[0]
    header: list[str] | None = None
    records: list[tuple[int, dict[str, Any]]] = []
    for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
        cells = [_cell(v) for v in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        records.append((number, {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(header) if col}))
    wb.close()
    if header is None:
        raise _problem(path, 1, f"sheet {ws.title!r} is empty")
    notes = [f"read sheet {ws.title!r}" + (f" (the workbook has {len(wb.sheetnames)} sheets; only the first is read)"
                                            if len(wb.sheetnames) > 1 else "")]
    return Table(path, "xlsx", header, records, notes)


def flatten(obj: dict, prefix: str = "") -> dict[str, Any]:
    """{'intelamt': {'state': 2}} -> {'intelamt.state': 2}; lists stay lists."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _json_items(path: Path, text: str) -> list[tuple[int, Any]]:
    """Top-level items of a JSON array with the line each starts on (or the one object)."""
    decoder = json.JSONDecoder()
    i = len(text) - len(text.lstrip())
    try:
        if not text[i:].startswith("["):
            obj, _ = decoder.raw_decode(text, i)
            return [(text.count("\n", 0, i) + 1, obj)]
        items, i = [], i + 1
        while True:
            while i < len(text) and text[i] in " \t\r\n,":
                i += 1
            if i >= len(text):
                raise json.JSONDecodeError("unterminated array", text, i)
            if text[i] == "]":
                return items
            obj, end = decoder.raw_decode(text, i)
            items.append((text.count("\n", 0, i) + 1, obj))
            i = end
    except json.JSONDecodeError as exc:
        raise _problem(path, exc.lineno, f"cannot parse the JSON: {exc.msg}") from None


def _read_json(path: Path, text: str, encoding: str) -> Table:
    items = _json_items(path, text)
    if len(items) == 1 and isinstance(items[0][1], dict):
        line, obj = items[0]
        # a wrapper object ({"value": [...]}, or meshctrl's older {meshid: [nodes]}) or one device
        lists = [v for v in obj.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if lists and all(isinstance(v, list) for v in obj.values()):
            items = [(line, x) for v in lists for x in v]
        elif "value" in obj and isinstance(obj["value"], list):
            items = [(line, x) for x in obj["value"]]
    records, columns = [], []
    for line, obj in items:
        if not isinstance(obj, dict):
            raise _problem(path, line, f"expected an object per device, got {type(obj).__name__}")
        flat = flatten(obj)
        for k in flat:
            if k not in columns:
                columns.append(k)
        records.append((line, flat))
    return Table(path, "json", columns, records, [f"read as {encoding} JSON, {len(records)} object(s)"])


def _read_xml(path: Path, text: str, encoding: str) -> Table:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(re.sub(r"^<\?xml[^>]*\?>", "", text.lstrip()))
    except ET.ParseError as exc:
        raise _problem(path, exc.position[0] if exc.position else 0, f"cannot parse the XML: {exc}") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    systems = [e for e in root.iter() if local(e.tag).lower() == "system_discovery"] or [root]
    starts = [m.start() for m in re.finditer(r"<(?:\w+:)?System_Discovery\b", text)]
    records, columns = [], []
    for n, system in enumerate(systems):
        rec: dict[str, Any] = {}
        for e in system.iter():
            if len(e) == 0 and e is not system and local(e.tag) not in rec:
                rec[local(e.tag)] = (e.text or "").strip()
        for k in rec:
            if k not in columns:
                columns.append(k)
        line = text.count("\n", 0, starts[n]) + 1 if n < len(starts) else 1
        records.append((line, rec))
    return Table(path, "xml", columns, records, [f"read as {encoding} XML, {len(records)} system(s)"])
