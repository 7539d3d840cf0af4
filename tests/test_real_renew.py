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
from tests.netns_fixture import IFDOWN_DHCLIENT, IFUP_DHCLIENT, why_not_here
from tests.real_site import HostSpec, amt_dhcp_suffix, build, set_window

_WHY = why_not_here() or (None if sshd_available() else f"{SSHD} is absent (openssh-server)")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"real network namespaces: {_WHY}")

OLD, NEW = "old.contoso.local", "sales.contoso.com"


def _read(site, name: str):
    from tasks.adapters import os_network

    with site.ssh().session(site.lab.fleet.device(name).address) as sh:
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
    if client.stack == "dhclient":  # released and restarted the very dhclient ifup started: still one
        assert renewed.command.startswith("sudo -n dhclient -r -4 -v -pf /run/dhclient.eth0.pid")
        assert client.run("pgrep -c -x dhclient").stdout.strip() == "1"
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


# -- a whole wave on real clients -------------------------------------------------------------------

WAVE_HOSTS = [
    # wired to hq (Kea: contoso.com), AMT holds fabrikam.com, window open: the renew fixes it
    HostSpec("MATCH", "dhcpcd", "hq", "hq", dhcp="fabrikam.com"),
    # wired to eng, whose Kea hands out old.contoso.local until the operator changes it mid-wave
    HostSpec("SCOPE-CHANGED", "networkd", "eng", "eng", dhcp="old.contoso.local"),
    # AMT's window closed: the OS's own renew before the wave never reached AMT
    HostSpec("CLOSED", "dhclient", "hq", "hq", dhcp="fabrikam.com", interface_open=False),
    # its systemd-networkd was killed: nothing runs to renew through
    HostSpec("STOPPED", "networkd", "hq", "hq", dhcp="fabrikam.com"),
    # the inventory puts it in hq, but its wire leads to another DHCP server (fabrikam.com)
    HostSpec("ELSEWHERE", "dhcpcd", "other", "hq", dhcp="fabrikam.com"),
]


@pytest.fixture
def wave_site(tmp_path, monkeypatch):
    import tasks.steps.context as context
    import flows.migrate as migrate

    site = build(tmp_path, monkeypatch, {"hq": ("10.77.0.0/24", "contoso.com"),
                                         "eng": ("10.78.0.0/24", "old.contoso.local"),
                                         "other": ("10.79.0.0/24", "fabrikam.com")}, WAVE_HOSTS)

    def quick_context(*args, **kw):  # the read-back's patience, scaled to a test (defaults: 10 s, 1 s)
        ctx = context.build_context(*args, **kw)
        ctx.renew_settle, ctx.renew_verify_delay = 3.0, 0.2
        return ctx

    monkeypatch.setattr(migrate, "build_context", quick_context)
    yield site
    site.close()


def _events(store, host):
    """The dhcp_renew method's own records (not the status transition that follows a success)."""
    return [e for e in store.history([host], "w1") if e.stage == "remediate" and e.action == "dhcp_renew"
            and "method" not in (e.evidence or {})]


def test_a_wave_on_real_clients_ends_as_the_wire_says(wave_site):
    from flows.cli import app
    from flows.migrate import migrate_wave
    from tasks.adapters.dhcp import KeaAdapter, KeaSubnetRef
    from tasks.inventory.model import load_inventory
    from tasks.rules.host_state import Status
    from tasks.store.state import StateStore
    from typer.testing import CliRunner

    site = wave_site
    # before the wave: CLOSED's own DHCP client renews; its OS takes contoso.com, its AMT (closed) does not
    site.clients["CLOSED"].run(f"{IFDOWN_DHCLIENT} && {IFUP_DHCLIENT}", check=True)  # ifdown eth0; ifup eth0
    assert amt_dhcp_suffix(site, "CLOSED") == "fabrikam.com"
    assert "domain contoso.com" in site.clients["CLOSED"].resolv_conf()
    site.net.kill_stack(site.clients["STOPPED"])

    state = migrate_wave(str(site.inventory), "w1", inventory_name="site", return_state=True)
    assert state.name.startswith("Completed with"), (state.name, state.message)
    inv = load_inventory(site.inventory)
    store = StateStore(inv.state_url)
    got = {r.host: (r.status, r.cause) for r in store.hosts("w1")}
    assert got == {
        "MATCH": (Status.PROVISIONED, None),
        "CLOSED": (Status.PROVISIONED, None),
        "SCOPE-CHANGED": (Status.REMEDIATION_FAILED, "dhcp_scope_wrong"),
        "STOPPED": (Status.REMEDIATION_FAILED, "unknown"),
        "ELSEWHERE": (Status.REMEDIATION_FAILED, "dhcp_scope_wrong"),
    }, got
    for name in ("MATCH", "CLOSED"):
        assert store.get("w1", name).provisioned_in_pass == 2
        [renew] = _events(store, name)
        assert renew.outcome == "verified", renew.evidence
        assert renew.evidence["os_suffix"] == renew.evidence["dhcp_suffix"] == "contoso.com"
        # AMT learnt it from the DHCPACK on its wire, sent by hq's Kea
        ack = [r for r in site.admin(name)["renews"] if r["source"].startswith("wire:")][-1]
        assert (ack["option15"], ack["server_id"], ack["amt_took"]) == ("contoso.com", "10.77.0.1", True)
    assert _events(store, "MATCH")[0].evidence["os_dhcp_server"] == "10.77.0.1"

    # a scope whose option 15 can't match: no renew at all, the reason names Kea as the source
    [wrong] = _events(store, "SCOPE-CHANGED")
    assert "old.contoso.local" in wrong.evidence["detail"] and "Kea at" in wrong.evidence["detail"]
    # a stopped client: refused before anything ran, never "verified"
    [stopped] = _events(store, "STOPPED")
    assert stopped.outcome == "failed" and "no DHCP client runs for eth0" in stopped.evidence["detail"]
    assert not [r for r in site.admin("STOPPED")["renews"] if r["source"].startswith("wire:")]
    # a lease from another server: the OS and AMT took fabrikam.com from 10.79.0.1, and the renew says so
    [elsewhere] = _events(store, "ELSEWHERE")
    assert elsewhere.outcome == "failed"
    assert "carries option 15 'fabrikam.com', not scope hq's 'contoso.com'" in elsewhere.evidence["detail"]
    assert "its server is 10.79.0.1" in elsewhere.evidence["detail"]
    assert amt_dhcp_suffix(site, "ELSEWHERE") == "fabrikam.com"
    for name in ("STOPPED", "ELSEWHERE", "SCOPE-CHANGED"):
        assert site.admin(name)["state"] == "pre"
        assert all(e.outcome != "verified" for e in store.history([name], "w1") if e.stage == "remediate")

    # the operator fixes eng's option 15 with the project's Kea adapter, then reruns the host
    with KeaAdapter(site.kea_url("eng")) as kea:
        kea.apply_change(KeaSubnetRef(1), domain_name="eng.contoso.com")
    assert site.clients["SCOPE-CHANGED"].run("cat /run/systemd/netif/leases/*").stdout.count(
        "DOMAINNAME=old.contoso.local") == 1  # nothing reached the client before its renew
    result = CliRunner().invoke(app, ["rerun", str(site.inventory), "--wave", "w1", "--hosts", "SCOPE-CHANGED",
                                      "--from", "remediate", "--yes"])
    # exit 4: the wave ran to its end with STOPPED and ELSEWHERE still failed (their causes are not fixed)
    assert result.exit_code == 4 and "Completed with 2 failed" in result.output, result.output
    rec = store.get("w1", "SCOPE-CHANGED")
    assert (rec.status, rec.provisioned_in_pass) == (Status.PROVISIONED, 2)
    renew = _events(store, "SCOPE-CHANGED")[-1]
    assert renew.outcome == "verified" and renew.evidence["os_suffix"] == "eng.contoso.com"
    assert renew.evidence["os_network_manager"] == "systemd-networkd"
    assert "DOMAINNAME=eng.contoso.com" in site.clients["SCOPE-CHANGED"].run("cat /run/systemd/netif/leases/*").stdout
    assert site.admin("SCOPE-CHANGED")["state"] == "provisioned"
    store.close()
