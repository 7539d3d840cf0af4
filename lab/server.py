"""The lab as one object: fleet model + SSH + WS-Management + provisioning server, in-process.

``with LabServer("fleet.yaml") as lab:`` is what tests, the demo and the benchmarks use; the CLI's
``lab serve`` is the same object run in the foreground.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import paramiko

from lab.api import ApiService
from lab.clock import Clock, RealClock
from lab.model import Fleet, load_fleet
from lab.sshd import SSHService, derive_host_key, known_hosts_host, load_authorized_keys, write_known_hosts
from lab.wsman import WsmanService


class LabServer:
    """Serve a fleet on loopback. Port 0 = ephemeral; read the chosen ports from the attributes."""

    def __init__(self, fleet_or_path, ssh_port: int = 0, amt_port: int = 0, http_port: int = 0,
                 known_hosts: str | Path | None = None, clock: Clock | None = None, time_scale: float = 1.0,
                 tick_interval: float = 0.2, amt_tls_port: int = 0):
        if isinstance(fleet_or_path, Fleet):
            if clock is not None and clock is not fleet_or_path.clock:
                raise ValueError("a Fleet object brings its own clock; pass clock= when loading it instead")
            self.fleet = fleet_or_path
        else:
            self.fleet = load_fleet(fleet_or_path, clock=clock or RealClock(time_scale))
        self._ports = (ssh_port, amt_port, http_port)
        # WS-Man over TLS, as AMT serves it on 16993 once a legacy console provisioned it with a certificate
        # from its enterprise CA (lab/tls.py): every device answers on both listeners, as AMT does
        self._tls_port = amt_tls_port
        self.wsman_tls = None
        self.amt_tls_port: int | None = None
        self.ca_path: Path | None = None
        self._known_hosts_arg = known_hosts
        self.tick_interval = tick_interval
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.wires: list = []  # lab.dhcp_wire.WireListener per real-OS device
        self.ssh = self.wsman = self.api = None
        self.ssh_port = self.amt_port = self.http_port = None
        self.http_url = None
        base = self.fleet.base_dir or Path.cwd()
        ak = self.fleet.ssh.get("authorized_keys")
        self.authorized_keys_path = (base / ak) if ak else None
        self.private_key_path = None
        if self.authorized_keys_path and self.authorized_keys_path.suffix == ".pub":
            priv = self.authorized_keys_path.with_suffix("")
            if priv.exists():
                self.private_key_path = priv
        self.known_hosts_path: Path | None = None
        self._pkey = None

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "LabServer":
        keys = load_authorized_keys(self.authorized_keys_path) if self.authorized_keys_path else set()
        ssh_port, amt_port, http_port = self._ports
        try:
            self.ssh = SSHService(self.fleet, ssh_port, keys).start()
            self.wsman = WsmanService(self.fleet, amt_port).start()
            self.api = ApiService(self.fleet, http_port).start()
            from lab.tls import LabCA

            if self._tmp is None and not self.fleet.base_dir:
                self._tmp = tempfile.TemporaryDirectory(prefix="amt-lab-")
            ca = LabCA(workdir=(self.fleet.base_dir or Path(self._tmp.name)) / "lab-ca")
            self.wsman_tls = WsmanService(self.fleet, self._tls_port, tls=ca).start()
        except Exception:
            self.stop()
            raise
        self.ssh_port, self.amt_port, self.http_port = self.ssh.port, self.wsman.port, self.api.port
        self.amt_tls_port, self.ca_path = self.wsman_tls.port, ca.ca_pem
        self.http_url = self.api.url
        if self._known_hosts_arg:
            kh = Path(self._known_hosts_arg)
        elif self.fleet.base_dir:
            kh = self.fleet.base_dir / "known_hosts"
        else:
            kh = Path(self._tmp.name) / "known_hosts"
        self.known_hosts_path = write_known_hosts(self.fleet, kh, self.ssh_port)
        try:
            self._listen_to_real_wires()
        except Exception:
            self.stop()
            raise
        self._ticker = threading.Thread(target=self._tick_loop, name="lab-ticker", daemon=True)
        self._ticker.start()
        return self

    def _listen_to_real_wires(self) -> None:
        """AMT's ear on each real-OS device's NIC (lab/dhcp_wire.py), drained by every model tick."""
        from lab.dhcp_wire import WireListener
        from lab.netns import read_mac

        fleet = self.fleet
        for dev in fleet.devices.values():
            real = dev.real_os
            if real is None:
                continue
            mac = real.mac or read_mac(real)
            if not mac:
                raise RuntimeError(f"{dev.name}: cannot read the MAC of {real.interface} in its real OS")
            wire = WireListener(real.netns, real.interface, mac,
                                lambda reply, name=dev.name: fleet.wire_ack(name, reply), lock=fleet._lock).start()
            self.wires.append(wire)
            fleet.wire_drains.append(wire.drain)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval):
            self.fleet.tick()

    def stop(self) -> None:
        self._stop.set()
        for wire in self.wires:
            if wire.drain in self.fleet.wire_drains:
                self.fleet.wire_drains.remove(wire.drain)
            wire.stop()
        self.wires = []
        for svc in (self.api, self.wsman_tls, self.wsman, self.ssh):
            if svc is not None:
                svc.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -------------------------------------------------------------- outages of the new server
    def stop_api(self) -> None:
        """The provisioning server (and its gateway) goes away: its port refuses connections until
        start_api(). The devices, their SSH and WS-Management stay up; the fleet keeps its state."""
        if self.api is not None:
            self.api.stop()
            self.api = None

    def start_api(self) -> None:
        """The provisioning server comes back on the same port, with the same fleet behind it."""
        if self.api is None:
            self.api = ApiService(self.fleet, self.http_port).start()

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def ready_line(self) -> str:
        return (f"ready ssh={self.ssh_port} amt={self.amt_port} http={self.http_url} "
                f"devices={len(self.fleet.devices)} known_hosts={self.known_hosts_path} "
                f"amt_tls={self.amt_tls_port} ca={self.ca_path}")

    # -------------------------------------------------------------- helpers
    def ssh_client(self, device: str, *, user: str = "migrator", timeout: float = 10.0,
                   pkey: paramiko.PKey | None = None) -> paramiko.SSHClient:
        """A connected client for one device, host key pinned to this device's key only (RejectPolicy)."""
        dev = self.fleet.device(device)
        if pkey is None:
            if self._pkey is None:
                if self.private_key_path is None:
                    raise RuntimeError("this fleet has no private key next to its authorized_keys")
                self._pkey = paramiko.Ed25519Key.from_private_key_file(str(self.private_key_path))
            pkey = self._pkey
        client = paramiko.SSHClient()
        hk = derive_host_key(self.fleet.seed, dev.name)
        client.get_host_keys().add(known_hosts_host(dev.address, self.ssh_port), hk.get_name(),
                                   paramiko.Ed25519Key(data=hk.asbytes()))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(dev.address, port=self.ssh_port, username=user, pkey=pkey, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False, allow_agent=False)
        return client

    def run(self, device: str, command: str, *, timeout: float = 10.0, user: str = "migrator") -> tuple[int, str, str]:
        """Run one command on a device over real SSH: (exit status, stdout, stderr)."""
        client = self.ssh_client(device, user=user, timeout=timeout)
        try:
            _, out, err = client.exec_command(command, timeout=timeout)
            o, e = out.read().decode(), err.read().decode()
            return out.channel.recv_exit_status(), o, e
        finally:
            client.close()
