"""Client network readers on real captures (tests/fixtures/clients, see SOURCES.md): any display language,
several adapters, code pages, CLIXML, the Linux stacks; and the choice of the adapter AMT shares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.adapters import linux, windows
from tasks.adapters.netfacts import normalize_mac, pick_interface
from tasks.adapters.os_network import read_interface, renew, renew_command

FIX = Path(__file__).parent / "fixtures" / "clients"


def text(name: str) -> str:
    return windows.decode_console((FIX / name).read_bytes())


# -- ipconfig /all, by structure -----------------------------------------------------------------

@pytest.mark.parametrize("name, mac, address, suffix, index", [
    ("ipconfig_all_en_win10_jc.txt", "f8:e4:3b:ad:f2:6d", "10.50.13.132", "internal.companyname.com", 16),
    ("ipconfig_all_en_win11_jc.txt", "a8:7e:ea:55:26:b0", "192.168.1.169", "localdomain", 11),
    ("ipconfig_all_de_win11_nwt.txt", "d0:39:57:78:a7:c3", "192.168.178.23", "fritz.box", 5),
    ("ipconfig_all_de_win11_nwt.cp850_crlf.txt", "d0:39:57:78:a7:c3", "192.168.178.23", "fritz.box", 5),
    ("ipconfig_all_de_hyperv_r406.txt", "74:56:3c:c6:25:99", "10.50.104.30", "training.erfurt.iad.de", 7),
    ("ipconfig_all_fr_colon_leaders_constructed.txt", "00:0c:29:5e:41:0a", "192.168.1.34", "maison", 2),
    ("ipconfig_all_fr_nbsp_crlf_constructed.txt", "3c:e1:a1:5b:20:14", "10.35.200.17", "", 4),
    ("ipconfig_all_es_warp_constructed.cp850_crlf.txt", "b8:1c:22:58:60:0c", "192.168.1.171", "casa", 10),
    ("ipconfig_all_en_winxp_jc.txt", "00:0c:29:25:b6:4d", "192.168.22.135", "", None),
])
def test_ipconfig_any_language_picks_by_mac_and_by_address(name, mac, address, suffix, index):
    facts = windows.ipconfig_facts(text(name))
    assert facts.readable, facts.problems
    by_mac = pick_interface(facts, mac.upper().replace(":", "-"))
    assert by_mac.adapter is not None and by_mac.adapter.ipv4[0] == address
    assert by_mac.suffix == suffix and by_mac.adapter.index == index
    by_address = pick_interface(facts, "", address)
    assert by_address.adapter == by_mac.adapter and "inventory address" in by_address.why


def test_virtual_adapters_listed_first_are_not_chosen():
    facts = windows.ipconfig_facts(text("ipconfig_all_de_win11_nwt.cp850_crlf.txt"))
    first_dhcp_with_ip = next(a for a in facts.adapters if a.ipv4)
    assert first_dhcp_with_ip.description.startswith("Hyper-V")  # the old "first DHCP adapter" trap
    choice = pick_interface(facts, "d0-39-57-78-a7-c3")
    assert choice.adapter.description.startswith("MediaTek") and choice.suffix == "fritz.box"
    nothing = pick_interface(facts, "00:11:22:33:44:55", "10.9.9.9")
    assert nothing.adapter is None and nothing.suffix is None and "no adapter has" in nothing.why


def test_global_block_and_multi_line_search_lists():
    cfg = windows.parse_ipconfig(text("ipconfig_all_en_win10_jc.txt"))
    assert cfg.search_list == ("tailff123.ts.net", "internal.companyname.com")
    fr = windows.parse_ipconfig(text("ipconfig_all_fr_nbsp_crlf_constructed.txt"))
    assert fr.primary_suffix == "siege.example.fr" and len(fr.search_list) == 3
    de = windows.parse_ipconfig(text("ipconfig_all_de_hyperv_r406.txt"))
    assert de.host_name == "R406" and de.adapters[0].dhcp_enabled is False and de.adapters[1].dhcp_enabled is True


def test_cp850_bytes_decode_and_utf8_bom():
    raw = (FIX / "ipconfig_all_de_win11_nwt.cp850_crlf.txt").read_bytes()
    assert b"\x84" in raw or b"\x81" in raw
    assert "ü" in windows.decode_console(raw) or "ä" in windows.decode_console(raw)
    assert windows.decode_console(b"\xef\xbb\xbfabc") == "abc"


@pytest.mark.parametrize("bad", ["", "   \r\n", "Windows IP Configuration\r\n\r\n   Host Name . . . : X\r\n",
                                 "\x00\x01garbage", "Ethernet adapter Ethernet:\r\n\r\n   Connection-specific"])
def test_unreadable_ipconfig_is_a_clear_outcome_with_raw_text(bad):
    facts = windows.ipconfig_facts(bad)
    assert not facts.readable and facts.problems and facts.raw == bad[:2000]
    choice = pick_interface(facts, "00:11:22:33:44:55")
    assert choice.suffix is None and "could not read" in choice.why
    assert choice.evidence()["os_raw_output"] == bad[:2000]


def test_truncated_ipconfig_keeps_what_is_whole():
    full = text("ipconfig_all_en_win10_jc.txt")
    cut = full[:full.index("Ethernet adapter Ethernet 2")]
    facts = windows.ipconfig_facts(cut)
    assert pick_interface(facts, "f8-e4-3b-ad-f2-6d").adapter is None  # never a guess from another adapter


# -- PowerShell ------------------------------------------------------------------------------------

def test_powershell_cim_json_array_single_object_and_nulls():
    facts = windows.parse_powershell_facts(text("ps_win32_nac_json_constructed.json"))
    intel = pick_interface(facts, "3c-52-82-1a-4f-01").adapter
    assert (intel.index, intel.suffix, intel.ipv4) == (12, "corp.example.com", ("10.50.104.30",))
    hyperv = pick_interface(facts, "00:15:5D:FE:1E:97").adapter
    assert hyperv.suffix == "" and hyperv.dhcp_enabled is False
    one = json.dumps({"adapters": {"Description": "NIC", "MACAddress": "00:11:22:33:44:55", "IPAddress": None,
                                   "DNSDomain": None, "InterfaceIndex": 3, "IPEnabled": True}, "search": None})
    single = windows.parse_powershell_facts(one)
    assert single.readable and single.adapters[0].ipv4 == () and single.search_list == ()
    assert not windows.parse_powershell_facts("").readable
    assert not windows.parse_powershell_facts("Get-CimInstance : Zugriff verweigert").readable


def test_powershell_commands_are_encoded_and_renew_by_index():
    cmd = windows.facts_command()
    assert cmd.startswith("powershell -NoProfile -NonInteractive -EncodedCommand ")
    assert all(c.isalnum() or c in "+/= -" for c in cmd)
    assert "InterfaceIndex=12'" in windows.renew_script(12)
    for bad in (0, -1, "12", True, 2**31):
        with pytest.raises(ValueError):
            windows.renew_script(bad)
    assert windows.check_renew(0, '{"ReturnValue":0}\r\n', "").ok
    failed = windows.check_renew(0, '{"ReturnValue":82}', "")
    assert not failed.ok and "unable to renew" in failed.detail
    assert not windows.check_renew(0, "", "").ok


# -- CLIXML ----------------------------------------------------------------------------------------

def test_clixml_decoded_to_the_error_text():
    msg = windows.first_error_line(text("clixml_error_not_recognized_constructed.txt"))
    assert msg.startswith("rpc : The term 'rpc' is not recognized") and msg.endswith("and try again.")
    long = windows.clixml_text(text("clixml_error_constructed_crlf.txt"))
    assert "Preparing modules" not in long and "FullyQualifiedErrorId" in long
    assert windows.first_error_line(text("clixml_error_constructed_crlf.txt")).endswith("of the property and retry.")
    nested = windows.clixml_text(text("clixml_nested_de_cp437.bin"))
    assert "CLIXML" not in nested and "<" not in nested and nested
    progress_only = '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0"><MS><PR N="Record"><AV>x</AV></PR></MS></Obj></Objs>'
    assert windows.clixml_text(progress_only) == ""
    assert windows.clixml_text("plain error\r\n") == "plain error\r\n"
    assert windows.clixml_text('banner\n#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">a_x005F_b_x000D__x000A_</S></Objs>') == "banner\na_b"


# -- Linux -----------------------------------------------------------------------------------------

def _probe(ip="", resolv="", resolvectl="", nmcli="", networkctl=""):
    return (f"@@ip\n{ip}\n@@resolv\n{resolv}\n@@resolvectl\n{resolvectl}\n@@nmcli\n{nmcli}\n"
            f"@@networkctl\n{networkctl}\n")


def test_ip_json_resolvectl_and_stub():
    ip = (FIX / "ip_j_addr_constructed.json").read_text()
    facts, sections = linux.parse_probe(_probe(ip, text("resolv_conf_systemd_stub.txt"),
                                               text("resolvectl_domain_constructed.txt")))
    eth0 = pick_interface(facts, "52-54-00-12-34-56").adapter
    assert eth0.name == "eth0" and eth0.suffix == "corp.example.com" and eth0.dhcp_enabled is True
    assert [a.name for a in facts.adapters] == ["eth0", "wg0"] and facts.adapters[1].mac == ""
    assert facts.search_list == ()  # "search ." is no search domain
    stub = linux.parse_resolv_conf(text("resolv_conf_systemd_stub.txt"))
    assert stub.resolved_stub and stub.search == () and stub.os_suffix == ""
    assert linux.parse_resolvectl_domain(text("resolvectl_domain_constructed.txt"))["tun0"] == ()


def test_nmcli_terse_escapes_and_manager():
    lines = text("nmcli_terse_constructed.txt").splitlines()
    assert normalize_mac(linux._terse_fields(lines[2])[1]) == "00:0c:29:3b:58:0e"
    devices = linux.parse_nmcli_devices("\n".join(lines[7:9]))
    assert devices == {"eth0": "connected", "lo": "connected (externally)"}
    ip = (FIX / "ip_j_addr_constructed.json").read_text()
    facts, _ = linux.parse_probe(_probe(ip, nmcli="\n".join(lines[7:9])))
    eth0 = facts.adapters[0]
    assert eth0.manager == linux.NETWORKMANAGER
    settled = linux.apply_detail(eth0, 0, "IP4.DOMAIN[1]:localdomain\nDHCP4.OPTION[4]:domain_name = corp.example\n",
                                 linux.parse_resolv_conf(""), [])
    assert settled.suffix == "corp.example"
    assert renew_command("linux", eth0) == "sudo -n nmcli device connect eth0"


def test_networkd_dhcpcd_dhclient_detection_and_renew():
    ip = (FIX / "ip_j_addr_constructed.json").read_text()
    facts, _ = linux.parse_probe(_probe(ip, networkctl="  1 lo   loopback carrier  unmanaged\n"
                                                       "  2 eth0 ether    routable configured\n"))
    eth0 = facts.adapters[0]
    assert eth0.manager == linux.NETWORKD and renew_command("linux", eth0) == "sudo -n networkctl renew eth0"
    assert linux.detail_command(eth0) == "cat /run/systemd/netif/leases/2"
    assert linux.apply_detail(eth0, 0, "ADDRESS=1.2.3.4\nDOMAINNAME=lab.example\n", linux.parse_resolv_conf(""), []).suffix == "lab.example"
    facts, _ = linux.parse_probe(_probe(ip))
    plain = facts.adapters[0]
    assert plain.manager == "" and linux.detail_command(plain) == "dhcpcd -U eth0"
    dhcpcd = linux.apply_detail(plain, 0, text("dhcpcd_U_eth0_cloudinit.txt"), linux.parse_resolv_conf(""), [])
    assert dhcpcd.manager == linux.DHCPCD and dhcpcd.suffix == "us-east-2.compute.internal"
    assert renew_command("linux", dhcpcd) == "sudo -n dhcpcd -n eth0"
    dhclient = linux.apply_detail(plain, 127, "", linux.parse_resolv_conf("search a.example\nnameserver 10.0.0.1\n"), [])
    assert dhclient.manager == linux.DHCLIENT and dhclient.suffix == "a.example"
    assert renew_command("linux", dhclient) == "sudo -n dhclient -r eth0 && sudo -n dhclient eth0"
    assert linux.check_renew("networkd", 1, "", "Failed to renew: Access denied\n").auth


def test_unreadable_linux_probe():
    facts, _ = linux.parse_probe(_probe("bash: ip: command not found"))
    assert not facts.readable and "ip -j addr" in facts.problems[0]


# -- the lab shows the variety --------------------------------------------------------------------

@pytest.fixture(scope="module")
def variety_lab(tmp_path_factory):
    import yaml

    from lab.clock import ManualClock
    from lab.generate import _keypair
    from lab.server import LabServer
    from tests.lab_fixtures import BASE_FLEET

    out = tmp_path_factory.mktemp("variety")
    _keypair(out)
    base = {"amt_version": "11.8.50", "state": "pre", "trusted_suffix": "", "dhcp_suffix": "",
            "domain_name": "", "os_suffix": "contoso.com", "faults": []}
    devices = [dict(base, name="WIN-DE", address="127.10.0.1", os="windows", locale="de", virtual_adapters=2),
               dict(base, name="WIN-NOPS", address="127.10.0.2", os="windows", locale="fr", powershell=False,
                    virtual_adapters=1),
               dict(base, name="LX-NM", address="127.10.0.3", os="linux", net_stack="networkmanager"),
               dict(base, name="LX-ND", address="127.10.0.4", os="linux", net_stack="networkd"),
               dict(base, name="LX-DC", address="127.10.0.5", os="linux", net_stack="dhcpcd"),
               dict(base, name="LX-DH", address="127.10.0.6", os="linux")]
    data = dict(BASE_FLEET, devices=devices, ssh={"authorized_keys": "keys/id_ed25519.pub"})
    (out / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    from tasks.adapters.ssh import SshRunner, SshSettings

    with LabServer(out / "fleet.yaml", known_hosts=out / "known_hosts", clock=ManualClock()) as lab:
        yield SshRunner(SshSettings(user="migrator", port=lab.ssh_port, known_hosts=lab.known_hosts_path,
                                    key_path=lab.private_key_path, connect_timeout=3, command_timeout=5))


class _Sh:
    def __init__(self, runner, address):
        self.runner, self.address = runner, address

    def run(self, command):
        return self.runner.run(self.address, command)


@pytest.mark.parametrize("address, flavor, manager, source", [
    ("127.10.0.1", "windows", "", "PowerShell"), ("127.10.0.2", "windows", "", "ipconfig /all"),
    ("127.10.0.3", "linux", "NetworkManager", "ip -j"), ("127.10.0.4", "linux", "systemd-networkd", "ip -j"),
    ("127.10.0.5", "linux", "dhcpcd", "ip -j"), ("127.10.0.6", "linux", "dhclient", "ip -j")])
def test_lab_variety_read_and_renew(variety_lab, address, flavor, manager, source):
    from tasks.adapters.rpc_cli import amtinfo_command, parse_amtinfo

    sh = _Sh(variety_lab, address)
    mac = parse_amtinfo(sh.run(amtinfo_command(flavor)).stdout).wired_adapter["macAddress"]
    choice = read_interface(sh, flavor, amt_mac=mac, address=address)
    assert choice.suffix == "contoso.com", choice.evidence()
    assert choice.facts.source.startswith(source) and choice.adapter.manager == manager
    assert "AMT's wired MAC" in choice.why
    out = renew(sh, flavor, choice.adapter)
    assert out.ok, out.detail


def test_lab_german_ipconfig_and_clixml(variety_lab):
    sh = _Sh(variety_lab, "127.10.0.1")
    r = sh.run("ipconfig /all")
    assert "Windows-IP-Konfiguration" in r.stdout and "Physische Adresse" in r.stdout
    facts = windows.ipconfig_facts(r.stdout)
    assert [a.description.split()[0] for a in facts.adapters] == ["Hyper-V", "VMware", "Intel(R)"]
    r = sh.run(windows.powershell_command("Get-Nothing -Foo 1"))
    assert r.stderr.startswith("#< CLIXML") and windows.first_error_line(r.stderr).startswith("Get-Nothing : The term")
