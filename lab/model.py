"""The simulated fleet: AMT firmware, client OS and DHCP scopes, as plain Python.

Everything the protocol front-ends (SSH, WS-Management, the provisioning server's HTTP API) do is
a call into this module, so the behaviour the seed describes lives in exactly one place and unit
tests can drive it on a manual clock without any sockets.

Time-driven behaviour (a device retrying a failed provisioning by itself, the OS renewing its lease
at half-life) is kept in a heap of due events; :meth:`Fleet.tick` pops what is due, so a tick costs
nothing for devices with nothing to do - 10,000 devices stay cheap.
"""

from __future__ import annotations

import dataclasses

import hashlib
import heapq
import ipaddress
import random
import secrets
import threading
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import yaml

from lab.amt_rules import WIRE_CAUSE, Firmware, InvalidName, check_provisioning, dns_name, seconds
from lab.amt_rules import host_name as valid_host_name
from lab.clock import Clock, ManualClock, RealClock
from lab.netns import RealOs

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

#: What the provisioning server answers for every failure that reached the device. ConfigMgr gives only
#: this, whatever the cause - which is exactly why the migration needs its own classification.
GENERIC_FAILURE = (
    "Device internal error. Possible causes: DHCP options 6 and 15 not configured, "
    "the AMT device is not in a state that allows provisioning, "
    "the provisioning certificate could not be validated by the device."
)
ALREADY_PROVISIONED = "already provisioned"
PROVISIONED_OK = "provisioned"

STATES = ("pre", "legacy", "provisioned")
OS_TYPES = ("windows", "linux")
FLAG_FAULTS = ("down", "blackhole", "ssh_auth", "hung", "renew_ignored", "me_unreadable", "error_after_activation")
VALUE_FAULTS = ("slow", "latency", "server_5xx")
LATENCY_OPS = ("ssh", "wsman", "provision", "renew", "admin")


class LabError(Exception):
    """A request the simulated device or server refuses; the message is what its tool would print."""


class UnknownDevice(LabError):
    pass


class DeviceUnreachable(LabError):
    """The device is down or black-holed: the provisioning server cannot reach it."""


class ServerBusy(LabError):
    """The provisioning server answers 5xx for this request (``server_5xx`` fault)."""


LOCALES = ("en", "de", "fr", "es", "ru", "ko")
#: the console (OEM) code page a display language's Windows writes to a pipe (Microsoft "Code Page
#: Identifiers"; Win32-OpenSSH runs `cmd.exe /c`, PowerShell/Win32-OpenSSH#1768); 65001 is UTF-8
OEM_CODE_PAGE = {"en": 437, "de": 850, "fr": 850, "es": 850, "ru": 866, "ko": 949}
CODE_PAGES = (437, 850, 866, 949, 65001)
NET_STACKS = ("dhclient", "networkmanager", "networkd", "dhcpcd")


def _choice(d: dict, key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = str(d.get(key, default)).lower()
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _seconds(value: Any) -> float:
    return seconds(value)


def parse_range(value: Any) -> tuple[float, float]:
    """``50ms`` or ``20ms-80ms`` (or a number of seconds) -> (low, high) seconds."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = _seconds(value[0]), _seconds(value[1])
    elif isinstance(value, str) and "-" in value.strip().lstrip("-"):
        a, b = value.split("-", 1)
        lo, hi = _seconds(a), _seconds(b)
    else:
        lo = hi = _seconds(value)
    if hi < lo:
        raise ValueError(f"latency range {value!r}: upper bound below lower bound")
    return lo, hi


@dataclass
class Faults:
    """Per-device faults, as written in the fleet file (``[down]``, ``[slow: 5s]``, ...)."""

    down: bool = False
    blackhole: bool = False
    ssh_auth: bool = False
    hung: bool = False
    renew_ignored: bool = False
    # the ME answers rpc-go's HECI query with a control-mode value outside 0/1/2: `rpc amtinfo` prints
    # `unknown state` (2.x) / `unknown control mode` (3.x) (pkg/utils/helper.go InterpretControlMode)
    me_unreadable: bool = False
    # RPS activates AMT and registers it with MPS, then a later step fails and RPS answers rpc-go with its
    # error state machine's "Unknown error has occured" (rps src/stateMachines/error.ts respondUnknown):
    # rpc-go 2.x logs it and exits 0, 3.x exits 10 with `rps returned error: ...`; AMT stays activated
    error_after_activation: bool = False
    slow: float = 0.0
    latency: tuple[float, float] | None = None
    server_5xx: float = 0.0
    _source: list = field(default_factory=list, repr=False)

    @classmethod
    def parse(cls, items: Iterable | None) -> "Faults":
        f = cls()
        items = list(items or [])
        for item in items:
            if isinstance(item, str) and ":" in item:
                k, v = item.split(":", 1)
                item = {k.strip(): v.strip()}
            if isinstance(item, str):
                if item not in FLAG_FAULTS:
                    raise ValueError(f"unknown fault {item!r} (known: {', '.join(FLAG_FAULTS + VALUE_FAULTS)})")
                setattr(f, item, True)
            elif isinstance(item, dict) and len(item) == 1:
                (k, v), = item.items()
                if k in FLAG_FAULTS:
                    setattr(f, k, bool(v))
                elif k == "slow":
                    f.slow = _seconds(v)
                elif k == "latency":
                    f.latency = parse_range(v)
                elif k == "server_5xx":
                    rate = float(v)
                    if not 0.0 <= rate <= 1.0:
                        raise ValueError("server_5xx is a rate between 0 and 1")
                    f.server_5xx = rate
                else:
                    raise ValueError(f"unknown fault {k!r}")
            else:
                raise ValueError(f"fault entries are names or one-key mappings, got {item!r}")
        f._source = items
        return f

    def as_list(self) -> list:
        return list(self._source)

    @property
    def unreachable(self) -> bool:
        return self.down or self.blackhole


@dataclass(frozen=True)
class Scope:
    """A DHCP scope; ``domain_name`` is the option 15 it hands out ("" = not configured)."""

    name: str
    subnet: ipaddress.IPv4Network
    domain_name: str
    lease: float
    router: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "subnet": str(self.subnet), "domain_name": self.domain_name,
                "lease": self.lease}


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass(eq=False)
class Device:
    """One vPro computer: its AMT firmware and its client OS."""

    name: str
    address: str
    os: str
    amt_version: str
    state: str
    trusted_suffix: str
    dhcp_suffix: str
    host_name: str
    domain_name: str
    os_suffix: str          # connection-specific suffix: the option 15 the OS last received
    primary_suffix: str     # the OS's configured (domain) suffix; renews never change it
    scope: str
    legacy: Credentials | None
    interface_open_until: float | None
    faults: Faults
    uuid: str
    lease_obtained: float | None
    attempts: list[dict] = field(default_factory=list)
    renews: list[dict] = field(default_factory=list)
    true_last_failure: dict | None = None
    _gens: dict = field(default_factory=lambda: {"retry": 0, "renew": 0}, repr=False)
    _rngs: dict = field(default_factory=dict, repr=False)
    dhcp_server: bool = False  # a Windows DHCP server: its SSH answers the DhcpServer cmdlets (lab/shell.py)
    # the client OS as real machines are (lab/shell.py prints each the way the real tools do):
    locale: str = "en"  # Windows display language of ipconfig: en, de, fr, es, ru, ko
    code_page: int = 437  # Windows: the console code page ipconfig's output is written in (65001: UTF-8)
    virtual_adapters: int = 0  # Hyper-V/VMware virtual adapters with DHCP, listed before the real NIC
    tunnels: int = 0  # Windows: VPN tunnels without a physical address (Wintun, Tailscale) listed first
    wired_link: bool = True  # False: the NIC AMT shares has no link; the OS answers on Wi-Fi
    net_stack: str = "dhclient"  # Linux: dhclient, networkmanager, networkd, dhcpcd
    powershell: bool = True  # Windows: PowerShell answers the CIM query (False: only ipconfig works)
    reservation: str | None = None  # a DHCP reservation holds its address: its own option 15 ("" = none of its own)
    # a real client OS in a network namespace (lab/netns.py): its commands run for real, and AMT learns
    # option 15 only from DHCPACKs on its NIC (lab/dhcp_wire.py); None = the simulated OS
    real_os: RealOs | None = None

    @property
    def effective_suffix(self) -> str:
        """The suffix a provisioning is checked against (see the seed and the issue)."""
        if self.state == "pre":
            return self.trusted_suffix or self.dhcp_suffix
        return self.domain_name or self.dhcp_suffix

    @property
    def provision_attempts(self) -> int:
        return len(self.attempts)


def _wire_name(value: str) -> str:
    """Option 15 as a server sent it: a DNS name, or (a server may send anything) the text as is."""
    try:
        return dns_name(value)
    except InvalidName:
        return value.strip().lower()


def _rng(dev: Device, seed: Any, purpose: str) -> random.Random:
    """One random stream per device and purpose: a fault's outcome does not depend on other traffic."""
    r = dev._rngs.get(purpose)
    if r is None:
        r = dev._rngs[purpose] = random.Random(f"{seed}:{dev.name}:{purpose}")
    return r


class Fleet:
    """The whole lab: devices, DHCP scopes and the new provisioning server's rules."""

    def __init__(self, *, certificate_suffix: str, window: Any = "30s", retry_interval: Any = "30s",
                 renew_failure_rate: float = 0.0, scopes: list[Scope], devices: list[dict] | None = None,
                 seed: Any = 0, clock: Clock | None = None, latency: dict | None = None,
                 ssh: dict | None = None, base_dir: Path | None = None, source_path: Path | None = None,
                 extra: dict | None = None, server_options: dict | None = None):
        self.clock = clock or RealClock()
        # the DHCP server's server-level option 15 (Windows: Get-DhcpServerv4OptionValue without -ScopeId); a
        # scope without its own inherits it, a reservation's own value overrides both (MS-DHCPM
        # DHCP_OPTION_SCOPE_TYPE: DhcpGlobalOptions < DhcpSubnetOptions < DhcpReservedOptions)
        self.server_domain_name = dns_name(str((server_options or {}).get("domain_name", "")))
        self.certificate_suffix = dns_name(certificate_suffix, blank_ok=False)
        self.window = _seconds(window)
        self.retry_interval = _seconds(retry_interval)
        if self.retry_interval <= 0:
            raise ValueError("retry_interval must be positive")
        self.renew_failure_rate = float(renew_failure_rate)
        if not 0.0 <= self.renew_failure_rate <= 1.0:
            raise ValueError("renew_failure_rate is a probability between 0 and 1")
        self.seed = seed
        self.latency = {op: parse_range(v) for op, v in (latency or {}).items()}
        for op in self.latency:
            if op not in LATENCY_OPS:
                raise ValueError(f"latency: unknown operation {op!r} (known: {', '.join(LATENCY_OPS)})")
        self.ssh = dict(ssh or {})
        self.base_dir = Path(base_dir) if base_dir else None
        self.source_path = Path(source_path) if source_path else None
        self.extra = dict(extra or {})
        self.scopes: dict[str, Scope] = {}
        for s in scopes:
            if s.name in self.scopes:
                raise ValueError(f"scope {s.name!r} defined twice")
            self.scopes[s.name] = s
        self.devices: dict[str, Device] = {}
        self.by_address: dict[str, Device] = {}
        self._by_lower: dict[str, Device] = {}
        self._lock = threading.RLock()
        #: MPS's device table: RPS registers every device it activates (rps src/stateMachines/
        #: activation.ts SAVE_DEVICE_TO_MPS; research/rpc.md 4.5). guid -> record.
        self.mps_devices: dict[str, dict] = {}
        #: RPS's vault (devices/<uuid> AMT_PASSWORD): the admin password RPS set on each device it
        #: activated or took over (rpc.md 4.2 CHANGE_AMT_PASSWORD / UPDATE_CREDENTIALS). Never served.
        self.vault: dict[str, str] = {}
        #: which rpc-go major the clients run: 2 exits 0 on an RPS error, 3 exits 10 (rpc.md 2.5)
        self.rpc_major = int(self.extra.get("rpc_version", 2))
        self.rpc_major_of: dict[str, int] = {}
        self._heap: list[tuple[float, int, str, str, int]] = []
        #: readers of real wires (lab/dhcp_wire.py WireListener.drain), run first by every tick
        self.wire_drains: list = []
        self._seq = 0
        self.started_at = self.clock.now()
        for d in devices or []:
            self.add_device(d)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: dict, *, clock: Clock | None = None, base_dir: Path | None = None,
                  source_path: Path | None = None) -> "Fleet":
        if not isinstance(data, dict):
            raise ValueError("a fleet file is a mapping")
        known = {"certificate_suffix", "window", "retry_interval", "renew_failure_rate", "ssh", "scopes",
                 "devices", "seed", "latency", "server_options"}
        scopes = []
        for s in data.get("scopes") or []:
            scopes.append(Scope(
                name=str(s["name"]), subnet=ipaddress.ip_network(str(s["subnet"])),
                domain_name=dns_name(s.get("domain_name", "")),
                lease=_seconds(s.get("lease", "1h")), router=str(s.get("router", "")),
            ))
        return cls(
            certificate_suffix=data["certificate_suffix"], window=data.get("window", "30s"),
            retry_interval=data.get("retry_interval", "30s"),
            renew_failure_rate=data.get("renew_failure_rate", 0.0), scopes=scopes,
            devices=data.get("devices") or [], seed=data.get("seed", 0), clock=clock,
            latency=data.get("latency"), ssh=data.get("ssh"), base_dir=base_dir, source_path=source_path,
            extra={k: v for k, v in data.items() if k not in known}, server_options=data.get("server_options"),
        )

    @classmethod
    def load(cls, path: str | Path, *, clock: Clock | None = None) -> "Fleet":
        path = Path(path)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader)
        return cls.from_dict(data, clock=clock, base_dir=path.resolve().parent, source_path=path.resolve())

    def _scope_for(self, address: ipaddress.IPv4Address) -> Scope | None:
        best = None
        for s in self.scopes.values():
            if address in s.subnet and (best is None or s.subnet.prefixlen > best.subnet.prefixlen):
                best = s
        return best

    def add_device(self, d: dict) -> Device:
        """Validate one fleet-file entry and put the device on the network (its window may open now)."""
        try:
            name = valid_host_name(str(d["name"]))
            addr = ipaddress.ip_address(str(d["address"]))
            if addr not in LOOPBACK:
                raise ValueError(f"address {addr} is outside 127.0.0.0/8 (the lab serves loopback only)")
            os_type = str(d.get("os", "windows")).lower()
            if os_type not in OS_TYPES:
                raise ValueError(f"os must be windows or linux, got {os_type!r}")
            if d.get("dhcp_server") and os_type != "windows":
                raise ValueError("dhcp_server: true needs os: windows (the Windows DHCP cmdlets)")
            version = str(Firmware.parse(d.get("amt_version", "11.8.50")))
            state = str(d.get("state", "pre"))
            if state not in STATES:
                raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
            if d.get("scope"):
                if d["scope"] not in self.scopes:
                    raise ValueError(f"unknown scope {d['scope']!r}")
                scope = self.scopes[d["scope"]]
            else:
                scope = self._scope_for(addr)
                if scope is None:
                    raise ValueError(f"no DHCP scope holds {addr}; add one or name it with scope:")
            legacy = d.get("legacy")
            creds = Credentials(str(legacy["user"]), str(legacy["password"])) if legacy else None
            reservation = d.get("reservation")  # a DHCP reservation for its address: {domain_name: X} ("" = none of its own)
            if reservation is not None and not isinstance(reservation, dict):
                raise ValueError("reservation is a mapping like {domain_name: contoso.com} ({} = no option 15 of its own)")
            reserved = dns_name(str(reservation.get("domain_name", ""))) if reservation is not None else None
            os_suffix = dns_name(d.get("os_suffix", reserved or scope.domain_name or self.server_domain_name))
            primary = dns_name(d.get("primary_suffix", os_suffix))
            now = self.clock.now()
            open_until = now + self.window if d.get("interface_open") else None
            lease = scope.lease
            # Stagger lease ages deterministically so 10,000 OSes don't renew in the same second.
            frac = int.from_bytes(hashlib.sha256(f"{self.seed}:{name}:lease".encode()).digest()[:4], "big") / 2**32
            dev = Device(
                name=name, address=str(addr), os=os_type, amt_version=version, state=state,
                trusted_suffix=dns_name(d.get("trusted_suffix", "")),
                dhcp_suffix=dns_name(d.get("dhcp_suffix", "")),
                host_name=str(d.get("host_name", name if state != "pre" else "")),
                domain_name=dns_name(d.get("domain_name", "")),
                os_suffix=os_suffix, primary_suffix=primary, scope=scope.name, legacy=creds,
                interface_open_until=open_until, faults=Faults.parse(d.get("faults")),
                uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{self.seed}.{name}.amt-lab")),
                lease_obtained=now - frac * lease / 2,
                dhcp_server=bool(d.get("dhcp_server", False)),
                locale=_choice(d, "locale", "en", LOCALES),
                code_page=int(d.get("code_page", OEM_CODE_PAGE[_choice(d, "locale", "en", LOCALES)])),
                virtual_adapters=int(d.get("virtual_adapters", 0)),
                tunnels=int(d.get("tunnels", 0)),
                wired_link=bool(d.get("wired_link", True)),
                net_stack=_choice(d, "net_stack", "dhclient", NET_STACKS),
                powershell=bool(d.get("powershell", True)),
                reservation=reserved,
                real_os=RealOs.parse(d.get("real_os")),
            )
            if dev.real_os is not None:
                if os_type != "linux":
                    raise ValueError("real_os needs os: linux")
                dev.lease_obtained = None  # the real client renews by itself; the model schedules nothing
            if not 0 <= dev.virtual_adapters <= 4:
                raise ValueError("virtual_adapters must be 0..4")
            if not 0 <= dev.tunnels <= 2:
                raise ValueError("tunnels must be 0..2")
            if dev.code_page not in CODE_PAGES:
                raise ValueError(f"code_page must be one of {', '.join(map(str, CODE_PAGES))}")
            if not dev.wired_link and os_type != "windows":
                raise ValueError("wired_link: false is modelled for Windows clients only")
        except (KeyError, ValueError, InvalidName, TypeError) as exc:
            label = d.get("name", "?") if isinstance(d, dict) else "?"
            raise ValueError(f"device {label}: {exc}") from exc
        with self._lock:
            if dev.name in self.devices:
                raise ValueError(f"device {dev.name}: defined twice")
            if dev.address in self.by_address:
                raise ValueError(f"device {dev.name}: address {dev.address} already used by "
                                 f"{self.by_address[dev.address].name}")
            self.devices[dev.name] = dev
            self.by_address[dev.address] = dev
            self._by_lower[dev.name.lower()] = dev
            if dev.real_os is None:
                self._schedule(dev, "renew", dev.lease_obtained + lease / 2)
            if dev.state == "provisioned":  # seeded as already on the new server
                self.register_with_mps(dev, self.clock.now())
        return dev

    def register_with_mps(self, dev: Device, now: float) -> dict:
        """RPS's POST ${mps}/api/v1/devices after an activation (rpc.md 4.5 payload shape)."""
        rec = {"guid": dev.uuid, "hostname": dev.host_name or dev.name, "tags": [], "mpsInstance": None,
               "connectionStatus": False, "mpsusername": "admin", "tenantId": "", "friendlyName": dev.name,
               "dnsSuffix": dev.domain_name, "lastConnected": None, "lastSeen": None, "lastDisconnected": None,
               "deviceInfo": {"fwVersion": dev.amt_version, "fwBuild": "", "fwSku": "16392", "currentMode": "0",
                              "features": "AMT Pro Corporate", "ipAddress": dev.address,
                              "lastUpdated": _iso(now)}}
        self.mps_devices[dev.uuid] = rec
        return rec

    def rps_domains(self) -> list[dict]:
        """RPS's domains (GET /api/v1/admin/domains element shape, rps models AMTDomain): the lab's
        certificate plus any ``domains:`` the fleet file lists ({suffix, expires})."""
        default_expiry = _iso(self.started_at + 365 * 86400)
        out = [{"profileName": "lab-domain", "domainSuffix": self.certificate_suffix,
                "provisioningCertStorageFormat": "string", "tenantId": "", "version": "1",
                "expirationDate": self.extra.get("certificate_expires") or default_expiry}]
        for i, d in enumerate(self.extra.get("domains") or []):
            out.append({"profileName": str(d.get("profile_name") or f"lab-domain-{i + 2}"),
                        "domainSuffix": dns_name(str(d["suffix"]), blank_ok=False),
                        "provisioningCertStorageFormat": "string", "tenantId": "", "version": "1",
                        "expirationDate": str(d.get("expires") or default_expiry)})
        return out

    def rps_domain_suffixes(self) -> set[str]:
        return {d["domainSuffix"] for d in self.rps_domains()}

    def rps_client_mode_profiles(self) -> set[str]:
        """Names of RPS profiles that activate in client control mode (fleet key ``rps_ccm_profiles``); every
        other profile name is an admin-control-mode one."""
        return {str(p) for p in self.extra.get("rps_ccm_profiles") or []}

    def rpc_major_for(self, dev: Device) -> int:
        return self.rpc_major_of.get(dev.name, self.rpc_major)

    # ------------------------------------------------------------------ events
    def _schedule(self, dev: Device, kind: str, when: float) -> None:
        dev._gens[kind] += 1
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, dev.name, dev._gens[kind]))

    def _cancel(self, dev: Device, kind: str) -> None:
        dev._gens[kind] += 1

    def next_event_at(self) -> float | None:
        with self._lock:
            while self._heap:
                due, _, kind, name, gen = self._heap[0]
                if self.devices[name]._gens[kind] == gen:
                    return due
                heapq.heappop(self._heap)
            return None

    def tick(self, now: float | None = None) -> int:
        """Run every self-retry and half-lease renew due by ``now``, each at its own due time."""
        with self._lock:
            for drain in self.wire_drains:  # DHCPACKs already on a real wire count before anything else
                drain()
            now = self.clock.now() if now is None else now
            done = 0
            while self._heap and self._heap[0][0] <= now:
                due, _, kind, name, gen = heapq.heappop(self._heap)
                dev = self.devices[name]
                if dev._gens[kind] != gen:
                    continue
                done += 1
                if kind == "retry":
                    if dev.state == "provisioned":
                        continue
                    if dev.faults.unreachable:  # powered off / cut off: the next retry comes later
                        self._schedule(dev, "retry", due + self.retry_interval)
                        continue
                    self._attempt(dev, due, source="self-retry", profile="in-band")
                elif kind == "renew":
                    if dev.faults.unreachable:
                        self._schedule(dev, "renew", due + self.scopes[dev.scope].lease / 2)
                        continue
                    self._renew(dev, due, source="half-lease")
            return done

    def _now(self) -> float:
        """Current lab time, after running whatever became due, so callers never see a stale device."""
        now = self.clock.now()
        self.tick(now)
        return now

    # ----------------------------------------------------------------- queries
    def device(self, key: str) -> Device:
        """Look a device up by name (case-insensitive, as Windows names are) or by address."""
        dev = self.devices.get(key) or self.by_address.get(key) or self._by_lower.get(str(key).lower())
        if dev is None:
            raise UnknownDevice(f"no device named {key!r}")
        return dev

    def interface_open(self, dev: Device, now: float | None = None) -> bool:
        now = self.clock.now() if now is None else now
        return dev.interface_open_until is not None and now < dev.interface_open_until

    def verdict(self, dev: Device):
        """The lab's own judgement (lab.amt_rules) of a provisioning of this device right now."""
        return check_provisioning(dev.amt_version, dev.effective_suffix, self.certificate_suffix)

    def latency_for(self, dev: Device | None, op: str) -> float:
        """Seconds to delay one operation: fleet-wide latency for the op plus the device's latency fault."""
        delay = 0.0
        rng = _rng(dev, self.seed, "latency") if dev is not None else random
        rng_ = self.latency.get(op)
        if rng_:
            delay += rng.uniform(*rng_)
        if dev is not None and dev.faults.latency:
            delay += rng.uniform(*dev.faults.latency)
        return delay

    # --------------------------------------------------------------- behaviour
    def dhcp_renew(self, key: str, *, source: str = "os") -> dict:
        """The client OS renews its lease: the OS always takes option 15, AMT only if its window is open."""
        with self._lock:
            now = self._now()
            dev = self.device(key)
            if dev.real_os is not None:
                raise LabError(f"{dev.name}'s OS is real: it renews through its own DHCP client, not the lab")
            return self._renew(dev, now, source=source)

    def _renew(self, dev: Device, now: float, *, source: str) -> dict:
        scope = self.scopes[dev.scope]
        option15 = self.option15_for(dev)
        before = dev.dhcp_suffix
        took, reason = False, ""
        if not dev.wired_link:  # no DHCP on the wire AMT shares: only Wi-Fi renews, AMT sees nothing
            reason = "AMT's wired link is down: the OS renewed on Wi-Fi, AMT saw no DHCP"
        elif not self.interface_open(dev, now):
            reason = "AMT interface closed: AMT did not see the renew"
        elif dev.faults.renew_ignored:
            reason = "AMT ignored option 15 (renew_ignored fault)"
        elif self.renew_failure_rate and _rng(dev, self.seed, "renew").random() < self.renew_failure_rate:
            reason = "AMT ignored option 15 (renew failure rate)"
        else:
            dev.dhcp_suffix = option15
            took = True
        if dev.wired_link:
            dev.os_suffix = option15
        dev.lease_obtained = now
        self._schedule(dev, "renew", now + scope.lease / 2)
        rec = {"at": _iso(now), "source": source, "option15": option15, "amt_took": took,
               "amt_dhcp_suffix_before": before, "amt_dhcp_suffix": dev.dhcp_suffix, "reason": reason}
        dev.renews.append(rec)
        del dev.renews[:-20]
        return rec

    def option15_for(self, dev: Device) -> str:
        """The option 15 the server hands this device: its reservation's own, else its scope's, else the
        server level's (Windows DHCP inheritance; "" = none anywhere)."""
        return next((v for v in (dev.reservation, self.scopes[dev.scope].domain_name, self.server_domain_name) if v), "")

    def set_server_option(self, domain_name: str) -> str:
        """Set-DhcpServerv4OptionValue without -ScopeId: the server level, inherited by every scope without its own."""
        with self._lock:
            self.server_domain_name = dns_name(domain_name)
            return self.server_domain_name

    def set_reservation_option(self, address: str, domain_name: str) -> Device:
        """Set-DhcpServerv4OptionValue -ReservedIP: the reservation's own option 15."""
        with self._lock:
            dev = next((d for d in self.devices.values() if d.address == address and d.reservation is not None), None)
            if dev is None:
                raise LabError(f"{address} is not a reserved client")
            dev.reservation = dns_name(domain_name)
            return dev
    def wire_ack(self, key: str, reply) -> dict:
        """A DHCPACK to a real-OS device's MAC went over its NIC (lab/dhcp_wire.py): the OS got it, and
        AMT, which shares the NIC, takes its option 15 only while its window is open (same faults and
        failure rate as a simulated renew). A reply without option 15 leaves AMT's suffix as it was."""
        with self._lock:
            now = self.clock.now()
            dev = self.device(key)
            option15 = reply.domain_name
            before = dev.dhcp_suffix
            took, reason = False, ""
            if option15 is None:
                reason = "the DHCPACK carried no option 15"
            elif not self.interface_open(dev, now):
                reason = "AMT interface closed: AMT did not take the DHCPACK's option 15"
            elif dev.faults.renew_ignored:
                reason = "AMT ignored option 15 (renew_ignored fault)"
            elif self.renew_failure_rate and _rng(dev, self.seed, "renew").random() < self.renew_failure_rate:
                reason = "AMT ignored option 15 (renew failure rate)"
            else:
                dev.dhcp_suffix = _wire_name(option15)
                took = True
            if option15 is not None:
                dev.os_suffix = _wire_name(option15)
            dev.lease_obtained = now
            rec = {"at": _iso(now), "source": f"wire: DHCPACK xid {reply.xid:#010x} from {reply.server_id or '?'}",
                   "option15": option15, "server_id": reply.server_id, "amt_took": took,
                   "amt_dhcp_suffix_before": before, "amt_dhcp_suffix": dev.dhcp_suffix, "reason": reason}
            dev.renews.append(rec)
            del dev.renews[:-20]
            return rec

    def set_scope(self, name: str, *, domain_name: str | None = None, lease: float | None = None) -> Scope:
        """Change what a scope hands out (the Windows DHCP cmdlets' Set-); later renews use the new values."""
        with self._lock:
            scope = self.scopes[name]
            changes: dict = {}
            if domain_name is not None:
                changes["domain_name"] = dns_name(domain_name)
            if lease is not None:
                if lease <= 0:
                    raise ValueError("lease must be positive")
                changes["lease"] = float(lease)
            self.scopes[name] = dataclasses.replace(scope, **changes)
            return self.scopes[name]

    def dhcp_release(self, key: str) -> None:
        """``dhclient -r``: the lease is gone until the next request; nothing renews by itself meanwhile."""
        with self._lock:
            self._now()
            dev = self.device(key)
            dev.lease_obtained = None
            self._cancel(dev, "renew")

    def mebx_set_trusted_suffix(self, key: str, suffix: str) -> Device:
        """Someone at the keyboard sets the PKI DNS suffix in the MEBx: no window applies."""
        value = dns_name(suffix)
        with self._lock:
            self._now()
            dev = self.device(key)
            dev.trusted_suffix = value
            return dev

    def hi_set_trusted_suffix(self, key: str, suffix: str) -> Device:
        """SET_DNS_SUFFIX over the host interface (MEI): accepted only before provisioning."""
        value = dns_name(suffix)
        with self._lock:
            self._now()
            dev = self.device(key)
            if dev.state != "pre":
                raise LabError("AMT refused SET_DNS_SUFFIX: the device is not in pre-provisioning state "
                               "(status 0x0000000A, AMT_STATUS_INVALID_PT_MODE)")
            dev.trusted_suffix = value
            return dev

    def wsman_auth_ok(self, dev: Device, user: str) -> Credentials | None:
        """Credentials WS-Management accepts for this device right now (None: every login fails).

        Only the legacy console's admin account exists over the network, and only while that console
        still owns the device; in pre-provisioning AMT accepts no remote admin login at all.
        """
        if dev.state == "legacy" and dev.legacy is not None and dev.legacy.user == user:
            return dev.legacy
        return None

    def wsman_set_domain_name(self, key: str, domain_name: str, host_name: str | None = None) -> Device:
        """AMT_GeneralSettings Put by the legacy console's admin: works at any time (no window)."""
        value = dns_name(domain_name)
        with self._lock:
            self._now()
            dev = self.device(key)
            if dev.state != "legacy":
                raise LabError("access denied: device is not managed by the legacy console")
            dev.domain_name = value
            if host_name is not None:
                dev.host_name = valid_host_name(host_name) if host_name else ""
            return dev

    def client_record_suffix(self, dev: Device) -> str:
        """FQDN suffix the new server writes into AMT: the OS primary suffix if it passes the rule."""
        if dev.primary_suffix and check_provisioning(dev.amt_version, dev.primary_suffix, self.certificate_suffix).accepted:
            return dev.primary_suffix
        return self.certificate_suffix

    def _reach(self, dev: Device) -> None:
        """The server's way to the device for one request: a 5xx of its own, or a device that doesn't answer."""
        if dev.faults.server_5xx and _rng(dev, self.seed, "5xx").random() < dev.faults.server_5xx:
            raise ServerBusy("provisioning server temporarily unavailable (503)")
        if dev.faults.unreachable:
            raise DeviceUnreachable(f"device {dev.name} did not answer ({dev.address})")

    def provision(self, key: str, *, profile: str = "default", source: str = "server") -> dict:
        """One provisioning request to the new server. Raises DeviceUnreachable / ServerBusy."""
        with self._lock:
            now = self._now()
            dev = self.device(key)
            self._reach(dev)
            return self._attempt(dev, now, source=source, profile=profile)

    def _attempt(self, dev: Device, now: float, *, source: str, profile: str) -> dict:
        after_success = dev.state == "provisioned"
        checked = dev.effective_suffix
        dev.interface_open_until = now + self.window  # every attempt reopens the interface
        rec = {"attempt": len(dev.attempts) + 1, "at": _iso(now), "source": source, "profile": profile,
               "after_success": after_success, "checked_suffix": checked, "true_reason": None, "detail": ""}
        if after_success:
            rec.update(result="success", error_code=None, message=ALREADY_PROVISIONED)
        else:
            v = check_provisioning(dev.amt_version, checked, self.certificate_suffix)
            rec["detail"] = v.explanation
            if v.accepted:
                dev.state = "provisioned"
                dev.host_name = dev.name
                dev.domain_name = self.client_record_suffix(dev)
                self._cancel(dev, "retry")
                self.register_with_mps(dev, now)
                self.vault[dev.uuid] = secrets.token_urlsafe(16)  # the profile's (random) admin password
                rec.update(result="success", error_code=None,
                           message=f"{PROVISIONED_OK} as {dev.host_name}.{dev.domain_name}")
            else:
                cause = WIRE_CAUSE[v.refused]  # the admin API's historical spelling of the lab's reason
                rec.update(result="failed", error_code="internal_error", message=GENERIC_FAILURE,
                           true_reason=cause)
                dev.true_last_failure = {"cause": cause, "detail": v.explanation, "at": rec["at"],
                                         "attempt": rec["attempt"], "checked_suffix": checked}
                self._schedule(dev, "retry", now + self.retry_interval)
        dev.attempts.append(rec)
        return rec

    def adopt(self, key: str, password: str, *, profile: str = "default") -> dict:
        """RPS taking over an activated device given its current admin password (rps Validator.ts
        setNextStepsForConfiguration, stateMachines/activation.ts; research/rpc.md 4.2): the password
        is checked against the vault's, or, for a device activated elsewhere, against the one AMT holds
        (the lab's stand-in for the digest login RPS then makes); no suffix check at all; the password
        is rotated, the device registered with MPS. Raises DeviceUnreachable / ServerBusy."""
        with self._lock:
            now = self._now()
            dev = self.device(key)
            self._reach(dev)
            after_success = dev.state == "provisioned"
            rec = {"attempt": len(dev.attempts) + 1, "at": _iso(now), "source": "rpc", "profile": profile,
                   "after_success": after_success, "checked_suffix": None, "true_reason": None,
                   "detail": "adopt: already activated, current password given"}
            expected = self.vault.get(dev.uuid) or (dev.legacy.password if dev.legacy is not None else None)
            if dev.state == "pre" or expected is None or not secrets.compare_digest(password, expected):
                rec.update(result="failed", error_code="auth_failed", true_reason="auth_failed",
                           message=f"AMT password DOES NOT match stored version for Device {dev.uuid}")
            elif after_success:
                rec.update(result="success", error_code=None, message=ALREADY_PROVISIONED)
            else:
                dev.state = "provisioned"
                dev.host_name = dev.host_name or dev.name
                self.vault[dev.uuid] = secrets.token_urlsafe(16)  # rotated: the legacy password stops working
                self._cancel(dev, "retry")
                self.register_with_mps(dev, now)
                rec.update(result="success", error_code=None, message=f"{PROVISIONED_OK} (taken over, password rotated)")
            dev.attempts.append(rec)
            return rec

    def set_faults(self, key: str, faults: list) -> Device:
        parsed = Faults.parse(faults)
        with self._lock:
            dev = self.device(key)
            dev.faults = parsed
            return dev

    # ------------------------------------------------------------------- views
    @staticmethod
    def public_attempt(rec: dict) -> dict:
        """What the provisioning server tells its callers: no true reason, no checked suffix."""
        return {k: rec[k] for k in ("attempt", "at", "source", "profile", "result", "error_code", "message",
                                    "after_success")}

    def admin_view(self, key: str) -> dict:
        """The lab's own view of a device, including what the real server would never reveal."""
        with self._lock:
            now = self._now()
            dev = self.device(key)
            v = self.verdict(dev)
            return {
                "name": dev.name, "address": dev.address, "os": dev.os, "amt_version": dev.amt_version,
                "uuid": dev.uuid, "state": dev.state, "legacy": dev.legacy is not None,
                "trusted_suffix": dev.trusted_suffix, "dhcp_suffix": dev.dhcp_suffix,
                "effective_suffix": dev.effective_suffix, "host_name": dev.host_name,
                "domain_name": dev.domain_name, "os_suffix": dev.os_suffix,
                "primary_suffix": dev.primary_suffix, "scope": dev.scope,
                "reservation": dev.reservation, "option15": self.option15_for(dev),
                "interface_open": self.interface_open(dev, now),
                "interface_open_until": _iso(dev.interface_open_until),
                "lease_obtained": _iso(dev.lease_obtained),
                "provision_attempts": dev.provision_attempts, "attempts": list(dev.attempts),
                "renews": list(dev.renews), "true_last_failure": dev.true_last_failure,
                "faults": dev.faults.as_list(),
                "locale": dev.locale, "code_page": dev.code_page, "wired_link": dev.wired_link,
                "real_os": dev.real_os.as_dict() if dev.real_os is not None else None,
                "suffix_check": v.as_wire(),
                "now": _iso(now),
            }

    def admin_list(self) -> list[dict]:
        with self._lock:
            self._now()
            return [self.admin_view(name) for name in self.devices]

    def certificate_cn(self) -> str:
        return f"amtprov.{self.certificate_suffix}"


def load_fleet(fleet: "Fleet | str | Path | dict", clock: Clock | None = None) -> Fleet:
    """Accept a Fleet, a fleet-file path or a parsed mapping."""
    if isinstance(fleet, Fleet):
        return fleet
    if isinstance(fleet, dict):
        return Fleet.from_dict(fleet, clock=clock)
    return Fleet.load(fleet, clock=clock)


__all__ = [
    "Fleet", "Device", "Scope", "Faults", "Credentials", "LabError", "UnknownDevice", "DeviceUnreachable",
    "ServerBusy", "GENERIC_FAILURE", "ALREADY_PROVISIONED", "load_fleet", "parse_range", "ManualClock",
]
