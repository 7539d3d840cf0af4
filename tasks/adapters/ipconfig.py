"""``ipconfig /all`` and ``ipconfig /renew`` read by their structure, in any display language. No I/O here.

What the reader relies on (sources in tests/fixtures/clients/SOURCES.md: captures in English, German,
French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Japanese, Chinese and Korean):

- a title line, then column-0 messages (renew errors), then blocks: a column-0 header ending in ':' (or
  ' :') followed by indented ``label . . . : value`` rows; a value continued on deeper-indented rows;
- the labels are translated, their ORDER is not: global block = host name, primary DNS suffix, node type,
  IP routing enabled, WINS proxy enabled, [search list]; adapter block = [media state], connection-specific
  DNS suffix, description, physical address (empty or absent on Wintun/Tailscale/OpenVPN DCO/PPP), DHCP
  enabled, autoconfiguration enabled, IPv6/IPv4 addresses each IPv4 followed by its subnet mask, [lease
  obtained, lease expires], default gateway, DHCP server, ... (XP puts the lease rows last);
- values have shapes: a MAC, an IPv4 address followed by a netmask, a lease time, a yes/no word;
- a console copy wraps a value at column 80 onto the next line (Italian and Russian XP captures, Japanese
  Win7 capture: display columns, East-Asian letters count 2).

A web page's copy of an output (``&#281;``, ``&amp;``) is refused as unreadable, never half read.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

from tasks.adapters.commands import lenient_suffix
from tasks.adapters.console import clean_text
from tasks.adapters.netfacts import NetAdapter, NetFacts, is_ipv4, normalize_mac

#: the dot leader before the key/value colon: dots and spaces, then ':' then a space or the end
_LEADER = re.compile(r"(?:\s*\.)+\s*:(?=\s|$)")
#: a leader-less key (``Verbindungsspezifisches DNS-Suffix: fritz.box``): the first ':' + space/end
_BARE = re.compile(r":(?=\s|$)")
_MAC6 = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}$")
_MAC_ANY = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5,7}$")  # tunnels print 8 octets
_STATUS = re.compile(r"\s*\([^)]*\)\s*$")  # (Preferred) (Bevorzugt) (Основной) (기본 설정) (首选)
_ZONE = re.compile(r"^fe80:[0-9a-fA-F:]*%(\d+)$")
#: a lease time: h:mm:ss or h.mm.ss (Italian), with the blanks a Korean capture shows ("7 : 52 : 26")
_LEASE_TIME = re.compile(r"\d{1,2}\s?[:.]\s?\d{2}\s?[:.]\s?\d{2}")
_HTML_ENTITY = re.compile(r"&(?:#\d{2,7}|#[xX][0-9a-fA-F]{2,6}|amp|lt|gt|quot|nbsp|apos);")
_CONTINUATION_EXTRA = 8  # a continuation is indented far past the key lines (39 spaces in practice)
_WRAP = 79  # a console copy breaks a line that fills the 80-column window (79 or 80 columns kept)

#: yes/no of the 12 display languages Windows ships most (captures in SOURCES.md); words this list lacks
#: are learned from the output itself (`_Vocabulary`)
_YES = {"yes", "ja", "oui", "sí", "si", "sì", "sim", "tak", "да", "はい", "是", "예"}
_NO = {"no", "nein", "non", "não", "nee", "nie", "нет", "いいえ", "否", "아니요", "아니오"}


def html_encoded(text: str) -> bool:
    """A copy taken from a web page (HTML character references), not what ipconfig printed."""
    return bool(_HTML_ENTITY.search(text or ""))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# --------------------------------------------------------------------------------------------------
# Lines to blocks
# --------------------------------------------------------------------------------------------------


@dataclass
class _Block:
    header: str
    section: int = 0  # which ipconfig run printed it (release + renew in one output: 0, then 1)
    rows: list[tuple[str, list[str]]] = field(default_factory=list)  # (label, values) in order


@dataclass
class _Parsed:
    title: str
    top: _Block
    blocks: list[_Block]
    messages: list[tuple[int, str]]  # (section, column-0 line that is neither title nor header)


def _split_key(body: str) -> tuple[str, str] | None:
    m = _LEADER.search(body)
    if m is None:
        m = _BARE.search(body)
        if m is None:
            return None
    return body[:m.start()].strip(), body[m.end():].strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _dedent(lines: list[str]) -> list[str]:
    """A copy quoted as a block (a Markdown code block or ``> `` quote, an e-mail reply) indents or prefixes
    every line alike: take that off, so the title and the headers are at column 0 again."""
    body = [ln for ln in lines if ln.strip()]
    while body and all(ln.lstrip().startswith(">") for ln in body):  # "> " quoting, possibly nested
        lines = [ln.lstrip()[1:] if ln.strip() else "" for ln in lines]
        lines = [ln[1:] if ln.startswith(" ") else ln for ln in lines]
        body = [ln for ln in lines if ln.strip()]
    base = min((_indent(ln) for ln in body), default=0)
    return [ln[base:] if ln.strip() else "" for ln in lines]


def _lines(text: str) -> list[str]:
    """Physical lines with console wraps undone: a line that filled the 80-column window continues on
    the next one when that one is not a row of its own (column 0 or 1, no key)."""
    out: list[str] = []
    for line in _dedent([ln.rstrip() for ln in clean_text(text).split("\n")]):
        if out and out[-1].strip() and _WRAP <= _width(out[-1]) <= 80 and line.strip() \
                and _indent(line) <= 1 and not line.endswith(":") and _split_key(line.strip()) is None:
            out[-1] += line
            continue
        out.append(line)
    return out


def _flat(lines: list[str]) -> bool:
    """Every ``label . . . : value`` row at column 0: a forum or e-mail copy that lost the rows' indent
    (the headers are then told from the rows by `_flat_header`)."""
    keyed = [ln for ln in lines if ln.strip() and _LEADER.search(ln)]
    return bool(keyed) and all(_indent(ln) == 0 for ln in keyed)


def _flat_header(lines: list[str], i: int, current: "_Block", top: "_Block") -> bool:
    """In a copy without indent, a header is a line ending in ':' with no dot leader, after a blank line
    (ipconfig prints a blank line before and after each header), that does not open an empty block: a
    leader-less row with an empty value (Italian ``Suffisso DNS specifico per connessione:``) is the
    first row after its header's blank line, and a block is never empty."""
    line = lines[i].strip()
    if not line.endswith(":") or _LEADER.search(line) or (i > 0 and lines[i - 1].strip()):
        return False
    return current is top or bool(current.rows)


def _parse(text: str) -> _Parsed:
    """Blocks and messages, each with the run (section) that printed it. A run starts with ipconfig's title;
    in a paste of several runs (``ipconfig /release`` then ``/renew``, or ``/all`` before and after) each
    run repeats it, possibly after a prompt line: a column-0 line seen before the first row comes back."""
    top = _Block("")
    blocks: list[_Block] = []
    messages: list[tuple[int, str]] = []
    title, section, current = "", 0, top
    starts: set[str] = set()  # column-0 lines before any row: the title, a prompt line
    later_tops: list[_Block] = []  # the global rows of later runs
    content = False  # a row or a block since the current run started
    key_indent: int | None = None
    lines = _lines(text)
    flat = _flat(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        stripped = line.strip()
        column0 = not line[0].isspace() and (
            not flat or _split_key(stripped) is None or _flat_header(lines, i, current, top))
        if column0:
            if line.endswith(":") and (not flat or _flat_header(lines, i, current, top)):
                current = _Block(line[:-1].rstrip(), section)
                blocks.append(current)
                key_indent, content = None, True
            elif content and stripped in starts:
                section += 1  # the next run in the same paste
                current, content = _Block("", section), False
                if not top.rows:
                    top = current  # the global rows of the first run that printed them
                else:
                    later_tops.append(current)
            elif flat and current.rows:
                current.rows[-1][1].append(stripped)  # a continuation row that lost its indent too
            else:
                if not section and not blocks and not top.rows:
                    starts.add(stripped)
                if not title and not blocks and not top.rows:
                    title = stripped  # "Windows IP Configuration", "Настройка протокола IP для Windows", ...
                else:
                    messages.append((section, stripped))  # e.g. a renew error between the title and the blocks
            continue
        indent = _indent(line)
        deep = key_indent is not None and indent >= key_indent + _CONTINUATION_EXTRA
        kv = None if (deep and not _LEADER.search(stripped)) else _split_key(stripped)
        if kv is None:
            if current.rows:
                current.rows[-1][1].append(stripped)  # continuation: another value of the previous key
            continue
        if key_indent is None:
            key_indent = indent
        label, value = kv
        current.rows.append((label, [value] if value else []))
        content = True
    latest = next((t for t in reversed(later_tops) if t.rows), top)
    return _Parsed(title, latest, blocks, messages)


# --------------------------------------------------------------------------------------------------
# Value shapes
# --------------------------------------------------------------------------------------------------


def _first(rows: list[tuple[str, list[str]]], i: int | None) -> str:
    if i is None or not 0 <= i < len(rows) or not rows[i][1]:
        return ""
    return rows[i][1][0]


def _ip_value(value: str) -> str:
    return _STATUS.sub("", value).strip()


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(_ip_value(value).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_mask(value: str) -> bool:
    if not is_ipv4(value):
        return False
    bits = int(ipaddress.IPv4Address(value))
    inverted = bits ^ 0xFFFFFFFF
    return inverted & (inverted + 1) == 0  # ones then zeros


def _ipv4_addresses(rows: list[tuple[str, list[str]]]) -> tuple[str, ...]:
    """Addresses of the IPv4 rows, and only those: an IPv4 value IMMEDIATELY followed by a row holding a
    netmask (every Windows since XP prints address then mask). A default gateway, a DHCP or DNS server
    is an IPv4 value too, but never followed by a mask, so it is never taken for the adapter's address."""
    out: list[str] = []
    i = 0
    while i < len(rows) - 1:
        value, mask = _ip_value(_first(rows, i)), _ip_value(_first(rows, i + 1))
        if is_ipv4(value) and _is_mask(mask) and value != "0.0.0.0" and int(ipaddress.IPv4Address(value)) < 0xE0000000:
            out.append(value)
            i += 2
            continue
        i += 1
    return tuple(dict.fromkeys(out))


def _has_lease(rows: list[tuple[str, list[str]]]) -> bool:
    """Lease obtained/expires rows: a time of day in a value that is no address (only DHCP leases print
    them, in every language and on XP too)."""
    return any(_LEASE_TIME.search(v) and not _is_ip(v) for _, vals in rows for v in vals[:1])


class _Vocabulary:
    """The yes/no words of this output: the known ones, plus those learned by position (global rows 3 and
    4, the rows after a MAC) with their meaning learned from structure (DHCP enabled on an adapter that
    holds a lease means yes; of exactly two words, the other one means no)."""

    def __init__(self) -> None:
        self.words: set[str] = set(_YES | _NO)
        self.yes: set[str] = set(_YES)
        self.no: set[str] = set(_NO)
        self._seen: set[str] = set()

    def add(self, word: str) -> None:
        w = word.strip().casefold()
        if w and not any(ch.isdigit() for ch in w) and len(w.split()) == 1:
            self.words.add(w)
            self._seen.add(w)

    def learned_yes(self, word: str) -> None:
        w = word.strip().casefold()
        if w in self._seen and w not in self.no:
            self.yes.add(w)

    def settle(self) -> None:
        if len(self._seen) == 2:
            a, b = sorted(self._seen)
            for one, other in ((a, b), (b, a)):
                if one in self.yes and other not in self.yes:
                    self.no.add(other)
                if one in self.no and other not in self.no:
                    self.yes.add(other)

    def is_bool(self, value: str) -> bool:
        return value.strip().casefold() in self.words

    def meaning(self, value: str) -> bool | None:
        w = value.strip().casefold()
        return True if w in self.yes else False if w in self.no else None


# --------------------------------------------------------------------------------------------------
# Blocks to adapters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IpConfigAdapter:
    header: str  # the adapter header without its ':' (type words + connection name, localized)
    suffix: str
    description: str
    mac: str  # normalized; "" for tunnels/VPNs
    ipv4: tuple[str, ...]
    autoconfig_ipv4: bool
    index: int | None  # from the link-local IPv6 zone (%NN is the InterfaceIndex)
    dhcp_enabled: bool | None
    connected: bool
    section: int = 0


@dataclass(frozen=True)
class IpConfig:
    host_name: str
    primary_suffix: str
    search_list: tuple[str, ...]
    adapters: tuple[IpConfigAdapter, ...]
    messages: tuple[str, ...] = ()  # column-0 lines that are not headers (renew errors)
    problems: tuple[str, ...] = ()
    message_sections: tuple[int, ...] = ()  # the section of each message


@dataclass(frozen=True)
class _Layout:
    media: int | None
    suffix: int | None
    description: int | None
    mac: int | None
    dhcp: int | None


def _layout(rows: list[tuple[str, list[str]]], vocab: _Vocabulary) -> _Layout:
    """Where the head rows of an adapter block sit, anchored on the MAC row (by its value's shape) or,
    without a MAC value, on the DHCP-enabled row (the first yes/no value)."""
    first_ip = next((i for i in range(len(rows)) if _is_ip(_first(rows, i))), len(rows))
    head = min(first_ip, 6)
    values = [_first(rows, i) for i in range(head)]
    mac = next((i for i, v in enumerate(values[:4]) if _MAC_ANY.match(v)), None)
    if mac is not None and mac == len(rows) - 1:  # XP, media disconnected: media state, description, MAC
        desc = mac - 1
        return _Layout(0 if desc >= 1 else None, desc - 1 if desc >= 2 else None, desc, mac, None)
    if mac is not None:
        dhcp = mac + 1
    else:
        dhcp = next((i for i in range(1, head) if vocab.is_bool(values[i])), None)
        if dhcp is None:  # nothing to anchor on: the short blocks of /renew and plain ipconfig
            suffix = 0 if first_ip < len(rows) or len(rows) < 2 else 1
            return _Layout(None if suffix == 0 else 0, suffix, None, None, None)
        if values[dhcp - 1] == "" and dhcp >= 2:  # an empty physical address (Wintun, Tailscale, PPP)
            mac = dhcp - 1
    desc = (mac if mac is not None else dhcp) - 1
    suffix = desc - 1 if desc >= 1 else None
    media = suffix - 1 if suffix is not None and suffix >= 1 else None
    return _Layout(media, suffix, desc if desc >= 0 else None, mac, dhcp)


def _adapter(block: _Block, vocab: _Vocabulary, problems: list[str]) -> IpConfigAdapter:
    rows = block.rows
    where = _layout(rows, vocab)
    ip_rows = [i for i in range(len(rows)) if _is_ip(_first(rows, i))]
    ipv4 = _ipv4_addresses(rows)
    index = None
    for i in ip_rows:
        m = _ZONE.match(_ip_value(_first(rows, i)))
        if m:
            index = int(m[1])
            break
    mac = _first(rows, where.mac)
    return IpConfigAdapter(
        header=block.header,
        suffix=lenient_suffix(_first(rows, where.suffix), f"{block.header}: connection-specific DNS suffix", problems),
        description=" ".join(rows[where.description][1]) if where.description is not None and where.description < len(rows) else "",
        mac=normalize_mac(mac) if _MAC6.match(mac) else "",
        ipv4=ipv4,
        autoconfig_ipv4=bool(ipv4) and all(a.startswith("169.254.") for a in ipv4),
        index=index,
        dhcp_enabled=vocab.meaning(_first(rows, where.dhcp)) if where.dhcp is not None else None,
        connected=where.media is None and bool(ip_rows),
        section=block.section,
    )


def _vocabulary(parsed: _Parsed) -> _Vocabulary:
    vocab = _Vocabulary()
    top = parsed.top.rows
    for i in (3, 4):  # IP routing enabled, WINS proxy enabled
        if len(top) >= 5:
            vocab.add(_first(top, i))
    for block in parsed.blocks:
        rows = block.rows
        mac = next((i for i in range(min(4, len(rows))) if _MAC_ANY.match(_first(rows, i))), None)
        if mac is None or mac + 1 >= len(rows):
            continue
        vocab.add(_first(rows, mac + 1))
        if mac + 2 < len(rows) and not _is_ip(_first(rows, mac + 2)):
            vocab.add(_first(rows, mac + 2))
        if _has_lease(rows):
            vocab.learned_yes(_first(rows, mac + 1))
    vocab.settle()
    return vocab


def parse_ipconfig(text: str) -> IpConfig:
    """``ipconfig /all`` (or plain ``ipconfig`` / ``/renew``) in any display language, by structure."""
    parsed = _parse(text)
    problems: list[str] = []
    vocab = _vocabulary(parsed)
    adapters = tuple(_adapter(b, vocab, problems) for b in parsed.blocks)
    g = parsed.top.rows
    host = _first(g, 0)
    primary = _first(g, 1)
    search: list[str] = []
    if len(g) >= 6:
        search = [lenient_suffix(s, "DNS suffix search list", problems) for s in g[5][1]]
    return IpConfig(host, lenient_suffix(primary, "primary DNS suffix", problems), tuple(s for s in search if s),
                    adapters, tuple(m for _, m in parsed.messages), tuple(problems),
                    tuple(s for s, _ in parsed.messages))


def _latest_run(adapters: tuple[IpConfigAdapter, ...]) -> tuple[IpConfigAdapter, ...]:
    """A paste of several runs (``ipconfig /all`` before and after a renew, or ``/all`` then ``/renew``)
    describes the adapters as the latest full run (one with physical addresses) shows them; the blocks of a
    plain ``ipconfig`` or a ``/renew`` run only when no run printed more."""
    runs = sorted({a.section for a in adapters})
    full = [r for r in runs if any(a.mac for a in adapters if a.section == r)]
    keep = (full or runs)[-1]
    return tuple(a for a in adapters if a.section == keep)


def ipconfig_facts(text: str) -> NetFacts:
    """NetFacts from ``ipconfig /all``; unreadable (raw kept) when no adapter block could be read."""
    source = "ipconfig /all"
    if not text or not text.strip():
        return NetFacts.unreadable(source, "ipconfig printed nothing", text)
    if "\ufffd" in text and not any(ch.isalpha() for ch in text.replace("\ufffd", "")[:50]):
        return NetFacts.unreadable(source, "ipconfig output is not text", text)
    if html_encoded(text):
        return NetFacts.unreadable(source, "HTML character references (&#NNN; &amp;) in the output: a copy "
                                           "from a web page, not what ipconfig printed", text)
    cfg = parse_ipconfig(text)
    if not cfg.adapters:
        return NetFacts.unreadable(source, "no adapter block (header line at column 0 ending in ':') found", text)
    adapters = tuple(NetAdapter(name=a.header, mac=a.mac, ipv4=a.ipv4, suffix=a.suffix, dhcp_enabled=a.dhcp_enabled,
                                index=a.index, description=a.description, connected=a.connected)
                     for a in _latest_run(cfg.adapters))
    if not any(a.mac or a.ipv4 for a in adapters):
        return NetFacts.unreadable(source, "adapter blocks hold neither a MAC nor an IPv4 address "
                                           "(truncated or not ipconfig /all output)", text)
    return NetFacts(source=source, adapters=adapters, search_list=cfg.search_list,
                    primary_suffix=cfg.primary_suffix, problems=cfg.problems)


def ipconfig_all_command() -> str:
    return "ipconfig /all"
