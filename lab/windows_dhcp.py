"""The Windows Server DHCP cmdlets a lab device flagged ``dhcp_server: true`` answers over SSH.

Mixed into `lab.shell.DeviceShell` (``self.dev``, ``self.fleet``, ``self._mac_of``). The device is a Windows
Server with the DHCP role; its scopes are the fleet's scopes (ScopeId = the subnet's network address), its
server-level option 15 is the fleet's ``server_options``, its reservations are the devices with a
``reservation``; a Set- changes what later renews hand out. Only what the migration uses: one pipeline
``Cmdlet -Param value ... [| Format-List]``. Option values are read one level per call, never inherited, as
the real `Get-DhcpServerv4OptionValue` (Microsoft docs: -ReservedIP = the reservation level, -ScopeId = the
scope level, neither = the server level); a level without the option fails with ``WIN32 20010``
(ERROR_DHCP_OPTION_NOT_PRESENT, "The specified option does not exist", DHCP Server Management API Error
Codes). Error texts follow the cmdlets' CIM error layout (MicrosoftDocs/windows-powershell-docs issue #2783
shows one: "<Cmdlet> : Failed to ... on DHCP server X." / CategoryInfo / FullyQualifiedErrorId WIN32 n,
<Cmdlet>); the exact words of each are modelled, not captured.
"""

from __future__ import annotations

import ipaddress
import re
import shlex

from lab import clientos
from lab.amt_rules import InvalidName, dns_name
from lab.result import Result


class WindowsDhcpCmdlets:
    """The DhcpServer module's cmdlets, for a device with ``dhcp_server: true``."""

    def _ps_error(self, cmdlet: str, line: str, message: str, category: str, error_id: str) -> Result:
        shown = line if len(line) <= 60 else line[:57] + " ..."
        lines = [f"{cmdlet} : {message}", "At line:1 char:1", f"+ {shown}", f"+ {'~' * min(len(line), 60)}",
                 f"    + CategoryInfo          : {category}", f"    + FullyQualifiedErrorId : {error_id}", " "]
        # a redirected stderr gets the error stream as CLIXML (pywinrm, Ansible _parse_clixml, ansible#84569)
        return Result("", clientos.clixml(lines), 1)

    def _ps_run(self, script: str) -> Result:
        try:
            lex = shlex.shlex(script, posix=True, punctuation_chars="|;")
            lex.whitespace_split = True
            tokens = list(lex)
        except ValueError as exc:
            return Result("", f"ParserError: {exc}\r\n", 1)
        if ";" in tokens or any(t.startswith("$") or t in ("(", ")") for t in tokens):
            return Result("", "this lab's PowerShell runs one pipeline of cmdlets (no ; or variables)\r\n", 1)
        stages, cur = [], []
        for t in tokens + ["|"]:
            if t == "|":
                if not cur:
                    return Result("", "An empty pipe element is not allowed.\r\n", 1)
                stages.append(cur)
                cur = []
            else:
                cur.append(t)
        (name, *rest), formatter = stages[0], [s[0].lower() for s in stages[1:]]
        if any(f not in ("format-list", "fl") for f in formatter):
            return Result("", "this lab's PowerShell formats only with Format-List\r\n", 1)
        cmdlets = {"get-dhcpserverv4scope": self._ps_get_scope, "get-dhcpserverv4optionvalue": self._ps_get_option,
                   "set-dhcpserverv4optionvalue": self._ps_set_option, "set-dhcpserverv4scope": self._ps_set_scope,
                   "get-dhcpserverv4reservation": self._ps_get_reservation}
        fn = cmdlets.get(name.lower()) if self.dev.dhcp_server else None
        if fn is None:
            return self._ps_error(name, script, f"The term '{name}' is not recognized as the name of a cmdlet, function, "
                                  "script file, or operable program.", f"ObjectNotFound: ({name}:String) [], "
                                  "CommandNotFoundException", "CommandNotFoundException")
        params: dict[str, str] = {}
        i = 0
        while i < len(rest):
            if not rest[i].startswith("-") or i + 1 >= len(rest):
                return self._ps_error(name, script, f"A positional parameter cannot be found that accepts argument "
                                      f"'{rest[i]}'.", f"InvalidArgument: (:) [{name}], ParameterBindingException",
                                      f"PositionalParameterNotFound,{name}")
            params[rest[i][1:].lower()] = rest[i + 1]
            i += 2
        return fn(name, script, params, bool(formatter))

    def _ps_scope(self, name: str, script: str, params: dict):
        sid = params.get("scopeid")
        try:
            ip = ipaddress.IPv4Address(sid) if sid is not None else None
        except ValueError:
            return None, self._ps_error(name, script, f"Cannot process argument transformation on parameter 'ScopeId'. "
                                        f"Cannot convert value \"{sid}\" to type \"System.Net.IPAddress\".",
                                        f"InvalidData: (:) [{name}], ParameterBindingArgumentTransformationException",
                                        f"ParameterArgumentTransformationError,{name}")
        if ip is None:
            return None, None
        for scope in self.fleet.scopes.values():
            if scope.subnet.network_address == ip:
                return scope, None
        return None, self._ps_error(name, script, f"Failed to get scope {sid} on DHCP server {self.dev.name}.",
                                    f"ObjectNotFound: ({sid}:root/Microsoft/...cpServerv4Scope) [{name}], CimException",
                                    f"WIN32 20005,{name}")  # ERROR_DHCP_SUBNET_NOT_PRESENT (DHCP API error codes)

    @staticmethod
    def _timespan(seconds: float) -> str:
        s = int(seconds)
        d, rest = divmod(s, 86400)
        return (f"{d}." if d else "") + f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"

    @staticmethod
    def _fl(rows: list[tuple[str, str]]) -> str:
        width = max(len(k) for k, _ in rows)
        return "\r\n" + "".join(f"{k:<{width}} : {v}\r\n" for k, v in rows) + "\r\n\r\n"

    @staticmethod
    def _table(rows: list[tuple[str, str]], widths: list[int]) -> str:
        head = " ".join(f"{k:<{w}}" for (k, _), w in zip(rows, widths)).rstrip()
        rule = " ".join(f"{'-' * len(k):<{w}}" for (k, _), w in zip(rows, widths)).rstrip()
        body = " ".join(f"{v[:w - 3] + '...' if len(v) > w else v:<{w}}" for (_, v), w in zip(rows, widths)).rstrip()
        return f"\r\n{head}\r\n{rule}\r\n{body}\r\n\r\n\r\n"

    def _ps_get_scope(self, name, script, params, as_list) -> Result:
        scope, err = self._ps_scope(name, script, params)
        if err is not None:
            return err
        scopes = [scope] if scope is not None else list(self.fleet.scopes.values())
        out = []
        for sc in scopes:
            net = sc.subnet
            rows = [("ScopeId", str(net.network_address)), ("Name", sc.name), ("Description", ""),
                    ("SuperscopeName", ""), ("SubnetMask", str(net.netmask)),
                    ("StartRange", str(net.network_address + 1)), ("EndRange", str(net.broadcast_address - 1)),
                    ("LeaseDuration", self._timespan(sc.lease)), ("NapProfile", ""), ("NapEnable", "False"),
                    ("Delay", "0"), ("State", "Active"), ("Type", "Dhcp"), ("MaxBootpClients", "4294967295"),
                    ("ActivatePolicies", "True")]
            if as_list:
                out.append(self._fl(rows))
            else:
                pick = [rows[0], rows[4], rows[1], rows[11], rows[5], rows[6], rows[7]]
                out.append(self._table(pick, [15, 15, 14, 8, 15, 15, 13]))
        return Result("".join(out))

    def _ps_reserved(self, name: str, script: str, params: dict):
        """(device, error) for -ReservedIP: the device whose address is reserved."""
        ip = params.get("reservedip") or params.get("ipaddress")
        dev = next((d for d in self.fleet.devices.values() if d.address == ip and d.reservation is not None), None)
        if dev is None:  # ERROR_DHCP_NOT_RESERVED_CLIENT's text (DhcpSetOptionValue); its number is not modelled
            return None, self._ps_error(name, script, f"Failed to get reservation {ip} on DHCP server {self.dev.name}. "
                                        "The specified DHCP client is not a reserved client.",
                                        f"ObjectNotFound: ({ip}:root/Microsoft/...rverv4OptionValue) [{name}], "
                                        "CimException", f"WIN32 ERROR_DHCP_NOT_RESERVED_CLIENT,{name}")
        return dev, None

    def _ps_get_option(self, name, script, params, as_list) -> Result:
        # one level per call, as the real cmdlet: -ReservedIP = the reservation's own, -ScopeId = the scope's
        # own, neither = the server level (Microsoft docs, Get-DhcpServerv4OptionValue); never inherited
        if "reservedip" in params and "scopeid" in params:
            return self._ps_error(name, script, "Parameter set cannot be resolved using the specified named "
                                  "parameters.", f"InvalidArgument: (:) [{name}], ParameterBindingException",
                                  f"AmbiguousParameterSet,{name}")
        if "reservedip" in params:
            dev, err = self._ps_reserved(name, script, params)
            if err is not None:
                return err
            value, where = dev.reservation, f"reservation {dev.address}"
        else:
            scope, err = self._ps_scope(name, script, params)
            if err is not None:
                return err
            value = scope.domain_name if scope is not None else self.fleet.server_domain_name
            where = f"scope {scope.subnet.network_address}" if scope is not None else "server level"
        if params.get("optionid", "15") != "15":
            return Result("")  # only option 15 is modelled; the others are not configured here
        if not value:  # ERROR_DHCP_OPTION_NOT_PRESENT (20010), "The specified option does not exist"
            return self._ps_error(name, script, f"Failed to get option value for option 15 in {where} on DHCP server "
                                  f"{self.dev.name}. The specified option does not exist.",
                                  f"ObjectNotFound: (15:root/Microsoft/...rverv4OptionValue) [{name}], CimException",
                                  f"WIN32 20010,{name}")
        rows = [("OptionId", "15"), ("Name", "DNS Domain Name"), ("Type", "String"), ("Value", "{" + value + "}"),
                ("VendorClass", ""), ("UserClass", ""), ("PolicyName", "")]
        if as_list:
            return Result(self._fl(rows))
        return Result(self._table(rows, [8, 15, 6, 22, 11, 9, 10]))

    def _ps_get_reservation(self, name, script, params, as_list) -> Result:
        """Get-DhcpServerv4Reservation -ScopeId X: the DhcpServerv4Reservation properties (IPAddress, ScopeId,
        ClientId as aa-bb-.., Name, Type, Description, AddressState; Microsoft's DhcpServerv4Reservation class)."""
        scope, err = self._ps_scope(name, script, params)
        if err is not None:
            return err
        if scope is None:
            return self._ps_error(name, script, "Cannot process command because of one or more missing mandatory "
                                  "parameters: ScopeId.", f"InvalidArgument: (:) [{name}], ParameterBindingException",
                                  f"MissingMandatoryParameter,{name}")
        out = []
        for d in sorted(self.fleet.devices.values(), key=lambda d: ipaddress.IPv4Address(d.address)):
            if d.reservation is None or d.scope != scope.name:
                continue
            rows = [("IPAddress", d.address), ("ScopeId", str(scope.subnet.network_address)),
                    ("AddressState", "ActiveReservation"), ("ClientId", self._mac_of(d, "-")), ("Name", d.name.lower()),
                    ("Type", "Dhcp"), ("Description", "")]
            out.append(self._fl(rows) if as_list else self._table(rows[:2] + rows[3:], [20] * 6))
        return Result("".join(out))

    def _ps_set_option(self, name, script, params, as_list) -> Result:
        value = params.get("value") or params.get("dnsdomain")
        if params.get("optionid", "15") != "15" or not value:
            return self._ps_error(name, script, "this lab sets only option 15 (-OptionId 15 -Value NAME, at the server, "
                                  "-ScopeId X or -ReservedIP A)", f"InvalidArgument: (:) [{name}], "
                                  "ParameterBindingException", f"ParameterArgumentValidationError,{name}")
        try:
            name_ok = dns_name(value, blank_ok=False)
            if "reservedip" in params:
                dev, err = self._ps_reserved(name, script, params)
                if err is not None:
                    return err
                self.fleet.set_reservation_option(dev.address, name_ok)
                return Result("")
            scope, err = self._ps_scope(name, script, params)
            if err is not None:
                return err
            if scope is None:
                self.fleet.set_server_option(name_ok)
            else:
                self.fleet.set_scope(scope.name, domain_name=name_ok)
        except (InvalidName, ValueError) as exc:
            return self._ps_error(name, script, f"Failed to set option value: {exc}",
                                  f"InvalidArgument: (15:root/Microsoft/...rverv4OptionValue) [{name}], CimException",
                                  f"WIN32 87,{name}")
        return Result("")

    def _ps_set_scope(self, name, script, params, as_list) -> Result:
        scope, err = self._ps_scope(name, script, params)
        if err is not None:
            return err
        text = params.get("leaseduration", "")
        m = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", text)
        if scope is None or not m:
            return self._ps_error(name, script, f"Cannot process argument transformation on parameter "
                                  f"'LeaseDuration'. Cannot convert value \"{text}\" to type \"System.TimeSpan\".",
                                  f"InvalidData: (:) [{name}], ParameterBindingArgumentTransformationException",
                                  f"ParameterArgumentTransformationError,{name}")
        seconds = int(m[1] or 0) * 86400 + int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])
        self.fleet.set_scope(scope.name, lease=seconds)
        return Result("")
