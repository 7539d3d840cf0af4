"""The Linux read-back a renew is judged by, on outputs shaped as the real tools print them
(tests/fixtures/linux_renew/SOURCES.md): which DHCP client runs, who wrote resolv.conf, dhcpcd's dump
and lease file, networkd's lease, and the verdict on a lease that is not the scope's."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from tasks.adapters import linux
from tasks.adapters.netfacts import InterfaceChoice, NetAdapter
from tasks.steps.renew_check import lease_problem

FIX = Path(__file__).parent / "fixtures" / "linux_renew"
ETH0 = NetAdapter(name="eth0", mac="02:00:5e:00:00:01", ipv4=("10.20.30.41",), index=2)


def _fix(name: str) -> str:
    return (FIX / name).read_text()


def test_the_process_list_names_the_clients_that_run():
    assert linux.parse_ps_clients(_fix("ps_eo_args_dhcpcd_constructed.txt")) == {"dhcpcd"}
    assert linux.parse_ps_clients(_fix("ps_eo_args_ifupdown_dhclient_constructed.txt")) == {"dhclient"}
    # a zombie and kernel threads don't run; dbus-daemon is no DHCP client
    assert linux.parse_ps_clients(_fix("ps_eo_args_networkd_dead_constructed.txt")) == frozenset()
    assert linux.parse_ps_clients("/usr/lib/systemd/systemd-networkd\n/usr/sbin/NetworkManager --no-daemon\n") == {
        "systemd-networkd", "NetworkManager"}
    assert linux.parse_ps_clients("") is None  # no ps (or it failed): nothing is known


def test_resolv_conf_names_its_writer():
    conf = linux.parse_resolv_conf(_fix("resolv_conf_dhcpcd_constructed.txt"))
    assert (conf.generated_by, conf.os_suffix) == ("dhcpcd", "eng.contoso.com")
    assert linux.parse_resolv_conf("domain a.example\nsearch a.example\n").generated_by == ""


def test_dhcpcd_9_dump_with_event_blocks_and_unquoted_values():
    problems: list[str] = []
    a = linux.apply_detail(ETH0, 0, _fix("dhcpcd_U_manager_9.4.1_constructed.txt"),
                           linux.parse_resolv_conf(""), problems)
    assert (a.manager, a.suffix, a.dhcp_server) == ("dhcpcd", "eng.contoso.com", "10.20.30.2")
    assert problems == []


@pytest.mark.parametrize("running, resolv, want", [
    # dhcpcd runs but no longer answers -U (9.4.1 after a control command): still dhcpcd
    (frozenset({"dhcpcd"}), "resolv_conf_dhcpcd_constructed.txt", "dhcpcd"),
    # no process list: dhcpcd's resolv.conf header is the sign
    (None, "resolv_conf_dhcpcd_constructed.txt", "dhcpcd"),
    (None, None, "dhclient"),
    (frozenset({"dhclient"}), None, "dhclient"),
    # nothing runs: no stack to renew through, whatever files are left
    (frozenset(), "resolv_conf_dhcpcd_constructed.txt", "none"),
])
def test_who_holds_the_lease_when_dhcpcd_does_not_answer(running, resolv, want):
    problems: list[str] = []
    text = _fix(resolv) if resolv else "domain eng.contoso.com\nnameserver 10.20.30.1\n"
    a = linux.apply_detail(ETH0, 1, "", linux.parse_resolv_conf(text), problems, running=running)
    assert a.manager == want and a.suffix == "eng.contoso.com"
    if want == "none":
        assert any("no DHCP client runs" in p for p in problems)
        with pytest.raises(linux.NoClientRunning, match="nothing to renew through"):
            linux.renew_command(a.manager, a.name)


def test_a_dead_networkd_is_not_the_manager_however_its_state_files_read():
    probe = "\n".join(["@@ip", '[{"ifindex":2,"ifname":"eth0","address":"02:00:5e:00:00:01","operstate":"UP",'
                       '"link_type":"ether","addr_info":[{"family":"inet","local":"10.20.30.42","dynamic":true}]}]',
                       "@@resolv", "@@resolvectl", "@@nmcli", "@@networkctl",
                       "  2 eth0 ether routable configured", "@@ps", _fix("ps_eo_args_networkd_dead_constructed.txt")])
    facts, _ = linux.parse_probe(probe)
    assert facts.adapters[0].manager == ""
    assert any("no systemd-networkd process runs" in p for p in facts.problems)
    alive = probe.replace("@@ps", "@@ps\n/lib/systemd/systemd-networkd")
    assert linux.parse_probe(alive)[0].adapters[0].manager == "systemd-networkd"


def test_networkd_lease_gives_option_15_and_the_server():
    a = linux.apply_detail(NetAdapter(name="eth0", mac="", manager="systemd-networkd", index=2), 0,
                           _fix("networkd_lease_constructed.txt"), linux.parse_resolv_conf(""), [])
    assert (a.suffix, a.dhcp_server) == ("eng.contoso.com", "10.20.30.2")


def _dhcpack(options: dict[int, bytes]) -> bytes:
    """A DHCPACK as dhcpcd stores it in its lease file (RFC 2131 section 2 layout)."""
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 0x1234, 0, 0, bytes(4),
                        bytes([10, 20, 30, 41]), bytes(4), bytes(4), bytes.fromhex("02005e000001") + bytes(10),
                        bytes(64), bytes(128))
    body = b"".join(bytes([code, len(v)]) + v for code, v in options.items())
    return fixed + b"\x63\x82\x53\x63" + b"\x35\x01\x05" + body + b"\xff"


def test_dhcpcd_lease_file_read_when_the_daemon_does_not_answer():
    raw = _dhcpack({54: bytes([10, 20, 30, 2]), 15: b"eng.contoso.com\x00"})
    text = base64.encodebytes(raw).decode()  # coreutils base64 wraps at 76 columns
    problems: list[str] = []
    a = linux.apply_dhcpcd_lease_file(ETH0, 0, text, problems)
    assert (a.suffix, a.dhcp_server, problems) == ("eng.contoso.com", "10.20.30.2", [])
    assert linux.dhcpcd_lease_file_command(ETH0) == "base64 /var/lib/dhcpcd/eth0.lease"
    # not a DHCP message, or no file: said, and the adapter keeps what it had
    bad = linux.apply_dhcpcd_lease_file(ETH0, 0, base64.b64encode(b"x" * 300).decode(), problems)
    assert bad == ETH0 and "not a DHCP message" in problems[-1]
    assert linux.apply_dhcpcd_lease_file(ETH0, 1, "", []) == ETH0


KEA = "Kea at http://kea:8000/ (subnet 1)"


def test_a_lease_that_is_not_the_scopes_is_named_with_its_server():
    ours = InterfaceChoice(NetAdapter(name="eth0", mac="", suffix="contoso.com", dhcp_server="10.77.0.1"), "mac")
    assert lease_problem("hq", "contoso.com", KEA, ours, 3) is None
    stray = InterfaceChoice(NetAdapter(name="eth0", mac="", suffix="fabrikam.com", dhcp_server="10.79.0.1"), "mac")
    why = lease_problem("hq", "contoso.com", KEA, stray, 3)
    assert "carries option 15 'fabrikam.com', not scope hq's 'contoso.com'" in why
    assert f"read from {KEA}" in why and "its server is 10.79.0.1" in why
    none = InterfaceChoice(NetAdapter(name="eth0", mac="", suffix=""), "mac")
    assert "carries no option 15" in lease_problem("hq", "contoso.com", KEA, none, 3)
    assert lease_problem("hq", "", KEA, none, 3) is None  # a scope without option 15, a lease without it
    # no adapter read: nothing can be told, nothing is claimed
    assert lease_problem("hq", "contoso.com", KEA, InterfaceChoice(None, "none"), 3) is None
