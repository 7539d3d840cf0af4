"""The renew for real: real DHCP clients in network namespaces, real Kea on the wire, the lab's AMT
learning option 15 from the DHCPACK it sees on the shared NIC.

Each Linux stack the product renews through (ISC dhclient, dhcpcd, systemd-networkd) runs in its own
host namespace (tests/netns_fixture.py); the product reaches it through Debian's sshd and runs
`os_network.read_interface` / `os_network.renew` unchanged; Kea's option 15 is changed with the
product's own `KeaAdapter`. Needs root and the Debian packages .ci/run installs; skips saying which.
"""

from __future__ import annotations

import time

import pytest

from lab.openssh import SSHD, sshd_available
from tests.netns_fixture import why_not_here
from tests.real_site import HostSpec, amt_dhcp_suffix, build, set_window

_WHY = why_not_here() or (None if sshd_available() else f"{SSHD} is absent (openssh-server)")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"real network namespaces: {_WHY}")

OLD, NEW = "old.contoso.local", "sales.contoso.com"


def _read(site, name: str):
    from tasks.adapters import os_network

    with site.ssh().session("127.10.0.1" if name == "H1" else site.lab.fleet.device(name).address) as sh:
        return os_network.read_interface(sh, "linux", amt_mac=site.clients[name].mac)


def _settled(site, name: str, want: str, timeout: float = 10.0):
    """networkctl renew and dhcpcd -n return before the exchange ends: read until the lease shows."""
    deadline = time.monotonic() + timeout
    while True:
        choice = _read(site, name)
        if choice.suffix == want or time.monotonic() > deadline:
            return choice
        time.sleep(0.2)


@pytest.fixture
def one_host(request, tmp_path, monkeypatch):
    stack = request.param
    site = build(tmp_path, monkeypatch, {"eng": ("10.77.0.0/24", OLD)},
                 [HostSpec("H1", stack, "eng", "eng", dhcp="")])
    yield site
    site.close()


@pytest.mark.parametrize("one_host", ["dhclient", "dhcpcd", "networkd"], indirect=True)
def test_each_stack_renews_for_real_and_the_suffix_read_back_is_keas(one_host):
    from datetime import timedelta  # noqa: F401
    from tasks.adapters import os_network
    from tasks.adapters.dhcp import KeaAdapter, KeaSubnetRef

    site = one_host
    client = site.clients["H1"]
    before = _read(site, "H1")
    assert before.adapter is not None, before.why
    assert before.adapter.name == "eth0" and before.adapter.mac == client.mac
    assert before.suffix == OLD
    expected_manager = {"dhclient": "dhclient", "dhcpcd": "dhcpcd", "networkd": "systemd-networkd"}[client.stack]
    assert before.adapter.manager == expected_manager

    with KeaAdapter(site.kea_url("eng")) as kea:
        change = kea.apply_change(KeaSubnetRef(1), domain_name=NEW)
    assert change.applied and change.after.domain_name == NEW
    # Kea hands the new value out only on the next exchange: the client still holds the old one
    assert _read(site, "H1").suffix == OLD
    assert amt_dhcp_suffix(site, "H1") == ""

    with site.ssh().session("127.10.0.1") as sh:
        renewed = os_network.renew(sh, "linux", before.adapter)
    assert renewed.ok, renewed.detail
    after = _settled(site, "H1", NEW)
    assert after.suffix == NEW, (after.why, after.facts)
    assert after.adapter.manager == expected_manager
    # AMT's window is open: it took option 15 from the DHCPACK it saw on the shared NIC
    assert amt_dhcp_suffix(site, "H1") == NEW
    acks = [r for r in site.admin("H1")["renews"] if r["source"].startswith("wire:")]
    assert acks and acks[-1]["option15"] == NEW and acks[-1]["server_id"] == "10.77.0.1"

    # with its window closed AMT keeps what it had, while the OS takes the next change
    set_window(site, "H1", False)
    with KeaAdapter(site.kea_url("eng")) as kea:
        kea.apply_change(KeaSubnetRef(1), domain_name="contoso.com")
    with site.ssh().session("127.10.0.1") as sh:
        assert os_network.renew(sh, "linux", after.adapter).ok  # every stack's renew command says yes...
    again = _settled(site, "H1", "contoso.com", timeout=4)
    if client.stack == "dhcpcd":
        # ...but Debian 12's dhcpcd 9.4.1 takes one control command per start: the second `dhcpcd -n`
        # exits 0 ("sending commands to dhcpcd process") and the daemon logs "ps_ctl_dispatch: cannot
        # handle another client" (dhcpcd #54, #399): no exchange, the old lease stays. Only a read-back
        # can tell, and the product's reads the lease the OS really holds
        assert again.suffix == NEW and again.adapter.manager == "dhcpcd"
        assert any("dhcpcd -U gave no lease" in p for p in again.facts.problems)
        assert "cannot handle another client" in client.run("cat /run/dhcpcd.log").stdout
    else:
        assert again.suffix == "contoso.com"
    assert amt_dhcp_suffix(site, "H1") == NEW
