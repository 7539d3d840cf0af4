"""Command lines for hosts: OS flavours, validation of every data-derived token, quoting, site tool names.

No I/O here. Every command is built from an argv list whose data-derived parts (suffixes, names, URLs,
interface names) are validated first, then quoted for the target's shell.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

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


def suffix_arg(suffix: str) -> str:
    return safe_token(normalize_dns_name(suffix, allow_blank=False), "DNS suffix")


def lenient_suffix(value, what: str, problems: list[str]) -> str:
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


#: the placeholder each host-interface command may hold, replaced by the validated suffix
SUFFIX_PLACEHOLDER = "{suffix}"


@dataclass(frozen=True)
class HostTools:
    """The commands run on client computers, from the inventory's ``host_tools:`` section.

    Nothing here is invented: rpc-go is ``rpc`` unless the site says otherwise, and the host-interface
    suffix write/read (``hi_set``/``hi_get``) exist only when configured (no standard tool sets AMT's
    PKI DNS suffix from the OS; see docs/host-tools.md). ``hi_set`` holds exactly one ``{suffix}``
    token, replaced by the validated suffix; every other token is fixed text from the inventory,
    checked against the Windows token whitelist (no shell syntax, no spaces). ``linux_privilege``
    prefixes commands that need root on Linux (rpc-go and the DHCP clients).
    """

    rpc: tuple[str, ...] = ("rpc",)
    hi_set: tuple[str, ...] | None = None
    hi_get: tuple[str, ...] | None = None
    linux_privilege: tuple[str, ...] = ("sudo", "-n")

    def __post_init__(self) -> None:
        for name in ("rpc", "hi_set", "hi_get", "linux_privilege"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str):
                raise InvalidValue(f"tool setting {name} must be a list of arguments, not one string")
            value = tuple(value)
            object.__setattr__(self, name, value)
            for token in value:
                # the same whitelist as Windows tokens: a tool path may hold backslashes
                if not isinstance(token, str) or (token != SUFFIX_PLACEHOLDER and not _WINDOWS_TOKEN.match(token)):
                    raise InvalidValue(f"tool setting {name}: token {str(token)[:60]!r} holds characters not allowed "
                                       "(letters, digits and ._:/\\=@+,- only; one argument per list item)")
                if token != SUFFIX_PLACEHOLDER and "{" in token:
                    raise InvalidValue(f"tool setting {name}: unknown placeholder in {token[:60]!r}")
        if not self.rpc:
            raise InvalidValue("tool setting rpc must not be empty")
        for name in ("hi_set", "hi_get"):
            value = getattr(self, name)
            if value is not None and not value:
                raise InvalidValue(f"tool setting {name} must not be an empty list (leave it out instead)")
        if self.hi_set is not None and self.hi_set.count(SUFFIX_PLACEHOLDER) != 1:
            raise InvalidValue("tool setting hi_set must hold exactly one {suffix} token")
        if self.hi_get is not None and SUFFIX_PLACEHOLDER in self.hi_get:
            raise InvalidValue("tool setting hi_get takes no {suffix}")

    def privileged(self, argv: Sequence[str], flavor: OsFlavor | str) -> list[str]:
        return [*self.linux_privilege, *argv] if OsFlavor(flavor) is OsFlavor.LINUX else list(argv)

    def missing(self, name: str) -> str | None:
        """None when tool ``name`` is configured, else the line the plan and the log show."""
        if getattr(self, name) is None:
            return f"no host_tools.{name} configured"
        return None


DEFAULT_TOOLS = HostTools()

#: the lab's own host-interface tool (lab/shell.py), for lab inventories only
LAB_TOOLS = HostTools(hi_set=("lab-amt-hi", "set-dns-suffix", SUFFIX_PLACEHOLDER, "--json"),
                      hi_get=("lab-amt-hi", "get-dns-suffix", "--json"))
