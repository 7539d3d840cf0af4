"""Windows clients: PowerShell (structured, locale-free) first, ``ipconfig /all`` read by its structure as
the fallback, CLIXML error streams, and the DHCP renew of one adapter. No I/O here.

Every decision uses ASCII structure or value shapes, never localized label text: the same readers work on
English, German, French and Spanish output (fixtures and sources: /work/research/clients.md §1-3).
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
import ipaddress

from tasks.adapters.commands import lenient_suffix
from tasks.adapters.netfacts import RAW_CAP, NetAdapter, NetFacts, is_ipv4, normalize_mac
from tasks.rules.suffix import InvalidValue

# --------------------------------------------------------------------------------------------------
# Bytes and text
# --------------------------------------------------------------------------------------------------


def decode_console(data: bytes) -> str:
    """Console output as text: BOM stripped, UTF-8 if it is valid UTF-8, else the OEM code page.

    Piped ``ipconfig`` writes the console's OEM code page (cp850 on Western-European installs, cp437
    on en-US; cpython PR #5608, ftao/python-ifcfg#17); PowerShell CLIXML on German hosts came as cp437
    (ansible#84569). cp850 and cp437 agree on the letters these outputs use (ä 0x84, ü 0x81, é 0x82).
    """
    raw = bytes(data)
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp850", errors="replace")


def _clean(text: str) -> str:
    """One text form for every reader: no BOM, LF only, NBSP (French dot leaders) as a space."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")


# --------------------------------------------------------------------------------------------------
# CLIXML (PowerShell's error stream when stderr is redirected: SSH, WinRM)
# --------------------------------------------------------------------------------------------------

_CLIXML_HEADER = "#< CLIXML"
_OBJS = re.compile(r"<Objs\b.*?</Objs>", re.S)
_ESCAPE = re.compile(r"((?:_x[0-9A-Fa-f]{4}_)+)")
_ERROR_S = re.compile(r"<S\s+S=\"Error\"\s*>(.*?)</S>", re.S)


def _unescape(text: str) -> str:
    """``_xHHHH_`` are UTF-16 code units (surrogate pairs for non-BMP), ``_x005F_`` a literal '_'."""
    def one(m: re.Match) -> str:
        units = bytes.fromhex("".join(u[2:6] for u in re.findall(r"_x[0-9A-Fa-f]{4}_", m[1])))
        return units.decode("utf-16-be", errors="replace")
    return _ESCAPE.sub(one, text)


def clixml_text(stderr: str) -> str:
    """The error text of a PowerShell stderr: CLIXML decoded (every ``<Objs>`` block after any
    ``#< CLIXML`` header, only ``S="Error"`` strings, ``_xHHHH_`` decoded, the console-wrapped pieces
    joined), plain text unchanged. A progress-only CLIXML is no error: "".

    Follows pywinrm ``clean_error_msg`` and Ansible ``_parse_clixml`` (ansible#69550, #84569): the
    header may repeat, and SSH noise may come before it (that noise is kept).
    """
    if not stderr or _CLIXML_HEADER not in stderr:
        return stderr
    before = stderr[:stderr.index(_CLIXML_HEADER)].strip()
    pieces: list[str] = []
    for block in _OBJS.findall(stderr):
        try:
            root = ET.fromstring(re.sub(r'\sxmlns="[^"]*"', "", block, count=1))
            found = [el.text or "" for el in root.iter("S") if el.get("S") == "Error"]
        except ET.ParseError:
            found = [re.sub(r"<[^>]+>", "", s) for s in _ERROR_S.findall(block)]  # truncated XML: best effort
        pieces.extend(_unescape(s) for s in found)
    text = "".join(pieces).replace("\r\n", "\n").strip()
    return "\n".join(x for x in (before, text) if x)


_POSITION = re.compile(r":\d+\s+\S+:\d+$")  # "At line:1 char:1", "In Zeile:1 Zeichen:1"


def first_error_line(stderr: str, default: str = "no error text") -> str:
    """A Windows command's error message on one line, CLIXML decoded: the message's console-wrapped
    lines joined, PowerShell's position lines ("At line:1 char:1", "+ ...") left out."""
    lines = [ln.strip() for ln in clixml_text(stderr).splitlines() if ln.strip()]
    message: list[str] = []
    for ln in lines:
        if ln.startswith("+") or _POSITION.search(ln):
            break
        message.append(ln)
    return " ".join(message or lines[:1])[:500] or default


# --------------------------------------------------------------------------------------------------
# PowerShell command lines
# --------------------------------------------------------------------------------------------------


def powershell_command(script: str) -> str:
    """``powershell -NoProfile -NonInteractive -EncodedCommand <base64 UTF-16LE>``.

    Win32-OpenSSH hands the line to cmd.exe (or PowerShell, if the site made it the default shell);
    neither has quoting that holds for every character, so the script travels base64-encoded and only
    ``[A-Za-z0-9+/=]`` reaches the remote shell. Scripts here are fixed text plus validated integers.
    """
    if "\x00" in script:
        raise InvalidValue("a PowerShell script holds a NUL byte")
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return f"powershell -NoProfile -NonInteractive -EncodedCommand {encoded}"


#: UTF-8 out (so no OEM code page guessing), no progress records on stderr.
_PRELUDE = "$ProgressPreference='SilentlyContinue'; [Console]::OutputEncoding=[Text.Encoding]::UTF8; "

#: Flat properties only: WinPS 5.1 stringifies nested CIM objects (clients.md §2.1). ``@()`` keeps a
#: single adapter an array; the search list comes from the global setting, where ipconfig shows it.
FACTS_SCRIPT = (
    _PRELUDE
    + "$a = @(Get-CimInstance -ClassName Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=True' | "
    "Select-Object Description,MACAddress,DHCPEnabled,IPAddress,DNSDomain,InterfaceIndex,IPEnabled); "
    "$s = @(); try { $s = @((Get-DnsClientGlobalSetting -ErrorAction Stop).SuffixSearchList) } catch { }; "
    "ConvertTo-Json -Depth 4 -Compress -InputObject @{adapters=$a; search=$s}"
)


def facts_command() -> str:
    return powershell_command(FACTS_SCRIPT)


def _as_list(value) -> list:
    """ConvertTo-Json gives an object for one item, null for none (WMI arrays are null when unset)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_powershell_facts(stdout: str) -> NetFacts:
    """The JSON ``FACTS_SCRIPT`` prints; unreadable (raw kept) when it is not that JSON."""
    source = "PowerShell Win32_NetworkAdapterConfiguration"
    text = _clean(stdout).strip()
    if not text:
        return NetFacts.unreadable(source, "PowerShell printed nothing", stdout)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return NetFacts.unreadable(source, f"PowerShell output is not JSON ({exc.msg} at line {exc.lineno})", stdout)
    if isinstance(data, list) or (isinstance(data, dict) and "adapters" not in data):
        data = {"adapters": data, "search": []}  # a bare adapter list (or one adapter) is still usable
    if not isinstance(data, dict):
        return NetFacts.unreadable(source, "PowerShell JSON is not an object", stdout)
    problems: list[str] = []
    adapters = []
    for item in _as_list(data.get("adapters")):
        if not isinstance(item, dict) or item.get("IPEnabled") is False:
            continue
        ips = [str(a) for a in _as_list(item.get("IPAddress")) if isinstance(a, str)]
        index = item.get("InterfaceIndex")
        desc = str(item.get("Description") or "")
        adapters.append(NetAdapter(
            name=desc or f"interface {index}",
            mac=normalize_mac(item.get("MACAddress")),
            ipv4=tuple(a for a in ips if is_ipv4(a)),
            suffix=lenient_suffix(item.get("DNSDomain"), f"{desc}: DNSDomain", problems),
            dhcp_enabled=item.get("DHCPEnabled") if isinstance(item.get("DHCPEnabled"), bool) else None,
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            description=desc,
            connected=bool(ips),
        ))
    search = tuple(s for s in (lenient_suffix(x, "SuffixSearchList", problems)
                               for x in _as_list(data.get("search")) if isinstance(x, str)) if s)
    if not adapters:
        return NetFacts.unreadable(source, "PowerShell listed no IP-enabled adapter", stdout)
    return NetFacts(source=source, adapters=tuple(adapters), search_list=search, problems=tuple(problems))


# --------------------------------------------------------------------------------------------------
# ipconfig /all, by structure
# --------------------------------------------------------------------------------------------------

#: the dot leader before the key/value colon: dots and spaces, then ':' then a space or the end
_LEADER = re.compile(r"(?:\s*\.)+\s*:(?=\s|$)")
#: a leader-less key (``Verbindungsspezifisches DNS-Suffix: fritz.box``): the first ':' + space/end
_BARE = re.compile(r":(?=\s|$)")
_MAC6 = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}$")
_MAC_ANY = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5,7}$")
_STATUS = re.compile(r"\s*\([^)]*\)\s*$")  # (Preferred) (Bevorzugt) (préféré) (Preferido) (首选)
_ZONE = re.compile(r"^fe80:[0-9a-fA-F:]*%(\d+)$")
_YES = {"yes", "ja", "oui", "sí", "si", "sim", "是", "はい", "tak", "sì"}
_NO = {"no", "nein", "non", "não", "否", "いいえ", "nie"}
_CONTINUATION_EXTRA = 8  # a continuation is indented far past the key lines (39 spaces in practice)


@dataclass
class _Block:
    header: str
    rows: list[tuple[str, list[str]]] = field(default_factory=list)  # (label, values) in order


@dataclass(frozen=True)
class IpConfigAdapter:
    header: str  # the adapter header without its ':' (type word + connection name, localized)
    suffix: str
    description: str
    mac: str  # normalized; "" for tunnels/VPNs
    ipv4: tuple[str, ...]
    autoconfig_ipv4: bool
    index: int | None  # from the link-local IPv6 zone (%NN is the InterfaceIndex)
    dhcp_enabled: bool | None
    connected: bool


@dataclass(frozen=True)
class IpConfig:
    host_name: str
    primary_suffix: str
    search_list: tuple[str, ...]
    adapters: tuple[IpConfigAdapter, ...]
    messages: tuple[str, ...] = ()  # column-0 lines that are not headers (renew errors)
    problems: tuple[str, ...] = ()


def _split_key(body: str) -> tuple[str, str] | None:
    m = _LEADER.search(body)
    if m is None:
        m = _BARE.search(body)
        if m is None:
            return None
    return body[:m.start()].strip(), body[m.end():].strip()


def _blocks(text: str) -> tuple[list[_Block], list[str]]:
    blocks = [_Block("")]
    messages: list[str] = []
    key_indent: int | None = None
    for line in _clean(text).split("\n"):
        line = line.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            if line.endswith(":"):
                blocks.append(_Block(line[:-1].rstrip()))
                key_indent = None
            elif len(blocks) == 1 and not blocks[0].header and not blocks[0].rows:
                blocks[0].header = line.strip()  # the title line ("Windows-IP-Konfiguration", ...)
            else:
                messages.append(line.strip())  # e.g. a renew error between the title and the adapters
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        rows = blocks[-1].rows
        deep = key_indent is not None and indent >= key_indent + _CONTINUATION_EXTRA
        kv = None if (deep and not _LEADER.search(body)) else _split_key(body)
        if kv is None:
            if rows:
                rows[-1][1].append(body)  # continuation: another value of the previous key
            continue
        if key_indent is None:
            key_indent = indent
        label, value = kv
        rows.append((label, [value] if value else []))
    return blocks, messages


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _ip_value(value: str) -> str:
    return _STATUS.sub("", value).strip()


def _adapter(block: _Block, problems: list[str]) -> IpConfigAdapter:
    rows = block.rows
    values = [vals for _, vals in rows]
    ip_rows = [i for i, vals in enumerate(values) if vals and _is_ip(_ip_value(vals[0]))]
    connected = bool(ip_rows)
    # connection-specific suffix: the first key, after the media-state line when the adapter is down
    s_idx = 0 if connected or len(rows) < 2 else 1
    first = lambda i: (values[i][0] if values[i] else "") if 0 <= i < len(values) else ""  # noqa: E731
    mac_idx = next((i for i, v in enumerate(values) if v and _MAC_ANY.match(v[0])), None)
    mac = first(mac_idx) if mac_idx is not None else ""
    ipv4_label = next((rows[i][0] for i in ip_rows if is_ipv4(_ip_value(values[i][0]))), None)
    ipv4 = tuple(_ip_value(values[i][0]) for i, (label, _) in enumerate(rows)
                 if label == ipv4_label and values[i] and is_ipv4(_ip_value(values[i][0])))
    index = None
    for i in ip_rows:
        m = _ZONE.match(_ip_value(values[i][0]))
        if m:
            index = int(m[1])
            break
    dhcp = None
    if mac_idx is not None and mac_idx + 1 < len(rows):  # the row after the MAC is "DHCP enabled"
        word = first(mac_idx + 1).strip().lower()
        dhcp = True if word in _YES else False if word in _NO else None
    suffix_text = first(s_idx)
    return IpConfigAdapter(
        header=block.header,
        suffix=lenient_suffix(suffix_text, f"{block.header}: connection-specific DNS suffix", problems),
        description=first(s_idx + 1),
        mac=normalize_mac(mac) if _MAC6.match(mac) else "",
        ipv4=ipv4,
        autoconfig_ipv4=bool(ipv4) and all(a.startswith("169.254.") for a in ipv4),
        index=index,
        dhcp_enabled=dhcp,
        connected=connected,
    )


def parse_ipconfig(text: str) -> IpConfig:
    """``ipconfig /all`` (or plain ``ipconfig`` / ``/renew``) in any display language, by structure:
    column-0 headers ending in ':' (or ' :'), indented ``label . . . : value`` rows, deeper-indented
    continuation rows, values recognized by shape (clients.md §1.3)."""
    blocks, messages = _blocks(text)
    problems: list[str] = []
    top = blocks[0]
    adapters = tuple(_adapter(b, problems) for b in blocks[1:])
    # global block, fixed order: host name, primary DNS suffix, node type, routing, WINS proxy, search list
    g = [vals for _, vals in top.rows]
    host = g[0][0] if g and g[0] else ""
    primary = g[1][0] if len(g) > 1 and g[1] else ""
    search: list[str] = []
    if len(g) >= 6:
        search = [lenient_suffix(s, "DNS suffix search list", problems) for s in g[5]]
    return IpConfig(host, lenient_suffix(primary, "primary DNS suffix", problems), tuple(s for s in search if s),
                    adapters, tuple(messages), tuple(problems))


def ipconfig_facts(text: str) -> NetFacts:
    """NetFacts from ``ipconfig /all``; unreadable (raw kept) when no adapter block could be read."""
    source = "ipconfig /all"
    if not text or not text.strip():
        return NetFacts.unreadable(source, "ipconfig printed nothing", text)
    if "\ufffd" in text and not any(ch.isalpha() for ch in text.replace("\ufffd", "")[:50]):
        return NetFacts.unreadable(source, "ipconfig output is not text", text)
    cfg = parse_ipconfig(text)
    if not cfg.adapters:
        return NetFacts.unreadable(source, "no adapter block (header line at column 0 ending in ':') found", text)
    adapters = tuple(NetAdapter(name=a.header, mac=a.mac, ipv4=a.ipv4, suffix=a.suffix, dhcp_enabled=a.dhcp_enabled,
                                index=a.index, description=a.description, connected=a.connected)
                     for a in cfg.adapters)
    if not any(a.mac or a.ipv4 for a in adapters):
        return NetFacts.unreadable(source, "adapter blocks hold neither a MAC nor an IPv4 address "
                                           "(truncated or not ipconfig /all output)", text)
    return NetFacts(source=source, adapters=adapters, search_list=cfg.search_list,
                    primary_suffix=cfg.primary_suffix, problems=cfg.problems)


def ipconfig_all_command() -> str:
    return "ipconfig /all"


# --------------------------------------------------------------------------------------------------
# Renew one adapter
# --------------------------------------------------------------------------------------------------

#: Win32_NetworkAdapterConfiguration.RenewDHCPLease return values (learn.microsoft.com, cimwin32prov
#: "RenewDHCPLease method of the Win32_NetworkAdapterConfiguration class")
_RENEW_CODES = {0: "success", 1: "success, reboot required", 64: "method not supported on this platform",
                65: "unknown failure", 81: "unable to configure DHCP service", 82: "unable to renew DHCP lease",
                84: "IP not enabled on adapter", 91: "access denied", 98: "not all DHCP leases could be renewed",
                100: "DHCP not enabled on adapter"}


def renew_script(index: int) -> str:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 < index < 2**31:
        raise InvalidValue(f"interface index {index!r} is not a positive integer")
    return (_PRELUDE + "Invoke-CimMethod -Query 'SELECT * FROM Win32_NetworkAdapterConfiguration WHERE "
            f"InterfaceIndex={index}' -MethodName RenewDHCPLease | Select-Object ReturnValue | "
            "ConvertTo-Json -Compress")


def renew_command(index: int) -> str:
    """Renew the lease of one adapter, addressed by InterfaceIndex (an integer: nothing to quote, no
    wildcard: ``ipconfig /renew NAME`` takes ``*`` patterns and names need cmd.exe quoting)."""
    return powershell_command(renew_script(index))


@dataclass(frozen=True)
class WindowsRenew:
    ok: bool
    detail: str
    code: int | None = None  # RenewDHCPLease's ReturnValue, None when it did not run


def check_renew(exit_status: int, stdout: str, stderr: str) -> WindowsRenew:
    """Judge ``renew_command``'s output: ``{"ReturnValue":N}``; 0 and 1 are success."""
    text = _clean(stdout).strip()
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError:
        data = None
    for item in _as_list(data):
        if isinstance(item, dict) and isinstance(item.get("ReturnValue"), int):
            code = item["ReturnValue"]
            if code in (0, 1):
                return WindowsRenew(True, f"RenewDHCPLease returned {code} ({_RENEW_CODES[code]})", code)
            return WindowsRenew(False, f"RenewDHCPLease returned {code} "
                                       f"({_RENEW_CODES.get(code, 'see WMI error codes')})", code)
    if data is None and exit_status == 0 and not text and not clixml_text(stderr).strip():
        return WindowsRenew(False, "no adapter with that InterfaceIndex (RenewDHCPLease returned nothing)")
    err = first_error_line(stderr, "")
    return WindowsRenew(False, f"renew exited {exit_status}: {(err or text[:200] or 'no output')[:300]}")


__all__ = ["decode_console", "clixml_text", "first_error_line", "powershell_command", "facts_command",
           "parse_powershell_facts", "parse_ipconfig", "ipconfig_facts", "renew_command", "check_renew",
           "RAW_CAP"]
