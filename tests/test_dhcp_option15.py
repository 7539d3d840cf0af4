"""Option 15 as the server really hands it out, per host: Kea's reservation > pool > subnet > shared network >
class > global, read from a real kea-dhcp4 (tests/kea_fixture.py), and what the plan and dhcp_renew make of it."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from tasks.adapters.dhcp import KeaAdapter, KeaSubnetRef, with_live_dhcp
from tasks.adapters.dhcp_scope import option15_text
from tasks.inventory.model import load_inventory
from tasks.rules import dhcp_option15 as o15
from tasks.rules.plan import build_plan
from tests.kea_fixture import CLASS_MAC, GLOBAL_MAC, RESERVED_MAC, KeaServer, kea_binaries, layered_dhcp4


@pytest.fixture
def layered(tmp_path):
    if not all(kea_binaries()):
        pytest.skip("Kea not installed: apt-get install kea-dhcp4-server kea-ctrl-agent")
    with KeaServer(tmp_path / "kea", layered_dhcp4()) as server:
        yield server


# -- the rule itself, on constructed layouts ----------------------------------------------------------

def _layout(**kw) -> o15.Option15Layout:
    chain = (o15.Level(o15.SUBNET, kw.get("subnet"), "subnet 1"), o15.Level(o15.GLOBAL, kw.get("glob"), "global"))
    ip = ipaddress.IPv4Address
    return o15.Option15Layout(chain, (o15.Pool(ip("10.1.0.10"), ip("10.1.0.99"), kw.get("pool"), "pool A"),),
                              kw.get("res", ()), kw.get("classes", ()))


def test_precedence_reservation_pool_subnet_class_global():
    res = (o15.Reservation("10.1.0.50", ("001b21000001",), "res.example", "reservation 10.1.0.50"),)
    lay = _layout(subnet="subnet.example", pool="pool.example", glob="global.example", res=res)
    assert (o15.effective(lay, "10.1.0.20").domain_name, o15.effective(lay, "10.1.0.20").level) == ("pool.example", "pool")
    assert o15.effective(lay, "10.1.0.20").shadowed[0] == ("subnet.example", "subnet 1")  # what it overrides, said
    assert o15.effective(lay, "10.1.0.200").level == "subnet"  # outside the pool
    assert o15.effective(lay, "10.1.0.50").level == "reservation"  # by its address
    # by its MAC (as discovery reads it) or client-id 01+MAC, whatever the address says
    assert o15.effective(lay, "ws1.example.com", ["00-1B-21-00-00-01"]).domain_name == "res.example"
    res01 = (o15.Reservation(None, ("01001b21000001",), "cid.example", "reservation 01:00:1b:21:00:00:01"),)
    assert o15.effective(_layout(res=res01), None, ["00:1b:21:00:00:01"]).domain_name == "cid.example"
    lay = _layout(glob="global.example", classes=(o15.ClassOption("vpro", "class.example", "option[60].exists"),))
    got = o15.effective(lay, "10.1.0.200")
    assert (got.domain_name, got.level) == ("global.example", "global")
    assert got.alternatives == (("class.example", "if it matches class 'vpro' (test: option[60].exists)"),)
    # a subnet value wins over any class: no alternative then
    assert o15.effective(_layout(subnet="s.example", classes=lay.classes), "10.1.0.200").alternatives == ()


def test_unknown_address_and_the_verdict():
    lay = _layout(subnet="contoso.local", pool="contoso.com")
    got = o15.effective(lay, "ws9.contoso.com")  # a DNS name: its pool is unknown
    assert (got.domain_name, got.alternatives) == ("contoso.local", (("contoso.com", "if its address is in pool A"),))
    ok = lambda v: v.endswith("contoso.com")  # noqa: E731
    assert o15.verdict(got, ok) is None  # it depends: neither a renew nor dhcp_scope_wrong is certain
    assert o15.verdict(o15.effective(lay, "10.1.0.20"), ok) is True
    assert o15.verdict(o15.effective(lay, "10.1.0.200"), ok) is False
    assert o15.effective(_layout(), "10.1.0.20").level == "none"


def test_kea_hex_option_data_reads_as_text():
    # Kea ARM "Standard DHCPv4 Options": csv-format false = hex, delimited octets or a digit string, or 'text'
    assert option15_text("63:6f:6e:74:6f:73:6f:2e:63:6f:6d", False) == "contoso.com"
    assert option15_text("0x636F6E746F736F2E636F6D", False) == "contoso.com"
    assert option15_text("63 6f 6e 74 6f 73 6f 2e 63 6f 6d", False) == "contoso.com"
    assert option15_text("'Contoso.COM.'", False) == "contoso.com"
    assert option15_text("Contoso.com", True) == "contoso.com"


# -- a real Kea, option 15 at every level -------------------------------------------------------------

def test_pool_level_option_15_is_what_a_pool_host_gets(layered):
    with KeaAdapter(layered.url, timeout=5) as k:
        s = k.read(KeaSubnetRef(subnet_id=10))
    assert (s.domain_name, s.domain_name_level) == ("contoso.local", "subnet")  # the subnet's own value
    pooled = s.for_host("10.10.1.7")
    assert (pooled.domain_name, pooled.level, pooled.where) == ("contoso.com", "pool", "pool 10.10.1.0/24")
    assert ("contoso.local", "subnet 10") in pooled.shadowed
    assert s.for_host("10.10.2.7").domain_name == "contoso.local"  # the other pool sets none: the subnet's
    assert ("contoso.com", "pool", "pool 10.10.1.0/24") in s.placements()


def test_reservation_level_wins_by_mac_and_by_address(layered):
    with KeaAdapter(layered.url, timeout=5) as k:
        s = k.read(KeaSubnetRef(subnet="10.10.0.0/16"))
    for got in (s.for_host("10.10.1.50"), s.for_host("ws-res.contoso.com", [RESERVED_MAC.upper()])):
        assert (got.domain_name, got.level) == ("reserved.contoso.com", "reservation")
        assert ("contoso.com", "pool 10.10.1.0/24") in got.shadowed  # the pool it sits in loses


def test_client_class_level_sits_between_shared_network_and_global(layered):
    with KeaAdapter(layered.url, timeout=5) as k:
        s = k.read(KeaSubnetRef(subnet_id=11))
    plain = s.for_host("10.11.0.20")
    assert (plain.domain_name, plain.level) == ("global.example", "global")
    assert plain.alternatives[0][0] == "class.contoso.com" and "class 'vpro'" in plain.alternatives[0][1]
    named = s.for_host("10.11.0.70", [CLASS_MAC])  # its reservation puts it in class 'amt-fleet'
    assert (named.domain_name, named.level) == ("fleet.contoso.com", "client-class")
    assert "amt-fleet" in named.where and ("global.example", "the global option-data") in named.shadowed
    # subnet 11 looks at global reservations too (reservations-global); subnet 10 does not
    glob = s.for_host("10.11.0.30", [GLOBAL_MAC])
    assert (glob.domain_name, glob.level, glob.where) == ("global-res.contoso.com", "reservation",
                                                          f"reservation {GLOBAL_MAC} (global)")
    with KeaAdapter(layered.url, timeout=5) as k:
        assert k.read(KeaSubnetRef(subnet_id=10)).for_host("10.10.2.9", [GLOBAL_MAC]).level == "subnet"


def test_shared_network_and_global_levels(layered):
    with KeaAdapter(layered.url, timeout=5) as k:
        campus = k.read(KeaSubnetRef(subnet_id=20))
        plain = k.read(KeaSubnetRef(subnet_id=11))
    assert (campus.domain_name, campus.domain_name_level) == ("campus.contoso.com", "shared-network")
    assert campus.for_host("10.20.0.30").level == "pool"  # its pool overrides the shared network
    outside = campus.for_host("10.20.5.5")
    assert (outside.domain_name, outside.level) == ("campus.contoso.com", "shared-network")
    assert (plain.domain_name, plain.domain_name_level) == ("global.example", "global")


def test_a_change_lands_where_the_site_sets_it(layered):
    with KeaAdapter(layered.url, timeout=5) as k:
        # subnet 20: its only pool sets option 15, so the pool is rewritten; shared network and subnet untouched
        change = k.apply_change(KeaSubnetRef(subnet_id=20), domain_name="branch.contoso.com")
        assert [d[0] for d in change.diff] == ["option 15 (domain-name) at pool 10.20.0.10-10.20.0.250"]
        assert change.shadowed == [] and k.read(KeaSubnetRef(subnet_id=20)).for_host("10.20.0.30").domain_name == \
            "branch.contoso.com"
        # subnet 10: a pool without its own value needs the subnet; the reservation's own value is said, not hidden
        dry = k.plan_change(KeaSubnetRef(subnet_id=10), domain_name="contoso.com")
        assert [d[0] for d in dry.diff] == ["option 15 (domain-name) at subnet 10"]
        assert dry.shadowed == ["reservation 10.10.1.50 still hands out 'reserved.contoso.com'"]
        assert "! reservation 10.10.1.50 still hands out" in dry.render()
        done = k.apply_change(KeaSubnetRef(subnet_id=10), domain_name="contoso.com", reservations=True)
        assert "option 15 (domain-name) at reservation 10.10.1.50" in [d[0] for d in done.diff] and not done.shadowed
        assert {v for v, _, _ in done.after.placements()} == {"contoso.com"}
        # an explicit, wider level: what stays more specific is listed, and the read-back still verifies
        wide = k.apply_change(KeaSubnetRef(subnet_id=20), domain_name="campus.contoso.com", level="shared-network")
        assert wide.shadowed == ["pool 10.20.0.10-10.20.0.250 still hands out 'branch.contoso.com'"]
    saved = layered.config_file()["Dhcp4"]  # config-write persisted each change where it was made
    net = saved["shared-networks"][0]
    assert net["option-data"][0]["data"] == "campus.contoso.com"
    assert net["subnet4"][0]["pools"][0]["option-data"][0]["data"] == "branch.contoso.com"
    assert not any(o.get("name") == "domain-name" for o in net["subnet4"][0].get("option-data", []))


def test_a_level_the_scope_does_not_have_is_a_wrong_question(layered):
    from tasks.adapters.dhcp import DhcpError

    with KeaAdapter(layered.url, timeout=5) as k, pytest.raises(DhcpError, match="in no shared network") as exc:
        k.plan_change(KeaSubnetRef(subnet_id=10), domain_name="contoso.com", level="shared-network")
    assert exc.value.kind == "config"


# -- the plan and dhcp_renew: a host in a pool that sets option 15 is not dhcp_scope_wrong -----------------

def _inventory(tmp_path, url: str):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\ncredentials:\n  ssh: {user: m, key_env: K}\n"
        f"dhcp_scopes:\n  - {{name: site, subnet: 10.10.0.0/16, kea: {{url: '{url}', subnet_id: 10}}}}\n"
        "hosts:\n  - {name: POOLED, address: 10.10.1.7, amt_version: '11.8', amt_suffix: fabrikam.com}\n"
        "  - {name: STALE, address: 10.10.2.7, amt_version: '11.8', amt_suffix: fabrikam.com}\n"
        "  - {name: GUESS, address: 10.10.1.8, amt_version: '11.8'}\n"
        "waves: [{name: w, hosts: ['*'], remediation: [dhcp_renew, mebx]}]\n")
    return load_inventory(f)


def test_plan_judges_each_host_by_its_own_pool(layered, tmp_path):
    plan = build_plan(with_live_dhcp(_inventory(tmp_path, layered.url)))
    pooled, stale, guess = plan.hosts
    # AMT holds a wrong suffix on both; a renew can fix the one whose pool hands out contoso.com
    assert (pooled.outcome, pooled.option15) == ("fail", "contoso.com")
    assert "pool 10.10.1.0/24" in pooled.option15_from and "dhcp_renew" in pooled.remediation
    assert (stale.outcome, stale.option15) == ("fail", "contoso.local") and "dhcp_renew" not in stale.remediation
    # AMT's suffix unknown: inferred from what its pool hands out, not from the subnet's stale value
    assert guess.outcome == "likely_provision" and "pool 10.10.1.0/24" in guess.reason
    wrong = [w for w in plan.warnings if "dhcp_scope_wrong" in w]
    assert len(wrong) == 1 and "set at subnet 10" in wrong[0] and "1 host(s): STALE" in wrong[0]
    entry = plan.scopes[0]
    assert {(p["where"], p["matches_certificate"]) for p in entry["placements"]} >= {
        ("pool 10.10.1.0/24", True), ("subnet 10", False)}


def test_dhcp_renew_judges_the_host_not_the_subnet(layered, tmp_path):
    from types import SimpleNamespace

    from tasks.adapters import dhcp
    from tasks.rules.host_state import Cause
    from tasks.steps.remediate import dhcp_renew

    dhcp._CACHE.clear()
    inv = _inventory(tmp_path, layered.url)

    class NoSsh:  # reached only when the option 15 check lets the renew go ahead
        def session(self, *a, **kw):
            raise RuntimeError("renew attempted")

    ctx = SimpleNamespace(inv=inv, ssh=NoSsh(), cert_suffix="contoso.com", renew_attempts=1,
                          now=lambda: __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    res = dhcp_renew(ctx, inv.host("STALE"), SimpleNamespace(evidence={}, window_closes_at=None))
    assert res.cause == Cause.DHCP_SCOPE_WRONG and "'contoso.local' (subnet 10)" in res.reason
    assert res.evidence["option15_level"] == "subnet"
    with pytest.raises(RuntimeError, match="renew attempted"):  # POOLED: not dhcp_scope_wrong, the renew is tried
        dhcp_renew(ctx, inv.host("POOLED"), SimpleNamespace(evidence={}, window_closes_at=ctx.now() + __import__(
            "datetime").timedelta(hours=1)))
    dhcp._CACHE.clear()


def test_a_wave_remediates_a_pool_host_by_renewing(tmp_path, monkeypatch):
    """End to end: lab clients over SSH, the scope read from a real Kea whose subnet value is stale but whose
    pool hands out contoso.com (as the lab's DHCP does for these clients): pass 1 fails on the suffix, the
    renew is tried (before: refused as dhcp_scope_wrong) and AMT takes contoso.com."""
    if not all(kea_binaries()):
        pytest.skip("Kea not installed: apt-get install kea-dhcp4-server kea-ctrl-agent")
    from tasks.steps.context import build_context
    from tasks.steps.discover import discover_host
    from tasks.steps.provision import provision_host
    from tasks.steps.remediate import remediate_host
    from tasks.store.state import StateStore
    from tests.site_fixtures import device, start_site

    dn = lambda v: [{"name": "domain-name", "data": v}]  # noqa: E731
    body = {"valid-lifetime": 3600, "subnet4": [{"id": 1, "subnet": "127.10.0.0/16", "option-data": dn("contoso.local"),
                                                 "pools": [{"pool": "127.10.5.0/24", "option-data": dn("contoso.com")}]}]}
    site = start_site(tmp_path / "site", [device("POOLED", "127.10.5.7", dhcp="fabrikam.com")],
                      [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew"]}], monkeypatch)
    try:
        with KeaServer(tmp_path / "kea", body) as kea:
            data = yaml.safe_load(site.inventory.read_text())
            data["dhcp_scopes"][0] = {"name": "hq", "subnet": "127.10.0.0/16", "kea": {"url": kea.url, "subnet_id": 1}}
            site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
            inv = load_inventory(site.inventory)
            store = StateStore(inv.state_url)
            store.ensure_hosts("w", [(h.name, h.address) for h in inv.wave_hosts("w")])
            ctx = build_context(inv, "w", store)
            ctx.renew_verify_delay = 0.1
            discover_host(ctx, "POOLED")
            assert provision_host(ctx, "POOLED", 1).label == "failed:suffix_mismatch"
            assert remediate_host(ctx, "POOLED").label == "remediated:dhcp_renew"
            assert site.admin("POOLED")["dhcp_suffix"] == "contoso.com"
            assert provision_host(ctx, "POOLED", 2).result == "provisioned"
    finally:
        site.lab.stop()


def test_classification_infers_from_the_hosts_pool_and_never_from_an_unread_scope(layered, tmp_path):
    """Pass 1's inference for a host whose AMT suffix is unknown uses what its server hands it (read live,
    cached); an unreadable server gives no clue (before: the unread scope's empty default read as 'blank')."""
    from types import SimpleNamespace

    from tasks.adapters import dhcp
    from tasks.steps.provision import facts_for

    dhcp._CACHE.clear()
    inv = _inventory(tmp_path, layered.url)
    ctx = SimpleNamespace(inv=inv, ssh=None)
    assert facts_for(ctx, inv.host("GUESS"), {}).scope_option15 == "contoso.com"  # its pool, not the subnet
    assert facts_for(ctx, inv.host("STALE"), {}).scope_option15 == "contoso.local"
    dhcp._CACHE.clear()
    down = _inventory(tmp_path, "http://127.0.0.1:9/")
    assert facts_for(SimpleNamespace(inv=down, ssh=None), down.host("GUESS"), {}).scope_option15 is None
    dhcp._CACHE.clear()


def test_a_host_whose_value_depends_on_its_class_is_said_and_still_renewed(layered, tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\ncredentials:\n  ssh: {user: m, key_env: K}\n"
        f"dhcp_scopes:\n  - {{name: plain, subnet: 10.11.0.0/16, kea: {{url: '{layered.url}', subnet_id: 11}}}}\n"
        "hosts:\n  - {name: MAYBE, address: 10.11.0.20, amt_version: '11.8', amt_suffix: fabrikam.com}\n")
    plan = build_plan(with_live_dhcp(load_inventory(f)))
    (host,) = plan.hosts
    # global.example does not match contoso.com, class 'vpro' (class.contoso.com) would: it depends
    assert "dhcp_renew" in host.remediation and "class 'vpro'" in host.option15_from
    said = [w for w in plan.warnings if w.startswith("scope plain:")]
    assert len(said) == 1 and "depends on the client" in said[0] and "MAYBE" in said[0]
    assert not any("dhcp_scope_wrong" in w for w in said)


def test_cli_show_per_host_and_set_says_what_still_overrides(layered, tmp_path):
    import json

    from typer.testing import CliRunner

    from flows.dhcp_cli import app

    run = CliRunner().invoke
    path = str(_inventory(tmp_path, layered.url).path)
    r = run(app, ["show", path, "--json"])
    assert r.exit_code == 0, r.output
    (site,) = json.loads(r.stdout)["scopes"]
    got = {h["host"]: (h["option15"], h["level"], h["matches_certificate"]) for h in site["hosts"]}
    assert got == {"POOLED": ("contoso.com", "pool", True), "STALE": ("contoso.local", "subnet", False),
                   "GUESS": ("contoso.com", "pool", True)}
    r = run(app, ["show", path])
    assert "STALE (10.10.2.7) gets option 15 'contoso.local' from subnet 10: does NOT match" in r.stdout
    assert "POOLED" not in r.stdout
    r = run(app, ["set", path, "--scope", "site", "--domain-name", "contoso.com"])
    assert r.exit_code == 0 and "! reservation 10.10.1.50 still hands out 'reserved.contoso.com'" in r.stdout
    r = run(app, ["set", path, "--scope", "site", "--domain-name", "contoso.com", "--reservations"])
    assert r.exit_code == 0 and "+ option 15 (domain-name) at reservation 10.10.1.50: contoso.com" in r.stdout
    assert "!" not in r.stdout
    r = run(app, ["set", path, "--scope", "site", "--domain-name", "contoso.com", "--level", "shared-network"])
    assert r.exit_code == 2 and "in no shared network" in r.stderr
    r = run(app, ["set", path, "--scope", "site", "--domain-name", "contoso.com", "--level", "class"])
    assert r.exit_code == 2 and "level 'class'" in r.stderr
