"""The lab's real-OS devices without a network: the DHCPACK reader, AMT's window on a wire ACK, and which
commands go to the ME (the lab) and which to the real OS. The real wire is in tests/test_real_renew.py."""

from __future__ import annotations

import struct

import pytest

from lab.clock import ManualClock
from lab.dhcp_wire import DhcpReply, parse_frame
from lab.model import Fleet, LabError
from lab.netns import RealOs, mentions_me_tool, program

MAC = "02:00:5e:10:00:01"


def _frame(options: bytes, *, dport=68, op=2, chaddr=MAC) -> bytes:
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, 0xCAFE, 0, 0, bytes(4), bytes([10, 77, 0, 100]),
                        bytes(4), bytes(4), bytes.fromhex(chaddr.replace(":", "")) + bytes(10), bytes(64), bytes(128))
    payload = bootp + b"\x63\x82\x53\x63" + options + b"\xff"
    udp = struct.pack("!HHHH", 67, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([10, 77, 0, 1]),
                     bytes([10, 77, 0, 100])) + udp
    return bytes.fromhex(chaddr.replace(":", "")) + bytes.fromhex("020000000001") + b"\x08\x00" + ip


def test_a_dhcpack_is_read_from_the_frame():
    ack = parse_frame(_frame(b"\x35\x01\x05\x36\x04\x0a\x4d\x00\x01\x0f\x0csales.ex.com\x00"))
    assert ack == DhcpReply(0xCAFE, 5, MAC, "10.77.0.100", "10.77.0.1", "sales.ex.com")
    # option 15 split in two pieces (RFC 3396) is one name; no option 15 is None, not ""
    assert parse_frame(_frame(b"\x35\x01\x05\x0f\x03abc\x0f\x04.com")).domain_name == "abc.com"
    assert parse_frame(_frame(b"\x35\x01\x05")).domain_name is None
    # not a server's reply to a client: ignored
    assert parse_frame(_frame(b"\x35\x01\x05", dport=67)) is None
    assert parse_frame(_frame(b"\x35\x01\x03", op=1)) is None
    assert parse_frame(b"\x00" * 60) is None


def _fleet(clock, **dev):
    d = {"name": "LX-1", "address": "127.10.0.1", "os": "linux", "dhcp_suffix": "fabrikam.com",
         "real_os": {"exec": ["nsenter", "-t", "1", "--"], "netns": "ns1", "interface": "eth0", "mac": MAC}, **dev}
    return Fleet.from_dict({"certificate_suffix": "contoso.com", "window": "60s",
                            "scopes": [{"name": "hq", "subnet": "127.10.0.0/16", "domain_name": "contoso.com"}],
                            "devices": [d]}, clock=clock)


def test_amt_takes_the_acks_option_15_only_while_its_window_is_open():
    clock = ManualClock()
    fleet = _fleet(clock, interface_open=True)
    ack = DhcpReply(1, 5, MAC, "10.77.0.100", "10.77.0.1", "contoso.com")
    rec = fleet.wire_ack("LX-1", ack)
    assert rec["amt_took"] and fleet.device("LX-1").dhcp_suffix == "contoso.com"
    assert rec["server_id"] == "10.77.0.1" and rec["source"].startswith("wire: DHCPACK")
    clock.advance(61)
    rec = fleet.wire_ack("LX-1", DhcpReply(2, 5, MAC, "10.77.0.100", "10.79.0.1", "fabrikam.com"))
    assert not rec["amt_took"] and "closed" in rec["reason"]
    dev = fleet.device("LX-1")
    assert (dev.dhcp_suffix, dev.os_suffix) == ("contoso.com", "fabrikam.com")  # the OS took it, AMT did not
    # no simulated renews for a real OS: the lab never pretends its client renewed
    assert fleet.next_event_at() is None
    with pytest.raises(LabError, match="renews through its own DHCP client"):
        fleet.dhcp_renew("LX-1")


def test_real_os_entries_are_checked():
    with pytest.raises(ValueError, match="real_os needs os: linux"):
        _fleet(ManualClock(), os="windows")
    with pytest.raises(ValueError, match="exec is a non-empty list"):
        RealOs.parse({"exec": "nsenter -t 1", "netns": "n", "interface": "eth0"})
    with pytest.raises(ValueError, match="unknown key 'pid'"):
        RealOs.parse({"exec": ["x"], "netns": "n", "interface": "eth0", "pid": 3})


def test_me_tools_go_to_the_lab_everything_else_to_the_real_os():
    assert program(["sudo", "-n", "--preserve-env=AMT_PASSWORD", "rpc", "activate"]) == "rpc"
    assert program(["/usr/local/bin/rpc", "amtinfo"]) == "rpc"
    assert mentions_me_tool("sudo -n rpc amtinfo --json")
    assert mentions_me_tool("echo @@x ; lab-amt-hi get-dns-suffix --json")
    assert not mentions_me_tool("echo @@ip ; ip -j addr show ; echo @@resolv ; cat /etc/resolv.conf")
    assert not mentions_me_tool("sudo -n dhclient -r eth0 && sudo -n dhclient eth0")
    assert not mentions_me_tool("cat /etc/resolv.conf | grep rpc")  # shell syntax: the real sh runs it
