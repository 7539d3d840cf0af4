"""The inventory's sections (provisioning, window, credentials, DHCP scopes, defaults, hosts, waves, host
tools): each a frozen pydantic model that rejects unknown keys."""

from __future__ import annotations

import fnmatch
import ipaddress
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from tasks.inventory.fields import (REMEDIATION_METHODS, Address, DnsSuffix, Duration, EnvName, HostName, OsType,
                                    Port, RateText, Slug, Tag, Version, _address, _control_url, _Model)
from tasks.rules.suffix import AmtVersion


class ProvisioningApi(_Model):
    """The new server's REST API (Intel DMT: MPS and RPS behind one gateway, e.g. Kong at
    https://host/mps/... and https://host/rps/...). The password is named, never written here."""

    url: str
    user: Slug
    password_env: EnvName | None = None
    password_secret: Slug | None = None
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _api_url(cls, v):
        return _control_url(v)

    @model_validator(mode="after")
    def _one_password_source(self):
        if bool(self.password_env) == bool(self.password_secret):
            raise ValueError("give exactly one of password_env or password_secret (Prefect Secret block)")
        return self


class Provisioning(_Model):
    server: Literal["lab", "rpc"] = "lab"
    api: ProvisioningApi | None = None  # rpc: RPS/MPS REST API, to verify activations and read domains
    url: str | None = None
    certificate_suffix: DnsSuffix | None = None
    certificate: str | None = None
    profile: Slug = "amt-migrate"
    concurrency_limit: Slug | None = None  # a Prefect global concurrency limit capping calls to the server
    # the server's throughput (attempts it completes per period, e.g. 20/min): the forecast's pace for the
    # passes; unset: measured from the attempts in the state store, else attempts are taken as instant
    rate: RateText | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        if v is None:
            return v
        import urllib.parse

        u = urllib.parse.urlsplit(v)
        if u.scheme not in ("http", "https", "ws", "wss") or not u.hostname:
            raise ValueError(f"{v!r} is not an http(s) or ws(s) URL")
        _address(u.hostname)
        if any(c in v for c in " '\"`$;&|<>\\\n"):
            raise ValueError(f"{v!r} holds characters a URL does not need")
        return v

    @model_validator(mode="after")
    def _one_suffix_source(self):
        if bool(self.certificate_suffix) == bool(self.certificate):
            raise ValueError("give exactly one of certificate_suffix or certificate (a PEM file)")
        return self


class Window(_Model):
    interface_open: Duration = timedelta(hours=24)
    retry_interval: Duration = timedelta(hours=24)
    # does a client retry a failed provisioning by itself, every retry_interval? ConfigMgr's in-band client
    # does (the seed); rpc-go and RPS do not. Unset: yes for provisioning.server lab, no for rpc.
    client_retries: bool | None = None


class SshCredentials(_Model):
    user: Slug
    key_env: EnvName | None = None
    key_secret: Slug | None = None
    known_hosts: str = "state/known_hosts"
    connect_timeout: Duration = timedelta(seconds=10)
    command_timeout: Duration = timedelta(seconds=60)

    @model_validator(mode="after")
    def _one_key_source(self):
        if bool(self.key_env) == bool(self.key_secret):
            raise ValueError("give exactly one of key_env (env var holding the key's path) or key_secret (Prefect Secret block)")
        return self


class LegacyAmtCredentials(_Model):
    user: Slug
    password_env: EnvName | None = None
    password_secret: Slug | None = None
    # PEM CA bundle that signed the AMT web-server certificates the legacy console (ConfigMgr, SCS)
    # had issued: WS-Man over TLS (16993) verifies AMT against it, never against the system store.
    ca_bundle: str | None = None

    @model_validator(mode="after")
    def _one_password_source(self):
        if bool(self.password_env) == bool(self.password_secret):
            raise ValueError("give exactly one of password_env or password_secret (Prefect Secret block)")
        return self


class Credentials(_Model):
    ssh: SshCredentials | None = None
    legacy_amt: LegacyAmtCredentials | None = None


class KeaSource(_Model):
    """Read option 15 and valid-lifetime from Kea's control agent (config-get)."""

    url: Annotated[str, BeforeValidator(_control_url)]
    subnet_id: int | None = Field(default=None, ge=1, le=4294967294)  # default: the subnet with the scope's CIDR


class WindowsDhcpSource(_Model):
    """Read option 15 and the lease from a Windows DHCP server's cmdlets over SSH (credentials.ssh)."""

    server: Address
    scope_id: ipaddress.IPv4Address | None = None  # default: the scope subnet's network address
    port: Port | None = None


class DhcpScope(_Model):
    name: Slug
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    domain_name: DnsSuffix = ""  # DHCP option 15; "" = the scope sends none
    lease: Duration = timedelta(days=8)
    kea: KeaSource | None = None  # live source instead of domain_name/lease
    windows_dhcp: WindowsDhcpSource | None = None

    _live_source: str | None = PrivateAttr(default=None)  # set by with_live: where domain_name/lease were read
    _live_error: str | None = PrivateAttr(default=None)  # set by Inventory.with_live_scopes when the read failed
    _live_values: Any = PrivateAttr(default=None)  # the ScopeOptions read (per-host option 15: .for_host)

    @field_validator("subnet", mode="before")
    @classmethod
    def _subnet(cls, v):
        try:
            return ipaddress.ip_network(str(v).strip(), strict=True)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a subnet like 10.1.0.0/16 ({exc})") from None

    @model_validator(mode="after")
    def _one_source(self):
        sources = [k for k in ("kea", "windows_dhcp") if getattr(self, k) is not None]
        if len(sources) > 1:
            raise ValueError("give at most one of kea or windows_dhcp")
        declared = [k for k in ("domain_name", "lease") if k in self.model_fields_set]
        if sources and declared:
            raise ValueError(f"{sources[0]} is read live: drop {' and '.join(declared)} (or drop {sources[0]})")
        if self.windows_dhcp is not None:
            if self.subnet.version != 4:
                raise ValueError("windows_dhcp scopes are IPv4")
            sid = self.windows_dhcp.scope_id
            if sid is not None and sid not in self.subnet:
                raise ValueError(f"windows_dhcp.scope_id {sid} is not in subnet {self.subnet}")
        return self

    @property
    def has_source(self) -> bool:
        return self.kea is not None or self.windows_dhcp is not None

    @property
    def source_label(self) -> str:
        if self.kea is not None:
            return f"Kea at {self.kea.url}" + (f" (subnet {self.kea.subnet_id})" if self.kea.subnet_id else "")
        if self.windows_dhcp is not None:
            w = self.windows_dhcp
            return f"Windows DHCP on {w.server} (scope {w.scope_id or self.subnet.network_address})"
        return "inventory"

    @property
    def live_source(self) -> str | None:
        return self._live_source

    @property
    def live_values(self):
        return self._live_values

    @property
    def live_error(self) -> str | None:
        return self._live_error

    @property
    def known(self) -> bool:
        """Are domain_name/lease real values (declared, or read live)? False for a source not yet read."""
        return not self.has_source or self._live_source is not None

    def with_live(self, values) -> "DhcpScope":
        """A copy holding live values (a `tasks.adapters.dhcp.ScopeOptions`) and a note of where they came from."""
        copy = self.model_copy(update={"domain_name": values.domain_name, "lease": values.lease})
        copy._live_source, copy._live_error, copy._live_values = values.source, None, values
        return copy

    def with_error(self, error: str) -> "DhcpScope":
        copy = self.model_copy()
        copy._live_source, copy._live_error, copy._live_values = None, error, None
        return copy


class Defaults(_Model):
    os: OsType = "windows"
    ssh_port: Port = 22
    amt_port: Port | None = None  # default: 16993 for amt_tls hosts, 16992 otherwise
    amt_tls: bool = False  # WS-Man over TLS (16993) unless a host says otherwise


LegacyConsole = Literal["configmgr", "ema", "meshcentral", "scs", "csv"]
AmtState = Literal["pre_provisioning", "in_provisioning", "activated"]
ControlMode = Literal["acm", "ccm"]


class LegacyRecord(_Model):
    """Where the host came from: the legacy console, its own id for the device, and its own words.

    Kept so the close-out can hand the console's owner the records to remove, in the console's terms."""

    console: LegacyConsole
    id: str | None = None  # ConfigMgr ResourceID, EMA EndpointId, MeshCentral node _id, SCS UUID
    status: str | None = None  # e.g. "AMTStatus 4 (Externally Provisioned)"
    remove_first: bool = False  # the legacy record must go before the new server may take the host


class Host(_Model):
    name: HostName
    address: Address
    amt_version: Version
    amt_suffix: DnsSuffix | None = None  # None = unknown, "" = known blank
    os_suffix: DnsSuffix | None = None
    os: OsType | None = None
    tags: list[Tag] = []
    legacy_managed: bool | None = None  # the legacy console provisioned it: WS-Man with its credentials works
    amt_state: AmtState | None = None  # what the legacy export says of AMT's provisioning state (None = unknown)
    control_mode: ControlMode | None = None  # when activated: admin or client control mode (None = unknown)
    legacy: LegacyRecord | None = None
    scope: Slug | None = None
    ssh_port: Port | None = None
    amt_port: Port | None = None
    amt_tls: bool | None = None  # None = defaults.amt_tls
    location: Slug | None = None  # the site a technician visits (technicians:); default: a tag naming one

    @property
    def version(self) -> AmtVersion:
        return AmtVersion.parse(self.amt_version)


class Wave(_Model):
    name: Slug
    start: datetime | None = None
    hosts: list[str] = Field(min_length=1)
    max_concurrency: int = Field(default=50, ge=1, le=5000)
    max_fail_percentage: float = Field(default=100, ge=0, le=100)
    remediation: list[Literal["amt_write", "dhcp_renew", "mebx"]] = list(REMEDIATION_METHODS)
    batch_size: int = Field(default=50, ge=1, le=1000)
    pass2_include_failed: bool = False  # pass 2 also retries failed hosts whose window is still open
    gate: bool = False  # pause for an operator's go/no-go between remediation and pass 2
    gate_timeout: Duration = timedelta(hours=1)
    pass2_after: Duration | None = None  # run pass 2 later (a scheduled run of the wave's deployment)
    shard_size: int | None = Field(default=None, ge=10, le=10000)  # fan out to workers above this (500-2,000)
    shards_in_flight: int = Field(default=4, ge=1, le=100)

    @field_validator("hosts")
    @classmethod
    def _selectors(cls, v):
        for sel in v:
            body = sel[4:] if sel.startswith("tag:") else sel
            if not body or not all(c.isalnum() or c in "-_.*?[]!" for c in body):
                raise ValueError(f"selector {sel!r}: a name glob (WS-00*) or tag:NAME")
        return v

    @field_validator("remediation")
    @classmethod
    def _unique_methods(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("each remediation method at most once")
        return v

    @field_validator("start")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-01T20:00:00Z")
        return v


class HostToolsSection(_Model):
    """``host_tools:``: the commands run on the clients, each a list of arguments (no shell). rpc-go's
    path, and the host-interface suffix write/read when the site has such a tool (docs/host-tools.md);
    ``hi_set`` holds one ``{suffix}`` placeholder. Unset hi_set/hi_get: amt_write over the host
    interface is skipped, with that reason in the plan and the log."""

    rpc: list[str] = ["rpc"]
    hi_set: list[str] | None = None
    hi_get: list[str] | None = None
    linux_privilege: list[str] = ["sudo", "-n"]

    @model_validator(mode="after")
    def _valid(self):
        self.tools()  # raises InvalidValue (a ValueError) with the offending token
        return self

    def tools(self):
        from tasks.adapters.commands import HostTools

        return HostTools(rpc=tuple(self.rpc), hi_set=None if self.hi_set is None else tuple(self.hi_set),
                         hi_get=None if self.hi_get is None else tuple(self.hi_get),
                         linux_privilege=tuple(self.linux_privilege))



def selector_matches(selector: str, host: Host) -> bool:
    if selector.startswith("tag:"):
        return selector[4:] in host.tags
    return fnmatch.fnmatchcase(host.name.lower(), selector.lower())


def plain_name(selector: str) -> bool:
    """A selector that is a host name, no glob: it matches that host alone (case-insensitive)."""
    return not selector.startswith("tag:") and not any(c in selector for c in "*?[")

