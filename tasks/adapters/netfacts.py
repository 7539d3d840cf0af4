"""What a client OS says about its network adapters, in one shape for Windows and Linux, and the choice
of the adapter AMT shares with the OS. No I/O here.

AMT's wired interface shares the PHY (and the MAC) of one OS adapter; the OS suffix that matters and the
renew that hands AMT option 15 are those of that adapter, not of "the first DHCP adapter" (virtual
switches, VPNs and Wi-Fi often come first, see /work/research/clients.md §1.1).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

#: evidence keeps at most this much of an output that could not be read
RAW_CAP = 2000

_HEX_MAC = re.compile(r"^[0-9a-f]{12}$")


def normalize_mac(value: object) -> str:
    """``aa:bb:cc:dd:ee:ff`` from the three real spellings (``AA-BB-..`` ipconfig/Get-NetAdapter,
    ``AA:BB:..`` WMI/nmcli, ``aa:bb:..`` ip/networkctl, nmcli's escaped ``AA\\:BB``); "" when the value
    is not a 6-octet MAC (tunnels print 8 octets or nothing)."""
    if not isinstance(value, str):
        return ""
    hexes = re.sub(r"[\s:\-.\\]", "", value).lower()
    if not _HEX_MAC.match(hexes):
        return ""
    return ":".join(hexes[i:i + 2] for i in range(0, 12, 2))


def is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class NetAdapter:
    """One OS network adapter, as far as the source could tell (None = the source did not say)."""

    name: str  # Windows: the ipconfig header or the WMI Description; Linux: the interface name
    mac: str  # normalized, "" when none
    ipv4: tuple[str, ...] = ()
    suffix: str = ""  # connection-specific (DHCP option 15) DNS suffix as the OS holds it
    dhcp_enabled: bool | None = None
    index: int | None = None  # Windows InterfaceIndex / Linux ifindex
    description: str = ""
    connected: bool = True
    manager: str = ""  # Linux: what manages the interface (NetworkManager, systemd-networkd, dhcpcd, dhclient)
    dhcp_server: str = ""  # the lease's server identifier (option 54), where the stack shows it
    client_args: tuple[str, ...] = ()  # Linux dhclient: the options it runs with, reused by the renew

    @property
    def apipa_only(self) -> bool:
        return bool(self.ipv4) and all(a.startswith("169.254.") for a in self.ipv4)


@dataclass(frozen=True)
class NetFacts:
    """Everything read from one host, or why it could not be read (``readable`` False, raw text kept)."""

    source: str  # e.g. "PowerShell Win32_NetworkAdapterConfiguration", "ipconfig /all", "ip -j addr"
    adapters: tuple[NetAdapter, ...] = ()
    search_list: tuple[str, ...] = ()
    primary_suffix: str = ""
    problems: tuple[str, ...] = ()
    readable: bool = True
    raw: str = ""  # capped copy of the output when it could not be read

    @staticmethod
    def unreadable(source: str, why: str, raw: str) -> "NetFacts":
        return NetFacts(source=source, problems=(why,), readable=False, raw=(raw or "")[:RAW_CAP])


@dataclass(frozen=True)
class InterfaceChoice:
    """The adapter AMT shares, and why it was picked (or why none could be)."""

    adapter: NetAdapter | None
    why: str
    facts: NetFacts = field(default_factory=lambda: NetFacts(source=""))

    @property
    def suffix(self) -> str | None:
        """The OS suffix on the chosen adapter; None when nothing was chosen (never a guess), and None when
        the adapter is media disconnected: Windows still shows the suffix of its last lease there, which
        says nothing about what the network hands out now."""
        if self.adapter is None or not self.adapter.connected:
            return None
        return self.adapter.suffix

    def evidence(self) -> dict:
        ev: dict = {"os_facts_source": self.facts.source, "os_interface_why": self.why}
        a = self.adapter
        ev["os_interface"] = a.name if a else None
        ev["os_interface_mac"] = a.mac if a else None
        ev["os_interface_index"] = a.index if a else None
        if a is not None and a.manager:
            ev["os_network_manager"] = a.manager
        if a is not None and a.dhcp_server:
            ev["os_dhcp_server"] = a.dhcp_server
        if self.facts.problems:
            ev["os_read_problems"] = list(self.facts.problems)[:5]
        if not self.facts.readable:
            ev["os_raw_output"] = self.facts.raw
        return ev


def pick_interface(facts: NetFacts, amt_mac: str = "", address: str = "") -> InterfaceChoice:
    """The OS adapter whose MAC equals AMT's wired MAC, else the one holding the inventory address.

    Never "the first DHCP adapter": with several adapters that picks a virtual switch or a VPN. When
    neither rule finds one, nothing is chosen and the reason says so.
    """
    if not facts.readable:
        return InterfaceChoice(None, f"could not read the OS's adapters ({facts.source}): "
                                     f"{'; '.join(facts.problems) or 'no reason given'}", facts)
    mac = normalize_mac(amt_mac)
    if mac:
        same = [a for a in facts.adapters if a.mac == mac]
        if same:
            down = "" if same[0].connected else (
                " (media disconnected: no link, so no lease; the suffix it shows is stale"
                + (f"; the host answers on {', '.join(a.name for a in facts.adapters if address and address in a.ipv4)}"
                   if address and any(address in a.ipv4 for a in facts.adapters) else "") + ")")
            return InterfaceChoice(same[0], f"MAC {mac} equals AMT's wired MAC{down}", facts)
    if address:
        holding = [a for a in facts.adapters if address in a.ipv4]
        if holding:
            why = f"holds the inventory address {address}"
            if mac:
                why += f" (no adapter has AMT's wired MAC {mac})"
            return InterfaceChoice(holding[0], why, facts)
    names = ", ".join(f"{a.name} [{a.mac or 'no MAC'}]" for a in facts.adapters) or "none"
    wanted = " or ".join(x for x in (f"MAC {mac}" if mac else "", f"address {address}" if address else "") if x)
    return InterfaceChoice(None, f"no adapter has {wanted or 'a known MAC or address'} (adapters: {names[:300]})",
                           facts)
