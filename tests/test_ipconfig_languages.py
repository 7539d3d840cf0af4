"""ipconfig /all in the display languages Windows ships most, as a console pipe writes it (OEM code page,
CRLF), with virtual adapters first: rows by position, values by shape (tests/fixtures/clients/SOURCES.md
says where each shape comes from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.adapters import windows
from tasks.adapters.netfacts import pick_interface

FIX = Path(__file__).parent / "fixtures" / "clients"


def text(name: str) -> str:
    return windows.decode_console((FIX / name).read_bytes())


# name, AMT's wired MAC, its address, its suffix, InterfaceIndex, DHCP enabled on it, and the adapter listed
# first (a tunnel or virtual switch): its DHCP flag as printed
CASES = [
    ("ipconfig_all_ru_tunnels_constructed.cp866_crlf.txt", "3c:52:82:1a:4f:07", "10.20.30.41", "corp.example.ru",
     12, True, False),
    ("ipconfig_all_ko_wsl_constructed.cp949_crlf.txt", "f4:f1:9e:23:2f:a9", "10.40.50.61", "corp.example.kr", 4, True,
     False),
    ("ipconfig_all_ja_ppp_constructed.cp932_crlf.txt", "3c:52:82:1a:4f:0b", "10.60.70.81", "corp.example.jp", 17, True,
     False),
    ("ipconfig_all_zh_isatap_constructed.cp936_crlf.txt", "22:35:5c:08:04:b4", "10.80.90.101", "corp.example.cn", 3,
     True, False),
    ("ipconfig_all_it_wintun_constructed.cp850_crlf.txt", "3c:52:82:1a:4f:0c", "10.70.80.91", "corp.example.it", 12,
     True, False),
    ("ipconfig_all_ptbr_vbox_constructed.cp850_crlf.txt", "d0:94:66:d6:7b:45", "10.140.129.68", "corp.example.com.br",
     10, True, False),
    ("ipconfig_all_pl_hyperv_constructed.cp852_crlf.txt", "3c:52:82:1a:4f:09", "10.90.100.111", "corp.example.pl", 7,
     True, False),
    ("ipconfig_all_nl_xp_colon_labels_constructed.txt", "00:50:bf:5a:15:8e", "192.168.0.201", "corp.example.nl", 4,
     True, True),
    ("ipconfig_all_es_warp_constructed.cp850_crlf.txt", "b8:1c:22:58:60:0c", "192.168.1.171", "casa", 10, True, False),
    ("ipconfig_all_fr_colon_leaders_constructed.txt", "00:0c:29:5e:41:0a", "192.168.1.34", "maison", 2, True, True),
    ("ipconfig_all_fr_nbsp_crlf_constructed.txt", "3c:e1:a1:5b:20:14", "10.35.200.17", "", 4, False, False),
    ("ipconfig_all_en_win10_jc.txt", "f8:e4:3b:ad:f2:6d", "10.50.13.132", "internal.companyname.com", 16, True, False),
    ("ipconfig_all_de_win11_nwt.cp850_crlf.txt", "d0:39:57:78:a7:c3", "192.168.178.23", "fritz.box", 5, True, True),
]


@pytest.mark.parametrize("name, mac, address, suffix, index, dhcp, first_dhcp", CASES)
def test_every_language_reads_the_adapter_amt_shares(name, mac, address, suffix, index, dhcp, first_dhcp):
    facts = windows.ipconfig_facts(text(name))
    assert facts.readable, facts.problems
    choice = pick_interface(facts, mac.upper().replace(":", "-"), address)
    a = choice.adapter
    assert a is not None and a.ipv4[0] == address and "AMT's wired MAC" in choice.why
    assert (choice.suffix, a.index, a.dhcp_enabled) == (suffix, index, dhcp)
    assert facts.adapters[0].dhcp_enabled is first_dhcp  # virtual adapters first, tunnels without a MAC
    assert pick_interface(facts, "", address).adapter == a


def test_tunnels_without_a_physical_address_read_by_position():
    """Wintun/Tailscale print an empty physical address: DHCP enabled is the row after it, not 'unknown';
    the description is still the description (Russian, cp866, CRLF)."""
    facts = windows.ipconfig_facts(text("ipconfig_all_ru_tunnels_constructed.cp866_crlf.txt"))
    wintun, tailscale = facts.adapters[0], facts.adapters[1]
    assert (wintun.mac, wintun.dhcp_enabled, wintun.connected, wintun.description) == (
        "", False, False, "Wintun Userspace Tunnel")
    assert (tailscale.mac, tailscale.dhcp_enabled, tailscale.ipv4, tailscale.suffix) == (
        "", False, ("100.101.102.103",), "tail5f2c1.ts.net")
    assert facts.adapters[0].name == "Неизвестный адаптер OpenVPN Wintun"  # cp866 decoded, not cp850 mojibake
    jc = windows.ipconfig_facts(text("ipconfig_all_en_win11_jc.txt"))
    dco = next(a for a in jc.adapters if "Data Channel Offload" in a.name)
    assert (dco.mac, dco.dhcp_enabled, dco.connected) == ("", True, False)
    ppp = windows.ipconfig_facts(text("ipconfig_all_ja_ppp_constructed.cp932_crlf.txt")).adapters[0]
    assert (ppp.description, ppp.dhcp_enabled, ppp.ipv4) == ("VNetData", False, ("172.16.201.2",))
    # no physical-address row at all: DHCP enabled sits where the MAC row would be
    no_row = text("ipconfig_all_en_win10_jc.txt").replace(
        "   Physical Address. . . . . . . . . :\n   DHCP Enabled. . . . . . . . . . . : No",
        "   DHCP Enabled. . . . . . . . . . . : No")
    assert "Tailscale Tunnel\n   DHCP Enabled" in no_row
    ts = windows.ipconfig_facts(no_row).adapters[0]
    assert (ts.description, ts.suffix, ts.dhcp_enabled, ts.ipv4) == (
        "Tailscale Tunnel", "tailff123.ts.net", False, ("100.115.71.66",))


@pytest.mark.parametrize("name, code_page", [
    ("ipconfig_all_ru_tunnels_constructed.cp866_crlf.txt", "cp866"),
    ("ipconfig_all_ko_wsl_constructed.cp949_crlf.txt", "cp949"),
    ("ipconfig_all_ja_ppp_constructed.cp932_crlf.txt", "cp932"),
    ("ipconfig_all_zh_isatap_constructed.cp936_crlf.txt", "cp936"),
    ("ipconfig_all_pl_hyperv_constructed.cp852_crlf.txt", "cp852"),
    ("ipconfig_all_it_wintun_constructed.cp850_crlf.txt", "cp850"),
    ("ipconfig_all_ptbr_vbox_constructed.cp850_crlf.txt", "cp850"),
    ("ipconfig_all_de_win11_nwt.cp850_crlf.txt", "cp850"),
])
def test_console_code_page_recognised_from_the_bytes(name, code_page):
    raw = (FIX / name).read_bytes()
    assert windows.decode_console(raw) == raw.decode(code_page)


def test_console_wrap_at_column_80_is_one_value():
    ru = windows.ipconfig_facts(text("ipconfig_all_ru_xp_wrap80_constructed.cp866_crlf.txt"))
    assert [a.description for a in ru.adapters] == ["Embedded Broadcom NetXtreme 5721 PCI-E Gigabit NIC #2"]
    nic = ru.adapters[0]
    assert nic.ipv4 == ("192.168.2.17", "192.168.1.5") and nic.dhcp_enabled is False
    assert windows.parse_ipconfig(text("ipconfig_all_ru_xp_wrap80_constructed.cp866_crlf.txt")).messages == ()
    it = windows.ipconfig_facts(text("ipconfig_all_it_xp_wrap80_constructed.cp850_crlf.txt"))
    assert [a.description for a in it.adapters] == [
        "Realtek RTL8168/8111 Family PCI-E Gigabit Ethernet NIC (NDIS 6.0)", "Intel(R) PRO/1000 MT Desktop Network Connection"]
    assert [(a.dhcp_enabled, a.suffix) for a in it.adapters] == [(False, ""), (True, "corp.example.it")]


def test_dot_colon_labels_without_a_blank_and_values_on_the_next_line():
    nl = windows.parse_ipconfig(text("ipconfig_all_nl_xp_colon_labels_constructed.txt"))
    assert (nl.host_name, nl.primary_suffix, nl.search_list) == ("WS-NL-04", "corp.example.nl", ("corp.example.nl",))
    nic = nl.adapters[0]
    assert nic.description == "Intel(R) PRO/1000 MT Network Connection" and nic.dhcp_enabled is True
    fr = windows.parse_ipconfig(text("ipconfig_all_fr_colon_leaders_constructed.txt"))
    assert fr.search_list == ("maison",) and fr.adapters[0].ipv4 == ("192.168.1.34",)


def test_html_entity_copies_are_refused_not_misread():
    raw = (FIX / "ipconfig_all_pl_html_entities_constructed.txt").read_text()
    assert "&#322;" in raw
    facts = windows.ipconfig_facts(raw)
    assert not facts.readable and "HTML" in facts.problems[0] and facts.raw == raw[:2000]
    assert pick_interface(facts, "3c-52-82-1a-4f-09").suffix is None
    assert not windows.ipconfig_facts("Ethernet adapter A &amp; B:\r\n\r\n   IPv4 Address. : 10.0.0.2\r\n"
                                      "   Subnet Mask . : 255.0.0.0\r\n").readable


def test_the_ipv4_address_is_never_another_row():
    """A block with no IPv4 row (after /release, or IPv4 unbound) shows a gateway: not the adapter's address."""
    released = windows.parse_ipconfig(text("ipconfig_release_renew_en_constructed.txt"))
    first, second = released.adapters
    assert first.ipv4 == () and second.ipv4 == ("10.20.30.41",)
    assert (first.section, second.section) == (0, 1)
    block = ("\r\nWindows IP Configuration\r\n\r\nEthernet adapter Ethernet:\r\n\r\n"
             "   Connection-specific DNS Suffix  . : corp.example.com\r\n"
             "   Description . . . . . . . . . . . : Intel(R) Ethernet Connection (7) I219-LM\r\n"
             "   Physical Address. . . . . . . . . : 3C-52-82-1A-4F-01\r\n"
             "   DHCP Enabled. . . . . . . . . . . : Yes\r\n"
             "   Autoconfiguration Enabled . . . . : Yes\r\n"
             "   Link-local IPv6 Address . . . . . : fe80::1c2d:3e4f:5a6b:7c8d%12(Preferred)\r\n"
             "   Default Gateway . . . . . . . . . : 10.20.30.1\r\n"
             "   DHCP Server . . . . . . . . . . . : 10.20.30.5\r\n"
             "   DNS Servers . . . . . . . . . . . : 10.20.30.5\r\n")
    facts = windows.ipconfig_facts(block)
    assert facts.adapters[0].ipv4 == () and pick_interface(facts, "", "10.20.30.1").adapter is None


def test_a_disconnected_adapter_shows_a_stale_suffix_that_is_not_the_os_suffix():
    facts = windows.ipconfig_facts(text("ipconfig_all_en_wired_down_constructed.txt"))
    choice = pick_interface(facts, "3C-52-82-1A-4F-01", "192.168.1.23")
    assert choice.adapter.suffix == "corp.example.com" and not choice.adapter.connected
    assert choice.suffix is None and "media disconnected" in choice.why and "Wi-Fi" in choice.why
    assert choice.evidence()["os_interface"] == "Ethernet adapter Ethernet"


def test_yes_and_no_learned_from_the_output_when_the_word_is_unknown():
    """A language the word lists lack: the DHCP-enabled word of an adapter holding a lease means yes, the
    other word of the output means no (Turkish-like words, invented for the test)."""
    en = text("ipconfig_all_en_win10_jc.txt").replace(": Yes", ": Evet").replace(": No", ": Hayir")
    facts = windows.ipconfig_facts(en)
    by_name = {a.name: a for a in facts.adapters}
    assert by_name["Ethernet adapter Ethernet 2"].dhcp_enabled is True
    assert by_name["Unknown adapter Tailscale"].dhcp_enabled is False
