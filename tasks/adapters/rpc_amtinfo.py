"""What ``rpc amtinfo`` prints, in every form rpc-go has printed it, read by structure. No I/O here.

``host_tools.rpc`` may point at any rpc-go, so every form is read (rpc-go sources named per form):

- ``--json``: one object (2.x internal/local/info.go; 3.x internal/commands/amtinfo.go ``InfoResult``,
  omitempty keys);
- 2.x and 3.x up to beta.11: ``Label<tabs or spaces>: value`` rows, ``---Wired Adapter---`` section lines;
- 3.x from beta.12 (lipgloss ``OutputText``), stdout not a terminal or narrower than 150 columns: sections
  whose title is followed by a line of ``─`` as long as the title, rows indented two spaces with the label
  padded to 30 columns (``infoLabelStyle.Width(30)``), one space, then the value; no ``:`` anywhere;
- the same on a terminal of 150 columns or more: two rounded boxes side by side (``╭─ Device Information
  ─╮  ╭─ Network Adapters ─╮``), the device rows without a section title, then a certificates box;
- ``--table``: one lipgloss table ``│ Category │ Flag │ Property │ Value │`` (blank category = the one above).

Colour codes (a terminal, or a forced colour profile) are removed first. A form this reader does not know,
or one that holds no AMT row, raises InvalidValue: "could not read", never a reading with empty values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from tasks.adapters.commands import lenient_suffix
from tasks.rules.suffix import InvalidValue

_CONTROL_MODES = {0: "pre-provisioning state", 1: "activated in client control mode",
                  2: "activated in admin control mode"}
_PROVISIONING_STATES = {0: "pre-provisioning", 1: "in-provisioning", 2: "post-provisioning"}


@dataclass(frozen=True)
class AmtInfo:
    """What ``rpc amtinfo`` reports. ``dns_suffix`` is the trusted (PKI) suffix only, never option 15:
    rpc-go does not show the DHCP suffix, so a blank here does not mean AMT holds no suffix."""

    version: str = ""
    build_number: str = ""
    sku: str = ""
    uuid: str = ""
    control_mode: str = ""
    provisioning_state: str = ""
    dns_suffix: str = ""
    dns_suffix_os: str = ""
    hostname_os: str = ""
    wired_adapter: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    heci_available: bool | None = None  # 3.x only: false when rpc could not open the MEI
    form: str = ""  # json | text 2.x | text 3.x | text 3.x boxed | text 3.x table
    complete: bool = True  # False: rpc stopped printing part-way (a crash): a row not read is unknown, not empty

    @property
    def activated(self) -> bool | None:
        """Is AMT activated (client or admin control mode)? None when rpc could not tell.

        Both vocabularies are read: 2.x and 3.x up to beta.3 say ``pre-provisioning state`` /
        ``activated in admin control mode``; 3.x beta.4+ says ``not activated`` / ``admin control
        mode`` (pkg/utils/helper.go InterpretControlMode). ``unknown state`` and ``unknown control mode``
        mean the ME could not be read: unknown, never activated.
        """
        mode, state = self.control_mode.lower(), self.provisioning_state.lower()
        if self.heci_available is False or mode.startswith("unknown"):
            return None
        if mode in ("pre-provisioning state", "not activated", "pre-provisioning"):
            return False
        if mode.endswith("admin control mode") or mode.endswith("client control mode"):
            return True
        if not mode and state in ("pre-provisioning", "post-provisioning"):
            return state == "post-provisioning"
        return None

    @property
    def control(self) -> str:
        """``acm``, ``ccm``, ``pre`` or ``""`` (unknown)."""
        a = self.activated
        if a is None:
            return ""
        if not a:
            return "pre"
        return "acm" if "admin" in self.control_mode.lower() else "ccm"

    @property
    def pre_provisioning(self) -> bool | None:
        """True before activation, False once activated, None when the output did not say."""
        a = self.activated
        if a is not None:
            return not a
        state = self.provisioning_state.lower()
        if state and not state.startswith("unknown") and not self.control_mode:
            return state.startswith("pre")
        return None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


#: the keys that say something about AMT itself; a reading with none of them is no reading
_AMT_KEYS = ("amt", "uuid", "controlMode", "provisioningState")


def _build(values: dict, wired: dict, *, form: str, notes: tuple[str, ...] = ()) -> AmtInfo:
    problems: list[str] = list(notes)
    mode = values.get("controlMode")
    state = values.get("provisioningState")
    if isinstance(mode, int) and not isinstance(mode, bool):
        mode = _CONTROL_MODES.get(mode, str(mode))
    if isinstance(state, int) and not isinstance(state, bool):
        state = _PROVISIONING_STATES.get(state, str(state))
    heci = values.get("heciAvailable")
    return AmtInfo(
        version=_text(values.get("amt")),
        build_number=_text(values.get("buildNumber")),
        sku=_text(values.get("sku")),
        uuid=_text(values.get("uuid")),
        control_mode=_text(mode),
        provisioning_state=_text(state),
        dns_suffix=lenient_suffix(values.get("dnsSuffix"), "AMT DNS suffix", problems),
        dns_suffix_os=lenient_suffix(values.get("dnsSuffixOS"), "OS DNS suffix", problems),
        hostname_os=_text(values.get("hostnameOS")),
        wired_adapter=dict(wired),
        problems=tuple(problems),
        heci_available=heci if isinstance(heci, bool) else None,
        form=form,
    )


def parse_amtinfo_json(text: str) -> AmtInfo:
    """``rpc amtinfo --json``; every key is optional (older AMT leaves some out)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"rpc amtinfo output is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise InvalidValue("rpc amtinfo JSON is not an object")
    wired = data.get("wiredAdapter")
    return _build(data, wired if isinstance(wired, dict) else {}, form="json")


# --------------------------------------------------------------------------------------------------
# The text forms: each is turned into (section, label, value) rows, then read the same way
# --------------------------------------------------------------------------------------------------

#: rpc-go's row labels (2.x info.go printf rows; 3.x buildDeviceSection renderInfoRow labels) -> JSON key
_LABELS = {"version": "amt", "build number": "buildNumber", "sku": "sku", "features": "features",
           "uuid": "uuid", "control mode": "controlMode", "provisioning state": "provisioningState",
           "operational state": "operationalState", "amt operational state (bios)": "operationalState",
           "dns suffix": "dnsSuffix", "dns suffix (os)": "dnsSuffixOS", "hostname (os)": "hostnameOS"}
#: section titles of the wired adapter: 2.x `---Wired Adapter---`, 3.x `Wired Adapter`, 3.x boxed `Wired`
_WIRED = ("wired adapter", "wired")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_UNDERLINE = re.compile(r"^\s*─+\s*$")  # renderInfoHeader: strings.Repeat("─", len([]rune(title)))
_BOX_TOP = re.compile(r"╭─(?: (?P<title>[^─╮]+?) )?─*╮")  # renderTitledBox: ╭─ Title ───╮ (or a plain ╭───╮)
_TABLE_TOP = re.compile(r"^\s*[╭┌]─+┬")  # lipgloss/table: ╭────┬────┬ ... (RoundedBorder)
_COLON_ROW = re.compile(r"^(?P<label>[A-Za-z][^:\t]*?)[ \t]*:(?:[ \t]+(?P<value>.*?))?\s*$")


def _row_3x(text: str) -> tuple[str, str] | None:
    """One 3.x row after its two-space indent: the label padded to 30 columns, a space, the value. A
    capture that lost the padding still has runs of spaces between label and value; a trimmed row with
    an empty value is the label alone."""
    if len(text) > 30 and text[30] == " " and text[:30].strip():
        return text[:30].strip(), text[31:].strip()
    m = re.match(r"^(\S.*?)\s{2,}(\S.*)$", text)
    if m:
        return m[1], m[2].strip()
    return (text.strip(), "") if text.strip() and len(text) <= 30 else None


def _sections(lines: list[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """3.x single-column text: (section, label, value) rows, and the lines printed before any section
    (3.x's banner when it could not open the MEI)."""
    rows: list[tuple[str, str, str]] = []
    before: list[str] = []
    section, indent = None, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        title = line.strip()
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if title and _UNDERLINE.match(below) and len(below.strip()) == len(title):
            section, indent = title, len(line) - len(line.lstrip(" "))
            i += 2
            continue
        if title and section is None:
            before.append(title)
        elif title and len(line) - len(line.lstrip(" ")) == indent:  # log lines mixed in start at column 0
            row = _row_3x(line[indent:])
            if row:
                rows.append((section, *row))
        i += 1
    return rows, before


def _unbox(lines: list[str]) -> list[str]:
    """3.x's boxed layout (a terminal of 150+ columns) as the single-column form: each box's inner lines in
    turn, its title as a section title, by the column spans its top border gives."""
    out: list[str] = []
    boxes: list[list[str]] = []
    spans: list[tuple[int, int]] = []
    for line in lines:
        tops = list(_BOX_TOP.finditer(line))
        if tops:
            out += [x for box in boxes for x in box]
            spans = [(m.start(), m.end()) for m in tops]
            titles = [(m["title"] or "untitled box").strip() for m in tops]
            boxes = [[f"  {t}", "  " + "─" * len(t)] for t in titles]
            continue
        if spans and line.strip().startswith("╰"):
            out += [x for box in boxes for x in box]
            boxes, spans = [], []
            continue
        if not spans:
            out.append(line)
            continue
        for k, (start, end) in enumerate(spans):
            inner = line[start + 1:end - 1] if len(line) >= end else line[start + 1:].rstrip().rstrip("│")
            boxes[k].append(inner[1:] if inner.startswith(" ") else inner)  # Padding(1, 1)
    return out + [x for box in boxes for x in box]


def _table(lines: list[str]) -> list[tuple[str, str, str]]:
    """3.x ``--table``: the header row, then Category | Flag | Property | Value rows."""
    rows: list[tuple[str, str, str]] = []
    header, category = False, ""
    for line in lines:
        text = line.strip()
        if not (text.startswith("│") and text.endswith("│")):
            continue
        cells = [c.strip() for c in text[1:-1].split("│")]
        if len(cells) < 4:
            continue
        if not header:
            header = True
            continue
        if not any(cells):
            continue  # the blank row between categories
        category = cells[0] or category
        rows.append((category, cells[-2], cells[-1]))
    return rows


def _colon_rows(lines: list[str]) -> list[tuple[str, str, str]]:
    """2.x (and 3.x up to beta.11): ``Label<tabs or spaces>: value``; ``---Name---`` starts a section."""
    rows: list[tuple[str, str, str]] = []
    section = ""
    for line in lines:
        text = line.strip()
        if text.startswith("---") and text.endswith("---") and len(text) > 6:
            section = text.strip("-").strip()
            continue
        m = _COLON_ROW.match(text)
        if m:
            rows.append((section, m["label"].strip(), (m["value"] or "").strip()))
    return rows


def _read_rows(rows: list[tuple[str, str, str]], form: str, notes: tuple[str, ...]) -> AmtInfo:
    values: dict[str, str] = {}
    wired: dict[str, str] = {}
    for section, label, value in rows:
        key = _LABELS.get(label.lower())
        if section.lower() in _WIRED:
            wired.setdefault(label, value)
        elif key and key not in values:  # the device rows come first; a later section never overrides
            values[key] = value
    if notes and "controlMode" not in values:
        values["heciAvailable"] = False  # 3.x prints text before its sections only when it could not open the MEI
    if not any(k in values for k in _AMT_KEYS):
        said = f" (it said: {'; '.join(notes)[:200]})" if notes else ""
        raise InvalidValue(f"could not read rpc amtinfo ({form}): no AMT row found{said}")
    return _build(values, wired, form=form, notes=notes)


#: the Go runtime's own report of a crash (runtime/panic.go, runtime/signal_windows.go): what follows it is a
#: goroutine trace, and the rows rpc had not printed yet are missing (rpc-go issue #521: `amtinfo` of 2.34.1 on
#: AMT 11.8 stops after `Control Mode` with "Exception 0xc0000005 0x8 0x0 0x0")
_GO_CRASH = re.compile(r"^(?:panic: |fatal error: |Exception 0x[0-9a-fA-F]+\b|\[signal |goroutine \d+ \[)")


def _cut_crash(lines: list[str]) -> tuple[list[str], str]:
    """(the lines rpc printed before a Go runtime crash, a note on it; "" when it did not crash)."""
    for i, line in enumerate(lines):
        if _GO_CRASH.match(line.strip()):
            printed = [x.strip() for x in lines[:i] if x.strip()]
            last = f"after {printed[-1][:60]!r}" if printed else "before printing anything"
            return lines[:i], f"rpc crashed {last} ({line.strip()[:60]}): the rows it had not printed are unknown"
    return lines, ""


def parse_amtinfo_text(text: str) -> AmtInfo:
    """Any text form of ``rpc amtinfo`` (see the module's docstring), told apart by its structure."""
    lines, crash = _cut_crash(_ANSI.sub("", text or "").replace("\r", "").splitlines())
    info = _parse_lines(lines)
    if crash:
        info = replace(info, problems=info.problems + (crash,), complete=False)
    return info


def _parse_lines(lines: list[str]) -> AmtInfo:
    if any(_TABLE_TOP.match(x) for x in lines):
        return _read_rows(_table(lines), "text 3.x table", ())
    if any(_BOX_TOP.search(x) for x in lines):
        rows, before = _sections(_unbox(lines))
        return _read_rows(rows, "text 3.x boxed", tuple(before))
    if any(_UNDERLINE.match(x) for x in lines):
        rows, before = _sections(lines)
        return _read_rows(rows, "text 3.x", tuple(before))
    rows = _colon_rows(lines)
    if rows:
        return _read_rows(rows, "text 2.x", ())
    raise InvalidValue("could not read rpc amtinfo: neither JSON nor a text form rpc-go prints")


def parse_amtinfo(stdout: str) -> AmtInfo:
    """Either form of ``rpc amtinfo``: JSON when it starts with ``{``, else its text forms."""
    return parse_amtinfo_json(stdout) if stdout.lstrip().startswith("{") else parse_amtinfo_text(stdout)
