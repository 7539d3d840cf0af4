"""ISC dhclient's lease database, read for the option-15 suffix of the lease dhclient holds. No I/O here.

Why not resolv.conf: dhclient-script writes ``search`` from option 119 (domain-search) when the server
sends it, and only otherwise from option 15 (Debian's make_resolv_conf: ``if [ -n "$new_domain_search" ]
... elif [ -n "$new_domain_name" ]``; dhcpcd's 20-resolv.conf hook does the same), so resolv.conf can name a
119 domain while AMT takes its suffix from option 15.

dhclient.leases(5): "a free-form ASCII file containing one valid declaration per lease. If more than one
declaration appears for a given lease, the last one in the file is used. The file is written as a log";
each declaration is ``lease { interface "eth0"; fixed-address A; option NAME VALUE; renew ...; }``
(dhclient.conf(5)). The file is the one given with ``-lf`` (ifupdown: /var/lib/dhcp/dhclient.IFACE.leases),
else DBDIR/dhclient.leases (Debian /var/lib/dhcp, Red Hat /var/lib/dhclient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tasks.adapters.commands import lenient_suffix, quote_posix, validate_interface
from tasks.adapters.netfacts import NetAdapter, is_ipv4

DEFAULT_FILES = ("/var/lib/dhcp/dhclient.leases", "/var/lib/dhclient/dhclient.leases")


@dataclass(frozen=True)
class Lease:
    interface: str
    address: str
    options: dict[str, str]

    @property
    def domain_name(self) -> str | None:
        """Option 15 as the server sent it (None: the lease holds no option 15)."""
        return self.options.get("domain-name")


def lease_files(adapter: NetAdapter) -> tuple[str, ...]:
    args = list(adapter.client_args)
    for i, arg in enumerate(args[:-1]):
        if arg == "-lf":
            return (args[i + 1],)
    return DEFAULT_FILES


def command(adapter: NetAdapter) -> str:
    validate_interface(adapter.name)
    return quote_posix(["cat", *lease_files(adapter)])


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
        value = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), value)
        value = re.sub(r"\\(.)", r"\1", value)
    return value


def _statements(body: str) -> list[str]:
    """``;``-separated statements, ``;`` inside quotes kept."""
    out, current, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    return [s for s in out if s]


def _blocks(text: str) -> list[str]:
    """The bodies of the ``lease { ... }`` declarations, in file order (braces counted, quotes skipped)."""
    out = []
    for m in re.finditer(r"(?m)^\s*lease\s*\{", text):
        depth, i, quoted = 1, m.end(), False
        while i < len(text) and depth:
            ch = text[i]
            if ch == '"' and text[i - 1] != "\\":
                quoted = not quoted
            elif not quoted:
                depth += {"{": 1, "}": -1}.get(ch, 0)
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def parse(text: str) -> list[Lease]:
    leases = []
    for body in _blocks(text or ""):
        interface, address, options = "", "", {}
        for stmt in _statements(body):
            word, _, rest = stmt.partition(" ")
            if word == "interface":
                interface = _unquote(rest)
            elif word == "fixed-address":
                address = rest.strip()
            elif word == "option":
                name, _, value = rest.strip().partition(" ")
                quoted = re.findall(r'"(?:[^"\\]|\\.)*"', value)  # a list: "a.example.", "b.example."
                options[name] = ", ".join(_unquote(q) for q in quoted) if quoted else value.strip()
        leases.append(Lease(interface, address, options))
    return leases


def current(text: str, interface: str) -> Lease | None:
    """The lease dhclient holds for ``interface``: the last declaration for it in the file."""
    mine = [lease for lease in parse(text) if lease.interface in (interface, "")]
    return mine[-1] if mine else None


def apply(adapter: NetAdapter, exit_status: int, stdout: str, problems: list[str]) -> NetAdapter:
    """The adapter with option 15 and option 54 of its current dhclient lease; unchanged (and a note in
    ``problems``) when the file holds no lease for it or the lease is not for the address it holds."""
    lease = current(stdout, adapter.name)
    if lease is None:
        problems.append(f"{adapter.name}: no dhclient lease for it in {', '.join(lease_files(adapter))} "
                        f"(exit {exit_status}); suffix from resolv.conf")
        return adapter
    if is_ipv4(lease.address) and adapter.ipv4 and lease.address not in adapter.ipv4:
        problems.append(f"{adapter.name}: the last dhclient lease is for {lease.address}, not for "
                        f"{', '.join(adapter.ipv4)} (a stale lease file); suffix from resolv.conf")
        return adapter
    server = lease.options.get("dhcp-server-identifier", "")
    return replace(adapter, suffix=lenient_suffix((lease.domain_name or "").split(" ")[0],
                                                  "dhclient lease option domain-name", problems),
                   dhcp_server=server if is_ipv4(server) else adapter.dhcp_server)
