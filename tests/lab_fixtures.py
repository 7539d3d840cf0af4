"""Pytest fixtures and helpers for the lab.

Use in a test module with ``pytest_plugins = ["tests.lab_fixtures"]`` (fixtures, the ``slow`` marker) and
import the helpers by name. Everything runs on
ephemeral ports and a manual clock unless a test asks otherwise, so tests can run next to anything.
"""

from __future__ import annotations

import copy
from pathlib import Path

import paramiko
import pytest

from lab.clock import ManualClock
from lab.generate import generate_fleet
from lab.model import Fleet
from lab.server import LabServer

__all__ = ["manual_clock", "lab_dir", "lab", "fleet_dict", "make_fleet", "KnownHostsIndex", "ssh_run",
           "ssh_connect", "wsman_envelope", "BASE_FLEET", "slow"]

BASE_FLEET = {
    "certificate_suffix": "contoso.com",
    "window": "30s",
    "retry_interval": "30s",
    "renew_failure_rate": 0.0,
    "seed": 11,
    "scopes": [
        {"name": "hq", "subnet": "127.10.0.0/16", "domain_name": "contoso.com", "lease": "1h"},
        {"name": "lab-old", "subnet": "127.11.0.0/16", "domain_name": "contoso.local", "lease": "20m"},
    ],
    "devices": [],
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: lab scale checks (10,000 devices); run by default")


def slow(fn):
    """Mark a test ``slow`` without touching pytest.mark at import time.

    The marker is registered by this plugin (test modules load it via ``pytest_plugins``), which happens
    only after the module is imported; ``@pytest.mark.slow`` there would warn about an unknown mark.
    """
    fn._lab_slow = True
    return fn


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection
def pytest_collection_modifyitems(config, items):
    for item in items:
        if getattr(getattr(item, "function", None), "_lab_slow", False):
            item.add_marker("slow")


def fleet_dict(*devices: dict, **overrides) -> dict:
    data = copy.deepcopy(BASE_FLEET)
    data.update(overrides)
    data["devices"] = [dict(d) for d in devices]
    return data


def make_fleet(*devices: dict, clock: ManualClock | None = None, **overrides) -> Fleet:
    return Fleet.from_dict(fleet_dict(*devices, **overrides), clock=clock or ManualClock())


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory) -> Path:
    """A generated 30-device fleet (seed 7), with inventory and key pair; shared, never served as-is."""
    out = tmp_path_factory.mktemp("labfleet")
    generate_fleet(30, 7, out)
    return out


@pytest.fixture
def lab(lab_dir, tmp_path):
    """A served copy of the generated fleet on a manual clock; each test gets a fresh fleet state."""
    with LabServer(lab_dir / "fleet.yaml", known_hosts=tmp_path / "known_hosts", clock=ManualClock()) as server:
        yield server


class KnownHostsIndex:
    """Parse a known_hosts file once; hand each client only its own host's entry (see ssh-notes)."""

    def __init__(self, path: Path):
        self.entries: dict[str, tuple[str, paramiko.PKey]] = {}
        for line in Path(path).read_text().splitlines():
            host, ktype, b64 = line.split()[:3]
            self.entries[host] = (ktype, paramiko.PKey.from_type_string(ktype, __import__("base64").b64decode(b64)))

    def add_to(self, client: paramiko.SSHClient, address: str, port: int) -> None:
        host = address if port == 22 else f"[{address}]:{port}"
        if host in self.entries:
            ktype, key = self.entries[host]
            client.get_host_keys().add(host, ktype, key)


_KH_CACHE: dict[tuple[str, float], KnownHostsIndex] = {}
_PKEY_CACHE: dict[str, paramiko.PKey] = {}


def ssh_connect(server: LabServer, address: str, *, user: str = "migrator", timeout: float = 5.0,
                pkey: paramiko.PKey | None = None) -> paramiko.SSHClient:
    """Connect with host-key checking against the known_hosts file the lab wrote (RejectPolicy)."""
    kh_path = server.known_hosts_path
    key = (str(kh_path), kh_path.stat().st_mtime)
    index = _KH_CACHE.get(key)
    if index is None:
        index = _KH_CACHE[key] = KnownHostsIndex(kh_path)
    if pkey is None:
        p = str(server.private_key_path)
        pkey = _PKEY_CACHE.get(p) or _PKEY_CACHE.setdefault(p, paramiko.Ed25519Key.from_private_key_file(p))
    client = paramiko.SSHClient()
    index.add_to(client, address, server.ssh_port)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, port=server.ssh_port, username=user, pkey=pkey, timeout=timeout,
                   banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False, allow_agent=False)
    return client


def ssh_run(server: LabServer, device: str, command: str, *, timeout: float = 5.0, **kw) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one command on one device, over real SSH."""
    address = server.fleet.device(device).address
    client = ssh_connect(server, address, timeout=timeout, **kw)
    try:
        _, out, err = client.exec_command(command, timeout=timeout)
        o, e = out.read().decode(), err.read().decode()
        return out.channel.recv_exit_status(), o, e
    finally:
        client.close()


def wsman_envelope(action: str, resource: str, body: str = "", message_id: str = "uuid:1",
                   to: str = "/wsman") -> str:
    """A request envelope as a WS-Management client sends it (SOAP 1.2, WS-Addressing 2004/08)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">'
        f"<Header><a:Action>{action}</a:Action><a:To>{to}</a:To><w:ResourceURI>{resource}</w:ResourceURI>"
        f"<a:MessageID>{message_id}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
        f"</Header><Body>{body}</Body></Envelope>"
    )
