"""The host-interface tool that sets AMT's PKI DNS suffix from the OS (MEI SET_DNS_SUFFIX). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.adapters.commands import (
    DEFAULT_TOOLS,
    SUFFIX_PLACEHOLDER,
    HostTools,
    OsFlavor,
    lenient_suffix,
    quote_argv,
    suffix_arg,
)
from tasks.adapters.rpc_cli import _json_status, _text
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_dns_name

# --------------------------------------------------------------------------------------------------
# Host-interface tool (MEI SET_DNS_SUFFIX)
# --------------------------------------------------------------------------------------------------


def set_dns_suffix_command(suffix: str, flavor: OsFlavor | str = OsFlavor.LINUX,
                           tools: HostTools = DEFAULT_TOOLS) -> str:
    """Write AMT's trusted (PKI) suffix from the OS; needs no open window."""
    if tools.hi_set is None:
        raise InvalidValue("amt_write via host interface: no host_tools.hi_set configured")
    value = suffix_arg(suffix)
    argv = [value if token == SUFFIX_PLACEHOLDER else token for token in tools.hi_set]
    return quote_argv(tools.privileged(argv, flavor), flavor)


def get_dns_suffix_command(flavor: OsFlavor | str = OsFlavor.LINUX, tools: HostTools = DEFAULT_TOOLS) -> str:
    if tools.hi_get is None:
        raise InvalidValue("host-interface read: no host_tools.hi_get configured")
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
    return AmtSuffixes(lenient_suffix(data.get("trustedDnsSuffix"), "trusted DNS suffix", problems),
                       lenient_suffix(data.get("dhcpDnsSuffix"), "DHCP DNS suffix", problems),
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
        got = lenient_suffix(data.get("dnsSuffix"), "dnsSuffix", problems)
        if got == want:
            return SuffixWriteOutcome(True, None, got, f"trusted DNS suffix set to {got}")
        return SuffixWriteOutcome(False, Cause.UNKNOWN, got,
                                  f"tool reported success but AMT holds {got!r}, not {want!r}")
    if "sudo:" in stderr.lower() and "password" in stderr.lower():
        return SuffixWriteOutcome(False, Cause.AUTH_FAILED, "", "sudo refused to run the host-interface tool")
    return SuffixWriteOutcome(False, Cause.UNKNOWN, "",
                              f"set-dns-suffix failed (exit {exit_status}): {message[:300] or 'no message'}")
