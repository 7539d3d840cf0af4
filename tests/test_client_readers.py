"""Command builders and parsers, against output written the way the real tools print it."""

from __future__ import annotations

import shlex
from datetime import datetime

import pytest

from tasks.adapters.amt_host_tool import check_set_dns_suffix, get_dns_suffix_command, parse_get_dns_suffix, set_dns_suffix_command
from tasks.adapters.commands import HostTools, OsFlavor, quote_argv, safe_token, validate_server_url
from tasks.adapters.commands import LAB_TOOLS
from tasks.adapters.os_network import parse_hostname_domain, parse_ipconfig, parse_resolv_conf, read_interface, renew
from tasks.adapters.rpc_cli import activate_command, amtinfo_command, parse_amtinfo, parse_amtinfo_json, parse_amtinfo_text, parse_logrus, read_activation
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# Windows 10 22H2, English: a wired adapter on DHCP, a disconnected Wi-Fi, a Bluetooth PAN.
IPCONFIG_ALL = crlf("""
Windows IP Configuration

   Host Name . . . . . . . . . . . . : WS-0142
   Primary Dns Suffix  . . . . . . . : corp.contoso.com
   Node Type . . . . . . . . . . . . : Hybrid
   IP Routing Enabled. . . . . . . . : No
   WINS Proxy Enabled. . . . . . . . : No
   DNS Suffix Search List. . . . . . : corp.contoso.com
                                       Sales.Contoso.com.

Wireless LAN adapter Wi-Fi:

   Media State . . . . . . . . . . . : Media disconnected
   Connection-specific DNS Suffix  . : 
   Description . . . . . . . . . . . : Intel(R) Wi-Fi 6 AX201 160MHz
   Physical Address. . . . . . . . . : 0C-54-15-AB-CD-EF
   DHCP Enabled. . . . . . . . . . . : Yes
   Autoconfiguration Enabled . . . . : Yes

Ethernet adapter Ethernet:

   Connection-specific DNS Suffix  . : Sales.Contoso.com
   Description . . . . . . . . . . . : Intel(R) Ethernet Connection (7) I219-LM
   Physical Address. . . . . . . . . : 98-FA-9B-12-34-56
   DHCP Enabled. . . . . . . . . . . : Yes
   Autoconfiguration Enabled . . . . : Yes
   Link-local IPv6 Address . . . . . : fe80::1c2d:3e4f:5a6b:7c8d%12(Preferred) 
   IPv4 Address. . . . . . . . . . . : 10.20.30.41(Preferred) 
   Subnet Mask . . . . . . . . . . . : 255.255.255.0
   Lease Obtained. . . . . . . . . . : Tuesday, November 24, 2026 8:02:11 AM
   Lease Expires . . . . . . . . . . : Wednesday, November 25, 2026 8:02:11 PM
   Default Gateway . . . . . . . . . : 10.20.30.1
   DHCP Server . . . . . . . . . . . : 10.20.0.10
   DHCPv6 IAID . . . . . . . . . . . : 110690971
   DHCPv6 Client DUID. . . . . . . . : 00-01-00-01-2A-3B-4C-5D-98-FA-9B-12-34-56
   DNS Servers . . . . . . . . . . . : 10.20.0.10
                                       fec0:0:0:ffff::1%1
   NetBIOS over Tcpip. . . . . . . . : Enabled

Ethernet adapter Bluetooth Network Connection:

   Media State . . . . . . . . . . . : Media disconnected
   Connection-specific DNS Suffix  . : 
   Description . . . . . . . . . . . : Bluetooth Device (Personal Area Network)
   Physical Address. . . . . . . . . : 0C-54-15-AB-CD-F0
   DHCP Enabled. . . . . . . . . . . : Yes
   Autoconfiguration Enabled . . . . : Yes
""")

# ipconfig /renew prints the short form for each adapter afterwards.
IPCONFIG_RENEW_OK = crlf("""
Windows IP Configuration

No operation can be performed on Wi-Fi while it has its media disconnected.
No operation can be performed on Bluetooth Network Connection while it has its media disconnected.

Wireless LAN adapter Wi-Fi:

   Media State . . . . . . . . . . . : Media disconnected
   Connection-specific DNS Suffix  . : 

Ethernet adapter Ethernet:

   Connection-specific DNS Suffix  . : northwind.example
   Link-local IPv6 Address . . . . . : fe80::1c2d:3e4f:5a6b:7c8d%12
   IPv4 Address. . . . . . . . . . . : 10.20.30.41
   Subnet Mask . . . . . . . . . . . : 255.255.255.0
   Default Gateway . . . . . . . . . : 10.20.30.1
""")

IPCONFIG_RENEW_TIMEOUT = crlf("""
Windows IP Configuration

An error occurred while renewing interface Ethernet : unable to contact your DHCP server. Request has timed out.

Ethernet adapter Ethernet:

   Connection-specific DNS Suffix  . : 
   Autoconfiguration IPv4 Address. . : 169.254.12.7
   Subnet Mask . . . . . . . . . . . : 255.255.0.0
   Default Gateway . . . . . . . . . : 
""")


def test_ipconfig_all_fields():
    cfg = parse_ipconfig(IPCONFIG_ALL)
    assert cfg.host_name == "WS-0142"
    assert cfg.primary_suffix == "corp.contoso.com"
    assert cfg.search_list == ("corp.contoso.com", "sales.contoso.com")
    assert [a.header for a in cfg.adapters] == [
        "Wireless LAN adapter Wi-Fi", "Ethernet adapter Ethernet", "Ethernet adapter Bluetooth Network Connection"]
    wifi, eth, bt = cfg.adapters
    assert not wifi.connected and wifi.suffix == "" and wifi.ipv4 == ()
    assert eth.connected and eth.dhcp_enabled is True
    assert eth.suffix == "sales.contoso.com" and eth.ipv4 == ("10.20.30.41",) and eth.mac == "98:fa:9b:12:34:56"
    assert eth.description == "Intel(R) Ethernet Connection (7) I219-LM"
    assert not bt.connected and cfg.problems == ()


def test_ipconfig_with_lf_only_and_blank_primary_suffix():
    text = IPCONFIG_ALL.replace("\r\n", "\n").replace(
        "Primary Dns Suffix  . . . . . . . : corp.contoso.com", "Primary Dns Suffix  . . . . . . . : ")
    cfg = parse_ipconfig(text)
    assert cfg.primary_suffix == ""
    assert cfg.adapters[1].suffix == "sales.contoso.com"


def test_ipconfig_garbage_suffix_is_reported_not_hidden():
    cfg = parse_ipconfig(IPCONFIG_ALL.replace(": Sales.Contoso.com\r\n   Description", ": bad_suffix!\r\n   Description"))
    assert cfg.adapters[1].suffix == "bad_suffix!" and cfg.problems

RESOLV_DHCLIENT = """# Generated by NetworkManager
domain sales.contoso.com
search sales.contoso.com contoso.com
nameserver 10.20.0.10
nameserver 10.20.0.11
"""

RESOLV_RESOLVED = """# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
# Do not edit.
nameserver 127.0.0.53
options edns0 trust-ad
search Northwind.Example. corp.local
"""


def test_resolv_conf_domain_and_search():
    conf = parse_resolv_conf(RESOLV_DHCLIENT)
    assert conf.domain == "sales.contoso.com"
    assert conf.search == ("sales.contoso.com", "contoso.com")
    assert conf.nameservers == ("10.20.0.10", "10.20.0.11")
    assert conf.os_suffix == "sales.contoso.com"
    resolved = parse_resolv_conf(RESOLV_RESOLVED)
    assert resolved.domain == "" and resolved.os_suffix == "northwind.example"


def test_resolv_conf_last_of_domain_and_search_wins():
    assert parse_resolv_conf("search a.example b.example\ndomain c.example\n").os_suffix == "c.example"
    assert parse_resolv_conf("domain c.example\nsearch a.example\n").os_suffix == "a.example"
    assert parse_resolv_conf("nameserver 1.1.1.1\n").os_suffix == ""


def test_hostname_domain():
    assert parse_hostname_domain("Sales.Contoso.com\n") == "sales.contoso.com"
    assert parse_hostname_domain("\n") == ""


AMTINFO_JSON = """{
  "amt": "16.1.27",
  "buildNumber": "2225",
  "sku": "16392",
  "features": "AMT Pro Corporate",
  "uuid": "4c4c4544-0042-3510-8054-b2c04f4a4d32",
  "controlMode": "pre-provisioning state",
  "dnsSuffix": "",
  "dnsSuffixOS": "Sales.Contoso.com.",
  "hostnameOS": "WS-0142",
  "ras": {"networkStatus": "direct", "remoteStatus": "not connected", "remoteTrigger": "user initiated", "mpsHostname": ""},
  "wiredAdapter": {"isEnable": true, "linkStatus": "up", "dhcpEnabled": true, "dhcpMode": "passive",
                   "ipAddress": "10.20.30.41", "osIpAddress": "10.20.30.41", "macAddress": "98:fa:9b:12:34:56"}
}
"""

AMTINFO_TEXT = (
    "Version\t\t\t: 11.8.50\n"
    "Build Number\t\t: 3425\n"
    "SKU\t\t\t: 16392\n"
    "Features\t\t: AMT Pro Corporate\n"
    "UUID\t\t\t: 4c4c4544-0042-3510-8054-b2c04f4a4d32\n"
    "Control Mode\t\t: activated in admin control mode\n"
    "Provisioning State\t: post-provisioning\n"
    "DNS Suffix\t\t: Corp.Contoso.com\n"
    "DNS Suffix (OS)\t\t: \n"
    "Hostname (OS)\t\t: WS-0142\n"
    "RAS Network\t\t: outside enterprise\n"
    "RAS Remote Status\t: not connected\n"
    "---Wired Adapter---\n"
    "DHCP Enabled\t\t: true\n"
    "DHCP Mode\t\t: passive\n"
    "Link Status\t\t: up\n"
    "IP Address\t\t: 10.20.30.41\n"
    "MAC Address\t\t: 98:fa:9b:12:34:56\n"
)


def test_amtinfo_json():
    info = parse_amtinfo_json(AMTINFO_JSON)
    assert (info.version, info.build_number, info.sku) == ("16.1.27", "2225", "16392")
    assert info.uuid == "4c4c4544-0042-3510-8054-b2c04f4a4d32"
    assert info.dns_suffix == "" and info.dns_suffix_os == "sales.contoso.com"
    assert info.pre_provisioning is True and info.provisioning_state == ""
    assert info.wired_adapter["macAddress"] == "98:fa:9b:12:34:56"
    assert parse_amtinfo(AMTINFO_JSON) == info


def test_amtinfo_text():
    info = parse_amtinfo_text(AMTINFO_TEXT)
    assert info.version == "11.8.50" and info.control_mode == "activated in admin control mode"
    assert info.provisioning_state == "post-provisioning" and info.pre_provisioning is False
    assert info.dns_suffix == "corp.contoso.com" and info.dns_suffix_os == ""
    assert info.hostname_os == "WS-0142"
    assert info.wired_adapter["MAC Address"] == "98:fa:9b:12:34:56"
    assert parse_amtinfo(AMTINFO_TEXT) == info


def test_amtinfo_minimal_and_numeric_modes():
    info = parse_amtinfo_json('{"amt": "3.2.1", "controlMode": 0, "provisioningState": 2}')
    assert info.control_mode == "pre-provisioning state" and info.provisioning_state == "post-provisioning"
    assert info.dns_suffix == "" and info.uuid == ""
    assert parse_amtinfo_json("{}").pre_provisioning is None
    with pytest.raises(InvalidValue):
        parse_amtinfo_json("rpc: permission denied")


def test_activate_command_linux_and_windows():
    line = activate_command("wss://rps.contoso.com/activate", "acm-profile", "Sales.Contoso.com.")
    assert shlex.split(line) == ["sudo", "-n", "rpc", "activate", "-u", "wss://rps.contoso.com/activate",
                                 "--profile", "acm-profile", "-d", "sales.contoso.com", "--json"]
    win = activate_command("wss://10.0.0.5:8443/activate", "acm", flavor="windows")
    assert win == "rpc activate -u wss://10.0.0.5:8443/activate --profile acm --json"
    assert "-d" not in activate_command("wss://rps.example/activate", "acm", "")


@pytest.mark.parametrize("url", [
    "ws://rps.example/activate", "wss://user:pw@rps.example/activate", "wss://rps.example/activate?x=1",
    "wss://rps.example/act$(id)", "wss://rps example/activate", "wss://rps.example:99999/activate",
    "wss://-bad.example/", "https://rps.example/a#frag", "wss://[zz::1]/activate",
])
def test_server_url_rejected(url):
    with pytest.raises(InvalidValue):
        validate_server_url(url)


def test_server_url_accepted():
    for url in ("wss://rps.contoso.com/activate", "https://rps:8080/api/v1/activate", "wss://[fd00::5]/activate"):
        assert validate_server_url(url) == url


@pytest.mark.parametrize("profile,suffix", [("acm;reboot", None), ("a b", None), ("acm", "x.com; rm -rf /"),
                                            ("acm", "a.com&calc"), ("", None)])
def test_activate_arguments_validated(profile, suffix):
    with pytest.raises(InvalidValue):
        activate_command("wss://rps.example/activate", profile, suffix)


def logrus(level: str, msg: str) -> str:
    escaped = msg.replace('"', '\\"')
    return f'time="2026-11-25T10:00:00Z" level={level} msg="{escaped}"\n'


# rpc activate's readers are tested in tests/test_rpc_adapter.py on real-shaped fixtures


def test_parse_logrus_unescapes_quotes():
    assert parse_logrus(logrus("error", 'bad "thing" here')) == [("error", 'bad "thing" here')]


def test_host_interface_commands_and_results():
    with pytest.raises(InvalidValue, match="no host_tools.hi_set configured"):
        set_dns_suffix_command("contoso.com")  # no tool is invented
    assert shlex.split(set_dns_suffix_command("Sales.Contoso.com", tools=LAB_TOOLS)) == [
        "sudo", "-n", "lab-amt-hi", "set-dns-suffix", "sales.contoso.com", "--json"]
    assert set_dns_suffix_command("contoso.com", "windows", LAB_TOOLS) == "lab-amt-hi set-dns-suffix contoso.com --json"
    assert get_dns_suffix_command("windows", LAB_TOOLS) == "lab-amt-hi get-dns-suffix --json"
    with pytest.raises(InvalidValue):
        set_dns_suffix_command("contoso.com;reboot", tools=LAB_TOOLS)
    with pytest.raises(InvalidValue):
        set_dns_suffix_command("", tools=LAB_TOOLS)

    ok = check_set_dns_suffix(0, '{"status":"success","dnsSuffix":"sales.contoso.com"}\n', "", "Sales.Contoso.com")
    assert ok.ok and ok.suffix == "sales.contoso.com"
    lied = check_set_dns_suffix(0, '{"status":"success","dnsSuffix":"other.example"}\n', "", "sales.contoso.com")
    assert not lied.ok and "other.example" in lied.detail
    failed = check_set_dns_suffix(1, '{"status":"failed","message":"AMT is in post-provisioning state"}\n', "",
                                  "sales.contoso.com")
    assert not failed.ok and failed.cause == Cause.UNKNOWN and "post-provisioning" in failed.detail

    got = parse_get_dns_suffix('{"trustedDnsSuffix": "", "dhcpDnsSuffix": "Sales.Contoso.com"}\n')
    assert (got.trusted, got.dhcp, got.effective) == ("", "sales.contoso.com", "sales.contoso.com")
    got = parse_get_dns_suffix('{"trustedDnsSuffix": "corp.contoso.com", "dhcpDnsSuffix": "x.example"}')
    assert got.effective == "corp.contoso.com"
    with pytest.raises(InvalidValue):
        parse_get_dns_suffix("usage: amt-hi ...")


def test_tools_are_configurable_and_validated():
    # a token that embeds the placeholder is not allowed: the suffix must be a whole argument
    with pytest.raises(InvalidValue):
        HostTools(hi_set=("meitool", "--set-suffix={suffix}"))
    tools = HostTools(rpc=("/opt/rpc/rpc",), hi_set=("meitool", "--set-suffix", "{suffix}"),
                      hi_get=("meitool", "--get"), linux_privilege=())
    assert set_dns_suffix_command("contoso.com", tools=tools) == "meitool --set-suffix contoso.com"
    assert amtinfo_command("linux", tools) == "/opt/rpc/rpc amtinfo --json"
    assert amtinfo_command("linux") == "sudo -n rpc amtinfo --json"
    with pytest.raises(InvalidValue):
        HostTools(rpc=("rpc;id",))
    with pytest.raises(InvalidValue):
        HostTools(hi_set=("amt-hi", "set"))
    with pytest.raises(InvalidValue):
        HostTools(hi_set=("tool", "{suffix}", "&&", "reboot"))
    with pytest.raises(InvalidValue):
        HostTools(hi_get=("tool", "{host}"))
    assert HostTools().missing("hi_set") == "no host_tools.hi_set configured"


def test_quoting():
    assert quote_argv(["echo", "a b", "$x"], "linux") == "echo 'a b' '$x'"
    assert quote_argv(["ipconfig", "/renew"], "windows") == "ipconfig /renew"
    for bad in (["echo", "a b"], ["echo", "%x%"], ["echo", "a&b"], ["echo", '"q"'], ["echo", "!x!"]):
        with pytest.raises(InvalidValue):
            quote_argv(bad, "windows")
    with pytest.raises(InvalidValue):
        quote_argv("echo hi", "linux")  # a bare string would be split per character
    with pytest.raises(InvalidValue):
        quote_argv([], "linux")
    assert safe_token("sales.contoso.com") == "sales.contoso.com"
    with pytest.raises(InvalidValue):
        safe_token("a;b")


# ---------------------------------------------------------------- end to end against the lab's hosts

def _lab_device(name, address, **kw):
    d = {"name": name, "address": address, "os": "windows", "amt_version": "11.8.50", "state": "pre",
         "trusted_suffix": "", "dhcp_suffix": "", "domain_name": "", "os_suffix": "contoso.com",
         "interface_open": False, "legacy": None, "faults": []}
    d.update(kw)
    return d


@pytest.fixture(scope="module")
def lab_hosts(tmp_path_factory):
    import yaml

    from lab.clock import ManualClock
    from lab.generate import _keypair
    from lab.server import LabServer
    from tests.lab_fixtures import BASE_FLEET

    out = tmp_path_factory.mktemp("hc-lab")
    _keypair(out)
    devices = [
        _lab_device("WIN-PRE", "127.10.0.1", dhcp_suffix="fabrikam.com", os_suffix="fabrikam.com",
                    primary_suffix="sales.contoso.com"),
        _lab_device("LX-PRE", "127.10.0.2", os="linux", primary_suffix="eng.contoso.com", os_suffix="contoso.com"),
        _lab_device("DOWN", "127.10.0.5", faults=["down"]),
        _lab_device("HUNG", "127.10.0.9", faults=["hung"]),
        _lab_device("AUTH", "127.10.0.7", faults=["ssh_auth"]),
    ]
    data = dict(BASE_FLEET, devices=devices, ssh={"authorized_keys": "keys/id_ed25519.pub"})
    (out / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with LabServer(out / "fleet.yaml", known_hosts=out / "known_hosts", clock=ManualClock()) as lab:
        yield lab


@pytest.fixture(scope="module")
def lab_runner(lab_hosts):
    from tasks.adapters.ssh import SshRunner, SshSettings

    return SshRunner(SshSettings(user="migrator", port=lab_hosts.ssh_port, known_hosts=lab_hosts.known_hosts_path,
                                 key_path=lab_hosts.private_key_path, connect_timeout=3, command_timeout=5))


def test_lab_windows_host(lab_runner):
    run = lambda cmd: lab_runner.run("127.10.0.1", cmd)  # noqa: E731

    class Sh:
        def run(self, command):
            return run(command)

    info = parse_amtinfo(run(amtinfo_command("windows")).stdout)
    assert info.version == "11.8.50" and info.pre_provisioning is True and info.dns_suffix_os == "fabrikam.com"
    choice = read_interface(Sh(), "windows", amt_mac=info.wired_adapter["macAddress"], address="127.10.0.1")
    assert choice.suffix == "fabrikam.com" and "AMT's wired MAC" in choice.why
    assert parse_ipconfig(run("ipconfig /all").stdout).primary_suffix == "sales.contoso.com"
    assert renew(Sh(), "windows", choice.adapter).ok
    tools = LAB_TOOLS
    assert parse_get_dns_suffix(run(get_dns_suffix_command("windows", tools)).stdout).trusted == ""
    r = run(set_dns_suffix_command("Contoso.com", "windows", tools))
    assert check_set_dns_suffix(r.exit_status, r.stdout, r.stderr, "contoso.com").ok
    assert parse_get_dns_suffix(run(get_dns_suffix_command("windows", tools)).stdout).effective == "contoso.com"
    r = run(activate_command("wss://rps.contoso.com/activate", "acm", flavor="windows"))
    report = read_activation(r.exit_status, r.stdout, r.stderr)
    assert report.claims_success, report.evidence


def test_lab_linux_host(lab_runner):
    run = lambda cmd: lab_runner.run("127.10.0.2", cmd)  # noqa: E731

    class Sh:
        def run(self, command):
            return run(command)

    choice = read_interface(Sh(), "linux", address="127.10.0.2")
    assert choice.suffix == "contoso.com" and choice.adapter.manager == "dhclient"
    from tasks.adapters.os_network import hostname_domain_command
    assert parse_hostname_domain(run(hostname_domain_command()).stdout) == "eng.contoso.com"
    assert renew(Sh(), "linux", choice.adapter).ok
    # without sudo dhclient is refused, and the check says why
    refused = renew(Sh(), "linux", choice.adapter, HostTools(linux_privilege=()))
    assert not refused.ok and refused.cause == Cause.AUTH_FAILED
    r = run(activate_command("wss://rps.contoso.com/activate", "acm"))
    # rpc-go reports the OS suffix (contoso.com), RPS accepts it, AMT (blank suffix) refuses the
    # certificate: RPS's message stays generic and rpc-go 2.x exits 0 (research/rpc.md 2.5, 4.1)
    blank = read_activation(r.exit_status, r.stdout, r.stderr)
    assert (r.exit_status, blank.claims_success, blank.hint) == (0, False, "internal_error"), blank.evidence
    assert blank.server_error == "Failed to activate in admin control mode." and r.stdout == ""


def test_lab_faulty_hosts(lab_runner):
    from tasks.adapters.ssh import CommandTimeout, SshAuthFailed, SshUnreachable

    with pytest.raises(SshUnreachable) as down:
        lab_runner.run("127.10.0.5", ["true"])
    # one lab listener serves every address, so a "down" host is an accept-then-reset there
    assert down.value.cause == Cause.UNREACHABLE and down.value.kind in {"refused", "reset"}
    with pytest.raises(CommandTimeout):
        lab_runner.run("127.10.0.9", ["true"], timeout=0.5)
    with pytest.raises(SshAuthFailed) as auth:
        lab_runner.run("127.10.0.7", ["true"])
    assert auth.value.kind == "auth"


def _parts(result):
    return result.exit_status, result.stdout, result.stderr
