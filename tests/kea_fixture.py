"""A private Kea 2.2 (kea-dhcp4 + kea-ctrl-agent) per test, from Debian's kea-dhcp4-server and kea-ctrl-agent.

Everything lives in the test's temp dir: generated configs, the unix control socket, the lease file, logs,
pid and lock files. kea-dhcp4 listens on no interface (`"interfaces": []`) and on a high DHCP port, so it
never serves the machine's network; the control agent listens on a free loopback port. Both are stopped
afterwards. A system-wide Kea started by the packages is never touched.

Use with ``pytest_plugins = ["tests.kea_fixture"]`` and the ``kea`` fixture, or `KeaServer` directly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lab.openssh import free_port  # one definition for every test server

_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a test process killed outright takes its Kea along (it survives exec)."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def kea_binaries() -> tuple[str | None, str | None]:
    return shutil.which("kea-dhcp4", path=_SBIN), shutil.which("kea-ctrl-agent", path=_SBIN)


def sample_dhcp4(**overrides) -> dict:
    """A Dhcp4 body with one plain subnet, one inside a shared network and one inheriting everything."""
    body = {
        "valid-lifetime": 3600,
        "option-data": [{"name": "domain-name", "data": "global.example"}],
        "subnet4": [
            {"id": 1, "subnet": "10.1.0.0/16", "pools": [{"pool": "10.1.0.10 - 10.1.0.200"}],
             "option-data": [{"name": "domain-name", "data": "contoso.local"}], "valid-lifetime": 691200},
            {"id": 3, "subnet": "10.3.0.0/16"},
            {"id": 4, "subnet": "10.4.0.0/16", "valid-lifetime": 600, "min-valid-lifetime": 300,
             "max-valid-lifetime": 900},
        ],
        "shared-networks": [
            {"name": "campus", "valid-lifetime": 1800,
             "option-data": [{"name": "domain-name", "data": "campus.contoso.com"}],
             "subnet4": [{"id": 2, "subnet": "10.2.0.0/16"}]},
        ],
    }
    body.update(overrides)
    return body


#: MACs of the reserved clients in `layered_dhcp4` (00:1b:21 is an Intel OUI)
RESERVED_MAC = "00:1b:21:0a:0b:01"
CLASS_MAC = "00:1b:21:0a:0b:02"
GLOBAL_MAC = "00:1b:21:0a:0b:03"


def layered_dhcp4() -> dict:
    """Option 15 at every level Kea has (Kea ARM 2.2 "options precedence": host reservation, pool, subnet,
    shared network, class, global), as a site that moved its domain pool by pool would have it:

    * subnet 10 (10.10/16): the subnet still says contoso.local; pool 10.10.1.0/24 says contoso.com, pool
      10.10.2.0/24 sets nothing; a reservation (by MAC, 10.10.1.50) sets reserved.contoso.com;
    * subnet 11 (10.11/16): nothing of its own: class 'vpro' (a test on the vendor class) or the global value;
      a reservation (10.11.0.60) names class 'amt-fleet' (no test: only reservations put clients in it); it
      also looks at global reservations (`reservations-global`), one of which sets global-res.contoso.com;
    * subnet 20 (10.20/16) in shared network 'campus' (campus.contoso.com), its only pool sets contoso.com.
    """
    dn = lambda v: [{"name": "domain-name", "data": v}]  # noqa: E731
    return {
        "valid-lifetime": 3600,
        "option-data": dn("global.example"),
        "reservations": [{"hw-address": GLOBAL_MAC, "option-data": dn("global-res.contoso.com")}],
        "client-classes": [
            {"name": "vpro", "test": "substring(option[60].hex,0,8) == 'MSFT 5.0'", "option-data": dn("class.contoso.com")},
            {"name": "amt-fleet", "option-data": [{"code": 15, "data": "fleet.contoso.com"}]},
        ],
        "subnet4": [
            {"id": 10, "subnet": "10.10.0.0/16", "option-data": dn("contoso.local"),
             "pools": [{"pool": "10.10.1.0 - 10.10.1.255", "option-data": dn("contoso.com")},
                       {"pool": "10.10.2.0/24"}],
             "reservations": [{"hw-address": RESERVED_MAC, "ip-address": "10.10.1.50",
                               "option-data": dn("reserved.contoso.com")}]},
            {"id": 11, "subnet": "10.11.0.0/16", "pools": [{"pool": "10.11.0.10 - 10.11.0.200"}],
             "reservations-global": True,
             "reservations": [{"hw-address": CLASS_MAC, "ip-address": "10.11.0.60", "client-classes": ["amt-fleet"]}]},
        ],
        "shared-networks": [
            {"name": "campus", "option-data": dn("campus.contoso.com"),
             "subnet4": [{"id": 20, "subnet": "10.20.0.0/16",
                          "pools": [{"pool": "10.20.0.10 - 10.20.0.250", "option-data": dn("contoso.com")}]}]},
        ],
    }


class KeaServer:
    """Start kea-dhcp4 and kea-ctrl-agent with configs generated in ``workdir``; ``url`` is the agent."""

    def __init__(self, workdir: Path, dhcp4: dict | None = None, *, interfaces: list[str] | None = None,
                 dhcp_port: int | None = None, dhcp4_prefix: list[str] | None = None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dhcp4_body = dhcp4 if dhcp4 is not None else sample_dhcp4()
        self.interfaces = interfaces or []
        self.dhcp_port = dhcp_port
        # e.g. ["ip", "netns", "exec", NS]: kea-dhcp4 serves a bridge inside a test network namespace
        # (tests/netns_fixture.py); the control agent stays on loopback and reaches it by its unix socket
        self.dhcp4_prefix = list(dhcp4_prefix or [])
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/"
        self.socket = self.dir / "kea4.sock"
        self.dhcp4_path = self.dir / "kea-dhcp4.json"
        self.ca_path = self.dir / "kea-ctrl-agent.json"
        self.procs: list[subprocess.Popen] = []

    def write_configs(self) -> None:
        d4 = dict(self.dhcp4_body)
        d4["interfaces-config"] = {"interfaces": self.interfaces}
        d4["control-socket"] = {"socket-type": "unix", "socket-name": str(self.socket)}
        d4["lease-database"] = {"type": "memfile", "persist": True, "name": str(self.dir / "leases4.csv"),
                                "lfc-interval": 0}
        d4["loggers"] = [{"name": "kea-dhcp4", "severity": "INFO",
                          "output_options": [{"output": str(self.dir / "kea-dhcp4.log")}]}]
        self.dhcp4_path.write_text(json.dumps({"Dhcp4": d4}, indent=2))
        ca = {"Control-agent": {
            "http-host": "127.0.0.1", "http-port": self.http_port,
            "control-sockets": {"dhcp4": {"socket-type": "unix", "socket-name": str(self.socket)}},
            "loggers": [{"name": "kea-ctrl-agent", "severity": "INFO",
                         "output_options": [{"output": str(self.dir / "kea-ctrl-agent.log")}]}]}}
        self.ca_path.write_text(json.dumps(ca, indent=2))

    def start(self, timeout: float = 15.0) -> "KeaServer":
        dhcp4, agent = kea_binaries()
        if not dhcp4 or not agent:
            raise FileNotFoundError("kea-dhcp4 / kea-ctrl-agent not installed (apt-get install kea-dhcp4-server kea-ctrl-agent)")
        self.write_configs()
        env = dict(os.environ, KEA_PIDFILE_DIR=str(self.dir), KEA_LOCKFILE_DIR=str(self.dir),
                   KEA_LOGGER_DESTINATION=str(self.dir / "kea-early.log"))
        port = ["-p", str(self.dhcp_port or free_port())]
        for argv, log in (([*self.dhcp4_prefix, dhcp4, "-c", str(self.dhcp4_path), *port], "kea-dhcp4.out"),
                          ([agent, "-c", str(self.ca_path)], "kea-ctrl-agent.out")):
            with open(self.dir / log, "wb") as out:
                self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                   cwd=self.dir, start_new_session=True,
                                                   preexec_fn=_die_with_parent))
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}: {self.logs()}")
            try:
                r = httpx.post(self.url, json={"command": "config-get", "service": ["dhcp4"]}, timeout=2)
                if r.json()[0].get("result") == 0:
                    return
                last = r.text[:200]
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Kea not ready in {timeout}s ({last}): {self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("kea-dhcp4.out", "kea-ctrl-agent.out", "kea-dhcp4.log", "kea-ctrl-agent.log"):
            p = self.dir / name
            if p.exists():
                out.append(f"--- {name}\n" + p.read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def config_file(self) -> dict:
        return json.loads(self.dhcp4_path.read_text())

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def kea(tmp_path):
    dhcp4, agent = kea_binaries()
    if not dhcp4 or not agent:
        pytest.skip("Kea not installed: apt-get install kea-dhcp4-server kea-ctrl-agent")
    with KeaServer(tmp_path / "kea") as server:
        yield server
