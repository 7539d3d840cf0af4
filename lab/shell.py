"""The commands a device's OS answers over SSH, with the output real tools print.

Commands are parsed with shlex and dispatched to Python functions: nothing is ever evaluated by a
shell, so a hostile argument can only produce an error message. Only ``&&`` and ``;`` chain commands;
every other shell operator is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from datetime import datetime, timezone
from typing import Callable

from lab import clientos, netns
from lab.amt_rules import InvalidName, dns_name
from lab.rpcgo_text import amtinfo_text_3x
from lab.model import DeviceUnreachable, Fleet, LabError, ServerBusy, Device
from lab.result import Result
from lab.windows_dhcp import WindowsDhcpCmdlets

# rpc-go exit codes (subset the lab produces; rpc-go pkg/utils/constants.go)
RPC_OK = 0
RPC_BAD_ARGS = 28  # IncorrectCommandLineParameters
RPC_GENERIC_FAILURE = 10
RPC_MISSING_URL = 20
RPC_MISSING_PROFILE = 21
RPC_MISSING_DNS_SUFFIX = 24
RPC_MISSING_PASSWORD = 23
RPC_AMT_CONNECTION_FAILED = 71
RPC_ACTIVATION_FAILED = 102
#: RPS's error state machine when AMT answers a WS-Man call with neither 401 nor 400 (rps
#: src/stateMachines/error.ts respondUnknown; the spelling is RPS's)
UNKNOWN_ERROR = "Unknown error has occured"


def _mac(dev: Device, sep: str = ":") -> str:
    h = hashlib.sha256(dev.name.encode()).digest()
    octets = [0x00, 0x1B, 0x21, h[0], h[1], h[2]]  # 00:1B:21 is an Intel OUI
    return sep.join(f"{o:02x}" for o in octets)


def _logrus(ts: float, level: str, msg: str) -> str:
    t = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'time="{t}" level={level} msg="{msg}"\n'


def _rps_version_gate(dev: Device) -> str:
    """RPS Validator.ts verifyAMTVersion, checked before anything else of an activation: AMT 7.0-11.6 below build
    3000 and AMT below 7 are refused with these words ("" = accepted)."""
    parts = (dev.amt_version.split(".") + ["0", "0", "3000"])[:4]
    ver = float(f"{int(parts[0])}.{parts[1]}")
    if ver in (7.0, 7.1, 8.0, 8.1, 9.0, 9.1, 9.5, 10.0, 11.0, 11.5, 11.6) and int(parts[3]) < 3000:
        return f"Device {dev.uuid} activation failed. Please check with your OEM for a firmware update."
    if ver < 7:
        return (f"Device {dev.uuid} activation failed. AMT version: {parts[0]}.{parts[1]}. Version less than 7 "
                "cannot be remotely configured ")
    return ""


class DeviceShell(WindowsDhcpCmdlets):
    """One SSH session's view of one device's client OS (a ``dhcp_server`` device: also lab/windows_dhcp.py)."""

    @staticmethod
    def _mac_of(dev: Device, sep: str = ":") -> str:
        return _mac(dev, sep)

    def __init__(self, fleet: Fleet, dev: Device, user: str, sleep: Callable[[float], None] | None = None,
                 env: dict[str, str] | None = None):
        self.fleet, self.dev, self.user = fleet, dev, user
        self.sleep = sleep or (lambda s: None)
        self.env = dict(env or {})  # what sshd accepted (AcceptEnv); sudo resets it (below)

    # ------------------------------------------------------------- dispatcher
    def run(self, command: str) -> Result:
        self.fleet.tick()  # a renew or retry that fell due since the last tick shows in this output
        real = self.dev.real_os
        if real is not None and not netns.mentions_me_tool(command):
            return self._real(command)  # the whole line, pipes and all, as the real sh runs it
        try:
            lex = shlex.shlex(command, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            tokens = list(lex)
        except ValueError as exc:
            return Result("", f"bash: -c: line 1: syntax error: {exc}\n", 2)
        out, err, status = [], [], 0
        segment: list[str] = []
        pending_op = None
        segments: list[tuple[list[str], str | None]] = []
        for tok in tokens:
            if tok in ("&&", ";"):
                if not segment:
                    return Result("", f"bash: -c: line 1: syntax error near unexpected token `{tok}'\n", 2)
                segments.append((segment, pending_op))
                segment, pending_op = [], tok
            elif tok and set(tok) <= set("();<>|&"):
                return Result("", f"bash: -c: line 1: `{tok}': pipes, redirections and subshells "
                                  "are not available on this lab host\n", 2)
            else:
                segment.append(tok)
        if segment:
            segments.append((segment, pending_op))
        elif pending_op == "&&":
            return Result("", "bash: -c: line 1: syntax error: unexpected end of file\n", 2)
        code_page = 65001
        for argv, op in segments:
            if op == "&&" and status != 0:
                continue
            r = self.run_argv(argv)
            out.append(r.stdout)
            err.append(r.stderr)
            status = r.status
            code_page = r.code_page if r.code_page != 65001 else code_page  # one console code page per session
        return Result("".join(out), "".join(err), status, code_page)

    def _real(self, command: str) -> Result:
        status, out, err = netns.run_real(self.dev.real_os, command)
        return Result(out, err, status)

    def run_argv(self, argv: list[str]) -> Result:
        if self.dev.real_os is not None and netns.program(argv) not in netns.ME_TOOLS:
            return self._real(shlex.join(argv))  # one segment of a line that also calls an ME tool
        root = self.user == "root"
        if argv and argv[0] == "sudo" and self.dev.os == "linux":
            argv = argv[1:]
            # sudo's own options the product may send (sudo(8): -n, -E, --preserve-env=list). sudo resets
            # the environment (env_reset) except what -E / --preserve-env=list keeps (the lab's sudoers
            # allows it, as `Defaults env_keep += "AMT_PASSWORD"` would)
            keep: set[str] | None = set()
            while argv and (argv[0] in ("-n", "--non-interactive", "-E", "--preserve-env")
                            or argv[0].startswith("--preserve-env=")):
                if argv[0] in ("-E", "--preserve-env"):
                    keep = None
                elif argv[0].startswith("--preserve-env=") and keep is not None:
                    keep |= set(argv[0].split("=", 1)[1].split(","))
                argv = argv[1:]
            if not argv:
                return Result("", "usage: sudo -h | -K | -k | -V\n", 1)
            root = True
            saved = self.env
            self.env = dict(saved) if keep is None else {k: v for k, v in saved.items() if k in keep}
            try:
                return self._dispatch(argv, root)
            finally:
                self.env = saved
        return self._dispatch(argv, root)

    def _dispatch(self, argv: list[str], root: bool) -> Result:
        if not argv:
            return Result()
        name = argv[0]
        key = name.lower() if self.dev.os == "windows" else name
        if self.dev.os == "windows" and key.endswith(".exe"):
            key = key[:-4]
        handler = None
        common = {"rpc": self.cmd_rpc, "amt-hi": self.cmd_amt_hi, "lab-amt-hi": self.cmd_amt_hi, "echo": self.cmd_echo,
                  "true": lambda a: Result(), "false": lambda a: Result(status=1), "hostname": self.cmd_hostname}
        handler = common.get(key)
        if handler is None and self.dev.os == "windows":
            handler = {"ipconfig": self.cmd_ipconfig, "powershell": self.cmd_powershell}.get(key)
        if handler is None and self.dev.os == "linux":
            handler = {"dhclient": lambda a: self.cmd_dhclient(a, root), "cat": self.cmd_cat,
                       "ip": self.cmd_ip}.get(key)
            stack = self.dev.net_stack
            if handler is None and key == "resolvectl" and stack in ("networkmanager", "networkd"):
                handler = self.cmd_resolvectl
            elif handler is None and key == "nmcli" and stack == "networkmanager":
                handler = lambda a: self.cmd_nmcli(a, root)  # noqa: E731
            elif handler is None and key == "networkctl":
                handler = lambda a: self.cmd_networkctl(a, root)  # noqa: E731
            elif handler is None and key == "dhcpcd" and stack == "dhcpcd":
                handler = lambda a: self.cmd_dhcpcd(a, root)  # noqa: E731
        if self.dev.os == "windows" and key == "powershell" and not self.dev.powershell:
            return Result("", f"'{name}' is not recognized as an internal or external command,\r\n"
                              "operable program or batch file.\r\n", 1)
        if handler is None:
            return Result("", f"bash: {name}: command not found\n", 127)
        return handler(argv[1:])

    # ------------------------------------------------------------- builtins
    def cmd_echo(self, args: list[str]) -> Result:
        return Result(" ".join(args) + "\n")

    def cmd_hostname(self, args: list[str]) -> Result:
        dev = self.dev
        if self.dev.os == "windows":
            return Result(dev.name + "\r\n") if not args else Result("", "sethostname: Use the Network Control Panel Applet to set hostname.\r\n", 1)
        short = dev.name.lower()
        if not args or args == ["-s"] or args == ["--short"]:
            return Result(short + "\n")
        if args in (["-f"], ["--fqdn"], ["--long"]):
            return Result(f"{short}.{dev.primary_suffix}\n" if dev.primary_suffix else short + "\n")
        if args in (["-d"], ["--domain"]):
            return Result(dev.primary_suffix + "\n")
        return Result("", "hostname: you must be root to change the host name\n", 1)

    # ------------------------------------------------------------- windows
    def cmd_ipconfig(self, args: list[str]) -> Result:
        """ipconfig writes its output in the console code page (the device's ``code_page``)."""
        sw = [a.lower() for a in args]
        cp = self.dev.code_page
        if sw == ["/all"]:
            return Result(self._ipconfig_all(), code_page=cp)
        if sw == []:
            return Result(self._ipconfig_brief(), code_page=cp)
        if sw[:1] == ["/renew"] and len(sw) <= 2:
            self.sleep(self.fleet.latency_for(self.dev, "renew"))
            self.fleet.dhcp_renew(self.dev.name, source="ipconfig /renew")  # no link: only Wi-Fi renews (model)
            _, gw, _ = self._net()
            return Result(clientos.ipconfig_renew(self.dev, self._adapters(), gw), code_page=cp)
        return Result("\r\nError: unrecognized or incomplete command line.\r\n\r\nUSAGE:\r\n"
                      "    ipconfig [/allcompartments] [/? | /all |\r\n"
                      "                                 /renew [adapter] | /release [adapter] |\r\n"
                      "                                 /flushdns | /displaydns | /registerdns]\r\n", "", 1, cp)

    def _net(self):
        scope = self.fleet.scopes[self.dev.scope]
        bcast = scope.subnet.broadcast_address
        return scope, str(bcast - 1), str(bcast - 2)

    def _ipconfig_brief(self) -> str:
        dev = self.dev
        scope, gw, _ = self._net()
        lines = ["", "Windows IP Configuration", "", "", "Ethernet adapter Ethernet:", "",
                 f"   Connection-specific DNS Suffix  . : {dev.os_suffix}",
                 f"   Link-local IPv6 Address . . . . . : fe80::{_mac(dev, ':')[9:].replace(':', '')[:4]}:1%4",
                 f"   IPv4 Address. . . . . . . . . . . : {dev.address}",
                 f"   Subnet Mask . . . . . . . . . . . : {scope.subnet.netmask}",
                 f"   Default Gateway . . . . . . . . . : {gw}", ""]
        return "\r\n".join(lines)

    def _adapters(self) -> list:
        scope, _, _ = self._net()  # Wi-Fi (wired link down) is on the same DHCP scope in the lab
        return clientos.windows_adapters(self.dev, _mac(self.dev), str(scope.subnet.netmask), scope.domain_name)

    def _ipconfig_all(self) -> str:
        dev = self.dev
        scope, gw, dhcp = self._net()
        lease = None if dev.lease_obtained is None else (dev.lease_obtained, dev.lease_obtained + scope.lease)
        return clientos.ipconfig_all(dev, self._adapters(), gw, dhcp, lease)

    def _client_ps(self, script: str) -> Result | None:
        """The client-side scripts real admins run: the CIM facts query and RenewDHCPLease by index."""
        if "Win32_NetworkAdapterConfiguration" not in script:
            return None
        adapters = self._adapters()
        if "RenewDHCPLease" in script:
            m = re.search(r"InterfaceIndex\s*=\s*(\d+)", script)
            target = next((a for a in adapters if m and a.index == int(m[1])), None)
            if target is None:
                return Result("", "", 0)  # the query matched no instance: Invoke-CimMethod prints nothing
            if not target.dhcp:
                return Result('{"ReturnValue":100}\r\n')  # "DHCP not enabled on adapter" (RenewDHCPLease docs)
            if not target.connected:
                # no link, no lease: reported as 82 "Unable to renew DHCP lease" (the documented code closest to
                # it; no capture of RenewDHCPLease on a media-disconnected adapter was found)
                return Result('{"ReturnValue":82}\r\n')
            if target.real:
                self.sleep(self.fleet.latency_for(self.dev, "renew"))
                self.fleet.dhcp_renew(self.dev.name, source="RenewDHCPLease")
            return Result('{"ReturnValue":0}\r\n')
        search = [s for s in dict.fromkeys([self.dev.primary_suffix, self.dev.os_suffix]) if s]
        return Result(clientos.cim_facts_json(adapters, search))

    # ------------------------------------------------------------- linux
    def cmd_dhclient(self, args: list[str], root: bool) -> Result:
        release, verbose, ifaces = False, False, []
        for a in args:
            if a == "-r":
                release = True
            elif a == "-v":
                verbose = True
            elif a in ("-1", "-4", "-d", "-q", "-w", "-nw"):
                pass
            elif a.startswith("-"):
                return Result("", f"Unknown command: {a}\nUsage: dhclient [-4|-6] [-SNTPRI1dvrxi] [-nw] "
                                  "[-p <port>] [-D LL|LLT] [interface0 [ ... interfaceN]]\n", 1)
            else:
                ifaces.append(a)
        if not root:
            return Result("", "Can't create /var/run/dhclient.pid: Permission denied\n", 1)
        for i in ifaces:
            if i != clientos.linux_iface(self.dev):
                return Result("", f'Cannot find device "{i}"\n', 1)
        dev = self.dev
        scope, gw, dhcp = self._net()
        head = ("Internet Systems Consortium DHCP Client 4.4.3-P1\nCopyright 2004-2022 Internet Systems Consortium.\n"
                "All rights reserved.\nFor info, please visit https://www.isc.org/software/dhcp/\n\n"
                f"Listening on LPF/eth0/{_mac(dev)}\nSending on   LPF/eth0/{_mac(dev)}\nSending on   Socket/fallback\n")
        if release:
            had = dev.lease_obtained is not None
            self.fleet.dhcp_release(dev.name)
            text = head + (f"DHCPRELEASE of {dev.address} on eth0 to {dhcp} port 67\n" if had else "")
            return Result("", text if verbose else "", 0)
        fresh = dev.lease_obtained is None
        self.sleep(self.fleet.latency_for(dev, "renew"))
        self.fleet.dhcp_renew(dev.name, source="dhclient")
        if fresh:
            body = (f"DHCPDISCOVER on eth0 to 255.255.255.255 port 67 interval 3\n"
                    f"DHCPOFFER of {dev.address} from {dhcp}\nDHCPREQUEST for {dev.address} on eth0 to 255.255.255.255 port 67\n")
        else:
            body = f"DHCPREQUEST for {dev.address} on eth0 to 255.255.255.255 port 67\n"
        body += f"DHCPACK of {dev.address} from {dhcp}\nbound to {dev.address} -- renewal in {int(scope.lease // 2)} seconds.\n"
        return Result("", head + body if verbose else "", 0)

    def cmd_cat(self, args: list[str]) -> Result:
        if not args:
            return Result("", "", 0)
        out, err, status = [], [], 0
        _, _, dhcp = self._net()
        dev = self.dev
        for path in args:
            if path == "/etc/resolv.conf":
                out.append(clientos.resolv_conf(dev, dhcp))
            elif path == "/run/systemd/netif/leases/2" and dev.net_stack == "networkd":
                out.append(clientos.networkd_lease(dev, dhcp))
            elif path == "/var/lib/dhcp/dhclient.leases" and dev.net_stack == "dhclient":
                scope, gw, _ = self._net()
                out.append(clientos.dhclient_leases(dev, dhcp, str(scope.subnet.netmask), gw))
            elif path == "/etc/hostname":
                out.append(dev.name.lower() + "\n")
            elif path == "/etc/hosts":
                fqdn = f"{dev.name.lower()}.{dev.primary_suffix}" if dev.primary_suffix else dev.name.lower()
                out.append(f"127.0.0.1\tlocalhost\n{dev.address}\t{fqdn} {dev.name.lower()}\n")
            else:
                err.append(f"cat: {path}: No such file or directory\n")
                status = 1
        return Result("".join(out), "".join(err), status)

    def cmd_ip(self, args: list[str]) -> Result:
        if args[:1] == ["-j"] and args[1:2] in (["addr"], ["a"], ["address"]) and args[2:] in ([], ["show"]):
            scope, _, _ = self._net()
            return Result(clientos.ip_j_addr(self.dev, _mac(self.dev), scope.subnet.prefixlen, int(scope.lease)))
        a = [x for x in args if x not in ("-4", "-br")]
        if a[:1] in (["addr"], ["a"], ["address"]) and (len(a) == 1 or a[1:2] == ["show"]):
            scope, _, _ = self._net()
            dev = self.dev
            return Result(
                "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000\n"
                f"    inet {dev.address}/{scope.subnet.prefixlen} brd {scope.subnet.broadcast_address} scope global dynamic eth0\n"
                f"       valid_lft {int(scope.lease)}sec preferred_lft {int(scope.lease)}sec\n")
        return Result("", 'Object "{}" is unknown, try "ip help".\n'.format(a[0] if a else ""), 255)

    def cmd_resolvectl(self, args: list[str]) -> Result:
        rest = [a for a in args if a not in ("--no-pager",)]
        if rest == ["domain"]:
            return Result(clientos.resolvectl_domain(self.dev))
        return Result("", f"Unknown command verb {rest[0] if rest else ''}.\n", 1)

    def _renew_as(self, root: bool, source: str) -> Result | None:
        if not root:
            return Result("", "Failed to renew: Access denied\n" if source == "networkctl" else
                          "Error: Not authorized to control networking.\n", 1)
        self.sleep(self.fleet.latency_for(self.dev, "renew"))
        self.fleet.dhcp_renew(self.dev.name, source=source)
        return None

    def cmd_nmcli(self, args: list[str], root: bool) -> Result:
        iface = clientos.linux_iface(self.dev)
        _, _, dhcp = self._net()
        if args == ["-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device"]:
            return Result(clientos.nmcli_devices(self.dev))
        if args[:3] == ["-t", "-f", "IP4.DOMAIN,DHCP4.OPTION"] and args[3:5] == ["device", "show"]:
            if args[5:] != [iface]:
                return Result("", f"Error: Device '{' '.join(args[5:])}' not found.\n", 10)
            return Result(clientos.nmcli_show(self.dev, dhcp))
        if args[:2] == ["device", "connect"] and len(args) == 3:
            if args[2] != iface:
                return Result("", f"Error: Device '{args[2]}' not found.\n", 10)
            refused = self._renew_as(root, "nmcli")
            return refused or Result(f"Device '{iface}' successfully activated with "
                                     f"'{self.dev.uuid}'.\n")
        return Result("", "Error: argument not understood by this lab's nmcli.\n", 2)

    def cmd_networkctl(self, args: list[str], root: bool) -> Result:
        rest = [a for a in args if a not in ("--no-pager", "--no-legend")]
        if rest == ["list"]:
            warn = "" if self.dev.net_stack == "networkd" else "WARNING: systemd-networkd is not running, output will be incomplete.\n"
            return Result(clientos.networkctl_list(self.dev), warn)
        if rest[:1] == ["renew"] and len(rest) == 2:
            if self.dev.net_stack != "networkd" or rest[1] != clientos.linux_iface(self.dev):
                return Result("", f"Failed to renew: Interface {rest[1]} is not managed by systemd-networkd\n", 1)
            return self._renew_as(root, "networkctl") or Result()
        return Result("", f"Unknown command verb {rest[0] if rest else ''}.\n", 1)

    def cmd_dhcpcd(self, args: list[str], root: bool) -> Result:
        iface = clientos.linux_iface(self.dev)
        scope, gw, dhcp = self._net()
        if len(args) == 2 and args[0] in ("-U", "--dumplease"):
            if args[1] != iface:
                return Result("", f"dhcpcd: {args[1]}: no such interface\n", 1)
            return Result(clientos.dhcpcd_dump(self.dev, dhcp, str(scope.subnet.broadcast_address), gw))
        if len(args) == 2 and args[0] in ("-n", "--rebind"):
            if args[1] != iface:
                return Result("", f"dhcpcd: {args[1]}: no such interface\n", 1)
            if not root:
                return Result("", "dhcpcd: not running as root\n", 1)  # dhcpcd refuses control without root
            self._renew_as(True, "dhcpcd")
            return Result("", "sending commands to dhcpcd process\n", 0)
        return Result("", "usage: dhcpcd [-U|-n] interface (this lab)\n", 1)

    # ------------------------------------------------------------- rpc-go
    def cmd_rpc(self, args: list[str]) -> Result:
        if not args:
            return Result("", "Usage: rpc <command> [arguments]\nCommands: activate, amtinfo, version\n", RPC_BAD_ARGS)
        sub, rest = args[0], args[1:]
        if sub == "amtinfo":
            return self.rpc_amtinfo(rest)
        if sub == "activate":
            return self.rpc_activate(rest)
        if sub == "version":
            return self.rpc_version(rest)
        return Result("", f"unknown command: {sub}\n", RPC_BAD_ARGS)

    def rpc_version(self, args: list[str]) -> Result:
        """2.x: three lines (cmd/rpc/main.go; rpc-go issue #227 shows them); 3.x (internal/commands/version.go):
        an underlined "RPC" title and 30-column rows, or json.MarshalIndent of its map (keys sorted)."""
        if self._major() < 3:
            if any(a.lstrip("-") == "json" for a in args):
                return Result(json.dumps({"app": "RPC", "protocol": "4.0.0", "version": "2.36.0"}, indent=2,
                                         sort_keys=True) + "\n")
            return Result("RPC\nVersion 2.36.0\nProtocol 4.0.0\n")
        info = {"app": "RPC", "version": "3.0.0-beta.50", "protocol": "4.0.0", "commit": "0000000",
                "date": "2026-07-01", "go": "go1.24.4", "platform": "linux/amd64"}
        if "--json" in args:
            return Result(json.dumps(info, indent=2, sort_keys=True) + "\n")
        rows = [("Version", "version"), ("Protocol", "protocol"), ("Commit", "commit"), ("Built", "date"),
                ("Go", "go"), ("Platform", "platform")]
        return Result("\n  RPC\n  ───\n" + "".join(f"  {k:<30} {info[v]}\n" for k, v in rows) + "\n")

    # rpc-go's output follows its source, not the product's parser (research/rpc.md): logs go to
    # stderr through logrus (text `time=... level=... msg=...`, or JSON lines with --json); 2.x
    # `activate` prints nothing on stdout and exits 0 when RPS answers with an error; 3.x (beta.9+)
    # exits 10 with `rps returned error: ...`; `amtinfo --json` prints 2.x's alphabetical map or 3.x's
    # struct order (omitempty), with each major's control-mode vocabulary.
    def _major(self) -> int:
        return self.fleet.rpc_major_for(self.dev)

    def _amtinfo(self) -> dict:
        dev = self.dev
        pre = dev.state == "pre"
        parts = dev.amt_version.split(".")
        v3 = self._major() >= 3
        mode = (("not activated" if pre else "admin control mode") if v3
                else ("pre-provisioning state" if pre else "activated in admin control mode"))
        unreadable = dev.faults.me_unreadable
        if unreadable:  # InterpretControlMode's default branch (research/rpc.md 1.2)
            mode = "unknown control mode" if v3 else "unknown state"
        wired = {"isEnable": True, "linkStatus": "up", "dhcpEnabled": True, "dhcpMode": "passive",
                 "ipAddress": dev.address, "osIpAddress": dev.address, "macAddress": _mac(dev)}
        if dev.real_os is not None:  # AMT shares the real NIC's MAC and, in DHCP mode, the OS's address
            ip = netns.read_ipv4(dev.real_os) or "0.0.0.0"
            wired.update(ipAddress=ip, osIpAddress=ip, macAddress=dev.real_os.mac or netns.read_mac(dev.real_os))
        wireless = {"isEnable": False, "linkStatus": "down", "dhcpEnabled": True, "dhcpMode": "passive",
                    "ipAddress": "0.0.0.0", "osIpAddress": "0.0.0.0", "macAddress": "00:00:00:00:00:00"}
        ras = {"networkStatus": "direct", "remoteStatus": "not connected", "remoteTrigger": "user initiated",
               "mpsHostname": ""}
        info = {"amt": ".".join(parts[:3]), "buildNumber": parts[3] if len(parts) > 3 else "3000", "sku": "16392",
                "features": "AMT Pro Corporate", "uuid": dev.uuid, "controlMode": mode}
        if v3:
            info["provisioningState"] = ("unknown provisioning state" if unreadable
                                         else "pre-provisioning" if pre else "post-provisioning")
        info["operationalState"] = "enabled"
        # dnsSuffix is AMT's PKI (trusted) suffix read over the MEI; 3.x drops the key when empty
        if dev.trusted_suffix or not v3:
            info["dnsSuffix"] = dev.trusted_suffix
        info.update({"dnsSuffixOS": dev.os_suffix, "hostnameOS": dev.name, "ras": ras,
                     "wiredAdapter": wired, "wirelessAdapter": wireless})
        if v3:
            info["heciAvailable"] = True
        return info if v3 else dict(sorted(info.items()))  # 2.x: a Go map, marshalled in key order

    def rpc_amtinfo(self, args: list[str]) -> Result:
        flags = {a.lstrip("-") for a in args}
        unknown = flags - {"json", "j", "all", "ver", "bld", "sku", "uuid", "mode", "dns", "hostname", "lan", "ras"}
        if unknown:
            return Result("", f"flag provided but not defined: -{sorted(unknown)[0]}\n", RPC_BAD_ARGS)
        with self.fleet._lock:
            self.fleet.tick()
            info = self._amtinfo()
        if flags & {"json", "j"}:
            return Result(json.dumps(info, indent=2) + "\n")
        if self._major() >= 3:
            return Result(amtinfo_text_3x(info))
        # 2.x text rows (internal/local/info.go @ v2.52.4: label, tabs, ": ", value)
        rows = [("Version\t\t\t", info["amt"]), ("Build Number\t\t", info["buildNumber"]), ("SKU\t\t\t", info["sku"]),
                ("Features\t\t", info["features"]), ("UUID\t\t\t", info["uuid"]),
                ("Control Mode\t\t", info["controlMode"]), ("Operational State\t", info["operationalState"]),
                ("DNS Suffix\t\t", info.get("dnsSuffix", "")), ("DNS Suffix (OS)\t\t", info["dnsSuffixOS"]),
                ("Hostname (OS)\t\t", info["hostnameOS"]), ("RAS Network      \t", "direct"),
                ("RAS Remote Status\t", "not connected"), ("RAS Trigger      \t", "user initiated"),
                ("RAS MPS Hostname \t", "")]
        w = info["wiredAdapter"]
        text = "".join(f"{k}: {v}\n" for k, v in rows)
        text += "---Wired Adapter---\n" + "".join(
            f"{k}: {v}\n" for k, v in [("DHCP Enabled \t\t", "true"), ("DHCP Mode    \t\t", w["dhcpMode"]),
                                        ("Link Status  \t\t", w["linkStatus"]), ("AMT IP Address\t\t", w["ipAddress"]),
                                        ("OS  IP Address\t\t", w["osIpAddress"]), ("MAC Address  \t\t", w["macAddress"])])
        return Result(text)

    def rpc_activate(self, args: list[str]) -> Result:
        opts: dict[str, str | bool] = {}
        value_flags = {"u", "url", "profile", "d", "dns", "name", "password", "proxy", "tenant", "h", "hostname"}
        bool_flags = {"n", "json", "j", "v", "skip-cert-check", "skipamtcertcheck"}
        major = self._major()
        i = 0
        while i < len(args):
            a = args[i]
            if not a.startswith("-") or a in ("-", "--"):
                return Result("", f"unexpected argument: {a}\n", RPC_BAD_ARGS)
            flag, _, inline = a.lstrip("-").partition("=")
            if major >= 3 and not a.startswith("--") and len(flag) > 1:
                # Kong: long flags need "--" (v3.0-changes.md, "Explicit flag syntax")
                return Result("", f"rpc: error: unknown flag {a}\n", RPC_BAD_ARGS)
            if flag in value_flags:
                if inline:
                    opts[flag] = inline
                elif i + 1 < len(args):
                    i += 1
                    opts[flag] = args[i]
                else:
                    return Result("", f"flag needs an argument: -{flag}\n", RPC_BAD_ARGS)
            elif flag in bool_flags:
                opts[flag] = True
            elif flag in ("local", "l"):
                return Result("", "local activation (-local) is not available in this lab\n", RPC_BAD_ARGS)
            else:
                return Result("", f"flag provided but not defined: -{flag}\n", RPC_BAD_ARGS)
            i += 1
        as_json = bool(opts.get("json") or opts.get("j"))
        url = str(opts.get("u") or opts.get("url") or "")
        profile = str(opts.get("profile") or "")
        now = self.fleet.clock.now()
        log: list[str] = []

        def emit(level: str, msg: str) -> None:
            if as_json:  # logrus JSONFormatter: one object per line, keys in alphabetical order
                t = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                log.append(json.dumps({"level": level, "msg": msg, "time": t}) + "\n")
            else:
                log.append(_logrus(now, level, msg))

        def rps_error(msg: str) -> Result:
            emit("error", msg)
            if major >= 3:  # ProcessMessage returns it; main logs the wrapped error, exits GenericFailure
                emit("error", f"RPS activation failed: rps returned error: {msg}")
                return Result("", "".join(log), RPC_GENERIC_FAILURE)
            return Result("", "".join(log), RPC_OK)  # 2.x: MakeItSo has no return value; exit 0

        if not url:
            emit("error", "Error 20: MissingOrIncorrectURL")
            return Result("", "".join(log), RPC_MISSING_URL)
        if not profile:
            emit("error", "Error 21: MissingOrIncorrectProfile")
            return Result("", "".join(log), RPC_MISSING_PROFILE)
        if "d" in opts or "dns" in opts:
            value = str(opts.get("d") or opts.get("dns") or "")
            try:
                dns_name(value, blank_ok=False)
            except InvalidName:
                emit("error", "Error 24: MissingDNSSuffix")
                return Result("", "".join(log), RPC_MISSING_DNS_SUFFIX)
        dev = self.dev
        # an activated device needs AMT's current admin password: -password/--password, else the
        # AMT_PASSWORD environment variable, else a prompt on stdout (research/rpc.md 2.2). Over SSH
        # stdin is at EOF: the read fails and rpc-go exits MissingOrIncorrectPassword (23).
        password = str(opts.get("password") or self.env.get("AMT_PASSWORD") or "")
        if dev.state != "pre" and not password:
            prompt = "AMT Password: " if major >= 3 else "Please enter AMT Password: "
            emit("error", "Error 23: MissingOrIncorrectPassword")
            return Result(prompt, "".join(log), RPC_MISSING_PASSWORD)
        emit("info", f"connecting to {url}")
        emit("info", f"connected to {url}")
        refused = _rps_version_gate(dev)
        if refused:
            return rps_error(refused)
        if dev.state != "pre":  # activated (by the legacy console, or by RPS before): "already activated" path
            return self._rpc_adopt(dev, password, profile, url, emit, rps_error, log, major, as_json, now)
        # rpc-go reports -d, else AMT's PKI suffix, else the OS suffix (createPayload; rpc.md 4.1)
        reported = str(opts.get("d") or opts.get("dns") or dev.trusted_suffix or dev.os_suffix or "").lower()
        if dev.state == "pre":
            if not reported:
                emit("warning", "DNS suffix is empty, unable to activate AMT in admin Control Mode (ACM)")
            if int(dev.amt_version.split(".")[0]) >= 19:
                # RPS Validator.ts: an admin-mode profile on AMT 19+ starts in client control mode, so the ACM
                # suffix checks are skipped; the domain lookup fails later, as rps issue #2590 (RPS 2.31.3) shows
                if reported not in self.fleet.rps_domain_suffixes():
                    return rps_error("Failed to extract domain certificate.Failed to extract domain certificate."
                                     "ACM activation failed")
            elif not reported:  # RPS Validator.ts (ACM, AMT < 19): the suffix must be one of its domains, exactly
                return rps_error(f"Device {dev.uuid} activation failed. Missing DNS Suffix.")
            elif reported not in self.fleet.rps_domain_suffixes():
                return rps_error(f"Device {dev.uuid} activation failed. Specified AMT domain suffix: {reported} "
                                 "does not match list of available AMT domain suffixes.")
        self.sleep(self.fleet.latency_for(dev, "provision"))
        was = dev.state
        try:
            rec = self.fleet.provision(dev.name, profile=profile, source="rpc")
        except ServerBusy:
            log.clear()
            emit("error", "error connecting to RPS: websocket: bad handshake")
            return Result("", "".join(log), RPC_GENERIC_FAILURE)  # a dial error exits 10 in both majors
        except (DeviceUnreachable, LabError):
            emit("error", "Error 71: AMTConnectionFailed")
            return Result("", "".join(log), RPC_AMT_CONNECTION_FAILED)
        if rec["result"] != "success":
            # AMT refused the certificate: RPS's state machine says no more than this (activation.ts)
            return rps_error("Failed to activate in admin control mode.")
        if dev.faults.error_after_activation:
            return rps_error(UNKNOWN_ERROR)  # AMT activated and registered; a later step failed
        status = "already enabled in admin mode." if was != "pre" else "Activated to admin control mode."
        return self._rpc_success(status, profile, url, emit, log, major, as_json)

    @staticmethod
    def _rpc_success(status: str, profile: str, url: str, emit, log: list[str], major: int, as_json: bool) -> Result:
        """What rpc-go prints once RPS activated (or took over) the device: 3.x's status lines (and its
        JSON summary on stdout with --json), 2.x's result table; exit 0 either way."""
        if major >= 3:
            for line in (f"Status: {status}", "Network: Wired Network Configured", "CIRA: ", "TLS: "):
                emit("info", line)
            if as_json:  # remote.go outputResult: json.MarshalIndent(map, "", "  ") (a Go map: keys sorted)
                out = json.dumps({"status": "success", "message": "Device activated successfully via RPS",
                                  "rps_server": url, "profile": profile, "friendly_name": "",
                                  "device_info": {"profile": profile}}, indent=2, sort_keys=True) + "\n"
                return Result(out, "".join(log), RPC_OK)
            emit("info", "Status: Device activated successfully via RPS")
            return Result("", "".join(log), RPC_OK)
        # internal/rps/rps.go logComponentResult: "  %-*s" of "Label:" padded to the widest reported label + 1,
        # then " " and the details with the mode as "[ACM]"; here Activation and Wired Network are reported
        emit("info", "Provisioning and Configuration Result : ")
        width = len("Wired Network") + 1
        emit("info", f"  {'Activation:':<{width}} {status} [ACM]")
        emit("info", f"  {'Wired Network:':<{width}} Wired Network Configured")
        return Result("", "".join(log), RPC_OK)

    def _rpc_adopt(self, dev: Device, password: str, profile: str, url: str, emit, rps_error, log: list[str],
                   major: int, as_json: bool, now: float) -> Result:
        """RPS takes over a device another console activated (research/rpc.md 4.2): rpc-go sends
        currentMode and the password; RPS checks it (Validator.ts: a mismatch is `AMT password DOES NOT
        match stored version for Device <uuid>`), runs no suffix check, rotates the admin password to the
        profile's (CHANGE_AMT_PASSWORD), registers the device with MPS. The lab answers a wrong password
        with that validator message (the research documents no other wording for it)."""
        if profile in self.fleet.rps_client_mode_profiles():
            # Validator.ts verifyCurrentModeForActivation, currentMode 2 with a client-mode profile
            return rps_error(f"Device {dev.uuid} already enabled in admin control mode.")
        self.sleep(self.fleet.latency_for(dev, "provision"))
        try:
            rec = self.fleet.adopt(dev.name, password, profile=profile)
        except ServerBusy:
            log.clear()
            emit("error", "error connecting to RPS: websocket: bad handshake")
            return Result("", "".join(log), RPC_GENERIC_FAILURE)
        except (DeviceUnreachable, LabError):
            emit("error", "Error 71: AMTConnectionFailed")
            return Result("", "".join(log), RPC_AMT_CONNECTION_FAILED)
        if rec["result"] != "success":
            return rps_error(rec["message"])
        emit("info", "Device already activated")
        if dev.faults.error_after_activation:
            return rps_error(UNKNOWN_ERROR)
        status = "already enabled in admin mode."
        return self._rpc_success(status, profile, url, emit, log, major, as_json)

    # ------------------------------------------------------------- host interface
    def cmd_amt_hi(self, args: list[str]) -> Result:
        as_json = "--json" in args
        rest = [a for a in args if a != "--json"]
        usage = "usage: amt-hi set-dns-suffix SUFFIX [--json] | amt-hi get-dns-suffix [--json]\n"
        if rest[:1] == ["get-dns-suffix"] and len(rest) == 1:
            with self.fleet._lock:
                self.fleet.tick()
                data = {"trustedDnsSuffix": self.dev.trusted_suffix, "dhcpDnsSuffix": self.dev.dhcp_suffix}
            if as_json:
                return Result(json.dumps(data) + "\n")
            return Result(f"Trusted DNS suffix : {data['trustedDnsSuffix']}\nDHCP DNS suffix    : {data['dhcpDnsSuffix']}\n")
        if rest[:1] == ["set-dns-suffix"] and len(rest) == 2:
            try:
                suffix = dns_name(rest[1])
                self.fleet.hi_set_trusted_suffix(self.dev.name, suffix)
            except (InvalidName, LabError) as exc:
                msg = str(exc)
                return Result(json.dumps({"status": "failed", "message": msg}) + "\n" if as_json else "",
                              f"amt-hi: {msg}\n", 1)
            if as_json:
                return Result(json.dumps({"status": "success", "dnsSuffix": suffix}) + "\n")
            return Result(f"Trusted DNS suffix set to {suffix}\n")
        return Result("", usage, 2)


    # ------------------------------------------------------------- PowerShell
    # the client-side scripts (_client_ps), else the Windows DHCP Server cmdlets (lab/windows_dhcp.py)

    def cmd_powershell(self, args: list[str]) -> Result:
        script = None
        i = 0
        while i < len(args):
            flag = args[i].lower()
            if flag in ("-noprofile", "-nop", "-noninteractive", "-noni", "-nologo"):
                i += 1
            elif flag in ("-executionpolicy", "-ep") and i + 1 < len(args):
                i += 2
            elif flag in ("-encodedcommand", "-enc", "-e", "-ec") and i + 1 < len(args):
                try:
                    script = base64.b64decode(args[i + 1], validate=True).decode("utf-16-le")
                except (ValueError, UnicodeDecodeError):
                    return Result("", "Cannot process the command because the value specified with "
                                      "-EncodedCommand is not properly encoded.\r\n", 1)
                i += 2
            elif flag in ("-command", "-c"):
                script = " ".join(args[i + 1:])
                break
            else:
                return Result("", f"-{flag.lstrip('-')} : The term '{args[i]}' is not recognized.\r\n", 1)
        if script is None:
            return Result("", "interactive PowerShell is not available on this lab host\r\n", 1)
        client = self._client_ps(script)
        return client if client is not None else self._ps_run(script.strip())

