"""The inventory: hosts, waves, scopes and credentials a migration lead describes in YAML.

Everything that can later reach a remote shell (names, suffixes, addresses) is validated here, so
no stage downstream has to trust text from a file.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.rules.durations import format_duration, parse_duration
from tasks.inventory.outages import Outages
from tasks.rules.suffix import AmtVersion, normalize_dns_name, normalize_host_name, suffix_from_certificate_cn
from tasks.inventory.yaml_source import InputError, Problem, SourceMap, load_yaml_with_lines

REMEDIATION_METHODS = ("amt_write", "dhcp_renew", "mebx")


def _suffix(value):
    return normalize_dns_name(value)


def _required_suffix(value):
    return normalize_dns_name(value, allow_blank=False)


def _version(value):
    return str(AmtVersion.parse(value))


def _address(value):
    """An IP address or a DNS name: nothing else can be dialled, and nothing else is safe to quote."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"address must be an IP address or DNS name, got {type(value).__name__}")
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if text.replace(".", "").isdigit():
        raise ValueError(f"{text!r} is not a valid IPv4 address")
    try:
        return normalize_dns_name(text, allow_blank=False)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither an IP address nor a DNS name ({exc})") from None


def _tag(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError("tags are non-empty text")
    tag = value.strip()
    if not all(c.isalnum() or c in "-_." for c in tag):
        raise ValueError(f"tag {tag!r} may hold only letters, digits, '-', '_' and '.'")
    return tag


def _slug(value):
    if not isinstance(value, str):
        raise ValueError("expected text")
    text = value.strip()
    if not text or not all(c.isalnum() or c in "-_." for c in text) or text[0] in "-.":
        raise ValueError(f"{text!r}: use letters, digits, '-', '_' and '.' (it names runs, files and artifacts)")
    return text


def _env_name(value):
    if not isinstance(value, str) or not value or not (value[0].isalpha() or value[0] == "_") or not all(
        c.isalnum() or c == "_" for c in value
    ):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


DnsSuffix = Annotated[str, BeforeValidator(_suffix)]
RequiredSuffix = Annotated[str, BeforeValidator(_required_suffix)]
HostName = Annotated[str, BeforeValidator(normalize_host_name)]
Version = Annotated[str, BeforeValidator(_version)]
Address = Annotated[str, BeforeValidator(_address)]
Tag = Annotated[str, BeforeValidator(_tag)]
Slug = Annotated[str, BeforeValidator(_slug)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
OsType = Literal["windows", "linux"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _control_url(value):
    """An http(s) URL of a DHCP server's API: a dialable host, no characters a URL does not need."""
    import urllib.parse

    if not isinstance(value, str):
        raise ValueError("url must be text like http://kea1.example:8000/")
    text = value.strip()
    u = urllib.parse.urlsplit(text)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL")
    _address(u.hostname)
    try:
        u.port
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    if u.username or u.password or u.query or u.fragment or any(c in text for c in " '\"`$;&|<>\\\n"):
        raise ValueError(f"{text!r}: give scheme://host[:port][/path] only (no credentials, query or shell characters)")
    return text


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
    def live_error(self) -> str | None:
        return self._live_error

    @property
    def known(self) -> bool:
        """Are domain_name/lease real values (declared, or read live)? False for a source not yet read."""
        return not self.has_source or self._live_source is not None

    def with_live(self, values) -> "DhcpScope":
        """A copy holding live values (a `tasks.adapters.dhcp.ScopeOptions`) and a note of where they came from."""
        copy = self.model_copy(update={"domain_name": values.domain_name, "lease": values.lease})
        copy._live_source, copy._live_error = values.source, None
        return copy

    def with_error(self, error: str) -> "DhcpScope":
        copy = self.model_copy()
        copy._live_source, copy._live_error = None, error
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


class Inventory(_Model):
    name: Slug
    state: str | None = None
    provisioning: Provisioning
    window: Window = Window()
    credentials: Credentials = Credentials()
    dhcp_scopes: list[DhcpScope] = []
    defaults: Defaults = Defaults()
    host_tools: HostToolsSection = HostToolsSection()
    outages: Outages = Outages()  # riding through the run's own infrastructure going away (tasks/inventory/outages.py)
    hosts: list[Host] = Field(min_length=1)
    waves: list[Wave] = []

    _path: Path | None = PrivateAttr(default=None)
    _warnings: list[Problem] = PrivateAttr(default_factory=list)
    _cert_suffix: str = PrivateAttr(default="")

    # -- derived views -------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def warnings(self) -> list[Problem]:
        return list(self._warnings)

    @property
    def certificate_suffix(self) -> str:
        return self._cert_suffix or (self.provisioning.certificate_suffix or "")

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def state_url(self) -> str:
        """Relative SQLite paths are taken from the inventory's folder, so the cwd never splits a wave's state."""
        url = self.state or f"sqlite:///state/{self.name}.db"
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.resolve(url[len(prefix):]))
        return url

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name.lower() == name.lower():
                return h
        raise KeyError(name)

    def wave(self, name: str) -> Wave:
        for w in self.waves:
            if w.name == name:
                return w
        known = ", ".join(w.name for w in self.waves) or "none"
        raise KeyError(f"no wave {name!r} in {self.name} (waves: {known})")

    @property
    def tools(self):
        """The client-side commands (`tasks.adapters.commands.HostTools`) from ``host_tools:``."""
        return self.host_tools.tools()

    def os_of(self, host: Host) -> str:
        return host.os or self.defaults.os

    def ssh_port_of(self, host: Host) -> int:
        return host.ssh_port or self.defaults.ssh_port

    def amt_tls_of(self, host: Host) -> bool:
        return self.defaults.amt_tls if host.amt_tls is None else host.amt_tls

    def amt_port_of(self, host: Host) -> int:
        """16993 (TLS) or 16992 (plain HTTP) unless the inventory names a port: AMT's WS-Man ports."""
        return host.amt_port or self.defaults.amt_port or (16993 if self.amt_tls_of(host) else 16992)

    def scope_of(self, host: Host) -> DhcpScope | None:
        if host.scope:
            return next(s for s in self.dhcp_scopes if s.name == host.scope)
        try:
            ip = ipaddress.ip_address(host.address)
        except ValueError:
            return None
        best = None
        for s in self.dhcp_scopes:
            if ip.version == s.subnet.version and ip in s.subnet:
                if best is None or s.subnet.prefixlen > best.subnet.prefixlen:
                    best = s
        return best

    def with_live_scopes(self, values: dict, errors: dict[str, str] | None = None) -> "Inventory":
        """A copy whose scopes hold live values (scope name -> `tasks.adapters.dhcp.ScopeOptions`, from
        `tasks.adapters.dhcp.resolve_scopes`); scopes named in ``errors`` keep a note of why they could not be read."""
        errors = errors or {}
        scopes = [s.with_live(values[s.name]) if s.name in values
                  else s.with_error(errors[s.name]) if s.name in errors else s for s in self.dhcp_scopes]
        return self.model_copy(update={"dhcp_scopes": scopes})

    def select(self, selectors: list[str]) -> list[Host]:
        """Hosts matching any selector (name globs, case-insensitive, or tag:NAME), in inventory order."""
        return [h for h in self.hosts if any(selector_matches(s, h) for s in selectors)]

    def wave_hosts(self, wave: str | Wave) -> list[Host]:
        w = self.wave(wave) if isinstance(wave, str) else wave
        return self.select(w.hosts)


def selector_matches(selector: str, host: Host) -> bool:
    if selector.startswith("tag:"):
        return selector[4:] in host.tags
    return fnmatch.fnmatchcase(host.name.lower(), selector.lower())


# -- loading ----------------------------------------------------------------------------------

_MERGED_LISTS = ("hosts", "waves", "dhcp_scopes")


def _load_tree(path: Path, seen: tuple[Path, ...]) -> tuple[dict, SourceMap]:
    """Read a file and its `include:`s; lists of hosts, waves and scopes are concatenated."""
    data, smap = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise InputError([smap.problem((), "an inventory is a mapping of keys (name, provisioning, hosts, ...)")])
    includes = data.pop("include", None)
    if includes is None:
        return data, smap
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise InputError([smap.problem(("include",), "a file name or a list of file names")])
    problems = []
    for i, inc in enumerate(includes):
        if not isinstance(inc, str) or not inc.strip():
            problems.append(smap.problem(("include", i), "a relative file name"))
            continue
        child = path.parent / inc
        if child.resolve() in seen:
            problems.append(smap.problem(("include", i), f"include cycle through {inc}"))
            continue
        try:
            sub, submap = _load_tree(child, seen + (child.resolve(),))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for key, value in sub.items():
            if key in _MERGED_LISTS and isinstance(value, list):
                base = data.setdefault(key, [])
                if not isinstance(base, list):
                    problems.append(smap.problem((key,), "must be a list"))
                    continue
                offset = len(base)
                base.extend(value)
                smap.graft(submap, (key,), (key,))  # the list node itself
                for j in range(len(value)):
                    smap.graft(submap, (key, j), (key, offset + j))
            elif key in data:
                problems.append(submap.problem((key,), f"also set in {path.name}; only hosts, waves and dhcp_scopes merge"))
            else:
                data[key] = value
                smap.graft(submap, (key,), (key,))
    if problems:
        raise InputError(problems)
    return data, smap


def _clean_loc(loc) -> tuple:
    """pydantic appends union member names ('function-after[...]', 'int'...) to locations: keep real paths."""
    return tuple(part for part in loc
                 if isinstance(part, int) or (isinstance(part, str) and "[" not in part and part not in (
                     "str", "int", "float", "bool", "list", "dict", "datetime", "IPv4Network", "IPv6Network")))


def _model_in(annotation) -> type[BaseModel] | None:
    """The model class inside a field's annotation (Optional[X], list[X], X), if any."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(loc: tuple) -> list[str]:
    """The keys the model accepts at the mapping holding loc's last part (for "did you mean ...?")."""
    model: type[BaseModel] | None = Inventory
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
        if model is None:
            return []
    return list(model.model_fields) if model else []


def _unknown_key_message(loc: tuple) -> str:
    import difflib

    key = loc[-1] if loc else ""
    near = difflib.get_close_matches(str(key), _keys_at(loc), n=1, cutoff=0.6) if isinstance(key, str) else []
    return f"unknown key; did you mean {near[0]}?" if near else "unknown key"


def _pydantic_problems(exc: ValidationError, smap: SourceMap) -> list[Problem]:
    out = []
    for err in exc.errors():
        clean = _clean_loc(err["loc"])
        msg = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key_message(clean)
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append(smap.problem(clean, msg))
    return out


@dataclass
class _Lost:
    """What was set aside to cross-check the rest of an inventory with schema errors, so checks that
    would only fail because of it stay quiet (the schema error already says what to fix)."""

    kept: dict[str, list[int]]  # list key -> original indices of the items kept, in order
    host_names: set[str] = dc_field(default_factory=set)  # raw names (lower case) of hosts set aside
    host_tags: set[str] = dc_field(default_factory=set)
    scope_names: set[str] = dc_field(default_factory=set)
    all_scopes: bool = False
    settings: bool = False  # credentials or defaults set aside: the TLS/CA check can't be trusted

    def hides_selector(self, selector: str) -> bool:
        if selector.startswith("tag:"):
            return selector[4:] in self.host_tags
        return any(fnmatch.fnmatchcase(n, selector.lower()) for n in self.host_names)

    def hides_scope(self, name: str) -> bool:
        return self.all_scopes or name in self.scope_names

    def remap(self, smap: SourceMap) -> SourceMap:
        """The source map re-indexed for the kept items; each place still names the field as written."""
        out = SourceMap(smap.default_file)
        for loc, place in smap.places.items():
            if len(loc) > 1 and loc[0] in self.kept and isinstance(loc[1], int):
                if loc[1] not in self.kept[loc[0]]:
                    continue
                loc = (loc[0], self.kept[loc[0]].index(loc[1])) + loc[2:]
            out.places[loc] = place
        return out


_PLACEHOLDERS = {"name": "inventory", "provisioning": {"certificate_suffix": "invalid.example"}}  # never used: see _salvage


def _salvage(data: dict, exc: ValidationError) -> tuple[Inventory, _Lost] | None:
    """The part of an inventory with schema errors that is still whole, so its cross-checks (duplicates,
    selectors, scopes) are reported in the same pass: unknown keys removed, bad hosts/waves/scopes set
    aside, unusable top-level settings left at their defaults. Only for finding more problems: the
    result is never returned to a caller as an inventory. None when nothing sensible is left to check."""
    import copy

    work = copy.deepcopy(data)
    lists = {k: list(range(len(work[k]))) if isinstance(work.get(k), list) else [] for k in _MERGED_LISTS}
    lost = _Lost(kept={})
    for _ in range(5):  # each round removes what the last validation named; a few rounds suffice
        drop: dict[str, set[int]] = {k: set() for k in _MERGED_LISTS}
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            if not loc:
                return None
            top = loc[0]
            if top in _MERGED_LISTS and len(loc) > 1 and isinstance(loc[1], int):
                if err["type"] == "extra_forbidden" and _delete_at(work, loc):
                    continue
                drop[top].add(loc[1])
            elif err["type"] == "extra_forbidden" and _delete_at(work, loc):
                continue
            elif top == "hosts":
                return None  # no usable host list: nothing to cross-check
            elif top in _PLACEHOLDERS:
                work[top] = copy.deepcopy(_PLACEHOLDERS[top])
            else:
                work.pop(top, None)
                lost.all_scopes |= top == "dhcp_scopes"
                lost.settings |= top in ("credentials", "defaults")
                if top in lists:
                    lists[top] = []
        for key, bad in drop.items():
            if not bad:
                continue
            items = work[key]
            for i in bad:
                raw = items[i] if isinstance(items[i], dict) else {}
                if key == "hosts":
                    lost.host_names.add(str(raw.get("name", "")).strip().lower())
                    lost.host_tags.update(str(t) for t in raw.get("tags") or [] if isinstance(raw.get("tags"), list))
                elif key == "dhcp_scopes":
                    lost.scope_names.add(str(raw.get("name", "")).strip())
            work[key] = [it for i, it in enumerate(items) if i not in bad]
            lists[key] = [orig for i, orig in enumerate(lists[key]) if i not in bad]
        if not work.get("hosts"):
            return None
        try:
            inv = Inventory.model_validate(work)
        except ValidationError as again:
            exc = again
            continue
        lost.kept = lists
        return inv, lost
    return None


def _delete_at(data, loc: tuple) -> bool:
    """Remove the key at loc (an unknown key); False if the path is not there as written."""
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def _read_certificate_suffix(inv: Inventory) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    path = inv.resolve(inv.provisioning.certificate)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise ValueError(f"{path}: certificate subject has no CN")
    return suffix_from_certificate_cn(cns[0].value)


def _semantic_problems(inv: Inventory, smap: SourceMap, lost: _Lost | None = None) -> tuple[list[Problem], list[Problem]]:
    """Checks that need the whole inventory: uniqueness, wave membership, scopes. With `lost`, the
    inventory is what was left of one with schema errors: checks that the set-aside part would decide
    stay quiet."""
    errors: list[Problem] = []
    warnings: list[Problem] = []

    def unique(items, key, label, where):
        seen: dict = {}
        for i, item in enumerate(items):
            k = key(item)
            if k in seen:
                first_file, first_line = smap.where(where(seen[k]))
                errors.append(smap.problem(where(i), f"duplicate {label} {k!r} (first at {first_file}:{first_line})"))
            else:
                seen[k] = i

    unique(inv.hosts, lambda h: h.name.lower(), "host name", lambda i: ("hosts", i, "name"))
    unique(inv.hosts, lambda h: h.address, "address", lambda i: ("hosts", i, "address"))
    unique(inv.waves, lambda w: w.name, "wave name", lambda i: ("waves", i, "name"))
    unique(inv.dhcp_scopes, lambda s: s.name, "scope name", lambda i: ("dhcp_scopes", i, "name"))

    scope_names = {s.name for s in inv.dhcp_scopes}
    for i, a in enumerate(inv.dhcp_scopes):
        for b in inv.dhcp_scopes[:i]:
            if a.subnet.version == b.subnet.version and a.subnet.overlaps(b.subnet):
                warnings.append(smap.problem(("dhcp_scopes", i, "subnet"), f"overlaps scope {b.name!r}; the narrower subnet wins", "warning"))

    for i, h in enumerate(inv.hosts):
        if h.scope and h.scope not in scope_names:
            if lost is not None and lost.hides_scope(h.scope):
                continue
            errors.append(smap.problem(("hosts", i, "scope"), f"no DHCP scope named {h.scope!r}"))
        elif inv.dhcp_scopes and not h.scope and inv.scope_of(h) is None:
            warnings.append(smap.problem(("hosts", i, "address"), f"{h.name} ({h.address}) is in no DHCP scope's subnet: dhcp_renew can't be checked", "warning"))

    member_of: dict[str, int] = {}
    for wi, w in enumerate(inv.waves):
        for si, sel in enumerate(w.hosts):
            matched = [h for h in inv.hosts if selector_matches(sel, h)]
            if not matched and not (lost is not None and lost.hides_selector(sel)):
                errors.append(smap.problem(("waves", wi, "hosts", si), f"selector {sel!r} matches no host"))
        for h in inv.select(w.hosts):
            key = h.name.lower()
            if key in member_of and member_of[key] != wi:
                errors.append(smap.problem(("waves", wi, "hosts"), f"host {h.name} is already in wave {inv.waves[member_of[key]].name!r}; a host belongs to one wave"))
            member_of.setdefault(key, wi)
        if "dhcp_renew" in w.remediation and inv.credentials.ssh is None:
            warnings.append(smap.problem(("waves", wi, "remediation"), "dhcp_renew needs credentials.ssh; it will be skipped", "warning"))
    tls_hosts = [i for i, h in enumerate(inv.hosts) if inv.amt_tls_of(h)]
    legacy = inv.credentials.legacy_amt
    if lost is not None and lost.settings:
        pass  # credentials or defaults had schema errors: whether TLS needs a CA bundle is not known
    elif tls_hosts and (legacy is None or not legacy.ca_bundle):
        errors.append(smap.problem(("hosts", tls_hosts[0], "amt_tls") if inv.hosts[tls_hosts[0]].amt_tls else ("defaults", "amt_tls"),
                                   f"{len(tls_hosts)} host(s) speak WS-Man over TLS: name the CA bundle that signed AMT's "
                                   "certificates in credentials.legacy_amt.ca_bundle (or set amt_tls: false where AMT listens "
                                   "on plain 16992)"))
    elif legacy is not None and legacy.ca_bundle and not inv.resolve(legacy.ca_bundle).is_file():
        errors.append(smap.problem(("credentials", "legacy_amt", "ca_bundle"), f"{legacy.ca_bundle}: no such file"))
    if inv.waves:
        lonely = [h.name for h in inv.hosts if h.name.lower() not in member_of]
        if lonely:
            warnings.append(smap.problem(("hosts",), f"{len(lonely)} host(s) in no wave: {', '.join(lonely[:5])}{' ...' if len(lonely) > 5 else ''}", "warning"))
    return errors, warnings


def load_inventory(path: str | Path) -> Inventory:
    """Load, validate and cross-check an inventory; raises InputError listing every problem with its line.

    Schema and cross-check problems come in one pass: with schema errors, the rest of the inventory is
    still cross-checked (see _salvage), so a lead fixes everything in one edit, not one kind per run."""
    path = Path(path)
    data, smap = _load_tree(path, (path.resolve(),))
    lost: _Lost | None = None
    try:
        inv = Inventory.model_validate(data)
        schema: list[Problem] = []
    except ValidationError as exc:
        schema = _pydantic_problems(exc, smap)
        salvaged = _salvage(data, exc)
        if salvaged is None:
            raise InputError(schema) from None
        inv, lost = salvaged
    inv._path = path.resolve()
    errors = list(schema)
    if inv.provisioning.certificate:
        try:
            inv._cert_suffix = _read_certificate_suffix(inv)
        except (OSError, ValueError) as exc:
            errors.append(smap.problem(("provisioning", "certificate"), str(exc)))
    cross, warnings = _semantic_problems(inv, lost.remap(smap) if lost else smap, lost)
    errors += cross
    if errors:
        raise InputError(sorted(errors, key=lambda p: (p.file != str(path), p.file, p.line)))
    inv._warnings = warnings
    return inv
