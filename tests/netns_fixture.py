"""A small real network per test: a Linux bridge, real Kea on it, and client hosts with real DHCP clients.

Layout (everything in network namespaces this fixture creates, nothing in the machine's own):

    <tag>-s<N>     one per segment: a bridge ``br0`` holding the segment's first address, and kea-dhcp4
                   (tests/kea_fixture.py) serving it on port 67; the control agent stays on loopback
    <tag>-c<N>     one per client host: ``eth0``, one end of a veth pair whose other end is on the
                   segment's bridge, and a "host" around it: its own PID, mount and UTS namespaces
                   (``unshare``), with a private /run, /var/lib/dhcp and /var/lib/dhcpcd, /sys read-only
                   (systemd's "no udev here" signal, as in a container), and /etc/resolv.conf bind-mounted
                   from /etc/netns/<ns>/resolv.conf by ``ip netns exec`` (iproute2), so each client
                   writes its own resolv.conf and sees only its own processes and daemons.

Commands run in a client with ``nsenter -t PID -n -m -p -u -- /bin/sh -c CMD`` (`Client.exec_prefix`),
which is what the lab's real-OS devices use (lab/netns.py). The DHCP client stacks start the way a
Debian host starts them: dhclient as ifupdown's ``ifup`` runs it; ``dhcpcd -b`` with an /etc/dhcpcd.conf; systemd-networkd
with a .network file, on a private D-Bus system bus (networkctl talks to networkd over D-Bus).

Names carry this process's pid (``amt20-<pid>-...``) so parallel sessions never collide, and a session
removes the namespaces of sessions whose process is gone. Teardown kills each client's PID namespace
(its first process; the kernel ends every daemon in it), stops Kea and deletes the namespaces, also
when a test failed.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kea_fixture import KeaServer, _die_with_parent, kea_binaries

PREFIX = "amt20-"
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
NETWORKD = next((p for p in ("/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd")
                 if os.access(p, os.X_OK)), None)
STACKS = ("dhclient", "dhcpcd", "networkd")

#: the first process of each client's PID namespace: mounts the host's private directories, then reaps
#: orphans (every daemon that forks to the background ends up its child) until it is killed
HOLDER = r"""
set -e
root="$1"; name="$2"
mount --bind "$root/run" /run
mount --bind "$root/dhcp" /var/lib/dhcp
mount --bind "$root/dhcpcd" /var/lib/dhcpcd
mount -o remount,ro /sys
hostname "$name"
exec "$3" -c '
import os, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
signal.signal(signal.SIGCHLD, lambda *a: None)
print("ready", flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        signal.pause()
'
"""

#: Debian's /etc/dhcpcd.conf (dhcpcd-base 9.4.1) as far as it applies here, plus what a namespace needs:
#: nodev (no udev: dhcpcd would wait for it forever), noarp and ipv4only (no probing delays in tests)
DHCPCD_CONF = """# amt-migrate test host
duid
persistent
vendorclassid
option domain_name_servers, domain_name, domain_search
option classless_static_routes
option interface_mtu
option rapid_commit
require dhcp_server_identifier
nodev
noarp
ipv4only
noipv4ll
"""

#: `ifup eth0` for `iface eth0 inet dhcp` (Debian ifupdown 0.8, inet.defn); `ifdown` adds -r
IFUP_DHCLIENT = ("dhclient -4 -v -pf /run/dhclient.eth0.pid -lf /var/lib/dhcp/dhclient.eth0.leases -I "
                 "-df /var/lib/dhcp/dhclient6.eth0.leases eth0")
IFDOWN_DHCLIENT = IFUP_DHCLIENT.replace("dhclient -4 -v", "dhclient -4 -v -r")

NETWORKD_CONF = """[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
UseHostname=no
"""


def missing_tools() -> list[str]:
    """What this machine lacks for the real network (each with its Debian package)."""
    need = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "dhclient": "isc-dhcp-client",
            "dhcpcd": "dhcpcd-base", "sudo": "sudo", "dbus-daemon": "dbus-daemon", "ps": "procps"}
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    out = [f"{tool} ({pkg})" for tool, pkg in need.items() if shutil.which(tool, path=path) is None]
    if NETWORKD is None:
        out.append("systemd-networkd (systemd)")
    if None in kea_binaries():
        out.append("kea-dhcp4/kea-ctrl-agent (kea-dhcp4-server, kea-ctrl-agent)")
    return out


def why_not_here() -> str | None:
    """None when real namespaces can be built here, else the reason (for a skip)."""
    if os.geteuid() != 0:
        return "network namespaces, veth pairs and bridges need root"
    missing = missing_tools()
    if missing:
        return "missing: " + ", ".join(missing) + " (.ci/run installs them)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns add refused: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def reap_stale() -> None:
    """Remove namespaces (and their /etc/netns dirs) left by test sessions whose process is gone."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        parts = entry.name.split("-")
        if not entry.name.startswith(PREFIX) or len(parts) < 3 or not parts[1].isdigit():
            continue
        if Path(f"/proc/{parts[1]}").exists():
            continue
        _run("ip", "netns", "del", entry.name, check=False)
        shutil.rmtree(ETC_NETNS / entry.name, ignore_errors=True)


@dataclass
class Segment:
    name: str
    netns: str
    subnet: ipaddress.IPv4Network
    kea: KeaServer
    ports: int = 0

    @property
    def server_address(self) -> str:
        return str(next(self.subnet.hosts()))


@dataclass
class Client:
    name: str
    netns: str
    segment: Segment
    root: Path
    holder: subprocess.Popen
    pid: int  # the PID namespace's first process, as this machine numbers it
    mac: str
    stack: str = ""
    interface: str = "eth0"
    notes: list[str] = field(default_factory=list)

    @property
    def exec_prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-p", "-u", "--"]

    def run(self, command: str, *, check: bool = False, timeout: float = 90) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.exec_prefix, "/bin/sh", "-c", command], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name}: {command}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
        return r

    def resolv_conf(self) -> str:
        return (ETC_NETNS / self.netns / "resolv.conf").read_text()

    def fleet_entry(self) -> dict:
        """The lab's ``real_os:`` for this client (lab/netns.py)."""
        return {"exec": self.exec_prefix, "netns": self.netns, "interface": self.interface, "mac": self.mac}


class NetLab:
    """Segments (bridge + Kea) and client hosts, created on demand; `close` undoes everything."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.tag = f"{PREFIX}{os.getpid()}-{os.urandom(2).hex()}"
        self.segments: dict[str, Segment] = {}
        self.clients: dict[str, Client] = {}
        self._namespaces: list[str] = []
        self._n = 0
        reap_stale()

    # ------------------------------------------------------------------ building
    def _netns(self, kind: str) -> str:
        self._n += 1
        name = f"{self.tag}-{kind}{self._n}"
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def add_segment(self, name: str, subnet: str, subnets4: list[dict], **dhcp4) -> Segment:
        """A bridge for ``subnet`` with kea-dhcp4 serving ``subnets4`` (Kea ``subnet4`` entries) on it."""
        net = ipaddress.ip_network(subnet)
        ns = self._netns("s")
        _run("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", ns, "addr", "add", f"{next(net.hosts())}/{net.prefixlen}", "dev", "br0")
        _run("ip", "-n", ns, "link", "set", "br0", "up")
        body = {"valid-lifetime": 3600, "subnet4": subnets4, **dhcp4}
        kea = KeaServer(self.dir / f"kea-{name}", body, interfaces=["br0"], dhcp_port=67,
                        dhcp4_prefix=["ip", "netns", "exec", ns])
        seg = Segment(name, ns, net, kea)
        self.segments[name] = seg
        kea.start()
        return seg

    def add_client(self, name: str, segment: str, stack: str) -> Client:
        seg = self.segments[segment]
        ns = self._netns("c")
        seg.ports += 1
        tmp = f"a20{os.getpid() % 100000}x{self._n}"[:15]
        _run("ip", "link", "add", tmp, "type", "veth", "peer", "name", f"p{seg.ports}", "netns", seg.netns)
        _run("ip", "link", "set", tmp, "netns", ns)
        _run("ip", "-n", ns, "link", "set", tmp, "name", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", seg.netns, "link", "set", f"p{seg.ports}", "master", "br0", "up")
        etc = ETC_NETNS / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"# {name}: written by its DHCP client\n")
        (etc / "dhcpcd.conf").write_text(DHCPCD_CONF)
        root = self.dir / f"host-{name}"
        for sub in ("run", "dhcp", "dhcpcd"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        holder = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--pid", "--mount", "--uts", "--fork", "--kill-child",
             "--mount-proc", "/bin/sh", "-c", HOLDER, "holder", str(root), name.lower(), sys.executable],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=_die_with_parent)
        line = holder.stdout.readline()
        if line.strip() != "ready":
            holder.kill()
            holder.wait()
            raise RuntimeError(f"{name}: the host did not start: {line} {holder.stderr.read()[-1000:]}")
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
        client = Client(name, ns, seg, root, holder, int(children[0]), "", stack)
        self.clients[name] = client  # from here on, close() ends it whatever fails next
        client.mac = client.run("cat /sys/class/net/eth0/address", check=True).stdout.strip()
        if stack:
            self.start_stack(client)
        return client

    # ------------------------------------------------------------------ DHCP client stacks
    def start_stack(self, client: Client, stack: str | None = None) -> None:
        stack = stack or client.stack
        client.stack = stack
        if stack == "dhclient":  # as Debian's ifupdown starts it (inet.defn); returns once bound
            client.run(IFUP_DHCLIENT, check=True)
        elif stack == "dhcpcd":
            client.run("dhcpcd -b -j /run/dhcpcd.log", check=True)  # -j: its log (no syslog in the host)
        elif stack == "networkd":
            client.run("mkdir -p /run/dbus /run/systemd/network", check=True)
            (client.root / "run/systemd/network/50-eth0.network").write_text(NETWORKD_CONF)
            client.run("dbus-daemon --system --fork --nopidfile", check=True)
            client.run(f"{NETWORKD} >/run/networkd.log 2>&1 &", check=True)
        else:
            raise ValueError(f"unknown stack {stack!r} (known: {', '.join(STACKS)})")
        self.wait_for_lease(client)

    def wait_for_lease(self, client: Client, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = client.run("ip -4 -o addr show dev eth0").stdout
            if " inet " in out:
                return out.split(" inet ", 1)[1].split("/", 1)[0]
            time.sleep(0.1)
        raise RuntimeError(f"{client.name}: no lease from {client.stack} in {timeout}s; Kea: "
                           f"{client.segment.kea.logs()[-1500:]}")

    def kill_stack(self, client: Client) -> None:
        """The DHCP client dies (SIGKILL): the address stays, nothing renews any more."""
        names = {"dhclient": "dhclient", "dhcpcd": "dhcpcd", "networkd": "systemd-network"}[client.stack]
        client.run(f"pkill -KILL -x {names}", check=True)  # only this host's processes: its own PID namespace
        client.notes.append(f"{client.stack} killed")

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        errors = []
        for c in self.clients.values():
            try:
                if c.holder.poll() is None:
                    os.kill(c.pid, signal.SIGKILL)  # PID 1 of its namespace: the kernel ends every daemon in it
                    c.holder.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{c.name}: {exc}")
                c.holder.kill()
        for seg in self.segments.values():
            seg.kea.stop()
        for ns in reversed(self._namespaces):
            _run("ip", "netns", "del", ns, check=False)
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self.clients.clear()
        self.segments.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> "NetLab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
