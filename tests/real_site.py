"""A site whose Linux clients are real: tests/netns_fixture.py hosts behind the lab's AMT and OpenSSH front.

Each host is a network namespace with a real DHCP client (dhclient, dhcpcd or systemd-networkd) on a
bridge served by real Kea; the lab keeps its AMT (WS-Man, the provisioning server, the window) and
answers the ME tools, while every other command a session sends runs in the host (lab/netns.py). The
migrator reaches it as a site does: paramiko -> Debian's sshd (lab/openssh.py) -> the host's shell. The
inventory's scopes name their Kea (``kea: {url, subnet_id}``), so option 15 is read live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from lab.openssh import OpenSshFront
from tests.netns_fixture import Client, NetLab
from tests.site_fixtures import PASSWORD, device, inventory_for, start_site


@dataclass
class HostSpec:
    name: str
    stack: str  # dhclient, dhcpcd, networkd
    segment: str  # the bridge it is wired to
    scope: str  # the inventory's scope for it (may differ from its wire: the "other server" case)
    interface_open: bool = True
    legacy: bool = False
    dhcp: str = ""  # AMT's DhcpDNSSuffix before the test (what it saw before the lab listened)


@dataclass
class RealSite:
    net: NetLab
    site: object  # tests.site_fixtures.Site
    front: OpenSshFront
    clients: dict[str, Client]
    segment_scope: dict[str, int] = field(default_factory=dict)

    @property
    def lab(self):
        return self.site.lab

    @property
    def inventory(self) -> Path:
        return self.site.inventory

    def admin(self, name: str) -> dict:
        return self.site.admin(name)

    def ssh(self):
        """The product's SshRunner with the inventory's credentials (as a wave builds it)."""
        from tasks.adapters.ssh import SshRunner, SshSettings
        from tasks.inventory.model import load_inventory

        inv = load_inventory(self.inventory)
        creds = inv.credentials.ssh
        return SshRunner(SshSettings(user=creds.user, known_hosts=inv.resolve(creds.known_hosts),
                                     port=self.front.port, key_path=self.lab.private_key_path,
                                     connect_timeout=5, command_timeout=90))

    def kea_url(self, segment: str) -> str:
        return self.net.segments[segment].kea.url

    def close(self) -> None:
        errors = []
        for step in (self.front.close, self.lab.stop, self.net.close):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - undo everything, then report
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


def kea_subnet(subnet_id: int, cidr: str, option15: str | None) -> dict:
    import ipaddress

    net = ipaddress.ip_network(cidr)
    hosts = list(net.hosts())
    entry = {"id": subnet_id, "subnet": cidr, "pools": [{"pool": f"{hosts[99]} - {hosts[199]}"}]}
    if option15 is not None:
        entry["option-data"] = [{"name": "domain-name", "data": option15}]
    return entry


def build(tmp: Path, monkeypatch, segments: dict[str, tuple[str, str | None]], hosts: list[HostSpec],
          waves: list[dict] | None = None, *, window: str = "1h") -> RealSite:
    """``segments``: name -> (CIDR, option 15 Kea hands out there; None = none). Every segment's Kea
    serves one subnet, id 1; the inventory names a scope per segment (same name) with that Kea."""
    net = NetLab(tmp / "net")
    try:
        for name, (cidr, option15) in segments.items():
            net.add_segment(name, cidr, [kea_subnet(1, cidr, option15)])
        clients = {h.name: net.add_client(h.name, h.segment, h.stack) for h in hosts}
        devices = []
        for i, h in enumerate(hosts, start=1):
            d = device(h.name, f"127.10.0.{i}", os="linux", dhcp=h.dhcp, legacy=h.legacy,
                       state="legacy" if h.legacy else "pre", interface_open=h.interface_open,
                       os_suffix="")
            d["real_os"] = clients[h.name].fleet_entry()
            devices.append(d)
        waves = waves or [{"name": "w1", "hosts": ["*"], "remediation": ["dhcp_renew"]}]
        site = start_site(tmp / "site", devices, waves, monkeypatch=monkeypatch, window=window)
    except BaseException:
        net.close()
        raise
    front = None
    try:
        front = OpenSshFront(site.lab, workdir=tmp / "front").start()
        inv = yaml.safe_load(site.inventory.read_text())
        inv["defaults"]["ssh_port"] = front.port
        inv["defaults"]["os"] = "linux"
        inv["credentials"]["ssh"].update(user=front.user, known_hosts=str(front.known_hosts_for()),
                                         command_timeout="90s")
        inv["dhcp_scopes"] = [{"name": name, "subnet": f"127.{20 + i}.0.0/16",
                               "kea": {"url": net.segments[name].kea.url, "subnet_id": 1}}
                              for i, name in enumerate(segments)]
        by_name = {h.name: h for h in hosts}
        for h in inv["hosts"]:
            h["scope"] = by_name[h["name"]].scope
            h.pop("os_suffix", None)
        site.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
        return RealSite(net, site, front, clients)
    except BaseException:
        for step in (front.close if front else None, site.lab.stop, net.close):
            if step:
                step()
        raise


def set_window(site: RealSite, name: str, open_: bool) -> None:
    """Open AMT's window (a provisioning attempt does that) or let it close (advance past it)."""
    dev = site.lab.fleet.device(name)
    clock = site.lab.fleet.clock
    with site.lab.fleet._lock:
        dev.interface_open_until = clock.now() + 3600 if open_ else clock.now() - 1


def amt_dhcp_suffix(site: RealSite, name: str) -> str:
    return httpx.get(f"{site.lab.http_url}/admin/devices/{name}", timeout=10).json()["dhcp_suffix"]


__all__ = ["HostSpec", "RealSite", "build", "set_window", "amt_dhcp_suffix", "PASSWORD"]
