"""What client operating systems print about their network (ipconfig, resolv.conf, dhclient) and the
DHCP renew commands. No I/O here: readers and command builders, tested on real outputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tasks.adapters.commands import (
    DEFAULT_TOOLS,
    HostTools,
    OsFlavor,
    lenient_suffix,
    quote_posix,
    quote_windows,
    validate_interface,
)
from tasks.rules.host_state import Cause
from tasks.rules.suffix import normalize_dns_name

# --------------------------------------------------------------------------------------------------
# Windows: ipconfig
# --------------------------------------------------------------------------------------------------

_WIN_KV = re.compile(r"^(?P<indent> {1,8})(?P<key>\S.*?)\s*(?:\. ?)*:(?: (?P<value>.*))?$")
_WIN_CONTINUATION_INDENT = 12
_ADDRESS_FLAG = re.compile(r"\((?:Preferred|Deprecated|Tentative|Duplicate)\)\s*$", re.IGNORECASE)
_LEASE_FORMATS = (
    "%A, %B %d, %Y %I:%M:%S %p",  # en-US: Tuesday, November 24, 2026 8:02:11 AM
    "%A, %d %B %Y %H:%M:%S",  # en-GB: Tuesday, 24 November 2026 08:02:11
    "%d %B %Y %H:%M:%S",
    "%A, %B %d, %Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",  # Windows XP: 11/24/2026 8:02:11 AM
)


def parse_windows_time(text: str) -> datetime | None:
    """ipconfig's lease times (host-local, naive). None when the locale's format is not one we know."""
    text = " ".join(text.split())
    for fmt in _LEASE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class WindowsAdapter:
    name: str  # section header without the colon, e.g. "Ethernet adapter Ethernet"
    connection_suffix: str
    description: str
    media_disconnected: bool
    dhcp_enabled: bool | None
    ipv4: str  # "" when none; "(Preferred)" and similar flags removed
    autoconfig_ipv4: bool  # the address is APIPA (169.254/16): DHCP did not answer
    lease_obtained: datetime | None
    lease_expires: datetime | None
    fields: dict[str, str | list[str]] = field(default_factory=dict, repr=False)

    @property
    def is_ethernet(self) -> bool:
        return self.name.lower().startswith("ethernet adapter")


@dataclass(frozen=True)
class IpConfig:
    host_name: str
    primary_suffix: str
    search_list: tuple[str, ...]
    adapters: tuple[WindowsAdapter, ...]
    problems: tuple[str, ...] = ()

    def dhcp_adapter(self) -> WindowsAdapter | None:
        """The adapter AMT shares with the OS: a connected, DHCP-configured wired adapter if there is
        one, else any connected adapter with an IPv4 address."""
        live = [a for a in self.adapters if not a.media_disconnected and a.ipv4 and not a.autoconfig_ipv4]
        for pick in (lambda a: a.is_ethernet and a.dhcp_enabled is not False,
                     lambda a: a.dhcp_enabled is not False, lambda a: True):
            for adapter in live:
                if pick(adapter):
                    return adapter
        return None

    @property
    def dhcp_suffix(self) -> str:
        """Option 15 as the OS holds it: the chosen adapter's connection-specific DNS suffix."""
        adapter = self.dhcp_adapter()
        return adapter.connection_suffix if adapter else ""


def parse_ipconfig(text: str) -> IpConfig:
    """Parse ``ipconfig /all`` (or plain ``ipconfig``/``ipconfig /renew``) output, English locale.

    Tolerates CRLF, the dotted padding, address flags like "(Preferred)", multi-line values
    (DNS servers, search list), empty values and "Media disconnected" adapters.
    """
    sections: list[tuple[str, dict[str, str | list[str]]]] = [("", {})]
    last_key: str | None = None
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            header = line.strip()
            sections.append((header[:-1].strip() if header.endswith(":") else header, {}))
            last_key = None
            continue
        indent = len(line) - len(line.lstrip(" "))
        current = sections[-1][1]
        if indent >= _WIN_CONTINUATION_INDENT and last_key is not None:
            value = current[last_key]
            values = value if isinstance(value, list) else ([value] if value else [])
            values.append(line.strip())
            current[last_key] = values
            continue
        m = _WIN_KV.match(line)
        if not m:
            continue
        last_key = m["key"].strip()
        current[last_key] = (m["value"] or "").strip()

    def first(fields: dict, key: str) -> str:
        value = fields.get(key, "")
        return (value[0] if value else "") if isinstance(value, list) else value

    def all_values(fields: dict, key: str) -> list[str]:
        value = fields.get(key, "")
        return list(value) if isinstance(value, list) else ([value] if value else [])

    problems: list[str] = []
    top: dict = {}
    adapters = []
    for name, fields in sections:
        if " adapter " not in f" {name.lower()} ":
            # "Windows IP Configuration" (or rows before any header) describe the whole host
            top.update(fields)
            continue
        ipv4, autoconfig = "", False
        for key in ("IPv4 Address", "IP Address", "Autoconfiguration IPv4 Address", "Autoconfiguration IP Address"):
            if first(fields, key):
                ipv4 = _ADDRESS_FLAG.sub("", first(fields, key)).strip()
                autoconfig = key.startswith("Autoconfiguration") or ipv4.startswith("169.254.")
                break
        dhcp = first(fields, "DHCP Enabled").lower()
        adapters.append(WindowsAdapter(
            name=name,
            connection_suffix=lenient_suffix(first(fields, "Connection-specific DNS Suffix"),
                                           f"{name}: connection-specific DNS suffix", problems),
            description=first(fields, "Description"),
            media_disconnected="disconnected" in first(fields, "Media State").lower(),
            dhcp_enabled=True if dhcp == "yes" else False if dhcp == "no" else None,
            ipv4=ipv4,
            autoconfig_ipv4=autoconfig,
            lease_obtained=parse_windows_time(first(fields, "Lease Obtained")),
            lease_expires=parse_windows_time(first(fields, "Lease Expires")),
            fields=fields,
        ))
    search = tuple(lenient_suffix(s, "DNS suffix search list", problems)
                   for s in all_values(top, "DNS Suffix Search List"))
    return IpConfig(
        host_name=first(top, "Host Name"),
        primary_suffix=lenient_suffix(first(top, "Primary Dns Suffix"), "primary DNS suffix", problems),
        search_list=search,
        adapters=tuple(adapters),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class RenewOutcome:
    ok: bool
    cause: Cause | None  # None when ok
    detail: str
    os_suffix: str | None = None  # the suffix the renew output shows, when it shows one


_WIN_RENEW_ERROR = re.compile(r"An error occurred while renewing interface (?P<iface>.+?) : (?P<msg>.+)", re.I)
_WIN_MEDIA = re.compile(r"No operation can be performed on (?P<iface>.+?) while it has its media disconnected", re.I)
_WIN_NO_ADAPTER = "no adapter is in the state permissible"


def check_windows_renew(exit_status: int, stdout: str, stderr: str) -> RenewOutcome:
    """Judge ``ipconfig /renew``. Disconnected adapters are noise; a renew error on any other adapter,
    or no adapter able to renew, is a failure (the new option 15 did not arrive)."""
    text = f"{stdout}\n{stderr}".replace("\r", "")
    errors = [m for m in _WIN_RENEW_ERROR.finditer(text) if "media" not in m["msg"].lower()]
    if _WIN_NO_ADAPTER in text.lower():
        return RenewOutcome(False, Cause.UNKNOWN, "ipconfig /renew: no adapter is in a state that can renew")
    if errors:
        detail = "; ".join(f"{m['iface']}: {m['msg'].strip()}" for m in errors)
        return RenewOutcome(False, Cause.UNKNOWN, f"ipconfig /renew failed: {detail}")
    if exit_status != 0:
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        return RenewOutcome(False, Cause.UNKNOWN, f"ipconfig /renew exited {exit_status}: {last[:200]}")
    parsed = parse_ipconfig(stdout)
    adapter = parsed.dhcp_adapter()
    if adapter is None:
        return RenewOutcome(False, Cause.UNKNOWN, "ipconfig /renew finished but no adapter holds an IPv4 lease")
    return RenewOutcome(True, None, f"renewed {adapter.name} ({adapter.ipv4})", adapter.connection_suffix)


# --------------------------------------------------------------------------------------------------
# Linux: dhclient, resolv.conf, hostname -d
# --------------------------------------------------------------------------------------------------


def linux_renew_command(interface: str = "eth0", tools: HostTools = DEFAULT_TOOLS) -> str:
    """Release then re-request the lease (dhclient only asks for a fresh option 15 on a new lease).

    The release drops the address for a moment; on the same lease the SSH session usually survives,
    but callers should treat a lost session as "verify", not as failure.
    """
    iface = validate_interface(interface)
    release = quote_posix(tools.privileged(["dhclient", "-r", iface], OsFlavor.LINUX))
    renew = quote_posix(tools.privileged(["dhclient", iface], OsFlavor.LINUX))
    return f"{release} && {renew}"


def check_linux_renew(exit_status: int, stdout: str, stderr: str) -> RenewOutcome:
    text = f"{stdout}\n{stderr}"
    low = text.lower()
    if exit_status == 0:
        return RenewOutcome(True, None, "dhclient renewed the lease")
    if "sudo:" in low and ("password is required" in low or "terminal is required" in low
                           or "not in the sudoers" in low or "not allowed" in low):
        return RenewOutcome(False, Cause.AUTH_FAILED, "sudo refused to run dhclient without a password")
    if "permission denied" in low:
        return RenewOutcome(False, Cause.AUTH_FAILED, "dhclient lacks root rights (permission denied)")
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    return RenewOutcome(False, Cause.UNKNOWN, f"dhclient exited {exit_status}: {last[:200]}")


@dataclass(frozen=True)
class ResolvConf:
    domain: str
    search: tuple[str, ...]
    nameservers: tuple[str, ...]
    os_suffix: str  # what the resolver appends first: the later of `domain` and `search` wins
    problems: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> ResolvConf:
    domain, search, servers, problems = "", [], [], []
    os_suffix = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        word, *args = line.split()
        if word == "domain" and args:
            domain = lenient_suffix(args[0], "resolv.conf domain", problems)
            search = [domain] if domain else []
            os_suffix = domain
        elif word == "search" and args:
            search = [lenient_suffix(a, "resolv.conf search", problems) for a in args]
            os_suffix = search[0] if search else ""
        elif word == "nameserver" and args:
            servers.append(args[0])
    return ResolvConf(domain, tuple(search), tuple(servers), os_suffix, tuple(problems))


def parse_hostname_domain(text: str) -> str:
    """``hostname -d``: the DNS domain, or an empty line when there is none."""
    first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return normalize_dns_name(first_line)


# --------------------------------------------------------------------------------------------------
# Per-flavor table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FlavorOps:
    renew: Callable[[str, HostTools], str]
    read_os_suffix: str
    parse_os_suffix: Callable[[str], str]
    check_renew: Callable[[int, str, str], RenewOutcome]


_OPS: dict[OsFlavor, _FlavorOps] = {
    OsFlavor.WINDOWS: _FlavorOps(
        renew=lambda interface, tools: quote_windows(["ipconfig", "/renew"]),
        read_os_suffix=quote_windows(["ipconfig", "/all"]),
        parse_os_suffix=lambda stdout: parse_ipconfig(stdout).dhcp_suffix,
        check_renew=check_windows_renew,
    ),
    OsFlavor.LINUX: _FlavorOps(
        renew=lambda interface, tools: linux_renew_command(interface, tools),
        read_os_suffix=quote_posix(["cat", "/etc/resolv.conf"]),
        parse_os_suffix=lambda stdout: parse_resolv_conf(stdout).os_suffix,
        check_renew=check_linux_renew,
    ),
}


def renew_command(flavor: OsFlavor | str, *, interface: str = "eth0", tools: HostTools = DEFAULT_TOOLS) -> str:
    """The DHCP renew that, while AMT's window is open, also hands AMT the scope's option 15.
    (Windows renews every adapter: adapter names hold spaces, which the Windows whitelist refuses.)"""
    return _OPS[OsFlavor(flavor)].renew(interface, tools)


def read_os_suffix_command(flavor: OsFlavor | str) -> str:
    return _OPS[OsFlavor(flavor)].read_os_suffix


def parse_os_suffix(flavor: OsFlavor | str, stdout: str) -> str:
    """The DHCP-provided (option 15) suffix as the OS holds it, normalized; "" when none."""
    return _OPS[OsFlavor(flavor)].parse_os_suffix(stdout)


def check_renew(flavor: OsFlavor | str, exit_status: int, stdout: str, stderr: str) -> RenewOutcome:
    return _OPS[OsFlavor(flavor)].check_renew(exit_status, stdout, stderr)


def hostname_domain_command() -> str:
    return quote_posix(["hostname", "-d"])
