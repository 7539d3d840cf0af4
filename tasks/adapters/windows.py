"""Windows clients: PowerShell (structured, locale-free) first, ``ipconfig /all`` read by its structure as
the fallback (`tasks.adapters.ipconfig`), CLIXML error streams, and the DHCP renew of one adapter. No I/O
here.

Every decision uses ASCII structure or value shapes, never localized label text (fixtures and their
sources: tests/fixtures/clients/SOURCES.md).
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from tasks.adapters.commands import lenient_suffix
from tasks.adapters.console import clean_text, decode_console
from tasks.adapters.ipconfig import IpConfig, IpConfigAdapter, ipconfig_all_command, ipconfig_facts, parse_ipconfig
from tasks.adapters import ps_json
from tasks.adapters.ipconfig_renew import RenewVerdict, judge_renew
from tasks.adapters.netfacts import RAW_CAP, NetFacts
from tasks.rules.suffix import InvalidValue

_clean = clean_text  # console bytes to text: tasks.adapters.console


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
    raw = [ln.rstrip() for ln in clixml_text(stderr).splitlines() if ln.strip()]
    lines = [ln.strip() for ln in raw]
    message: list[str] = []
    for i, ln in enumerate(lines):
        if ln.startswith("+") or _POSITION.search(ln):
            if raw[i].startswith("+ ") and message and i == len(message):
                # the "+ <code>" excerpt (column 0) follows the position line, in any language:
                # "At line:1 char:1", "En línea: 1 Carácter: 1", "発生場所 行:1 文字:1"
                message.pop()
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
    """The JSON ``FACTS_SCRIPT`` prints, or a bare adapter list (one object or an array) as another cmdlet
    serialized it (`tasks.adapters.ps_json`); unreadable (raw kept) when it is not such JSON, when
    ConvertTo-Json's depth limit cut the addresses, or when no object holds a MAC or an IPv4 address."""
    source = "PowerShell Win32_NetworkAdapterConfiguration"
    text = _clean(stdout).strip()
    if not text:
        return NetFacts.unreadable(source, "PowerShell printed nothing", stdout)
    try:
        data = ps_json.load(text)
    except json.JSONDecodeError as exc:
        return NetFacts.unreadable(source, f"PowerShell output is not JSON ({exc.msg} at line {exc.lineno})", stdout)
    if isinstance(data, list) or (isinstance(data, dict) and "adapters" not in data):
        data = {"adapters": data, "search": []}  # a bare adapter list (or one adapter) is still usable
    if not isinstance(data, dict):
        return NetFacts.unreadable(source, "PowerShell JSON is not an object", stdout)
    problems: list[str] = []
    items = [i for i in _as_list(data.get("adapters")) if isinstance(i, dict)]
    adapters = [a for a in (ps_json.adapter(i, problems) for i in items) if a is not None]
    search = tuple(s for s in (lenient_suffix(x, "SuffixSearchList", problems)
                               for x in _as_list(data.get("search")) if isinstance(x, str)) if s)
    cut = [p for p in problems if "depth limit" in p]
    if cut:
        return NetFacts.unreadable(source, f"{cut[0]}: the addresses are unknown (ConvertTo-Json needs a larger "
                                           "-Depth)", stdout)
    if not adapters:
        return NetFacts.unreadable(source, "PowerShell listed no IP-enabled adapter", stdout)
    if not any(a.mac or a.ipv4 for a in adapters):
        return NetFacts.unreadable(source, "the PowerShell objects hold neither a MAC nor an IPv4 address "
                                           "(not adapter objects)", stdout)
    if not any(ps_json.has_suffix_property(i) for i in items):
        problems.append("no DNS-suffix property (DNSDomain, ConnectionSpecificSuffix) in these objects: the "
                        "suffix shown as empty is unknown")
    return NetFacts(source=source, adapters=tuple(adapters), search_list=search, problems=tuple(problems))


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
        data = ps_json.load(text) if text else None  # PS 5.1 may wrap the result as {"value": [...], "Count": 1}
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


IPCONFIG_RENEW = "ipconfig /renew"

__all__ = ["decode_console", "clixml_text", "first_error_line", "powershell_command", "facts_command",
           "parse_powershell_facts", "parse_ipconfig", "ipconfig_facts", "ipconfig_all_command", "renew_command",
           "check_renew", "judge_renew", "RenewVerdict", "IpConfig", "IpConfigAdapter", "IPCONFIG_RENEW",
           "RAW_CAP"]
