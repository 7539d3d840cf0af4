"""Linux clients: interfaces from ``ip -j addr``, which stack manages the interface AMT shares
(NetworkManager, systemd-networkd (+ systemd-resolved), dhcpcd, ISC dhclient), the option-15 suffix as
that stack holds it, and the renew through that stack. No I/O here.

Formats and sources: /work/research/clients.md §4 (resolvectl, resolv.conf stub, nmcli -t, networkctl,
dhcpcd -U, dhclient leases, ip -j).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from tasks.adapters.commands import DEFAULT_TOOLS, HostTools, OsFlavor, lenient_suffix, quote_posix, validate_interface
from tasks.adapters.netfacts import NetAdapter, NetFacts, normalize_mac

NETWORKMANAGER = "NetworkManager"
NETWORKD = "systemd-networkd"
DHCPCD = "dhcpcd"
DHCLIENT = "dhclient"

# --------------------------------------------------------------------------------------------------
# One probe: interfaces, resolv.conf, resolved's per-link domains, NM's and networkd's device lists
# --------------------------------------------------------------------------------------------------

_SECTIONS = (
    ("ip", ["ip", "-j", "addr", "show"]),
    ("resolv", ["cat", "/etc/resolv.conf"]),
    ("resolvectl", ["resolvectl", "--no-pager", "domain"]),
    ("nmcli", ["nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device"]),
    ("networkctl", ["networkctl", "--no-pager", "--no-legend", "list"]),
)


def probe_command() -> str:
    """One SSH round trip; each part is preceded by a marker line. ``;`` so a missing tool (no
    NetworkManager, no resolved) leaves its section empty instead of stopping the rest."""
    parts = []
    for name, argv in _SECTIONS:
        parts += [quote_posix(["echo", f"@@{name}"]), quote_posix(argv)]
    return " ; ".join(parts)


def split_probe(stdout: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in stdout.replace("\r\n", "\n").split("\n"):
        if line.startswith("@@") and line[2:].strip() in {n for n, _ in _SECTIONS}:
            current = line[2:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def parse_ip_json(text: str) -> list[NetAdapter]:
    """``ip -j addr``: always an array; links without L2 have no ``address``; ``dynamic`` marks DHCP."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("ip -j addr did not print an array")
    out = []
    for link in data:
        if not isinstance(link, dict) or link.get("link_type") == "loopback":
            continue
        infos = [i for i in link.get("addr_info") or [] if isinstance(i, dict)]
        v4 = [i for i in infos if i.get("family") == "inet" and isinstance(i.get("local"), str)]
        out.append(NetAdapter(
            name=str(link.get("ifname") or ""),
            mac=normalize_mac(link.get("address")),
            ipv4=tuple(i["local"] for i in v4),
            dhcp_enabled=True if any(i.get("dynamic") for i in v4) else (False if v4 else None),
            index=link.get("ifindex") if isinstance(link.get("ifindex"), int) else None,
            connected=link.get("operstate") not in ("DOWN",) and bool(v4),
        ))
    return out


@dataclass(frozen=True)
class ResolvConf:
    domain: str
    search: tuple[str, ...]
    nameservers: tuple[str, ...]
    os_suffix: str  # what the resolver appends first: the later of `domain` and `search` wins
    problems: tuple[str, ...] = ()

    @property
    def resolved_stub(self) -> bool:
        """systemd-resolved's stub: the real per-link data lives in resolved, not here."""
        return self.nameservers == ("127.0.0.53",) or "127.0.0.53" in self.nameservers


def parse_resolv_conf(text: str) -> ResolvConf:
    """resolv.conf(5): the last ``domain``/``search`` line wins; ``search .`` means no search domains."""
    domain, search, servers, problems = "", [], [], []
    os_suffix = ""
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        word, *args = line.split()
        if word == "domain" and args:
            domain = "" if args[0] == "." else lenient_suffix(args[0], "resolv.conf domain", problems)
            search = [domain] if domain else []
            os_suffix = domain
        elif word == "search" and args:
            search = [s for s in (lenient_suffix(a, "resolv.conf search", problems) for a in args if a != ".") if s]
            os_suffix = search[0] if search else ""
        elif word == "nameserver" and args:
            servers.append(args[0])
    return ResolvConf(domain, tuple(search), tuple(servers), os_suffix, tuple(problems))


_RESOLVECTL_LINK = re.compile(r"^Link\s+(?P<idx>\d+)\s+\((?P<name>[^)]*)\):(?P<rest>.*)$")


def parse_resolvectl_domain(text: str) -> dict[str, tuple[str, ...]]:
    """``resolvectl domain``: ``Link 2 (eth0): a.example ~route.example`` (resolvectl.c
    status_print_strv_ifindex); route-only ``~`` domains are not search suffixes."""
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        m = _RESOLVECTL_LINK.match(line.strip())
        if m:
            problems: list[str] = []
            out[m["name"]] = tuple(s for s in (lenient_suffix(d, "resolvectl domain", problems)
                                               for d in m["rest"].split() if not d.startswith("~")) if s)
    return out


_UNESCAPED_COLON = re.compile(r"(?<!\\):")


def _terse_fields(line: str) -> list[str]:
    """nmcli -t: ':' separates fields; ``\\:`` and ``\\\\`` are escapes inside values."""
    return [f.replace("\\:", ":").replace("\\\\", "\\") for f in _UNESCAPED_COLON.split(line)]


def parse_nmcli_devices(text: str) -> dict[str, str]:
    """``nmcli -t -f DEVICE,TYPE,STATE,CONNECTION device`` -> {device: state}."""
    out = {}
    for line in text.splitlines():
        f = _terse_fields(line.strip())
        if len(f) >= 3 and f[0]:
            out[f[0]] = f[2]
    return out


def parse_networkctl_list(text: str) -> dict[str, str]:
    """``networkctl --no-legend list``: ``IDX LINK TYPE OPERATIONAL SETUP`` -> {link: setup}."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0].isdigit():
            out[f[1]] = f[4]
    return out


def parse_probe(stdout: str) -> tuple[NetFacts, dict[str, str]]:
    """NetFacts (adapters with their manager where the probe already tells) plus the raw sections."""
    sections = split_probe(stdout)
    source = "ip -j addr"
    if "ip" not in sections:
        return NetFacts.unreadable(source, "the probe printed no interface section", stdout), sections
    try:
        adapters = parse_ip_json(sections["ip"].strip())
    except (ValueError, json.JSONDecodeError) as exc:
        return NetFacts.unreadable(source, f"ip -j addr is not readable JSON ({exc})", sections["ip"]), sections
    if not adapters:
        return NetFacts.unreadable(source, "ip -j addr listed no interface", sections["ip"]), sections
    resolv = parse_resolv_conf(sections.get("resolv", ""))
    nm = parse_nmcli_devices(sections.get("nmcli", ""))
    nd = parse_networkctl_list(sections.get("networkctl", ""))
    links = parse_resolvectl_domain(sections.get("resolvectl", ""))
    out = []
    for a in adapters:
        manager = ""
        if nm.get(a.name, "").startswith("connected"):
            manager = NETWORKMANAGER
        elif nd.get(a.name) in ("configured", "configuring"):
            manager = NETWORKD
        suffix = links[a.name][0] if links.get(a.name) else ""
        out.append(replace(a, manager=manager, suffix=suffix))
    search = resolv.search if not resolv.resolved_stub or resolv.search else ()
    return NetFacts(source=source, adapters=tuple(out), search_list=search, problems=resolv.problems), sections


# --------------------------------------------------------------------------------------------------
# The stack's own view of the chosen interface
# --------------------------------------------------------------------------------------------------


def detail_command(adapter: NetAdapter) -> str:
    """What the managing stack holds for the interface (option 15 among it). With no NetworkManager or
    networkd claim, ``dhcpcd -U`` tells whether dhcpcd holds a lease; otherwise it is dhclient."""
    iface = validate_interface(adapter.name)
    if adapter.manager == NETWORKMANAGER:
        return quote_posix(["nmcli", "-t", "-f", "IP4.DOMAIN,DHCP4.OPTION", "device", "show", iface])
    if adapter.manager == NETWORKD:
        if adapter.index is None:
            return quote_posix(["networkctl", "--no-pager", "status", iface])
        return quote_posix(["cat", f"/run/systemd/netif/leases/{int(adapter.index)}"])
    return quote_posix(["dhcpcd", "-U", iface])


def _dhcpcd_lease(text: str) -> dict[str, str]:
    """``dhcpcd -U``: ``key='value'`` lines (cloud-init TestDhcpcd, Facter)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(?:new_)?([a-z0-9_]+)=(?:'(.*)'|(\S*))\s*$", line)
        if m:
            out[m[1]] = m[2] if m[2] is not None else m[3]
    return out


def apply_detail(adapter: NetAdapter, exit_status: int, stdout: str, resolv: ResolvConf,
                 problems: list[str]) -> NetAdapter:
    """The adapter with its manager settled and its option-15 suffix as that manager holds it."""
    if adapter.manager == NETWORKMANAGER:
        dhcp_domain, ip4_domain = "", ""
        for line in stdout.splitlines():
            f = _terse_fields(line.strip())
            if len(f) < 2:
                continue
            key, value = f[0], ":".join(f[1:]).strip()
            if key.startswith("DHCP4.OPTION") and value.startswith("domain_name ="):
                dhcp_domain = value.split("=", 1)[1].strip()
            elif key.startswith("IP4.DOMAIN") and not ip4_domain:
                ip4_domain = value
        chosen = dhcp_domain or ip4_domain
        return replace(adapter, suffix=lenient_suffix(chosen, "NetworkManager domain", problems) if chosen else adapter.suffix)
    if adapter.manager == NETWORKD:
        m = re.search(r"^DOMAINNAME=(\S+)", stdout, re.M)
        if m:
            return replace(adapter, suffix=lenient_suffix(m[1], "networkd lease DOMAINNAME", problems))
        m = re.search(r"Search Domains:\s*(\S+)", stdout)
        if m:
            return replace(adapter, suffix=lenient_suffix(m[1], "networkctl Search Domains", problems))
        return adapter  # resolvectl's per-link domain, if the probe had one
    lease = _dhcpcd_lease(stdout) if exit_status == 0 else {}
    if "ip_address" in lease or "domain_name" in lease:
        return replace(adapter, manager=DHCPCD,
                       suffix=lenient_suffix(lease.get("domain_name", "").split(" ")[0], "dhcpcd domain_name", problems))
    # ISC dhclient writes option 15 into resolv.conf (dhclient-script); under the resolved stub,
    # resolved's per-link domain (already on the adapter) is the one to trust
    suffix = adapter.suffix if resolv.resolved_stub else resolv.os_suffix
    return replace(adapter, manager=DHCLIENT, suffix=suffix)


# --------------------------------------------------------------------------------------------------
# Renew through the managing stack
# --------------------------------------------------------------------------------------------------


def renew_argvs(manager: str, interface: str) -> list[list[str]]:
    """The renew each stack documents: ``networkctl renew IFACE`` (systemd >= 246), ``dhcpcd -n IFACE``
    (rebind), ``nmcli device connect IFACE`` (re-activates the device: a new DHCP exchange),
    ``dhclient -r IFACE`` then ``dhclient IFACE`` (dhclient asks for option 15 only on a new lease)."""
    iface = validate_interface(interface)
    if manager == NETWORKMANAGER:
        return [["nmcli", "device", "connect", iface]]
    if manager == NETWORKD:
        return [["networkctl", "renew", iface]]
    if manager == DHCPCD:
        return [["dhcpcd", "-n", iface]]
    return [["dhclient", "-r", iface], ["dhclient", iface]]


def renew_command(manager: str, interface: str = "eth0", tools: HostTools = DEFAULT_TOOLS) -> str:
    return " && ".join(quote_posix(tools.privileged(argv, OsFlavor.LINUX)) for argv in renew_argvs(manager, interface))


@dataclass(frozen=True)
class LinuxRenew:
    ok: bool
    auth: bool  # refused for lack of rights
    detail: str


def check_renew(manager: str, exit_status: int, stdout: str, stderr: str) -> LinuxRenew:
    tool = manager or DHCLIENT
    text = f"{stdout}\n{stderr}"
    low = text.lower()
    if exit_status == 0:
        return LinuxRenew(True, False, f"{tool} renewed the lease")
    if "sudo:" in low and ("password is required" in low or "terminal is required" in low
                           or "not in the sudoers" in low or "not allowed" in low):
        return LinuxRenew(False, True, f"sudo refused to run {tool} without a password")
    if "permission denied" in low or "access denied" in low or "not authorized" in low:
        return LinuxRenew(False, True, f"{tool} lacks root rights ({low.strip().splitlines()[-1][:120]})")
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    return LinuxRenew(False, False, f"{tool} exited {exit_status}: {last[:200]}")
