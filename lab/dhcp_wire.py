"""The lab AMT's ear on a real wire: DHCPACKs read off the NIC it shares with a real client OS.

AMT in DHCP mode shares the host's MAC and IPv4 address on the wired LAN and "detects the DHCP address
requests and responses" of the host (Intel community DOC-5974, "Using Static IP Addressing with Intel
AMT"); the AMT Implementation and Reference Guide ("Checking Whether Intel AMT Is Enabled") says AMT
gets option 15 only from a DHCP transaction of the OS ("a new DHCP transaction must be generated").
So the lab's AMT for a device whose OS is real does not ask for a lease of its own: it listens on that
device's NIC (an AF_PACKET socket opened inside its network namespace) and hands every DHCPACK sent
to the shared MAC to the model, which takes option 15 only while AMT's window is open.

Packet layout: Ethernet II, IPv4, UDP to port 68, then the BOOTP message of RFC 2131 section 2
(op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr[16], sname[64],
file[128], the magic cookie 99.130.83.99, options as code/length/value; 0 pad, 255 end).
Option numbers from RFC 2132: 15 domain name, 53 message type (5 = DHCPACK), 54 server identifier.
Options overloaded into sname/file (option 52) are not read (Kea does not overload by default).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # linux/if_packet.h: a frame this host sent, looped back to packet sockets
CLONE_NEWNET = 0x40000000
MAGIC_COOKIE = b"\x63\x82\x53\x63"
DHCPACK = 5
_BOOTP_FIXED = 236  # bytes before the magic cookie


@dataclass(frozen=True)
class DhcpReply:
    """What AMT reads from one server reply."""

    xid: int
    message_type: int | None
    chaddr: str  # aa:bb:cc:dd:ee:ff
    yiaddr: str
    server_id: str  # option 54, "" when absent
    domain_name: str | None  # option 15 as sent (trailing NULs and dots removed); None when absent


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw[:6])


def parse_bootp(payload: bytes) -> DhcpReply | None:
    """A BOOTREPLY with the DHCP cookie, else None (not a DHCP server's message)."""
    if len(payload) < _BOOTP_FIXED + 4 or payload[0] != 2 or payload[_BOOTP_FIXED:_BOOTP_FIXED + 4] != MAGIC_COOKIE:
        return None
    xid = struct.unpack("!I", payload[4:8])[0]
    yiaddr = str(ipaddress.IPv4Address(payload[16:20]))
    hlen = min(payload[2], 16)
    chaddr = _mac(payload[28:28 + hlen]) if hlen >= 6 else ""
    options: dict[int, bytes] = {}
    i = _BOOTP_FIXED + 4
    while i < len(payload):
        code = payload[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(payload):
            break
        length = payload[i + 1]
        value = payload[i + 2:i + 2 + length]
        options[code] = options.get(code, b"") + value  # RFC 3396: a long option may come in pieces
        i += 2 + length
    mtype = options.get(53, b"")[:1]
    server = options.get(54, b"")
    domain = options.get(15)
    name = None
    if domain is not None:
        name = domain.split(b"\x00", 1)[0].decode("ascii", "replace").strip().rstrip(".").lower()
    return DhcpReply(xid, mtype[0] if mtype else None, chaddr, yiaddr,
                     str(ipaddress.IPv4Address(server)) if len(server) == 4 else "", name)


def parse_frame(frame: bytes) -> DhcpReply | None:
    """Ethernet II + IPv4 + UDP to port 68 + BOOTP; None for anything else."""
    if len(frame) < 14 + 20 + 8 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17 or len(ip) < ihl + 8:
        return None
    if struct.unpack("!H", ip[6:8])[0] & 0x3FFF:  # a fragment: DHCP replies fit one frame
        return None
    _, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
    if dport != 68:
        return None
    return parse_bootp(ip[ihl + 8:ihl + ulen])


# --------------------------------------------------------------------------------------------------
# A packet socket inside another network namespace
# --------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def packet_socket(netns: str, interface: str) -> socket.socket:
    """An AF_PACKET socket bound to ``interface`` of network namespace ``netns`` (a name under
    /run/netns, or a path such as /proc/PID/ns/net). Only this thread switches namespace (setns(2)
    with CLONE_NEWNET acts on the calling thread), and it switches back before returning; the socket
    stays in the namespace it was created in."""
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            try:
                sock.bind((interface, ETH_P_IP))
            except OSError:
                sock.close()
                raise
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    sock.setblocking(False)
    return sock


class WireListener:
    """One device's shared NIC: a thread hands each DHCPACK to ``on_ack(reply)``; `drain` reads what is
    queued right now (the model calls it before answering, so an ACK already on the wire is never missed).
    """

    def __init__(self, netns: str, interface: str, mac: str, on_ack: Callable[[DhcpReply], None],
                 lock: "threading.RLock | None" = None):
        self.netns, self.interface, self.mac = netns, interface, mac.lower()
        self.on_ack = on_ack
        self._sock: socket.socket | None = None
        # the model's own lock: `drain` runs from the model (under it) and from this thread, one order only
        self._lock = lock if lock is not None else threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seen: list[DhcpReply] = []  # every reply to the shared MAC, for tests and the admin view

    def start(self) -> "WireListener":
        self._sock = packet_socket(self.netns, self.interface)
        self._thread = threading.Thread(target=self._loop, name=f"amt-wire-{self.interface}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                readable, _, _ = select.select([sock], [], [], 0.2)
            except (OSError, ValueError):
                return
            if readable:
                self.drain()

    def drain(self) -> int:
        """Handle every frame queued on the socket; returns how many DHCPACKs went to the model."""
        acks = []
        with self._lock:
            while self._sock is not None:
                try:
                    frame, addr = self._sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                    continue
                reply = parse_frame(frame)
                if reply is None or reply.chaddr != self.mac:
                    continue
                self.seen.append(reply)
                del self.seen[:-50]
                if reply.message_type == DHCPACK:
                    acks.append(reply)
            for reply in acks:  # in arrival order, under the lock: two drains never interleave
                self.on_ack(reply)
        return len(acks)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
