"""Live DHCP scope values: option 15 (domain name) and the lease, read from the DHCP server itself.

AMT takes a new DNS suffix only from DHCP option 15 while its interface window is open, so what the
scope *really* hands out decides whether `dhcp_renew` can work. Two adapters:

* `KeaAdapter` — ISC Kea 2.2 through its control agent (HTTP/JSON): `config-get` reads; a change is
  `config-get` → edit → `config-test` → `config-set` → `config-write` → read back.
* `WindowsDhcpAdapter` — Windows Server DHCP through its PowerShell cmdlets over SSH
  (`Get-/Set-DhcpServerv4OptionValue -OptionId 15`, `Get-/Set-DhcpServerv4Scope -LeaseDuration`).

Both answer `read(ref) -> ScopeOptions`, `plan_change(ref, ...) -> ScopeChange` (a dry run: nothing is
written) and `apply_change(ref, ...) -> ScopeChange` (writes, then reads back). `resolve_scopes(inv)` reads
every scope of an inventory that names a source; `Inventory.with_live_scopes` puts the values in.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from tasks.adapters.windows import powershell_command  # one builder for every PowerShell line (re-exported)
from tasks.rules.durations import format_duration
from tasks.rules.suffix import InvalidValue, normalize_dns_name

KEA_DEFAULT_VALID_LIFETIME = 7200  # Kea's built-in default when no level sets valid-lifetime


class DhcpError(Exception):
    """The DHCP server could not be read or refused a change. ``kind`` says which step failed."""

    def __init__(self, message: str, *, kind: str = "error", source: str = ""):
        self.kind = kind
        self.source = source
        super().__init__(message)


@dataclass(frozen=True)
class ScopeOptions:
    """What a scope hands out. ``domain_name`` "" = no option 15; ``source`` says where it was read."""

    domain_name: str
    lease: timedelta
    source: str
    domain_name_level: str = ""  # where option 15 comes from: subnet / shared-network / global / scope / server
    lease_level: str = ""

    def as_dict(self) -> dict:
        return {"domain_name": self.domain_name, "lease": format_duration(self.lease),
                "lease_seconds": int(self.lease.total_seconds()), "source": self.source,
                "domain_name_level": self.domain_name_level, "lease_level": self.lease_level}


@dataclass(frozen=True)
class ScopeChange:
    """A planned (or applied) change. ``diff`` lists (what, before, after); empty = nothing to do."""

    source: str
    before: ScopeOptions
    after: ScopeOptions  # planned values (dry run) or the values read back (applied)
    diff: list[tuple[str, str, str]]
    applied: bool = False
    details: list[str] = field(default_factory=list)  # raw config edits, server messages

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    def render(self) -> str:
        if not self.diff:
            return f"{self.source}: no change (option 15 {self.before.domain_name or '(none)'!r}, " \
                   f"lease {format_duration(self.before.lease)})"
        lines = [f"{self.source}:" + ("" if self.applied else " (dry run)")]
        lines += [f"  - {what}: {before}" + "\n" + f"  + {what}: {after}" for what, before, after in self.diff]
        lines += [f"    {d}" for d in self.details]
        return "\n".join(lines)


def _dns_value(value: str, what: str = "domain name") -> str:
    name = normalize_dns_name(value, allow_blank=False)
    if not re.fullmatch(r"[a-z0-9.-]+", name):  # belt and braces: nothing else may reach a command line
        raise InvalidValue(f"{what} {value!r} holds characters a DNS name does not need")
    return name


def _lease_value(lease: timedelta) -> int:
    seconds = int(lease.total_seconds())
    if seconds < 60 or seconds > 365 * 86400 or seconds != lease.total_seconds():
        raise InvalidValue(f"lease {lease} must be whole seconds between 1 minute and 365 days")
    return seconds


def _diff(before: ScopeOptions, domain_name: str | None, lease: timedelta | None) -> list[tuple[str, str, str]]:
    out = []
    if domain_name is not None and domain_name != before.domain_name:
        out.append(("option 15 (domain-name)", before.domain_name or "(none)", domain_name))
    if lease is not None and lease != before.lease:
        out.append(("lease (valid-lifetime)", format_duration(before.lease), format_duration(lease)))
    return out


# --------------------------------------------------------------------------------------------------
# Kea
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeaSubnetRef:
    """A Kea subnet: by ``subnet_id`` (preferred, it is Kea's key) or by CIDR."""

    subnet_id: int | None = None
    subnet: str | None = None

    def __str__(self) -> str:
        return f"subnet {self.subnet_id}" if self.subnet_id is not None else f"subnet {self.subnet}"


def _domain_option(option_data: list | None) -> dict | None:
    for opt in option_data or []:
        if opt.get("space", "dhcp4") != "dhcp4":
            continue
        if opt.get("name") == "domain-name" or opt.get("code") == 15:
            return opt
    return None


class KeaAdapter:
    """Kea 2.2's control agent. ``control_url`` e.g. ``http://kea1.example:8000/``."""

    def __init__(self, control_url: str, timeout: float = 10.0, *, auth: tuple[str, str] | None = None,
                 transport=None):
        import httpx

        self.control_url = control_url
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, auth=auth, transport=transport)

    def __repr__(self) -> str:
        return f"KeaAdapter({self.control_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def label(self, ref: KeaSubnetRef | None = None) -> str:
        return f"Kea at {self.control_url}" + (f" ({ref})" if ref is not None else "")

    # -- transport ----------------------------------------------------------------------------
    def command(self, command: str, arguments: dict | None = None, *, ok_results=(0,)) -> dict:
        """Send one command to the dhcp4 service; return its first answer ``{"result", "text", "arguments"}``."""
        import httpx

        body: dict = {"command": command, "service": ["dhcp4"]}
        if arguments is not None:
            body["arguments"] = arguments
        try:
            resp = self._client.post(self.control_url, json=body)
        except httpx.HTTPError as exc:
            raise DhcpError(f"{self.label()}: {command}: {type(exc).__name__}: {exc}", kind="unreachable",
                            source=self.label()) from None
        if resp.status_code == 401:
            raise DhcpError(f"{self.label()}: {command}: 401 (control agent wants credentials)", kind="auth",
                            source=self.label())
        try:
            data = resp.json()
        except ValueError:
            raise DhcpError(f"{self.label()}: {command}: HTTP {resp.status_code}, not JSON", kind="protocol",
                            source=self.label()) from None
        answer = data[0] if isinstance(data, list) and data else data
        if not isinstance(answer, dict) or "result" not in answer:
            raise DhcpError(f"{self.label()}: {command}: unexpected answer {str(data)[:200]}", kind="protocol",
                            source=self.label())
        if answer["result"] not in ok_results:
            raise DhcpError(f"{self.label()}: {command} failed (result {answer['result']}): "
                            f"{answer.get('text', '')}", kind=command, source=self.label())
        return answer

    def config_get(self) -> dict:
        args = self.command("config-get").get("arguments") or {}
        if "Dhcp4" not in args:
            raise DhcpError(f"{self.label()}: config-get holds no Dhcp4 section", kind="protocol", source=self.label())
        return args

    # -- reading ------------------------------------------------------------------------------
    @staticmethod
    def find_subnet(config: dict, ref: KeaSubnetRef) -> tuple[dict, dict | None]:
        """(subnet, its shared network or None) in a config-get result."""
        dhcp4 = config["Dhcp4"]
        places = [(s, None) for s in dhcp4.get("subnet4") or []]
        for net in dhcp4.get("shared-networks") or []:
            places += [(s, net) for s in net.get("subnet4") or []]
        want = ipaddress.ip_network(ref.subnet, strict=False) if ref.subnet else None
        for subnet, net in places:
            if ref.subnet_id is not None:
                if subnet.get("id") == ref.subnet_id:
                    return subnet, net
            elif want is not None and ipaddress.ip_network(subnet.get("subnet", "0.0.0.0/32"), strict=False) == want:
                return subnet, net
        known = ", ".join(f"{s.get('id')}={s.get('subnet')}" for s, _ in places) or "none"
        raise DhcpError(f"no Kea {ref} (subnets: {known})", kind="not_found")

    @staticmethod
    def effective(config: dict, ref: KeaSubnetRef, source: str) -> ScopeOptions:
        """Option 15 and valid-lifetime as Kea applies them: subnet > shared network > global (> default).

        Kea 2.2's config-get already copies inherited lifetimes into each subnet; the walk is still done so a
        configuration that does not (older/newer servers, hand-written files) reads the same.
        """
        subnet, net = KeaAdapter.find_subnet(config, ref)
        dhcp4 = config["Dhcp4"]
        levels = [("subnet", subnet)] + ([("shared-network", net)] if net is not None else []) + [("global", dhcp4)]
        domain, domain_level = "", "none"
        for level, node in levels:
            opt = _domain_option(node.get("option-data"))
            if opt is not None:
                domain, domain_level = normalize_dns_name(str(opt.get("data", ""))), level
                break
        lease, lease_level = KEA_DEFAULT_VALID_LIFETIME, "default"
        for level, node in levels:
            if node.get("valid-lifetime") is not None:
                lease, lease_level = int(node["valid-lifetime"]), level
                break
        return ScopeOptions(domain, timedelta(seconds=lease), source, domain_level, lease_level)

    def read(self, ref: KeaSubnetRef) -> ScopeOptions:
        config = self.config_get()
        try:
            return self.effective(config, ref, self.label(ref))
        except DhcpError as exc:
            raise DhcpError(f"{self.label()}: {exc}", kind=exc.kind, source=self.label()) from None

    # -- changing -----------------------------------------------------------------------------
    def _edited(self, config: dict, ref: KeaSubnetRef, domain_name: str | None,
                lease: timedelta | None) -> tuple[dict, list[str]]:
        """A copy of ``config`` with the change made at the subnet level (the most specific one wins)."""
        new = copy.deepcopy(config)
        # Kea >= 2.4 answers config-get with the config's SHA-256 `hash` beside `Dhcp4` (Kea ARM 2.4.0,
        # "config-hash-get": "config-set and config-get return the SHA-256 hash"); config-test/config-set
        # refuse it ("Unsupported 'hash' parameter"), so it goes, wherever it sits
        new.pop("hash", None)
        new["Dhcp4"].pop("hash", None)
        subnet, _ = self.find_subnet(new, ref)
        notes = []
        if domain_name is not None:
            opts = subnet.setdefault("option-data", [])
            opt = _domain_option(opts)
            if opt is None:
                opts.append({"name": "domain-name", "data": domain_name})
                notes.append(f"subnet {subnet.get('id')}: option-data += domain-name {domain_name}")
            elif opt.get("data") != domain_name:
                notes.append(f"subnet {subnet.get('id')}: option-data domain-name {opt.get('data')} -> {domain_name}")
                opt["data"] = domain_name
        if lease is not None:
            seconds = _lease_value(lease)
            old = subnet.get("valid-lifetime")
            # Kea 2.2's config-get pins min/max-valid-lifetime to the lifetime when they were not configured;
            # sent back unchanged they would forbid the new value. Bounds that differ were set on purpose:
            # they stay, and config-test decides.
            for bound in ("min-valid-lifetime", "max-valid-lifetime"):
                if subnet.get(bound) is not None and subnet.get(bound) == old and \
                        subnet.get("min-valid-lifetime") == subnet.get("max-valid-lifetime"):
                    subnet[bound] = seconds
            if old != seconds:
                subnet["valid-lifetime"] = seconds
                notes.append(f"subnet {subnet.get('id')}: valid-lifetime {old} -> {seconds}")
        return new, notes

    def plan_change(self, ref: KeaSubnetRef, *, domain_name: str | None = None,
                    lease: timedelta | None = None) -> ScopeChange:
        """Dry run: what would change. Reads only."""
        domain_name = _dns_value(domain_name) if domain_name is not None else None
        if lease is not None:
            _lease_value(lease)
        config = self.config_get()
        before = self.effective(config, ref, self.label(ref))
        _, notes = self._edited(config, ref, domain_name, lease)
        planned = ScopeOptions(domain_name if domain_name is not None else before.domain_name,
                               lease if lease is not None else before.lease, before.source,
                               "subnet" if domain_name is not None else before.domain_name_level,
                               "subnet" if lease is not None else before.lease_level)
        return ScopeChange(before.source, before, planned, _diff(before, domain_name, lease), False, notes)

    def apply_change(self, ref: KeaSubnetRef, *, domain_name: str | None = None, lease: timedelta | None = None,
                     write: bool = True) -> ScopeChange:
        """config-get → edit → config-test → config-set → config-write → read back.

        Raises `DhcpError` (kind ``config-test``) without touching the server if Kea rejects the edit, and
        (kind ``verify``) if the read-back differs from what was asked.
        """
        domain_name = _dns_value(domain_name) if domain_name is not None else None
        config = self.config_get()
        before = self.effective(config, ref, self.label(ref))
        diff = _diff(before, domain_name, lease)
        if not diff:
            return ScopeChange(before.source, before, before, [], False, [])
        new, notes = self._edited(config, ref, domain_name, lease)
        self.command("config-test", new)
        answer = self.command("config-set", new)
        notes.append(f"config-set: {answer.get('text', '')}")
        if write:
            answer = self.command("config-write")
            notes.append(f"config-write: {answer.get('text', '')}")
        _CACHE.clear()  # a wave in this process reads the new values, not the ones cached before the change
        after = self.read(ref)
        if (domain_name is not None and after.domain_name != domain_name) or \
                (lease is not None and after.lease != lease):
            raise DhcpError(f"{self.label(ref)}: read back {after.domain_name!r}/{format_duration(after.lease)} "
                            f"after config-set", kind="verify", source=self.label())
        return ScopeChange(before.source, before, after, diff, True, notes)


# --------------------------------------------------------------------------------------------------
# Windows DHCP Server (PowerShell over SSH)
# --------------------------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.\d+)?$")
_OPTION_MISSING = re.compile(r"20010|option.{0,40}(does not exist|not present|not found)|Failed to get option value",
                             re.IGNORECASE | re.DOTALL)


def parse_timespan(text: str) -> timedelta:
    """PowerShell's TimeSpan text: ``8.00:00:00``, ``01:00:00``."""
    m = _TIMESPAN.match(text.strip())
    if not m:
        raise ValueError(f"not a TimeSpan: {text!r}")
    return timedelta(days=int(m["d"] or 0), hours=int(m["h"]), minutes=int(m["m"]), seconds=int(m["s"]))


def format_timespan(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}.{h:02d}:{m:02d}:{s:02d}"


def parse_format_list(text: str) -> list[dict[str, str]]:
    """`Format-List` output → one dict per object (blank lines separate objects; long values wrap)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            if current:
                records.append(current)
                current, last = {}, None
            continue
        m = re.match(r"^(?P<key>[A-Za-z][A-Za-z0-9]*)\s*: ?(?P<value>.*)$", line)
        if m:
            last = m["key"]
            current[last] = m["value"].strip()
        elif last is not None and raw.startswith(" "):
            current[last] += line.strip()  # Format-List wraps long values with an indent
    if current:
        records.append(current)
    return records


def _ps_array(value: str) -> list[str]:
    """`{a, b}` (how Format-List shows a string array) → ['a', 'b']."""
    v = value.strip()
    if v.startswith("{") and v.endswith("}"):
        v = v[1:-1]
    return [x.strip() for x in v.split(",") if x.strip()]


@dataclass(frozen=True)
class WindowsScopeRef:
    scope_id: str  # the scope's network address, e.g. 10.1.0.0

    def __post_init__(self):
        try:
            addr = ipaddress.IPv4Address(str(self.scope_id).strip())
        except ValueError:
            raise InvalidValue(f"ScopeId {self.scope_id!r} is not an IPv4 address") from None
        object.__setattr__(self, "scope_id", str(addr))

    def __str__(self) -> str:
        return f"scope {self.scope_id}"


class WindowsDhcpAdapter:
    """A Windows Server DHCP role, driven by its DhcpServer cmdlets over SSH (`tasks.adapters.ssh.SshRunner`)."""

    def __init__(self, ssh_runner, server_address: str, port: int | None = None):
        self.ssh = ssh_runner
        self.server = server_address
        self.port = port

    def label(self, ref: WindowsScopeRef | None = None) -> str:
        return f"Windows DHCP on {self.server}" + (f" ({ref})" if ref is not None else "")

    def _run(self, script: str) -> tuple[int, str, str]:
        from tasks.adapters.ssh import SshError

        try:
            res = self.ssh.run(self.server, powershell_command(script), port=self.port, os_flavor="windows")
        except SshError as exc:
            raise DhcpError(f"{self.label()}: SSH {exc.kind}: {exc.detail}", kind="unreachable",
                            source=self.label()) from None
        from tasks.adapters.windows import clixml_text

        return res.exit_status, res.stdout, clixml_text(res.stderr)  # PowerShell errors over SSH are CLIXML

    @staticmethod
    def _first_error_line(stderr: str) -> str:
        from tasks.adapters.windows import first_error_line

        return first_error_line(stderr)

    def _option15(self, ref: WindowsScopeRef | None) -> str | None:
        where = f" -ScopeId {ref.scope_id}" if ref is not None else ""
        status, out, err = self._run(f"Get-DhcpServerv4OptionValue{where} -OptionId 15 | Format-List")
        if status != 0:
            if _OPTION_MISSING.search(err):
                return None
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4OptionValue: {self._first_error_line(err)}",
                            kind="read", source=self.label())
        for rec in parse_format_list(out):
            if rec.get("OptionId") == "15":
                values = _ps_array(rec.get("Value", ""))
                return normalize_dns_name(values[0]) if values else ""
        raise DhcpError(f"{self.label(ref)}: no OptionId 15 in the cmdlet's output", kind="protocol",
                        source=self.label())

    def read(self, ref: WindowsScopeRef) -> ScopeOptions:
        status, out, err = self._run(f"Get-DhcpServerv4Scope -ScopeId {ref.scope_id} | Format-List")
        if status != 0:
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4Scope: {self._first_error_line(err)}",
                            kind="not_found" if "not exist" in err or "20022" in err else "read", source=self.label())
        recs = [r for r in parse_format_list(out) if r.get("ScopeId")]
        if not recs or "LeaseDuration" not in recs[0]:
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4Scope printed no scope", kind="protocol",
                            source=self.label())
        lease = parse_timespan(recs[0]["LeaseDuration"])
        # Option values inherit server -> scope (-> reservation): the scope's own value wins.
        domain, level = self._option15(ref), "scope"
        if domain is None:
            domain, level = self._option15(None), "server"
            if domain is None:
                domain, level = "", "none"
        return ScopeOptions(domain, lease, self.label(ref), level, "scope")

    def plan_change(self, ref: WindowsScopeRef, *, domain_name: str | None = None,
                    lease: timedelta | None = None) -> ScopeChange:
        domain_name = _dns_value(domain_name) if domain_name is not None else None
        if lease is not None:
            _lease_value(lease)
        before = self.read(ref)
        planned = ScopeOptions(domain_name if domain_name is not None else before.domain_name,
                               lease if lease is not None else before.lease, before.source,
                               "scope" if domain_name is not None else before.domain_name_level, "scope")
        return ScopeChange(before.source, before, planned, _diff(before, domain_name, lease), False,
                           self._scripts(ref, before, domain_name, lease))

    @staticmethod
    def _scripts(ref, before, domain_name, lease) -> list[str]:
        out = []
        if domain_name is not None and domain_name != before.domain_name:
            out.append(f"Set-DhcpServerv4OptionValue -ScopeId {ref.scope_id} -OptionId 15 -Value {domain_name}")
        if lease is not None and lease != before.lease:
            out.append(f"Set-DhcpServerv4Scope -ScopeId {ref.scope_id} -LeaseDuration {format_timespan(lease)}")
        return out

    def apply_change(self, ref: WindowsScopeRef, *, domain_name: str | None = None,
                     lease: timedelta | None = None) -> ScopeChange:
        domain_name = _dns_value(domain_name) if domain_name is not None else None
        if lease is not None:
            _lease_value(lease)
        before = self.read(ref)
        diff = _diff(before, domain_name, lease)
        scripts = self._scripts(ref, before, domain_name, lease)
        for script in scripts:
            status, _, err = self._run(script)
            if status != 0:
                raise DhcpError(f"{self.label(ref)}: {script.split()[0]}: {self._first_error_line(err)}",
                                kind="write", source=self.label())
        after = self.read(ref) if scripts else before
        if (domain_name is not None and after.domain_name != domain_name) or \
                (lease is not None and after.lease != lease):
            raise DhcpError(f"{self.label(ref)}: read back {after.domain_name!r}/{format_duration(after.lease)}",
                            kind="verify", source=self.label())
        return ScopeChange(before.source, before, after, diff, bool(scripts), scripts)


# --------------------------------------------------------------------------------------------------
# Inventory glue
# --------------------------------------------------------------------------------------------------


def adapter_for(inv, scope, *, ssh_runner=None, timeout: float = 10.0):
    """(adapter, ref) for a scope that names a source; None for a hand-declared scope."""
    if scope.kea is not None:
        ref = KeaSubnetRef(scope.kea.subnet_id, None if scope.kea.subnet_id is not None else str(scope.subnet))
        return KeaAdapter(scope.kea.url, timeout), ref
    if scope.windows_dhcp is not None:
        if ssh_runner is None:
            ssh_runner = ssh_runner_for(inv)
        w = scope.windows_dhcp
        ref = WindowsScopeRef(w.scope_id or str(scope.subnet.network_address))
        return WindowsDhcpAdapter(ssh_runner, w.server, w.port or inv.defaults.ssh_port), ref
    return None


def ssh_runner_for(inv):
    """An SshRunner from the inventory's credentials.ssh (the same key the fleet uses)."""
    from tasks.inventory.secrets import ssh_private_key
    from tasks.adapters.ssh import SshRunner, SshSettings

    creds = inv.credentials.ssh
    if creds is None:
        raise DhcpError("a windows_dhcp scope needs credentials.ssh in the inventory", kind="config")
    key = ssh_private_key(inv)
    if key is None:
        raise DhcpError("credentials.ssh names no key for the Windows DHCP server", kind="config")
    return SshRunner(SshSettings(
        user=creds.user, known_hosts=inv.resolve(creds.known_hosts), port=inv.defaults.ssh_port,
        key_text=key.reveal(), connect_timeout=creds.connect_timeout.total_seconds(),
        command_timeout=creds.command_timeout.total_seconds()))


def read_scope(inv, scope, *, ssh_runner=None, timeout: float = 10.0) -> ScopeOptions:
    found = adapter_for(inv, scope, ssh_runner=ssh_runner, timeout=timeout)
    if found is None:
        return ScopeOptions(scope.domain_name, scope.lease, "inventory", "inventory", "inventory")
    adapter, ref = found
    try:
        return adapter.read(ref)
    finally:
        if isinstance(adapter, KeaAdapter):
            adapter.close()


def resolve_scopes(inv, *, ssh_runner=None, timeout: float = 10.0,
                   errors: dict[str, str] | None = None) -> dict[str, ScopeOptions]:
    """Live values for every scope that names a source (Kea or Windows DHCP). A scope that can't be read is
    left out, with its reason in ``errors`` when given."""
    out: dict[str, ScopeOptions] = {}
    for scope in inv.dhcp_scopes:
        if not scope.has_source:
            continue
        try:
            out[scope.name] = read_scope(inv, scope, ssh_runner=ssh_runner, timeout=timeout)
        except (DhcpError, InvalidValue, Exception) as exc:  # noqa: BLE001 - one broken server must not stop a plan
            if errors is not None:
                errors[scope.name] = f"{scope.source_label}: {exc}"
    return out


def with_live_dhcp(inv, *, ssh_runner=None, timeout: float = 10.0):
    """The inventory with live scope values in; scopes that could not be read keep a note of why."""
    if not any(s.has_source for s in inv.dhcp_scopes):
        return inv
    errors: dict[str, str] = {}
    values = resolve_scopes(inv, ssh_runner=ssh_runner, timeout=timeout, errors=errors)
    return inv.with_live_scopes(values, errors)


_CACHE: dict[tuple, tuple[float, ScopeOptions]] = {}
_CACHE_TTL = 60.0


def live_scope(inv, scope, *, ssh_runner=None, ttl: float = _CACHE_TTL):
    """The scope with live values (cached ``ttl`` seconds per source, so a wave reads each server once a
    minute, not once a host). Raises `DhcpError` if the source can't be read."""
    if not scope.has_source or scope.live_source:
        return scope
    key = (scope.source_label, str(scope.subnet))
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > ttl:
        hit = (now, read_scope(inv, scope, ssh_runner=ssh_runner))
        _CACHE[key] = hit
    return scope.with_live(hit[1])
