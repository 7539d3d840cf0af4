"""Windows Server DHCP through its DhcpServer cmdlets over SSH: option 15 at the server, scope and
reservation levels, and the scope's lease.

Option values inherit server → scope → reservation, the most specific wins (MS-DHCPM
DHCP_OPTION_SCOPE_TYPE; tasks/rules/dhcp_option15.py). `Get-DhcpServerv4OptionValue` reads ONE level:
"If you specify only the ReservedIP parameter, the option values set at the reservation level are returned.
If you specify only the ScopeId parameter, the option values set at the scope level are returned. If you
specify neither ..., option values set at the server level are returned" (Microsoft docs,
Get-DhcpServerv4OptionValue, windowsserver2022-ps); a level without the option is a non-terminating CIM
error with `WIN32 20010` (ERROR_DHCP_OPTION_NOT_PRESENT, "The specified option does not exist", DHCP
Server Management API Error Codes). So a read asks every level: the scope (`Get-DhcpServerv4Scope`
→ LeaseDuration), its option 15, the server's, the scope's reservations (`Get-DhcpServerv4Reservation
-ScopeId`: IPAddress, ScopeId, ClientId like `00-50-56-b0-68-05`, Name, Type, Description, AddressState
— DhcpServerv4Reservation class) and each reservation's own option 15 — all over one SSH connection.
"""

from __future__ import annotations

import ipaddress
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from tasks.adapters.dhcp_scope import (DhcpError, ScopeChange, ScopeOptions, dns_value, forget_cached_scopes, lease_diff, lease_value,
                                       option15_diff, shadowed, verify_read_back)
from tasks.adapters.windows import clixml_text, first_error_line, powershell_command
from tasks.rules import dhcp_option15 as o15
from tasks.rules.suffix import InvalidValue, normalize_dns_name

LEVELS = ("scope", "server")  # where `apply_change(level=...)` may write (reservations: reservations=True)

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
        self._session = None

    def label(self, ref: WindowsScopeRef | None = None) -> str:
        return f"Windows DHCP on {self.server}" + (f" ({ref})" if ref is not None else "")

    @contextmanager
    def _connected(self):
        """One SSH connection for every cmdlet of a read or a change (nested use reuses it)."""
        from tasks.adapters.ssh import SshError

        if self._session is not None:
            yield
            return
        try:
            with self.ssh.session(self.server, port=self.port, os_flavor="windows") as sh:
                self._session = sh
                try:
                    yield
                finally:
                    self._session = None
        except SshError as exc:
            raise DhcpError(f"{self.label()}: SSH {exc.kind}: {exc.detail}", kind="unreachable",
                            source=self.label()) from None

    def _run(self, script: str) -> tuple[int, str, str]:
        from tasks.adapters.ssh import SshError

        try:
            if self._session is not None:
                res = self._session.run(powershell_command(script))
            else:
                res = self.ssh.run(self.server, powershell_command(script), port=self.port, os_flavor="windows")
        except SshError as exc:
            raise DhcpError(f"{self.label()}: SSH {exc.kind}: {exc.detail}", kind="unreachable",
                            source=self.label()) from None
        return res.exit_status, res.stdout, clixml_text(res.stderr)  # PowerShell errors over SSH are CLIXML

    @staticmethod
    def _first_error_line(stderr: str) -> str:
        return first_error_line(stderr)

    def _option15(self, where: str, label: str) -> str | None:
        """Option 15 set at one level (``where``: "", "-ScopeId X" or "-ReservedIP A"); None = not set there."""
        at = f" {where}" if where else ""
        status, out, err = self._run(f"Get-DhcpServerv4OptionValue{at} -OptionId 15 | Format-List")
        if status != 0:
            if _OPTION_MISSING.search(err):
                return None
            raise DhcpError(f"{label}: Get-DhcpServerv4OptionValue: {self._first_error_line(err)}",
                            kind="read", source=self.label())
        for rec in parse_format_list(out):
            if rec.get("OptionId") == "15":
                values = _ps_array(rec.get("Value", ""))
                return normalize_dns_name(values[0]) if values else ""
        raise DhcpError(f"{label}: no OptionId 15 in the cmdlet's output", kind="protocol", source=self.label())

    def _lease(self, ref: WindowsScopeRef) -> timedelta:
        status, out, err = self._run(f"Get-DhcpServerv4Scope -ScopeId {ref.scope_id} | Format-List")
        if status != 0:
            missing = "not exist" in err or "20022" in err or "20005" in err or "Failed to get scope" in err
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4Scope: {self._first_error_line(err)}",
                            kind="not_found" if missing else "read", source=self.label())
        recs = [r for r in parse_format_list(out) if r.get("ScopeId")]
        if not recs or "LeaseDuration" not in recs[0]:
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4Scope printed no scope", kind="protocol",
                            source=self.label())
        return parse_timespan(recs[0]["LeaseDuration"])

    def _reservations(self, ref: WindowsScopeRef) -> list[o15.Reservation]:
        status, out, err = self._run(f"Get-DhcpServerv4Reservation -ScopeId {ref.scope_id} | Format-List")
        if status != 0:
            raise DhcpError(f"{self.label(ref)}: Get-DhcpServerv4Reservation: {self._first_error_line(err)}",
                            kind="read", source=self.label())
        out_list = []
        for rec in parse_format_list(out):
            try:
                ip = str(ipaddress.IPv4Address(rec.get("IPAddress", "").strip()))
            except ValueError:
                continue  # not a reservation record
            value = self._option15(f"-ReservedIP {ip}", f"{self.label(ref)} reservation {ip}")
            cid = o15.client_ids(rec.get("ClientId", ""))
            name = f" ({rec['Name']})" if rec.get("Name") else ""
            out_list.append(o15.Reservation(ip, (cid,) if cid else (), value, f"reservation {ip}{name}"))
        return out_list

    def read(self, ref: WindowsScopeRef) -> ScopeOptions:
        with self._connected():
            lease = self._lease(ref)
            scope_value = self._option15(f"-ScopeId {ref.scope_id}", self.label(ref))
            server_value = self._option15("", f"{self.label()} (server level)")
            reservations = self._reservations(ref)
        layout = o15.Option15Layout(
            (o15.Level(o15.SCOPE, scope_value, f"scope {ref.scope_id}"),
             o15.Level(o15.SERVER, server_value, f"the server options of {self.server}")),
            reservations=tuple(reservations), class_before="")
        domain, level, _ = o15.scope_value(layout)
        return ScopeOptions(domain, lease, self.label(ref), level, "scope", layout)

    # -- changing -----------------------------------------------------------------------------
    @staticmethod
    def _writes(ref, before: ScopeOptions, domain_name, level, reservations) -> list[tuple[str, str, str | None]]:
        """(script, where, value before) for every place option 15 is written.

        ``level`` None: the scope (a value inherited from the server level is set on the scope: the server
        level hands out to every scope). ``reservations``: also each reservation that sets its own value.
        """
        if level not in (None,) + LEVELS:
            raise InvalidValue(f"level {level!r}: Windows DHCP option 15 can be set at {', '.join(LEVELS)}")
        chain = {lvl.level: lvl for lvl in before.layout.chain}
        out = []
        if level == "server":
            out.append((f"Set-DhcpServerv4OptionValue -OptionId 15 -Value {domain_name}",
                        chain[o15.SERVER].label, chain[o15.SERVER].domain_name))
        else:
            out.append((f"Set-DhcpServerv4OptionValue -ScopeId {ref.scope_id} -OptionId 15 -Value {domain_name}",
                        chain[o15.SCOPE].label, chain[o15.SCOPE].domain_name))
        if reservations:
            out += [(f"Set-DhcpServerv4OptionValue -ReservedIP {r.ip} -OptionId 15 -Value {domain_name}", r.label,
                     r.domain_name) for r in before.layout.reservations if r.domain_name is not None]
        return out

    @staticmethod
    def _planned(before: ScopeOptions, writes, domain_name, lease) -> ScopeOptions:
        written = {where for _, where, old in writes if old != domain_name}
        lay = before.layout
        chain = tuple(o15.Level(lv.level, domain_name if lv.label in written else lv.domain_name, lv.label)
                      for lv in lay.chain)
        res = tuple(o15.Reservation(r.ip, r.ids, domain_name if r.label in written else r.domain_name, r.label)
                    for r in lay.reservations)
        layout = o15.Option15Layout(chain, reservations=res, class_before="")
        domain, level, _ = o15.scope_value(layout)
        return ScopeOptions(domain, lease if lease is not None else before.lease, before.source, level, "scope",
                            layout)

    def _prepare(self, ref, domain_name, lease, level, reservations):
        domain_name = dns_value(domain_name) if domain_name is not None else None
        if lease is not None:
            lease_value(lease)
        before = self.read(ref)
        writes = self._writes(ref, before, domain_name, level, reservations) if domain_name is not None else []
        writes = [w for w in writes if w[2] != domain_name]
        planned = self._planned(before, writes, domain_name, lease)
        scripts = [s for s, _, _ in writes]
        if lease is not None and lease != before.lease:
            scripts.append(f"Set-DhcpServerv4Scope -ScopeId {ref.scope_id} -LeaseDuration {format_timespan(lease)}")
        diff = option15_diff([(w, old) for _, w, old in writes], domain_name) + lease_diff(before, lease)
        return domain_name, before, planned, scripts, diff

    def plan_change(self, ref: WindowsScopeRef, *, domain_name: str | None = None, lease: timedelta | None = None,
                    level: str | None = None, reservations: bool = False) -> ScopeChange:
        """Dry run: the diff, the exact `Set-` lines it would run, and what would still hand out another value."""
        domain_name, before, planned, scripts, diff = self._prepare(ref, domain_name, lease, level, reservations)
        return ScopeChange(before.source, before, planned, diff, False, scripts, shadowed(planned, domain_name))

    def apply_change(self, ref: WindowsScopeRef, *, domain_name: str | None = None, lease: timedelta | None = None,
                     level: str | None = None, reservations: bool = False) -> ScopeChange:
        with self._connected():
            domain_name, before, planned, scripts, diff = self._prepare(ref, domain_name, lease, level, reservations)
            for script in scripts:
                status, _, err = self._run(script)
                if status != 0:
                    raise DhcpError(f"{self.label(ref)}: {script.split()[0]}: {self._first_error_line(err)}",
                                    kind="write", source=self.label())
            if scripts:
                forget_cached_scopes()  # a wave in this process reads the new values, not the ones cached before
            after = self.read(ref) if scripts else before
        verify_read_back(self.label(ref), planned, after, domain_name, lease)
        return ScopeChange(before.source, before, after, diff, bool(scripts), scripts, shadowed(after, domain_name))
