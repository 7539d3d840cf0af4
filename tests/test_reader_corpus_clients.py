"""Client-OS readers against outputs shaped as real systems printed them and as they get published (forum
copies, Markdown blocks, PowerShell 5.1 JSON, Linux tools of several versions): what the reader must get for
the adapter AMT shares (MAC, IPv4, DHCP on/off, DNS suffix) and "could not read" for what is not readable.
Each fixture's origin is in tests/fixtures/clients/SOURCES.md ("Red-team corpus" section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.adapters import windows
from tasks.adapters.netfacts import pick_interface

FIX = Path(__file__).parent / "fixtures" / "clients"


def text(name: str) -> str:
    return windows.decode_console((FIX / name).read_bytes())


def amt_adapter(facts, mac: str):
    choice = pick_interface(facts, mac)
    assert choice.adapter is not None, choice.why
    return choice


# --------------------------------------------------------------------------------------------------
# ipconfig /all as published: indent lost or added
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, mac, ipv4, suffix, dhcp, others", [
    # a forum copy: every row at column 0, continuation rows too (DNS servers, the search list)
    ("ipconfig_all_en_forum_flat_constructed.txt", "3c:97:0e:41:7a:2c", ("10.61.4.117",), "corp.example.net", True,
     3),
    # a Markdown block: every line indented alike, header and rows at the same indent
    ("ipconfig_all_en_markdown_indented_constructed.txt", "54:e1:ad:6b:20:9f", ("172.20.8.54",),
     "branch.example.org", True, 2),
])
def test_ipconfig_copy_that_lost_or_gained_indent(name, mac, ipv4, suffix, dhcp, others):
    facts = windows.ipconfig_facts(text(name))
    assert facts.readable, facts.problems
    a = amt_adapter(facts, mac).adapter
    assert (a.ipv4, a.suffix, a.dhcp_enabled, a.connected) == (ipv4, suffix, dhcp, True)
    assert len(facts.adapters) == others


def test_flat_copy_keeps_search_list_and_disconnected_adapters():
    facts = windows.ipconfig_facts(text("ipconfig_all_en_forum_flat_constructed.txt"))
    assert facts.search_list == ("corp.example.net", "example.net")
    bt = facts.adapters[0]
    assert (bt.mac, bt.connected, bt.dhcp_enabled, bt.ipv4) == ("5c:f3:70:8a:11:3b", False, True, ())


@pytest.mark.parametrize("name", ["ipconfig_all_en_win10_jc.txt", "ipconfig_all_it_wintun_constructed.cp850_crlf.txt",
                                  "ipconfig_all_ko_wsl_constructed.cp949_crlf.txt",
                                  "ipconfig_all_de_win11_nwt.cp850_crlf.txt"])
def test_every_capture_reads_the_same_flattened_or_quoted(name):
    """The same output with its indent stripped (forum), a uniform indent added (Markdown) or every line
    quoted with "> " reads the same: adapters, MACs, addresses, suffixes, DHCP flags (Italian leader-less
    rows included)."""
    original = text(name)
    lines = original.replace("\r\n", "\n").split("\n")

    def key(facts):
        return [(a.name, a.mac, a.ipv4, a.suffix, a.dhcp_enabled, a.connected) for a in facts.adapters]

    want = key(windows.ipconfig_facts(original))
    assert want
    assert key(windows.ipconfig_facts("\n".join(ln.lstrip() for ln in lines))) == want
    assert key(windows.ipconfig_facts("\n".join("    " + ln for ln in lines))) == want
    # a GitHub issue or e-mail quote: every line prefixed with "> " (blank lines with ">")
    assert key(windows.ipconfig_facts("\n".join(f"> {ln}" if ln.strip() else ">" for ln in lines))) == want


# --------------------------------------------------------------------------------------------------
# ipconfig /renew that printed only a message: it renewed nothing
# --------------------------------------------------------------------------------------------------


def _jc_ethernet2():
    after = windows.ipconfig_facts(text("ipconfig_all_en_win10_jc.txt"))
    return after, amt_adapter(after, "f8:e4:3b:ad:f2:6d").adapter


@pytest.mark.parametrize("output", [
    text("ipconfig_renew_en_no_adapter_permissible_constructed.txt"),
    # any message line without an adapter block (the wording does not matter, the structure does)
    "\r\nWindows IP Configuration\r\n\r\nThe requested operation requires elevation.\r\n",
])
def test_renew_that_printed_no_adapter_block_renewed_nothing(output):
    """ipconfig /renew prints a block per adapter it worked on; a message and no block means it renewed
    nothing, and the adapter read back afterwards still shows the lease it had (Windows keeps it)."""
    after, target = _jc_ethernet2()
    assert target.ipv4 == ("10.50.13.132",) and target.dhcp_enabled  # the old lease, still shown
    verdict = windows.judge_renew(output, after, target)
    assert (verdict.ok, verdict.reached) == (False, False)
    assert "renewed no adapter" in verdict.detail and ("permissible" in verdict.detail or "elevation" in verdict.detail)


# --------------------------------------------------------------------------------------------------
# PowerShell ConvertTo-Json: Windows PowerShell 5.1's wrapped arrays, depth truncation, other cmdlets
# --------------------------------------------------------------------------------------------------


def test_ps51_value_count_wrapped_arrays_are_arrays():
    """Windows PowerShell 5.1 writes an array it sees as one object as {"value": [...], "Count": N}
    (PowerShell#5579): the addresses are in "value", not missing."""
    facts = windows.parse_powershell_facts(text("ps_win32_nac_ps51_value_count_constructed.json"))
    assert facts.readable, facts.problems
    choice = amt_adapter(facts, "A4:BB:6D:52:0E:19")
    a = choice.adapter
    assert (a.ipv4, a.suffix, a.dhcp_enabled, a.index) == (("10.84.17.203",), "plant.example.com", True, 9)
    assert choice.suffix == "plant.example.com"
    wrapped = '{"adapters":{"value":[' + text("ps_win32_nac_json_constructed.json").strip()[1:-1] + '],"Count":2},' \
              '"search":{"value":["corp.example.com"],"Count":1}}'
    facts = windows.parse_powershell_facts(wrapped)
    assert facts.search_list == ("corp.example.com",)
    assert amt_adapter(facts, "3c:52:82:1a:4f:01").adapter.ipv4 == ("10.50.104.30",)


def test_depth_truncated_addresses_are_could_not_read():
    """ConvertTo-Json's default -Depth 2 turns the MSFT_NetIPAddress objects into their ToString()
    (PowerShell#3574): the addresses are unknown, so the output is not read as an adapter without one."""
    raw = text("ps_get_netipconfiguration_depth2_constructed.json")
    facts = windows.parse_powershell_facts(raw)
    assert not facts.readable and "depth" in facts.problems[0] and facts.raw.startswith("{")
    assert pick_interface(facts, "a4:bb:6d:52:0e:19").adapter is None
    cut = raw.replace('"NetAdapter"', '"Cut"').replace(
        '"InterfaceIndex":  9,\n    "InterfaceDescription"', '"IPAddress":  "System.String[]",\n    "InterfaceDescription"')
    assert not windows.parse_powershell_facts(cut).readable


def test_get_netipconfiguration_and_get_netadapter_objects_by_property_names():
    """Other cmdlets' objects: the MAC in the nested NetAdapter (MSFT_NetAdapter MacAddress, dashes), the
    addresses in IPv4Address objects, ifIndex for InterfaceIndex; no suffix property means unknown."""
    facts = windows.parse_powershell_facts(text("ps_get_netipconfiguration_depth4_constructed.json"))
    assert facts.readable, facts.problems
    a = amt_adapter(facts, "a4:bb:6d:52:0e:19").adapter
    assert (a.name, a.ipv4, a.index, a.connected) == ("Ethernet", ("10.84.17.203",), 9, True)
    assert any("suffix" in p and "unknown" in p for p in facts.problems)
    netadapter = windows.parse_powershell_facts(text("ps_get_netadapter_json_constructed.json"))
    assert [(x.name, x.mac, x.index) for x in netadapter.adapters] == [
        ("Ethernet", "3c:52:82:1a:4f:01", 12), ("WLAN", "de:9f:c0:e9:89:9d", 7)]


def test_powershell_objects_that_are_not_adapters_are_could_not_read():
    facts = windows.parse_powershell_facts(text("ps_get_dnsclient_json_constructed.json"))
    assert not facts.readable and "neither a MAC nor an IPv4" in facts.problems[0]
    assert not windows.parse_powershell_facts('{"Name":"x","Value":3}').readable


# --------------------------------------------------------------------------------------------------
# Linux: ISC dhclient's lease database (option 15), not resolv.conf's search (option 119)
# --------------------------------------------------------------------------------------------------

_IP_J = ('[{"ifindex":1,"ifname":"lo","link_type":"loopback","address":"00:00:00:00:00:00","operstate":"UNKNOWN",'
         '"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},'
         '{"ifindex":2,"ifname":"eth0","link_type":"ether","address":"a4:bb:6d:52:0e:19","operstate":"UP",'
         '"addr_info":[{"family":"inet","local":"10.84.17.203","prefixlen":22,"dynamic":true}]}]')
_PS_DHCLIENT = ("/sbin/dhclient -4 -v -i -pf /run/dhclient.eth0.pid -lf /var/lib/dhcp/dhclient.eth0.leases -I -df "
                "/var/lib/dhcp/dhclient6.eth0.leases eth0\n")


class _Scripted:
    """The commands' outputs as a host printed them (SSH itself is not what these tests are about)."""

    def __init__(self, answers: dict[str, tuple[int, str]]):
        self.answers, self.sent = answers, []

    def run(self, command):
        from types import SimpleNamespace
        self.sent.append(command)
        for prefix, (status, out) in self.answers.items():
            if command.startswith(prefix):
                return SimpleNamespace(exit_status=status, stdout=out, stderr="")
        return SimpleNamespace(exit_status=127, stdout="", stderr="command not found\n")


def _probe(resolv: str, nmcli: str = "", ps: str = _PS_DHCLIENT) -> str:
    return (f"@@ip\n{_IP_J}\n@@resolv\n{resolv}\n@@resolvectl\n\n@@nmcli\n{nmcli}\n@@networkctl\n\n"
            f"@@ps\n{ps}")


def _read_linux(leases: tuple[int, str], nmcli: str = ""):
    from tasks.adapters.os_network import read_interface
    resolv = text("resolv_conf_dhclient_option119_constructed.txt")
    sh = _Scripted({"echo @@ip": (0, _probe(resolv, nmcli)), "dhcpcd -U": (1, ""),
                    "cat /var/lib/dhcp/dhclient.eth0.leases": leases})
    return read_interface(sh, "linux", amt_mac="A4-BB-6D-52-0E-19"), sh


def test_dhclient_suffix_is_option_15_of_the_last_lease_not_resolv_conf_search():
    """dhclient-script writes resolv.conf's search from option 119 when the server sends it; option 15 is
    in the lease database, whose last declaration for the interface is the lease dhclient holds."""
    choice, sh = _read_linux((0, text("dhclient_eth0_leases_option119_constructed.txt")))
    a = choice.adapter
    assert (a.manager, a.suffix, a.dhcp_server) == ("dhclient", "plant.example.com", "10.84.16.6")
    assert choice.suffix == "plant.example.com"
    assert sh.sent[-1] == "cat /var/lib/dhcp/dhclient.eth0.leases"  # the file ifupdown's dhclient runs with (-lf)


def test_dhclient_lease_file_missing_or_stale_keeps_resolv_conf_with_the_reason():
    choice, _ = _read_linux((1, ""))
    assert choice.adapter.suffix == "corp.example.com"
    assert any("no dhclient lease" in p for p in choice.facts.problems)
    first_only = text("dhclient_eth0_leases_option119_constructed.txt").split("\nlease {", 2)
    stale = first_only[0] + "\nlease {" + first_only[1]  # only the lease for the address it held before
    choice, _ = _read_linux((0, stale))
    assert choice.adapter.suffix == "corp.example.com"
    assert any("stale" in p for p in choice.facts.problems)


def test_lease_without_option_15_is_no_suffix():
    no15 = "\n".join(ln for ln in text("dhclient_eth0_leases_option119_constructed.txt").splitlines()
                     if '"plant.example.com"' not in ln)
    choice, _ = _read_linux((0, no15))
    assert choice.adapter.suffix == "" and choice.suffix == ""  # the 119 domain is not option 15


def test_nmcli_connected_externally_is_not_networkmanager():
    """nmcli prints "connected (externally)" for a device whose connection NetworkManager only observes
    (NM_ACTIVATION_STATE_FLAG_EXTERNAL): ifupdown's dhclient holds the lease, so the renew goes through it,
    not through ``nmcli device connect`` (which would take the device over)."""
    choice, _ = _read_linux((0, text("dhclient_eth0_leases_option119_constructed.txt")),
                            nmcli=text("nmcli_terse_external_constructed.txt"))
    assert choice.adapter.manager == "dhclient" and choice.suffix == "plant.example.com"
    from tasks.adapters import linux
    assert linux.nm_manages("connected") and not linux.nm_manages("connected (externally)")


# --------------------------------------------------------------------------------------------------
# Linux: iproute2 without JSON (CentOS/RHEL 7)
# --------------------------------------------------------------------------------------------------


def test_ip_without_json_is_read_from_ip_addr_show():
    """iproute2 before 4.14.1 has no -j: ``ip -j addr`` prints nothing on stdout (the error goes to
    stderr), and the probe's ``ip addr show`` text is read instead: MAC, addresses, ``dynamic`` = DHCP."""
    from tasks.adapters import linux
    probe = (f"@@ip\n\n@@resolv\nsearch plant.example.com\nnameserver 10.84.16.10\n@@resolvectl\n\n@@nmcli\n\n"
             f"@@networkctl\n\n@@ps\n{_PS_DHCLIENT}@@iptext\n{text('ip_addr_show_centos7_constructed.txt')}")
    facts, _ = linux.parse_probe(probe)
    assert facts.readable, facts.problems
    eth0 = amt_adapter(facts, "52:54:00:6b:3c:58").adapter
    assert (eth0.name, eth0.ipv4, eth0.dhcp_enabled, eth0.index, eth0.connected) == (
        "eth0", ("10.84.17.44",), True, 2, True)
    docker0 = next(a for a in facts.adapters if a.name == "docker0")
    assert (docker0.dhcp_enabled, docker0.connected) == (False, False)
    assert [a.name for a in facts.adapters] == ["eth0", "docker0", "eth0.20"]  # loopback left out, VLAN named
    # the flags lost in a web copy ("2: eth0:  mtu 1500") and rows at column 0 still read
    web = "\n".join(ln.strip() for ln in text("ip_addr_show_centos7_constructed.txt").splitlines()).replace(
        "<BROADCAST,MULTICAST,UP,LOWER_UP>", "")
    assert linux.parse_ip_text(web)[0].ipv4 == ("10.84.17.44",)
    nothing, _ = linux.parse_probe("@@ip\n\n@@iptext\n\n")
    assert not nothing.readable


# --------------------------------------------------------------------------------------------------
# ipconfig: several runs pasted together, with prompt lines
# --------------------------------------------------------------------------------------------------


def test_paste_of_several_runs_reads_the_latest_full_run():
    """``ipconfig /all``, ``ipconfig /renew``, ``ipconfig /all`` pasted with their prompt lines: the adapter
    is what the last /all run shows (connected, the new lease), not the first run's stale, disconnected
    block that carries the same MAC."""
    facts = windows.ipconfig_facts(text("ipconfig_all_renew_all_prompts_en_constructed.txt"))
    assert facts.readable, facts.problems
    assert [a.name for a in facts.adapters] == ["Ethernet adapter Ethernet", "Wireless LAN adapter Wi-Fi"]
    choice = amt_adapter(facts, "8C-16-45-2A-77-0E")
    a = choice.adapter
    assert (a.ipv4, a.connected, a.dhcp_enabled, a.index) == (("10.84.17.61",), True, True, 9)
    assert choice.suffix == "plant.example.com"
    assert facts.search_list == ("plant.example.com", "guest.example.net")
    runs = windows.parse_ipconfig(text("ipconfig_all_renew_all_prompts_en_constructed.txt"))
    assert sorted({x.section for x in runs.adapters}) == [0, 1, 2]


def test_renew_return_value_wrapped_by_ps51_is_read():
    """RenewDHCPLease's result through Windows PowerShell 5.1 may come wrapped ({"value": [...], "Count": 1},
    PowerShell#5579); its ReturnValue is the verdict, not an unreadable output."""
    ok = windows.check_renew(0, '{"value":[{"ReturnValue":0}],"Count":1}\r\n', "")
    assert (ok.ok, ok.code) == (True, 0)
    failed = windows.check_renew(0, '{"value":[{"ReturnValue":82}],"Count":1}\r\n', "")
    assert (failed.ok, failed.code) == (False, 82) and "unable to renew" in failed.detail


# --------------------------------------------------------------------------------------------------
# Linux: systemd-resolved's per-link domains where resolvectl does not exist yet (systemd < 239)
# --------------------------------------------------------------------------------------------------


def test_systemd_resolve_status_per_link_domains():
    """systemd 237 (Ubuntu 18.04) has no resolvectl: the probe's systemd-resolve --status gives the link's
    DNS Domain rows (continued on unlabelled lines, ~route-only left out); the Global DNSSEC NTA list
    (corp, home, lan, local...) is no search domain."""
    from tasks.adapters import linux
    status = text("systemd_resolve_status_v237_constructed.txt")
    assert linux.parse_resolved_status(status) == {"docker0": (), "ens4": ("plant.example.com", "example.com")}
    assert linux.parse_resolved_status(text("resolvectl_status_v247plus_systemd18855.txt"))["wlp4s0"] == ("lan",)
    ip = _IP_J.replace('"eth0"', '"ens4"')
    probe = (f"@@ip\n{ip}\n@@resolv\n{text('resolv_conf_systemd_stub.txt')}\n@@resolvectl\n\n"
             f"@@resolvestatus\n{status}\n@@nmcli\n\n@@networkctl\n\n@@ps\n")
    facts, _ = linux.parse_probe(probe)
    assert amt_adapter(facts, "a4:bb:6d:52:0e:19").adapter.suffix == "plant.example.com"


def test_powershell_error_position_line_in_any_language_is_left_out():
    """Windows PowerShell's error view: message, position line (translated: "En línea: 1 Carácter: 1"),
    "+ code" excerpt at column 0, then indented "+ CategoryInfo" rows: the message is only the message."""
    es = text("ps_error_es_position_constructed.txt")
    assert windows.first_error_line(es) == "Get-CimInstance : Acceso denegado."
    two = "First part of the message\r\nsecond part.\r\n    + CategoryInfo          : NotSpecified: (:) [], X\r\n"
    assert windows.first_error_line(two) == "First part of the message second part."


def test_lab_dhclient_host_prints_the_same_lease_database_shape():
    """The lab's dhclient hosts answer ``cat /var/lib/dhcp/dhclient.leases`` in dhclient.leases(5)'s shape
    (an older declaration first): the product's reader takes the last one."""
    from types import SimpleNamespace

    from lab import clientos
    from tasks.adapters import dhclient_leases
    dev = SimpleNamespace(net_stack="dhclient", address="10.84.17.203", os_suffix="plant.example.com")
    lease = dhclient_leases.current(clientos.dhclient_leases(dev, "10.84.16.6", "255.255.252.0", "10.84.16.1"),
                                    "eth0")
    assert (lease.domain_name, lease.options["dhcp-server-identifier"]) == ("plant.example.com", "10.84.16.6")


def test_renew_error_naming_the_adapter_with_an_attached_particle():
    """Korean attaches particles to the name it inserts ("이더넷에서"), Japanese and Chinese put no blank
    around it: a wide letter next to the name is a word boundary, and the longest name still wins
    ("이더넷 2에서" is about 이더넷 2, not 이더넷). The message wording is CONSTRUCTED (no Korean capture of
    this message was found); only the name's position in it matters."""
    after = windows.ipconfig_facts(text("ipconfig_all_ko_wsl_constructed.cp949_crlf.txt"))
    target = amt_adapter(after, "f4:f1:9e:23:2f:a9").adapter
    assert target.name.endswith("이더넷")
    renew = ("\r\nWindows IP 구성\r\n\r\n미디어 연결이 끊어져 있으므로 이더넷에서 작업을 수행할 수 없습니다.\r\n\r\n"
             "이더넷 어댑터 이더넷:\r\n\r\n   미디어 상태 . . . . . . . . : 미디어 연결 끊김\r\n"
             "   연결별 DNS 접미사. . . . :\r\n")
    verdict = windows.judge_renew(renew, after, target)
    assert not verdict.ok and "이더넷에서" in verdict.detail
    other = renew.replace("이더넷에서", "이더넷 2에서") + (
        "\r\n이더넷 어댑터 이더넷 2:\r\n\r\n   미디어 상태 . . . . . . . . : 미디어 연결 끊김\r\n"
        "   연결별 DNS 접미사. . . . :\r\n")
    assert "이더넷 2에서" not in windows.judge_renew(other, after, target).detail
