"""The inventory's root model and its derived views (a host's scope, ports, OS; a wave's hosts)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, PrivateAttr

from tasks.inventory.fields import RateText, Slug, _Model
from tasks.inventory.sections import (Credentials, Defaults, DhcpScope, Host, HostToolsSection, Provisioning, Wave,
                                      Window, plain_name, selector_matches)
from tasks.inventory.outages import Outages
from tasks.inventory.yaml_source import Problem


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
    technicians: dict[Slug, RateText] = {}  # MEBx visits a site's technicians make, e.g. {site-a: 6/day}

    _path: Path | None = PrivateAttr(default=None)
    _warnings: list[Problem] = PrivateAttr(default_factory=list)
    _cert_suffix: str = PrivateAttr(default="")
    _scope_names: dict = PrivateAttr(default_factory=dict)  # (scope, address) -> the scope's name (or None)

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

    def location_of(self, host: Host) -> str | None:
        """Where a technician visits the host: its `location`, else its first tag that names a site in
        `technicians`, else None (no capacity known)."""
        if host.location:
            return host.location
        return next((t for t in host.tags if t in self.technicians), None)

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
        """The host's scope: named, else the narrowest whose subnet holds its address. Which one is remembered
        by name (copies with live values keep the names), so a 10,000-host plan doesn't scan every subnet
        for every question."""
        key = (host.scope, host.address)
        if key not in self._scope_names:
            found = self._find_scope(host)
            self._scope_names[key] = found.name if found is not None else None
        name = self._scope_names[key]
        return None if name is None else next(s for s in self.dhcp_scopes if s.name == name)

    def _find_scope(self, host: Host) -> DhcpScope | None:
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
        names = {s.lower() for s in selectors if plain_name(s)}  # a wave listing thousands of names stays O(n)
        tags = {s[4:] for s in selectors if s.startswith("tag:")}
        globs = [s for s in selectors if not plain_name(s) and not s.startswith("tag:")]
        return [h for h in self.hosts if h.name.lower() in names or not tags.isdisjoint(h.tags)
                or any(selector_matches(g, h) for g in globs)]

    def wave_hosts(self, wave: str | Wave) -> list[Host]:
        w = self.wave(wave) if isinstance(wave, str) else wave
        return self.select(w.hosts)

