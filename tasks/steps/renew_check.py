"""What a renew really did to the client: read back until the lease shows, and whose lease it is.

`networkctl renew` (networkctl(1): "Renew dynamic configurations e.g. addresses received from DHCP
server") and `dhcpcd -n` (dhcpcd(8): "Notifies dhcpcd to ... rebind") return once the daemon has the
request, before the DHCP exchange (seen with systemd 252 and dhcpcd 9.4.1, tests/test_real_renew.py);
dhclient returns once bound. So the read-back waits a little for the lease to carry the scope's option 15. A lease that still
does not carry it came from another DHCP server, or no exchange happened (a client that did not act on
the request); either way the renew did not do what it was for, and the reason says which server the
stack names (option 54, where it shows it).
"""

from __future__ import annotations

import time

from tasks.adapters import os_network
from tasks.adapters.netfacts import InterfaceChoice


def settle(sh, flavor, amt_mac: str, address: str, expected: str | None, seconds: float,
           interval: float = 0.5) -> InterfaceChoice:
    """Read the adapter back; while ``expected`` (the scope's option 15) is known and the OS does not
    hold it yet, read again every ``interval`` until ``seconds`` have passed."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        after = os_network.read_interface(sh, flavor, amt_mac=amt_mac, address=address)
        if expected is None or after.suffix == expected or time.monotonic() >= deadline:
            return after
        time.sleep(interval)


def lease_problem(scope_name: str, want: str, origin: str, after: InterfaceChoice, waited: float) -> str | None:
    """Why the OS's lease after the renew does not carry ``want`` (the option 15 the host's scope hands
    out, read from ``origin``), or None when it does (or no adapter was read)."""
    if after.adapter is None or after.suffix is None or after.suffix == (want or ""):
        return None
    server = after.adapter.dhcp_server
    held = f"option 15 {after.suffix!r}" if after.suffix else "no option 15"
    return (f"the OS's lease on {after.adapter.name} carries {held}, not scope {scope_name}'s "
            f"{want or '(none)'!r} (read from {origin}) {waited:g}s after the renew"
            + (f"; its server is {server}" if server else "")
            + ": the lease came from another DHCP server, or the client did not renew")
