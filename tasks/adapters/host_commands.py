"""Commands the migration runs on hosts, and parsers for what they print. No I/O here.

Every command is built from an argv list whose data-derived parts (suffixes, names, URLs, interface
names) are validated first, then quoted for the target's shell. The parsers are written against the
real tools' output (ipconfig, resolv.conf, rpc-go, the site's host-interface tool), because the
migration's verdicts are only as good as what it reads back.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_dns_name, normalize_host_name


class OsFlavor(StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"


# --------------------------------------------------------------------------------------------------
# Quoting
# --------------------------------------------------------------------------------------------------

#: Characters a data-derived argument may hold on any target: no shell syntax, no whitespace, no quotes.
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/=@+,-]+$")
#: cmd.exe has no reliable quoting, so Windows tokens are restricted to characters cmd never interprets
#: (no & | < > ^ % ! ( ) " ' ; whitespace). The backslash is allowed for paths.
_WINDOWS_TOKEN = re.compile(r"^[A-Za-z0-9._:/\\=@+,-]+$")


def safe_token(value: str, what: str = "argument") -> str:
    """Return ``value`` if it holds no shell metacharacter or whitespace; raise InvalidValue otherwise.

    Used for data that reaches a remote command line, on top of the value's own validation, so a
    validator bug cannot become a shell injection.
    """
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{what} must be non-empty text")
    if not _SAFE_TOKEN.match(value):
        raise InvalidValue(f"{what} {value[:60]!r} holds characters not allowed on a remote command line")
    return value


def quote_posix(argv: Sequence[str]) -> str:
    """Quote an argv list for a POSIX shell (what OpenSSH's sshd hands the command to on Linux)."""
    argv = _check_argv(argv)
    for arg in argv:
        if "\x00" in arg:
            raise InvalidValue("a command argument holds a NUL byte")
    return shlex.join(argv)


def quote_windows(argv: Sequence[str]) -> str:
    """Join an argv list for cmd.exe (Win32-OpenSSH's default shell) without quoting.

    cmd.exe's quoting rules differ per program and `%`/`!` expand even inside quotes, so instead of
    quoting we allow only tokens made of characters cmd passes through untouched.
    """
    argv = _check_argv(argv)
    for arg in argv:
        if not _WINDOWS_TOKEN.match(arg):
            raise InvalidValue(f"Windows command token {arg[:60]!r} holds characters outside the allowed set")
    return " ".join(argv)


def quote_argv(argv: Sequence[str], flavor: OsFlavor | str = OsFlavor.LINUX) -> str:
    """Quote ``argv`` for the target's shell."""
    flavor = OsFlavor(flavor)
    return quote_windows(argv) if flavor is OsFlavor.WINDOWS else quote_posix(argv)


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, (str, bytes)) or not argv:
        raise InvalidValue("a command must be a non-empty list of arguments")
    out = []
    for arg in argv:
        if not isinstance(arg, str):
            raise InvalidValue(f"command arguments must be text, got {type(arg).__name__}")
        out.append(arg)
    return out


# --------------------------------------------------------------------------------------------------
# Validation of data that goes onto a command line
# --------------------------------------------------------------------------------------------------

_INTERFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$")  # Linux IFNAMSIZ: at most 15 characters
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_URL = re.compile(
    r"^(?P<scheme>wss|https)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?P<path>(?:/[A-Za-z0-9._~-]*)*)$"
)


def validate_interface(name: str) -> str:
    """A Linux interface name (``eth0``, ``enp0s31f6``)."""
    if not isinstance(name, str) or not _INTERFACE.match(name):
        raise InvalidValue(f"interface name {str(name)[:40]!r} is not a valid Linux interface name")
    return name


def validate_profile(name: str) -> str:
    """A provisioning-server profile name: letters, digits, ``._-``."""
    if not isinstance(name, str) or not _PROFILE.match(name):
        raise InvalidValue(f"profile name {str(name)[:70]!r} may hold only letters, digits, '.', '_' and '-'")
    return name


def validate_server_url(url: str) -> str:
    """The provisioning server's activation URL: wss/https, host, optional port and path, nothing else
    (no user info, query or fragment: nothing that could carry a secret or shell syntax)."""
    m = _URL.match(url) if isinstance(url, str) else None
    if not m:
        raise InvalidValue(f"server URL {str(url)[:100]!r} must look like wss://host[:port]/path")
    host = m["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidValue(f"server URL host {host!r} is not an IPv6 address") from None
    else:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            normalize_host_name(host)
    if m["port"] is not None and not 0 < int(m["port"]) < 65536:
        raise InvalidValue(f"server URL port {m['port']} out of range")
    return url


def _suffix_arg(suffix: str) -> str:
    return safe_token(normalize_dns_name(suffix, allow_blank=False), "DNS suffix")


def _norm_suffix(value, what: str, problems: list[str]) -> str:
    """Normalized suffix, or the raw text (lower-cased) plus a note in ``problems`` when it is not a DNS
    name: a host reporting garbage must be visible, but must not hide the rest of its report."""
    if value is None:
        return ""
    text = str(value).strip()
    try:
        return normalize_dns_name(text)
    except InvalidValue as exc:
        problems.append(f"{what}: {exc}")
        return text.lower()


# --------------------------------------------------------------------------------------------------
# Site tools
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostTools:
    """Names of the tools on the hosts; a site may install them under other names or paths.

    ``hi_set`` must hold one ``{suffix}`` token, replaced by the validated suffix. ``linux_privilege``
    prefixes commands that need root on Linux (rpc-go and dhclient talk to the MEI / raw sockets).
    """

    rpc: tuple[str, ...] = ("rpc",)
    hi_set: tuple[str, ...] = ("amt-hi", "set-dns-suffix", "{suffix}", "--json")
    hi_get: tuple[str, ...] = ("amt-hi", "get-dns-suffix", "--json")
    linux_privilege: tuple[str, ...] = ("sudo", "-n")

    def __post_init__(self) -> None:
        for name in ("rpc", "hi_set", "hi_get", "linux_privilege"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            for token in value:
                # the same whitelist as Windows tokens: a tool path may hold backslashes
                if token != "{suffix}" and not _WINDOWS_TOKEN.match(token):
                    raise InvalidValue(f"tool setting {name}: token {token[:60]!r} holds characters not allowed")
        if not self.rpc or not self.hi_get:
            raise InvalidValue("tool settings rpc and hi_get must not be empty")
        if self.hi_set.count("{suffix}") != 1:
            raise InvalidValue("tool setting hi_set must hold exactly one {suffix} token")

    def privileged(self, argv: Sequence[str], flavor: OsFlavor | str) -> list[str]:
        return [*self.linux_privilege, *argv] if OsFlavor(flavor) is OsFlavor.LINUX else list(argv)


DEFAULT_TOOLS = HostTools()


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
            connection_suffix=_norm_suffix(first(fields, "Connection-specific DNS Suffix"),
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
    search = tuple(_norm_suffix(s, "DNS suffix search list", problems)
                   for s in all_values(top, "DNS Suffix Search List"))
    return IpConfig(
        host_name=first(top, "Host Name"),
        primary_suffix=_norm_suffix(first(top, "Primary Dns Suffix"), "primary DNS suffix", problems),
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
            domain = _norm_suffix(args[0], "resolv.conf domain", problems)
            search = [domain] if domain else []
            os_suffix = domain
        elif word == "search" and args:
            search = [_norm_suffix(a, "resolv.conf search", problems) for a in args]
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


# --------------------------------------------------------------------------------------------------
# rpc-go
# --------------------------------------------------------------------------------------------------

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

    @property
    def pre_provisioning(self) -> bool | None:
        """True before activation, False once activated, None when the output did not say."""
        mode, state = self.control_mode.lower(), self.provisioning_state.lower()
        if mode:
            return mode.startswith("pre-provisioning")
        if state:
            return state.startswith("pre")
        return None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _build_amtinfo(values: dict, wired: dict) -> AmtInfo:
    problems: list[str] = []
    mode = values.get("controlMode")
    state = values.get("provisioningState")
    if isinstance(mode, int) and not isinstance(mode, bool):
        mode = _CONTROL_MODES.get(mode, str(mode))
    if isinstance(state, int) and not isinstance(state, bool):
        state = _PROVISIONING_STATES.get(state, str(state))
    return AmtInfo(
        version=_text(values.get("amt")),
        build_number=_text(values.get("buildNumber")),
        sku=_text(values.get("sku")),
        uuid=_text(values.get("uuid")),
        control_mode=_text(mode),
        provisioning_state=_text(state),
        dns_suffix=_norm_suffix(values.get("dnsSuffix"), "AMT DNS suffix", problems),
        dns_suffix_os=_norm_suffix(values.get("dnsSuffixOS"), "OS DNS suffix", problems),
        hostname_os=_text(values.get("hostnameOS")),
        wired_adapter=dict(wired),
        problems=tuple(problems),
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
    return _build_amtinfo(data, wired if isinstance(wired, dict) else {})


_TEXT_ROWS = {"version": "amt", "build number": "buildNumber", "sku": "sku", "uuid": "uuid",
              "control mode": "controlMode", "provisioning state": "provisioningState",
              "dns suffix": "dnsSuffix", "dns suffix (os)": "dnsSuffixOS", "hostname (os)": "hostnameOS"}


def parse_amtinfo_text(text: str) -> AmtInfo:
    """``rpc amtinfo`` text form: ``Label<tabs or spaces>: value`` rows, then ``---Wired Adapter---``."""
    values: dict[str, str] = {}
    wired: dict[str, str] = {}
    section = "main"
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        if line.startswith("---") and line.endswith("---"):
            section = "wired" if "wired" in line.lower() else "other"
            continue
        label, sep, value = line.partition(":")
        if not sep:
            continue
        label, value = label.strip(), value.strip()
        if section == "main" and label.lower() in _TEXT_ROWS:
            values[_TEXT_ROWS[label.lower()]] = value
        elif section == "wired":
            wired[label] = value
    return _build_amtinfo(values, wired)


def parse_amtinfo(stdout: str) -> AmtInfo:
    """Either form of ``rpc amtinfo``."""
    return parse_amtinfo_json(stdout) if stdout.lstrip().startswith("{") else parse_amtinfo_text(stdout)


def amtinfo_command(flavor: OsFlavor | str, tools: HostTools = DEFAULT_TOOLS, *, as_json: bool = True) -> str:
    argv = tools.privileged([*tools.rpc, "amtinfo", *(["--json"] if as_json else [])], flavor)
    return quote_argv(argv, flavor)


def activate_command(server_url: str, profile: str, suffix: str | None = None, *,
                     flavor: OsFlavor | str = OsFlavor.LINUX, tools: HostTools = DEFAULT_TOOLS) -> str:
    """``rpc activate -u wss://SERVER/activate -profile NAME [-d SUFFIX] --json``.

    ``-d`` overrides the suffix rpc-go reports to the server; AMT itself still checks the suffix it
    holds, so passing it does not fix a mismatch on its own.
    """
    argv = [*tools.rpc, "activate", "-u", validate_server_url(server_url), "-profile", validate_profile(profile)]
    if suffix is not None and normalize_dns_name(suffix):
        argv += ["-d", _suffix_arg(suffix)]
    argv.append("--json")
    return quote_argv(tools.privileged(argv, flavor), flavor)


#: rpc-go exit codes we know (internal/utils constants), with the cause each implies on its own.
RPC_EXIT_CODES: dict[int, tuple[str, Cause]] = {
    1: ("rpc lacks administrator/root rights", Cause.UNKNOWN),
    2: ("HECI (MEI) driver not detected", Cause.UNKNOWN),
    3: ("AMT not detected", Cause.UNKNOWN),
    4: ("AMT not ready", Cause.UNKNOWN),
    10: ("generic failure", Cause.UNKNOWN),
    20: ("missing or incorrect URL", Cause.UNKNOWN),
    21: ("missing or incorrect profile", Cause.SERVER_ERROR),
    22: ("server certificate verification failed", Cause.SERVER_ERROR),
    24: ("missing DNS suffix", Cause.SUFFIX_BLANK),
    28: ("incorrect command line parameters", Cause.UNKNOWN),
    70: ("provisioning server authentication failed", Cause.SERVER_ERROR),
    71: ("connection to AMT (LMS) failed", Cause.UNKNOWN),
    100: ("AMT authentication failed", Cause.AUTH_FAILED),
    101: ("WS-MAN message error", Cause.UNKNOWN),
    102: ("activation failed", Cause.UNKNOWN),
    128: ("certificate root hash not trusted by AMT", Cause.UNKNOWN),
}

_MESSAGE_RULES: tuple[tuple[re.Pattern, Cause, str], ...] = (
    (re.compile(r"missing dns suffix", re.I), Cause.SUFFIX_BLANK, "suffix_blank"),
    (re.compile(r"does not match list of available amt domain suffixes", re.I), Cause.SUFFIX_MISMATCH,
     "suffix_mismatch"),
    (re.compile(r"connection refused|no such host|i/o timeout|network is unreachable|no route to host|"
                r"connection reset|bad handshake|dial tcp|unexpected eof|tls:|x509:|"
                r"\b50[234]\b|service unavailable|unable to connect", re.I),
     Cause.SERVER_ERROR, "server_unreachable"),
)

_LOGRUS = re.compile(r'level=(?P<level>\w+)\s+msg="(?P<msg>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ActivationOutcome:
    ok: bool
    exit_status: int
    cause: Cause | None  # None when ok
    reason: str  # short code: ok, suffix_blank, suffix_mismatch, server_unreachable, exit_<n>, ...
    message: str  # rpc-go's own message (JSON "message" or the last error log line)
    evidence: str  # what the verdict rests on, for the report


def parse_logrus(stderr: str) -> list[tuple[str, str]]:
    """``time="..." level=error msg="..."`` lines as (level, message)."""
    out = []
    for m in _LOGRUS.finditer(stderr):
        out.append((m["level"].lower(), re.sub(r"\\(.)", r"\1", m["msg"])))
    return out


def _json_status(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
    try:
        data = json.loads(stdout)
        return data if isinstance(data, dict) else {}
    except json.JSONDecodeError:
        return {}


def map_activation(exit_status: int, stdout: str, stderr: str) -> ActivationOutcome:
    """Turn ``rpc activate --json``'s exit status and output into a verdict with a cause.

    Exit 10 (and 102) only say "failed": the server's message is what tells a suffix mismatch from a
    blank suffix or an unreachable server, so messages are classified before falling back to the
    exit-code table.
    """
    data = _json_status(stdout)
    message = _text(data.get("message"))
    logs = parse_logrus(stderr)
    errors = [msg for level, msg in logs if level in ("error", "fatal", "panic")]
    if not message and errors:
        message = errors[-1]
    status = _text(data.get("status")).lower()
    evidence_parts = [f"exit {exit_status}"]
    if status:
        evidence_parts.append(f"status {status}")
    if message:
        evidence_parts.append(f"message: {message}")
    evidence_parts += [f"log: {m}" for m in errors if m != message]
    evidence = "; ".join(evidence_parts)[:1000]

    if exit_status == 0 and status != "failed":
        return ActivationOutcome(True, 0, None, "ok", message, evidence)
    if exit_status == 0:
        return ActivationOutcome(False, 0, Cause.UNKNOWN, "failed_with_exit_0", message, evidence)

    described, code_cause = RPC_EXIT_CODES.get(exit_status, (f"exit {exit_status}", Cause.UNKNOWN))
    if exit_status in (24, 128):
        reason = "suffix_blank" if exit_status == 24 else "certificate_hash_not_trusted"
        return ActivationOutcome(False, exit_status, code_cause, reason, message or described, evidence)
    text = " ".join([message, *errors])
    for pattern, cause, reason in _MESSAGE_RULES:
        if pattern.search(text):
            return ActivationOutcome(False, exit_status, cause, reason, message or described, evidence)
    return ActivationOutcome(False, exit_status, code_cause, f"exit_{exit_status}", message or described, evidence)


# --------------------------------------------------------------------------------------------------
# Host-interface tool (MEI SET_DNS_SUFFIX)
# --------------------------------------------------------------------------------------------------


def set_dns_suffix_command(suffix: str, flavor: OsFlavor | str = OsFlavor.LINUX,
                           tools: HostTools = DEFAULT_TOOLS) -> str:
    """Write AMT's trusted (PKI) suffix from the OS; needs no open window."""
    value = _suffix_arg(suffix)
    argv = [value if token == "{suffix}" else token for token in tools.hi_set]
    return quote_argv(tools.privileged(argv, flavor), flavor)


def get_dns_suffix_command(flavor: OsFlavor | str = OsFlavor.LINUX, tools: HostTools = DEFAULT_TOOLS) -> str:
    return quote_argv(tools.privileged(list(tools.hi_get), flavor), flavor)


@dataclass(frozen=True)
class AmtSuffixes:
    trusted: str
    dhcp: str
    problems: tuple[str, ...] = ()

    @property
    def effective(self) -> str:
        """The suffix AMT checks: the trusted one when set, else the DHCP one."""
        return self.trusted or self.dhcp


def parse_get_dns_suffix(stdout: str) -> AmtSuffixes:
    data = _json_status(stdout)
    if not data or not ({"trustedDnsSuffix", "dhcpDnsSuffix"} & data.keys()):
        raise InvalidValue("get-dns-suffix output holds neither trustedDnsSuffix nor dhcpDnsSuffix")
    problems: list[str] = []
    return AmtSuffixes(_norm_suffix(data.get("trustedDnsSuffix"), "trusted DNS suffix", problems),
                       _norm_suffix(data.get("dhcpDnsSuffix"), "DHCP DNS suffix", problems),
                       tuple(problems))


@dataclass(frozen=True)
class SuffixWriteOutcome:
    ok: bool
    cause: Cause | None
    suffix: str  # what the tool says AMT now holds ("" when it did not say)
    detail: str


def check_set_dns_suffix(exit_status: int, stdout: str, stderr: str, expected: str) -> SuffixWriteOutcome:
    """Success only if the tool says so *and* reports the suffix we asked for."""
    want = normalize_dns_name(expected, allow_blank=False)
    data = _json_status(stdout)
    status = _text(data.get("status")).lower()
    message = _text(data.get("message")) or next(
        (ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    if exit_status == 0 and status == "success":
        problems: list[str] = []
        got = _norm_suffix(data.get("dnsSuffix"), "dnsSuffix", problems)
        if got == want:
            return SuffixWriteOutcome(True, None, got, f"trusted DNS suffix set to {got}")
        return SuffixWriteOutcome(False, Cause.UNKNOWN, got,
                                  f"tool reported success but AMT holds {got!r}, not {want!r}")
    if "sudo:" in stderr.lower() and "password" in stderr.lower():
        return SuffixWriteOutcome(False, Cause.AUTH_FAILED, "", "sudo refused to run the host-interface tool")
    return SuffixWriteOutcome(False, Cause.UNKNOWN, "",
                              f"set-dns-suffix failed (exit {exit_status}): {message[:300] or 'no message'}")
