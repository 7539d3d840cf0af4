"""What a lab device's client OS prints about its network, in the shapes real systems print.

Own code (no imports from tasks/). Shapes follow real captures: ipconfig /all and /renew in English
(kellyjonbrazil/jc windows fixtures), German (ChristopherMuellner/NWT command.cmd, ydh-embedded
IP-Adress-R406), French, Spanish, Russian and Korean (tests/fixtures/clients/SOURCES.md lists the captures),
in the console code page a pipe carries; WinPS 5.1 ConvertTo-Json spacing, CLIXML error streams
(pywinrm/Ansible decoders), `ip -j addr`, `resolvectl domain` (resolvectl.c status_print_strv_ifindex),
`nmcli -t` (nmcli(1) terse mode), `networkctl list`, `dhcpcd -U` (cloud-init's dhcpcd lease example).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

# Labels per display language, in ipconfig's fixed order. de: the NWT/R406 captures; fr: the PCLab
# capture (headers end in " :"); es: the "PRÁCTICA 7" capture; ru and ko: the captures listed in
# tests/fixtures/clients/SOURCES.md (Russian and Korean rows). Words marked "unconfirmed" were not seen
# in a capture; the product's reader does not depend on any label.
LABELS = {
    "en": dict(title="Windows IP Configuration", host="Host Name", primary="Primary Dns Suffix", node="Node Type",
               node_v="Hybrid", routing="IP Routing Enabled", wins="WINS Proxy Enabled", no="No", yes="Yes",
               search="DNS Suffix Search List", eth="Ethernet adapter {}:", suffix="Connection-specific DNS Suffix",
               desc="Description", mac="Physical Address", dhcp="DHCP Enabled", auto="Autoconfiguration Enabled",
               ll="Link-local IPv6 Address", v4="IPv4 Address", pref="(Preferred)", mask="Subnet Mask",
               gw="Default Gateway", dhcps="DHCP Server", dns="DNS Servers", netbios="NetBIOS over Tcpip",
               enabled="Enabled", media="Media State", media_v="Media disconnected", wifi="Wireless LAN adapter {}:",
               unknown="Unknown adapter {}:", lease1="Lease Obtained", lease2="Lease Expires",
               down="No operation can be performed on {} while it has its media disconnected."),
    "de": dict(title="Windows-IP-Konfiguration", host="Hostname", primary="Primäres DNS-Suffix", node="Knotentyp",
               node_v="Hybrid", routing="IP-Routing aktiviert", wins="WINS-Proxy aktiviert", no="Nein", yes="Ja",
               search="DNS-Suffixsuchliste", eth="Ethernet-Adapter {}:", suffix="Verbindungsspezifisches DNS-Suffix",
               desc="Beschreibung", mac="Physische Adresse", dhcp="DHCP aktiviert", auto="Autokonfiguration aktiviert",
               ll="Verbindungslokale IPv6-Adresse", v4="IPv4-Adresse", pref="(Bevorzugt)", mask="Subnetzmaske",
               gw="Standardgateway", dhcps="DHCP-Server", dns="DNS-Server", netbios="NetBIOS über TCP/IP",
               enabled="Aktiviert", media="Medienstatus", media_v="Medium getrennt", wifi="Drahtlos-LAN-Adapter {}:",
               unknown="Unbekannter Adapter {}:",  # unconfirmed
               down="Für {} kann kein Vorgang durchgeführt werden, da das Medium getrennt ist."),  # unconfirmed
    "fr": dict(title="Configuration IP de Windows", host="Nom de l’hôte", primary="Suffixe DNS principal",
               node="Type de noeud", node_v="Hybride", routing="Routage IP activé", wins="Proxy WINS activé",
               no="Non", yes="Oui", search="Liste de recherche du suffixe DNS", eth="Carte Ethernet {} :",
               suffix="Suffixe DNS propre à la connexion", desc="Description", mac="Adresse physique",
               dhcp="DHCP activé", auto="Configuration automatique activée", ll="Adresse IPv6 de liaison locale",
               v4="Adresse IPv4", pref="(préféré)", mask="Masque de sous-réseau", gw="Passerelle par défaut",
               dhcps="Serveur DHCP", dns="Serveurs DNS", netbios="NetBIOS sur Tcpip", enabled="Activé",
               media="Statut du média", media_v="Média déconnecté", wifi="Carte réseau sans fil {} :",
               unknown="Carte inconnue {} :",  # unconfirmed
               down="Aucune opération ne peut être effectuée sur {} lorsque son média est déconnecté."),  # unconfirmed
    "es": dict(title="Configuración IP de Windows", host="Nombre de host", primary="Sufijo DNS principal",
               node="Tipo de nodo", node_v="híbrido", routing="Enrutamiento IP habilitado",
               wins="Proxy WINS habilitado", no="no", yes="sí", search="Lista de búsqueda de sufijos DNS",
               eth="Adaptador de Ethernet {}:", suffix="Sufijo DNS específico para la conexión",
               desc="Descripción", mac="Dirección física", dhcp="DHCP habilitado",
               auto="Configuración automática habilitada", ll="Vínculo: dirección IPv6 local",
               v4="Dirección IPv4", pref="(Preferido)", mask="Máscara de subred", gw="Puerta de enlace predeterminada",
               dhcps="Servidor DHCP", dns="Servidores DNS", netbios="NetBIOS sobre TCP/IP", enabled="habilitado",
               media="Estado de los medios", media_v="medios desconectados", wifi="Adaptador de LAN inalámbrica {}:",
               unknown="Adaptador desconocido {}:",
               down="No se puede realizar ninguna operación en {} mientras los medios estén desconectados."),  # unconfirmed
    "ru": dict(title="Настройка протокола IP для Windows", host="Имя компьютера", primary="Основной DNS-суффикс",
               node="Тип узла", node_v="Гибридный", routing="IP-маршрутизация включена", wins="WINS-прокси включен",
               no="Нет", yes="Да", search="Порядок просмотра суффиксов DNS", eth="Адаптер Ethernet {}:",
               suffix="DNS-суффикс подключения", desc="Описание", mac="Физический адрес", dhcp="DHCP включен",
               auto="Автонастройка включена", ll="Локальный IPv6-адрес канала", v4="IPv4-адрес", pref="(Основной)",
               mask="Маска подсети", gw="Основной шлюз", dhcps="DHCP-сервер", dns="DNS-серверы",
               netbios="NetBios через TCP/IP", enabled="Включен", media="Состояние среды",
               media_v="Среда передачи недоступна.", wifi="Адаптер беспроводной локальной сети {}:",
               unknown="Неизвестный адаптер {}:", lease1="Аренда получена", lease2="Срок аренды истекает",
               down="Для {} нельзя выполнить никакие операции, пока среда передачи отключена."),  # unconfirmed
    "ko": dict(title="Windows IP 구성", host="호스트 이름", primary="주 DNS 접미사", node="노드 유형", node_v="혼성",
               routing="IP 라우팅 사용", wins="WINS 프록시 사용", no="아니요", yes="예",
               search="DNS 접미사 검색 목록",  # unconfirmed
               eth="이더넷 어댑터 {}:", suffix="연결별 DNS 접미사", desc="설명", mac="물리적 주소", dhcp="DHCP 사용",
               auto="자동 구성 사용", ll="링크-로컬 IPv6 주소", v4="IPv4 주소", pref="(기본 설정)", mask="서브넷 마스크",
               gw="기본 게이트웨이", dhcps="DHCP 서버", dns="DNS 서버", netbios="Tcpip를 통한 NetBIOS", enabled="사용",
               eth_name="이더넷",  # the wired connection's default name on Korean Windows ("이더넷 어댑터 이더넷:")
               media="미디어 상태", media_v="미디어 연결 끊김", wifi="무선 LAN 어댑터 {}:",
               unknown="알 수 없는 어댑터 {}:",  # unconfirmed
               lease1="임대 시작 날짜", lease2="임대 만료 날짜",
               down="미디어 연결이 끊어져 있는 동안 {}에서 작업을 수행할 수 없습니다."),  # unconfirmed
}
LABEL_WIDTH = 36  # "   Label . . . . : value": the colon sits in column 36 (0-based) in the captures above

#: rows exactly as Windows prints them: the leaders are fixed strings of each language's message table,
#: not computed, so they are copied. en: jc windows-10 fixture; ru, ko: the captures in SOURCES.md
_ROWS = {
    "en": ("   Host Name . . . . . . . . . . . . :|   Primary Dns Suffix  . . . . . . . :|   Node Type . . . . . . . . ."
           " . . . . :|   IP Routing Enabled. . . . . . . . :|   WINS Proxy Enabled. . . . . . . . :|   DNS Suffix Search"
           " List. . . . . . :|   Connection-specific DNS Suffix  . :|   Description . . . . . . . . . . . :|   Physical"
           " Address. . . . . . . . . :|   DHCP Enabled. . . . . . . . . . . :|   Autoconfiguration Enabled . . . . :|"
           "   Link-local IPv6 Address . . . . . :|   IPv4 Address. . . . . . . . . . . :|   Subnet Mask . . . . . . ."
           " . . . . :|   Lease Obtained. . . . . . . . . . :|   Lease Expires . . . . . . . . . . :|   Default Gateway"
           " . . . . . . . . . :|   DHCP Server . . . . . . . . . . . :|   DNS Servers . . . . . . . . . . . :|   NetBIOS"
           " over Tcpip. . . . . . . . :|   Media State . . . . . . . . . . . :"),
    "ru": ("   Имя компьютера  . . . . . . . . . :|   Основной DNS-суффикс  . . . . . . :|   Тип узла. . . . . . . . . . ."
           " . . :|   IP-маршрутизация включена . . . . :|   WINS-прокси включен . . . . . . . :|   Порядок просмотра"
           " суффиксов DNS . :|   DNS-суффикс подключения . . . . . :|   Описание. . . . . . . . . . . . . :|   Физический"
           " адрес. . . . . . . . . :|   DHCP включен. . . . . . . . . . . :|   Автонастройка включена. . . . . . :|   Лок"
           "альный IPv6-адрес канала . . . :|   IPv4-адрес. . . . . . . . . . . . :|   Маска подсети . . . . . . . . . . :|"
           "   Аренда получена. . . . . . . . . . :|   Срок аренды истекает. . . . . . . . . . :|   Основной шлюз. . . ."
           " . . . . . :|   DHCP-сервер. . . . . . . . . . . :|   DNS-серверы. . . . . . . . . . . :|   NetBios через TCP"
           "/IP. . . . . . . . :|   Состояние среды. . . . . . . . :"),
    "ko": ("   호스트 이름 . . . . . . . . :|   주 DNS 접미사 . . . . . . . :|   노드 유형 . . . . . . . . . :|   IP 라우팅 사용."
           " . . . . . . :|   WINS 프록시 사용. . . . . . :|   DNS 접미사 검색 목록. . . . :|   연결별 DNS 접미사. . . . :|   설명."
           " . . . . . . . . . . . :|   물리적 주소 . . . . . . . . :|   DHCP 사용 . . . . . . . . . :|   자동 구성 사용. . . . ."
           " . . :|   링크-로컬 IPv6 주소 . . . . :|   IPv4 주소 . . . . . . . . . :|   서브넷 마스크 . . . . . . . :|   임대 시작"
           " 날짜. . . . . . . :|   임대 만료 날짜. . . . . . . :|   기본 게이트웨이 . . . . . . :|   DHCP 서버 . . . . . . . . . :|"
           "   DNS 서버. . . . . . . . . . :|   Tcpip를 통한 NetBIOS. . . . :|   미디어 상태 . . . . . . . . :"),
}
_ROW_KEYS = ("host", "primary", "node", "routing", "wins", "search", "suffix", "desc", "mac", "dhcp", "auto", "ll",
             "v4", "mask", "lease1", "lease2", "gw", "dhcps", "dns", "netbios", "media")
_EXACT = {loc: dict(zip(_ROW_KEYS, rows.split("|"))) for loc, rows in _ROWS.items()}


def _row(locale: str, key: str, value: str) -> str:
    """``   Label . . . . : value``; a computed leader for the languages without copied rows (a label that
    fills the column gets no leader, as in the German captures)."""
    exact = _EXACT.get(locale, {}).get(key)
    if exact:
        return f"{exact} {value}".rstrip() if value else exact
    head = f"   {LABELS[locale][key]}"
    if len(head) >= LABEL_WIDTH:
        return f"{head}: {value}".rstrip() if value else f"{head}:"
    dots = "".join(" " if (i % 2 == 0) else "." for i in range(len(head), LABEL_WIDTH))
    line = f"{head}{dots}: {value}"
    return line.rstrip() if not value else line


_RU_MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря")
_KO_DAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")


def lease_time(locale: str, ts: float) -> str | None:
    """A lease time as ipconfig prints it in the language (en: the jc captures; ru: "23 января 2023 г.
    9:29:12"; ko: "2016년 10월 3일 월요일 오전 7:52:26"); None where the lab has no format."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    hour12 = d.hour % 12 or 12
    if locale == "en":
        return f"{d.strftime('%A, %B')} {d.day}, {d.year} {hour12}:{d:%M:%S} {'AM' if d.hour < 12 else 'PM'}"
    if locale == "ru":
        return f"{d.day} {_RU_MONTHS[d.month - 1]} {d.year} г. {d.hour}:{d:%M:%S}"
    if locale == "ko":
        return f"{d.year}년 {d.month}월 {d.day}일 {_KO_DAYS[d.weekday()]} {'오전' if d.hour < 12 else '오후'} {hour12}:{d:%M:%S}"
    return None


def _hex(name: str, salt: str, n: int) -> bytes:
    return hashlib.sha256(f"{name}:{salt}".encode()).digest()[:n]


@dataclass(frozen=True)
class Adapter:
    alias: str
    description: str
    mac: str  # aa:bb:cc:dd:ee:ff; "" for tunnels (ipconfig prints an empty physical address)
    ipv4: str  # "" when it has none
    mask: str
    suffix: str
    dhcp: bool
    index: int
    real: bool  # the NIC AMT shares
    kind: str = "eth"  # eth / wifi / unknown: the header's type words
    connected: bool = True


def _tunnels(dev) -> list[Adapter]:
    """Wintun (disconnected) and Tailscale (up, a /32 CGNAT address) as the captures show them: no physical
    address, DHCP disabled (jc windows-10 fixture; the Russian Wintun capture)."""
    out = [Adapter("OpenVPN Wintun", "Wintun Userspace Tunnel", "", "", "", "", False, 30, False, "unknown", False)]
    b = _hex(dev.name, "tailscale", 3)
    out.append(Adapter("Tailscale", "Tailscale Tunnel", "", f"100.{64 + b[0] % 64}.{b[1]}.{b[2] or 1}",
                       "255.255.255.255", f"tail{_hex(dev.name, 'tailnet', 3).hex()}.ts.net", False, 31, False,
                       "unknown"))
    return out[:dev.tunnels]


def windows_adapters(dev, real_mac: str, mask: str, wifi_suffix: str = "") -> list[Adapter]:
    """Tunnels and virtual switches first (with DHCP, as VMware VMnet adapters are in jc's windows-11 capture,
    and Hyper-V's Default Switch hands out mshome.net), then the wired NIC AMT shares; with its link down
    (``wired_link: false``) that NIC is media disconnected and still shows the suffix of its last lease,
    and a Wi-Fi adapter holds the host's address."""
    out = _tunnels(dev)
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
    up = dev.wired_link
    out.append(Adapter(alias=LABELS[dev.locale].get("eth_name", "Ethernet"), description="Intel(R) Ethernet Connection (7) I219-LM", mac=real_mac,
                       ipv4=dev.address if up else "", mask=mask if up else "", suffix=dev.os_suffix, dhcp=True,
                       index=12, real=True, connected=up))
    if not up:
        b = _hex(dev.name, "wifi", 3)
        out.append(Adapter(alias="Wi-Fi", description="Intel(R) Wi-Fi 6E AX211 160MHz",
                           mac=":".join(f"{o:02x}" for o in (0x60, 0x45, 0x2E) + tuple(b)), ipv4=dev.address, mask=mask,
                           suffix=wifi_suffix, dhcp=True, index=6, real=False, kind="wifi"))
    return out


def _link_local(dev, a: Adapter) -> str:
    return f"fe80::{_hex(dev.name, a.alias, 2).hex()}:{a.index}ab:1%{a.index}"


def ipconfig_all(dev, adapters: list[Adapter], gw: str, dhcp_server: str, lease: tuple[float, float] | None) -> str:
    """``ipconfig /all`` in the device's display language, CRLF (text; the shell encodes it in the
    device's console code page)."""
    loc = dev.locale
    L = LABELS[loc]
    search = [s for s in dict.fromkeys([dev.primary_suffix, dev.os_suffix]) if s]
    lines = ["", L["title"], "", _row(loc, "host", dev.name), _row(loc, "primary", dev.primary_suffix),
             _row(loc, "node", L["node_v"]), _row(loc, "routing", L["no"]), _row(loc, "wins", L["no"])]
    if search:
        lines.append(_row(loc, "search", search[0]))
        lines += [" " * 39 + s for s in search[1:]]
    times = [lease_time(loc, t) for t in lease] if lease else []
    for a in adapters:
        lines += ["", L[a.kind].format(a.alias), ""]
        head = [_row(loc, "suffix", a.suffix), _row(loc, "desc", a.description),
                _row(loc, "mac", a.mac.replace(":", "-").upper()), _row(loc, "dhcp", L["yes"] if a.dhcp else L["no"]),
                _row(loc, "auto", L["yes"])]
        if not a.connected:
            lines += [_row(loc, "media", L["media_v"])] + head
            continue
        lines += head + [_row(loc, "ll", _link_local(dev, a) + L["pref"]), _row(loc, "v4", a.ipv4 + L["pref"]),
                         _row(loc, "mask", a.mask)]
        if (a.real or a.kind == "wifi") and a.dhcp:
            if all(times) and "lease1" in L:
                lines += [_row(loc, "lease1", times[0]), _row(loc, "lease2", times[1])]
            lines += [_row(loc, "gw", gw), _row(loc, "dhcps", dhcp_server), _row(loc, "dns", dhcp_server)]
        else:
            lines += [_row(loc, "gw", "")]
        lines.append(_row(loc, "netbios", L["enabled"]))
    lines.append("")
    return "\r\n".join(lines)


def ipconfig_renew(dev, adapters: list[Adapter], gw: str) -> str:
    """What ``ipconfig /renew`` prints after renewing every adapter: one line per DHCP adapter it could not
    reach (media disconnected), then the short block of each adapter (captures: SOURCES.md, renew rows)."""
    loc = dev.locale
    L = LABELS[loc]
    lines = ["", L["title"], ""]
    down = [L["down"].format(a.alias) for a in adapters if a.dhcp and not a.connected]
    if down:
        lines += down + [""]
    for a in adapters:
        lines += ["", L[a.kind].format(a.alias), ""]
        if not a.connected:
            lines += [_row(loc, "media", L["media_v"]), _row(loc, "suffix", a.suffix)]
            continue
        lines += [_row(loc, "suffix", a.suffix), _row(loc, "ll", _link_local(dev, a)), _row(loc, "v4", a.ipv4),
                  _row(loc, "mask", a.mask), _row(loc, "gw", gw if (a.real or a.kind == "wifi") else "")]
    lines.append("")
    return "\r\n".join(lines)


def _ps51_json(value, indent: int = 0) -> str:
    """Windows PowerShell 5.1's ConvertTo-Json layout (two spaces after ':', deep indentation); valid JSON."""
    return json.dumps(value, indent=4).replace('": ', '":  ')


def cim_facts_json(adapters: list[Adapter], search: list[str]) -> str:
    """What the client-facts script prints (`-Compress`, UTF-8): WMI MACs upper-case with colons, arrays
    null when unset (Win32_NetworkAdapterConfiguration docs; fusioninventory#439)."""
    rows = [{"Description": a.description, "MACAddress": a.mac.upper() or None, "DHCPEnabled": a.dhcp,
             "IPAddress": [a.ipv4, f"fe80::{a.index}:1"] if a.connected and a.ipv4 else None,
             "DNSDomain": a.suffix or None, "InterfaceIndex": a.index, "IPEnabled": True} for a in adapters]
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


def dhclient_leases(dev, dhcp_server: str, netmask: str, routers: str) -> str:
    """ISC dhclient's lease database (dhclient.leases(5): one ``lease { ... }`` declaration per lease,
    written as a log, the last one current): an older lease for the same interface first, then the one held
    now, whose ``domain-name`` is option 15."""
    def lease(suffix: str, renew: str) -> str:
        rows = [f'  interface "{linux_iface(dev)}";', f"  fixed-address {dev.address};",
                f"  option subnet-mask {netmask};", f"  option routers {routers};",
                "  option dhcp-lease-time 3600;", "  option dhcp-message-type 5;",
                f"  option domain-name-servers {dhcp_server};", f"  option dhcp-server-identifier {dhcp_server};"]
        if suffix:
            rows.append(f'  option domain-name "{suffix}";')
        rows += [f"  renew {renew};", f"  rebind {renew};", f"  expire {renew};"]
        return "lease {\n" + "\n".join(rows) + "\n}\n"
    return lease("stale.invalid", "1 2024/01/01 00:00:00") + lease(dev.os_suffix, "2 2024/01/02 00:00:00")


def dhcpcd_dump(dev, dhcp_server: str, broadcast: str, routers: str) -> str:
    rows = [("broadcast_address", broadcast), ("dhcp_lease_time", "3600"), ("dhcp_server_identifier", dhcp_server),
            ("domain_name_servers", dhcp_server), ("ip_address", dev.address), ("routers", routers)]
    if dev.os_suffix:
        rows.insert(1, ("domain_name", dev.os_suffix))
    return "".join(f"{k}='{v}'\n" for k, v in rows)
