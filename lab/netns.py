"""Devices whose client OS is real: a Linux network namespace with a real DHCP client in it.

A fleet entry with ``real_os:`` keeps its AMT in the lab (firmware, window, WS-Management, the
provisioning server's verdict) while its OS is a real one the test infrastructure set up::

    real_os:
      exec: [nsenter, -t, "4711", -n, -m, -p, -u, --]   # runs a command inside the client's namespaces
      netns: amt20-1234-c1                               # its network namespace (/run/netns/NAME or a path)
      interface: c1eth                                   # the NIC AMT shares with the OS
      mac: "02:00:5e:10:00:01"                           # that NIC's MAC: AMT's wired MAC (shared)

Over SSH (the lab's own listener or the OpenSSH front) every command line is run for real by
``/bin/sh -c`` under ``exec``, except the tools that talk to the ME over HECI (rpc-go, the host-interface
tool), which the lab's AMT answers as it does for every device. AMT learns option 15 only from DHCPACKs
seen on the shared NIC (lab/dhcp_wire.py), so what it reports is what the real server sent.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass

#: tools that reach the ME through HECI/MEI on a real host: the lab's AMT answers them
ME_TOOLS = frozenset({"rpc", "amt-hi", "lab-amt-hi"})
_SUDO_FLAGS = ("-n", "--non-interactive", "-E", "--preserve-env")


@dataclass(frozen=True)
class RealOs:
    exec_prefix: tuple[str, ...]
    netns: str
    interface: str
    mac: str = ""
    timeout: float = 120.0

    @classmethod
    def parse(cls, d) -> "RealOs | None":
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError("real_os is a mapping with exec, netns, interface (and mac)")
        unknown = set(d) - {"exec", "netns", "interface", "mac", "timeout"}
        if unknown:
            raise ValueError(f"real_os: unknown key {sorted(unknown)[0]!r}")
        argv = d.get("exec")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError("real_os.exec is a non-empty list of arguments")
        netns, iface = d.get("netns"), d.get("interface")
        if not isinstance(netns, str) or not netns or not isinstance(iface, str) or not iface:
            raise ValueError("real_os needs netns and interface")
        return cls(tuple(argv), netns, iface, str(d.get("mac", "")).lower(), float(d.get("timeout", 120.0)))

    def as_dict(self) -> dict:
        return {"exec": list(self.exec_prefix), "netns": self.netns, "interface": self.interface, "mac": self.mac}


def program(argv: list[str]) -> str:
    """The program a command segment runs, past ``sudo`` and its options."""
    args = list(argv)
    if args and args[0] == "sudo":
        args = args[1:]
        while args and (args[0] in _SUDO_FLAGS or args[0].startswith("--preserve-env=")):
            args = args[1:]
    return args[0].rsplit("/", 1)[-1] if args else ""


def segments(command: str) -> list[list[str]] | None:
    """The simple commands of a ``&&``/``;`` chain, or None when the line uses other shell syntax."""
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError:
        return None
    out, cur = [], []
    for tok in tokens:
        if tok in ("&&", ";"):
            out.append(cur)
            cur = []
        elif tok and set(tok) <= set("();<>|&"):
            return None
        else:
            cur.append(tok)
    out.append(cur)
    return [s for s in out if s]


def mentions_me_tool(command: str) -> bool:
    segs = segments(command)
    return bool(segs) and any(program(s) in ME_TOOLS for s in segs)


def run_real(real: RealOs, command: str) -> tuple[int, str, str]:
    """``/bin/sh -c COMMAND`` inside the client's namespaces: (exit status, stdout, stderr)."""
    try:
        res = subprocess.run([*real.exec_prefix, "/bin/sh", "-c", command], capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=real.timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        return 124, out, f"amt-lab: the command ran past {real.timeout:.0f}s in the client OS\n"
    except OSError as exc:
        return 255, "", f"amt-lab: cannot enter the client OS ({exc})\n"
    return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")


def read_mac(real: RealOs) -> str:
    status, out, _ = run_real(real, f"cat /sys/class/net/{shlex.quote(real.interface)}/address")
    return out.strip().lower() if status == 0 else ""


def read_ipv4(real: RealOs) -> str:
    """The OS's IPv4 address on the shared NIC (AMT shares it in DHCP mode), "" when it has none."""
    status, out, _ = run_real(real, f"ip -j -4 addr show dev {shlex.quote(real.interface)}")
    if status != 0:
        return ""
    try:
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info") or []:
                if a.get("family") == "inet" and a.get("local"):
                    return str(a["local"])
    except (ValueError, AttributeError):
        return ""
    return ""
