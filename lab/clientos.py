"""What a lab device's client OS prints about its network, in the shapes real systems print.

Own code (no imports from tasks/). Shapes follow real captures: ipconfig /all in English (kellyjonbrazil/jc
windows-10 fixture) and German (ChristopherMuellner/NWT command.cmd, ydh-embedded IP-Adress-R406),
WinPS 5.1 ConvertTo-Json spacing, CLIXML error streams (pywinrm/Ansible decoders), `ip -j addr`,
`resolvectl domain` (resolvectl.c status_print_strv_ifindex), `nmcli -t` (nmcli(1) terse mode),
`networkctl list`, `dhcpcd -U` (cloud-init TestDhcpcd). See /work/research/clients.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

# Labels per display language, in ipconfig's fixed order. de: the NWT/R406 captures; fr: the PCLab
# capture (headers end in " :"); es: the "PRÁCTICA 7" capture.
LABELS = {
    "en": dict(title="Windows IP Configuration", host="Host Name", primary="Primary Dns Suffix", node="Node Type",
               node_v="Hybrid", routing="IP Routing Enabled", wins="WINS Proxy Enabled", no="No", yes="Yes",
               search="DNS Suffix Search List", eth="Ethernet adapter {}:", suffix="Connection-specific DNS Suffix",
               desc="Description", mac="Physical Address", dhcp="DHCP Enabled", auto="Autoconfiguration Enabled",
               ll="Link-local IPv6 Address", v4="IPv4 Address", pref="(Preferred)", mask="Subnet Mask",
               gw="Default Gateway", dhcps="DHCP Server", dns="DNS Servers", netbios="NetBIOS over Tcpip",
               enabled="Enabled"),
    "de": dict(title="Windows-IP-Konfiguration", host="Hostname", primary="Primäres DNS-Suffix", node="Knotentyp",
               node_v="Hybrid", routing="IP-Routing aktiviert", wins="WINS-Proxy aktiviert", no="Nein", yes="Ja",
               search="DNS-Suffixsuchliste", eth="Ethernet-Adapter {}:", suffix="Verbindungsspezifisches DNS-Suffix",
               desc="Beschreibung", mac="Physische Adresse", dhcp="DHCP aktiviert", auto="Autokonfiguration aktiviert",
               ll="Verbindungslokale IPv6-Adresse", v4="IPv4-Adresse", pref="(Bevorzugt)", mask="Subnetzmaske",
               gw="Standardgateway", dhcps="DHCP-Server", dns="DNS-Server", netbios="NetBIOS über TCP/IP",
               enabled="Aktiviert"),
    "fr": dict(title="Configuration IP de Windows", host="Nom de l’hôte", primary="Suffixe DNS principal",
               node="Type de noeud", node_v="Hybride", routing="Routage IP activé", wins="Proxy WINS activé",
               no="Non", yes="Oui", search="Liste de recherche du suffixe DNS", eth="Carte Ethernet {} :",
               suffix="Suffixe DNS propre à la connexion", desc="Description", mac="Adresse physique",
               dhcp="DHCP activé", auto="Configuration automatique activée", ll="Adresse IPv6 de liaison locale",
               v4="Adresse IPv4", pref="(préféré)", mask="Masque de sous-réseau", gw="Passerelle par défaut",
               dhcps="Serveur DHCP", dns="Serveurs DNS", netbios="NetBIOS sur Tcpip", enabled="Activé"),
    "es": dict(title="Configuración IP de Windows", host="Nombre de host", primary="Sufijo DNS principal",
               node="Tipo de nodo", node_v="híbrido", routing="Enrutamiento IP habilitado",
               wins="Proxy WINS habilitado", no="no", yes="sí", search="Lista de búsqueda de sufijos DNS",
               eth="Adaptador de Ethernet {}:", suffix="Sufijo DNS específico para la conexión",
               desc="Descripción", mac="Dirección física", dhcp="DHCP habilitado",
               auto="Configuración automática habilitada", ll="Vínculo: dirección IPv6 local",
               v4="Dirección IPv4", pref="(Preferido)", mask="Máscara de subred", gw="Puerta de enlace predeterminada",
               dhcps="Servidor DHCP", dns="Servidores DNS", netbios="NetBIOS sobre TCP/IP", enabled="habilitado"),
}
LABEL_WIDTH = 36  # "   Label . . . . : value": the colon sits in column 36 (0-based) in the captures above

#: English rows exactly as Windows 10/11 print them (jc windows-10 fixture): the leaders are fixed strings
#: of the message table, not computed, so they are copied
_EN_ROWS = {
    "Host Name": "   Host Name . . . . . . . . . . . . :", "Primary Dns Suffix": "   Primary Dns Suffix  . . . . . . . :",
    "Node Type": "   Node Type . . . . . . . . . . . . :", "IP Routing Enabled": "   IP Routing Enabled. . . . . . . . :",
    "WINS Proxy Enabled": "   WINS Proxy Enabled. . . . . . . . :",
    "DNS Suffix Search List": "   DNS Suffix Search List. . . . . . :",
    "Connection-specific DNS Suffix": "   Connection-specific DNS Suffix  . :",
    "Description": "   Description . . . . . . . . . . . :", "Physical Address": "   Physical Address. . . . . . . . . :",
    "DHCP Enabled": "   DHCP Enabled. . . . . . . . . . . :",
    "Autoconfiguration Enabled": "   Autoconfiguration Enabled . . . . :",
    "Link-local IPv6 Address": "   Link-local IPv6 Address . . . . . :",
    "IPv4 Address": "   IPv4 Address. . . . . . . . . . . :", "Subnet Mask": "   Subnet Mask . . . . . . . . . . . :",
    "Lease Obtained": "   Lease Obtained. . . . . . . . . . :", "Lease Expires": "   Lease Expires . . . . . . . . . . :",
    "Default Gateway": "   Default Gateway . . . . . . . . . :", "DHCP Server": "   DHCP Server . . . . . . . . . . . :",
    "DNS Servers": "   DNS Servers . . . . . . . . . . . :", "NetBIOS over Tcpip": "   NetBIOS over Tcpip. . . . . . . . :",
}


def _row(label: str, value: str) -> str:
    """``   Label . . . . : value``; a label that fills the column gets no leader (German captures)."""
    if label in _EN_ROWS:
        return f"{_EN_ROWS[label]} {value}"
    head = f"   {label}"
    if len(head) >= LABEL_WIDTH:
        return f"{head}: {value}".rstrip() if value else f"{head}:"
    dots = "".join(" " if (i % 2 == 0) else "." for i in range(len(head), LABEL_WIDTH))
    line = f"{head}{dots}: {value}"
    return line.rstrip() if not value else line


def _hex(name: str, salt: str, n: int) -> bytes:
    return hashlib.sha256(f"{name}:{salt}".encode()).digest()[:n]


@dataclass(frozen=True)
class Adapter:
    alias: str
    description: str
    mac: str  # aa:bb:cc:dd:ee:ff
    ipv4: str
    mask: str
    suffix: str
    dhcp: bool
    index: int
    real: bool  # the NIC AMT shares


def windows_adapters(dev, real_mac: str, mask: str) -> list[Adapter]:
    """Virtual switches first (with DHCP, as VMware VMnet adapters are in jc's windows-11 capture, and
    Hyper-V's Default Switch hands out mshome.net), then the wired NIC AMT shares."""
    out = []
    for i in range(dev.virtual_adapters):
        b = _hex(dev.name, f"v{i}", 3)
        vmware = i % 2 == 1
        out.append(Adapter(alias=f"VMware Network Adapter VMnet{i}" if vmware else f"vEthernet (Default Switch {i})"
                           if i else "vEthernet (Default Switch)",
                           description="VMware Virtual Ethernet Adapter for VMnet" if vmware
                           else "Hyper-V Virtual Ethernet Adapter",
                           mac=":".join(f"{o:02x}" for o in ((0x00, 0x50, 0x56) if vmware else (0x00, 0x15, 0x5D)) + tuple(b)),
                           ipv4=f"172.{20 + i}.{b[0] % 200 + 1}.1", mask="255.255.240.0",
                           suffix="" if vmware else "mshome.net", dhcp=True, index=20 + i, real=False))
    out.append(Adapter(alias="Ethernet", description="Intel(R) Ethernet Connection (7) I219-LM", mac=real_mac,
                       ipv4=dev.address, mask=mask, suffix=dev.os_suffix, dhcp=True, index=12, real=True))
    return out


def ipconfig_all(dev, adapters: list[Adapter], gw: str, dhcp_server: str, lease_lines: list[tuple[str, str]]) -> str:
    """``ipconfig /all`` in the device's display language, CRLF."""
    L = LABELS[dev.locale]
    search = [s for s in dict.fromkeys([dev.primary_suffix, dev.os_suffix]) if s]
    lines = ["", L["title"], "", _row(L["host"], dev.name), _row(L["primary"], dev.primary_suffix),
             _row(L["node"], L["node_v"]), _row(L["routing"], L["no"]), _row(L["wins"], L["no"])]
    if search:
        lines.append(_row(L["search"], search[0]))
        lines += [" " * 39 + s for s in search[1:]]
    for a in adapters:
        ll = f"fe80::{_hex(dev.name, a.alias, 2).hex()}:{a.index}ab:1%{a.index}"
        lines += ["", L["eth"].format(a.alias), "",
                  _row(L["suffix"], a.suffix), _row(L["desc"], a.description),
                  _row(L["mac"], a.mac.replace(":", "-").upper()), _row(L["dhcp"], L["yes"] if a.dhcp else L["no"]),
                  _row(L["auto"], L["yes"]), _row(L["ll"], ll + L["pref"]), _row(L["v4"], a.ipv4 + L["pref"]),
                  _row(L["mask"], a.mask)]
        if a.real:
            lines += [_row(label, value) for label, value in lease_lines]
            lines += [_row(L["gw"], gw), _row(L["dhcps"], dhcp_server), _row(L["dns"], dhcp_server)]
        else:
            lines += [_row(L["gw"], "")]
        lines.append(_row(L["netbios"], L["enabled"]))
    lines.append("")
    return "\r\n".join(lines)


def _ps51_json(value, indent: int = 0) -> str:
    """Windows PowerShell 5.1's ConvertTo-Json layout (two spaces after ':', deep indentation); valid JSON."""
    return json.dumps(value, indent=4).replace('": ', '":  ')


def cim_facts_json(adapters: list[Adapter], search: list[str]) -> str:
    """What the client-facts script prints (`-Compress`, UTF-8): WMI MACs upper-case with colons, arrays
    null when unset (Win32_NetworkAdapterConfiguration docs; fusioninventory#439)."""
    rows = [{"Description": a.description, "MACAddress": a.mac.upper(), "DHCPEnabled": a.dhcp,
             "IPAddress": [a.ipv4, f"fe80::{a.index}:1"], "DNSDomain": a.suffix or None,
             "InterfaceIndex": a.index, "IPEnabled": True} for a in adapters]
    return json.dumps({"search": search, "adapters": rows}, separators=(",", ":")) + "\r\n"


def clixml(message_lines: list[str]) -> str:
    """A PowerShell error stream as Windows PowerShell writes it to a redirected stderr: ``#< CLIXML``,
    then one ``<Objs>`` line, a progress record, each rendered line an ``<S S="Error">`` with
    ``_x000D__x000A_`` for CRLF and ``_x005F_`` for a literal '_'."""
    def esc(text: str) -> str:
        text = text.replace("_x", "_x005F_x").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return text.replace('"', "&quot;")
    body = "".join(f'<S S="Error">{esc(line)}_x000D__x000A_</S>' for line in message_lines)
    progress = ('<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
                '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
                'first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>'
                '</MS></Obj>')
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f"{progress}{body}</Objs>")


# ------------------------------------------------------------------------------------------------ Linux

def linux_iface(dev) -> str:
    return "eth0" if dev.net_stack == "dhclient" else "enp0s31f6"


def ip_j_addr(dev, mac: str, prefix: int, lease: int) -> str:
    """``ip -j addr show``: always an array; ``dynamic`` on DHCP addresses (iproute2 JSON)."""
    iface = linux_iface(dev)
    links = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "operstate": "UNKNOWN",
         "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00",
         "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo",
                        "valid_life_time": 4294967295, "preferred_life_time": 4294967295}]},
        {"ifindex": 2, "ifname": iface, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
         "operstate": "UP", "link_type": "ether", "address": mac, "broadcast": "ff:ff:ff:ff:ff:ff",
         "addr_info": [{"family": "inet", "local": dev.address, "prefixlen": prefix, "scope": "global",
                        "dynamic": True, "label": iface, "valid_life_time": lease, "preferred_life_time": lease}]},
    ]
    if dev.net_stack in ("networkmanager", "networkd"):  # a laptop-ish extra: a WireGuard link without L2
        links.append({"ifindex": 3, "ifname": "wg0", "flags": ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"],
                      "mtu": 1420, "operstate": "UNKNOWN", "link_type": "none",
                      "addr_info": [{"family": "inet", "local": "10.99.0.2", "prefixlen": 24, "scope": "global",
                                     "label": "wg0", "valid_life_time": 4294967295,
                                     "preferred_life_time": 4294967295}]})
    return json.dumps(links) + "\n"


def resolv_conf(dev, dhcp_server: str) -> str:
    if dev.net_stack in ("networkmanager", "networkd"):
        # systemd-resolved's stub (Ubuntu-forum capture: "search ." when there is no search domain)
        return ("# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n"
                "# Do not edit.\n#\n"
                "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
                f"search {dev.os_suffix or '.'}\n")
    head = "# Generated by resolvconf\n" if dev.net_stack == "dhcpcd" else "# Generated by dhclient-script\n"
    lines = [head.rstrip("\n")]
    if dev.os_suffix:
        lines += [f"domain {dev.os_suffix}", f"search {dev.os_suffix}"]
    lines.append(f"nameserver {dhcp_server}")
    return "\n".join(lines) + "\n"


def resolvectl_domain(dev) -> str:
    return f"Global:\nLink 2 ({linux_iface(dev)}): {dev.os_suffix}".rstrip() + "\nLink 3 (wg0): ~vpn.internal\n"


def nmcli_devices(dev) -> str:
    return (f"{linux_iface(dev)}:ethernet:connected:Wired connection 1\nwg0:wireguard:connected (externally):wg0\n"
            "lo:loopback:unmanaged:\n")


def nmcli_show(dev, dhcp_server: str) -> str:
    lines = [f"IP4.DOMAIN[1]:{dev.os_suffix}"] if dev.os_suffix else []
    lines += [f"DHCP4.OPTION[1]:dhcp_server_identifier = {dhcp_server}"]
    if dev.os_suffix:
        lines.append(f"DHCP4.OPTION[2]:domain_name = {dev.os_suffix}")
    lines.append(f"DHCP4.OPTION[3]:ip_address = {dev.address}")
    return "\n".join(lines) + "\n"


def networkctl_list(dev) -> str:
    setup = "configured" if dev.net_stack == "networkd" else "unmanaged"
    return (f"  1 lo        loopback carrier    unmanaged\n  2 {linux_iface(dev):<9} ether    routable    {setup}\n"
            f"  3 wg0       none     routable    unmanaged\n")


def networkd_lease(dev, dhcp_server: str) -> str:
    text = f"# This is private data. Do not parse.\nADDRESS={dev.address}\nSERVER_ADDRESS={dhcp_server}\n"
    return text + (f"DOMAINNAME={dev.os_suffix}\n" if dev.os_suffix else "")


def dhcpcd_dump(dev, dhcp_server: str, broadcast: str, routers: str) -> str:
    rows = [("broadcast_address", broadcast), ("dhcp_lease_time", "3600"), ("dhcp_server_identifier", dhcp_server),
            ("domain_name_servers", dhcp_server), ("ip_address", dev.address), ("routers", routers)]
    if dev.os_suffix:
        rows.insert(1, ("domain_name", dev.os_suffix))
    return "".join(f"{k}='{v}'\n" for k, v in rows)
