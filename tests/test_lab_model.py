"""The fleet model on an injected clock: every behaviour the seed describes, without sockets."""

from __future__ import annotations

import time

import pytest

from lab.clock import ManualClock
from lab.model import ALREADY_PROVISIONED, GENERIC_FAILURE, DeviceUnreachable, Fleet, LabError, ServerBusy

pytest.register_assert_rewrite("tests.lab_fixtures")
from tests.lab_fixtures import make_fleet  # noqa: E402

pytest_plugins = ["tests.lab_fixtures"]


def dev(name="WS-0001", address="127.10.0.1", **kw):
    d = {"name": name, "address": address, "os": "windows", "amt_version": "11.8.50", "state": "pre",
         "trusted_suffix": "", "dhcp_suffix": "", "domain_name": "", "os_suffix": "sales.contoso.com",
         "interface_open": False, "legacy": None, "faults": []}
    d.update(kw)
    return d


LEGACY = {"user": "admin", "password": "s3cret"}


# ---------------------------------------------------------------- which suffix is checked
def test_pre_device_is_checked_against_trusted_suffix_before_dhcp_suffix():
    f = make_fleet(dev(trusted_suffix="fabrikam.com", dhcp_suffix="contoso.com"),
                   dev("WS-0002", "127.10.0.2", trusted_suffix="", dhcp_suffix="sales.contoso.com"))
    assert f.device("WS-0001").effective_suffix == "fabrikam.com"
    assert f.provision("WS-0001")["result"] == "failed"
    assert f.device("WS-0002").effective_suffix == "sales.contoso.com"
    assert f.provision("WS-0002")["result"] == "success"


def test_legacy_device_is_checked_against_amt_domain_name_before_dhcp_suffix():
    f = make_fleet(dev(state="legacy", legacy=LEGACY, domain_name="fabrikam.com", dhcp_suffix="contoso.com"),
                   dev("WS-0002", "127.10.0.2", state="legacy", legacy=LEGACY, domain_name="",
                       dhcp_suffix="eng.contoso.com"))
    assert f.provision("WS-0001")["result"] == "failed"
    assert f.device("WS-0001").true_last_failure["checked_suffix"] == "fabrikam.com"
    assert f.provision("WS-0002")["result"] == "success"


@pytest.mark.parametrize("version,suffix,result,cause", [
    ("3.2.1", "marketing.contoso.com", "success", None),
    ("3.0.1", "contoso.com", "failed", "unsupported_version"),      # even an exact match: unsupported
    ("2.6.3", "", "failed", "unsupported_version"),
    ("11.8.50", "", "failed", "suffix_blank"),
    ("11.8.50", "marketing.northwindtraders.com", "failed", "suffix_mismatch"),
])
def test_version_rules(version, suffix, result, cause):
    f = make_fleet(dev(amt_version=version, dhcp_suffix=suffix))
    rec = f.provision("WS-0001")
    assert rec["result"] == result
    assert rec["true_reason"] == cause
    assert (f.device("WS-0001").state == "provisioned") == (result == "success")


def test_failure_message_is_generic_whatever_the_cause_but_admin_view_knows():
    f = make_fleet(dev(amt_version="3.0.1", dhcp_suffix="contoso.com"),
                   dev("WS-0002", "127.10.0.2", dhcp_suffix=""),
                   dev("WS-0003", "127.10.0.3", dhcp_suffix="fabrikam.com"))
    recs = [f.provision(n) for n in ("WS-0001", "WS-0002", "WS-0003")]
    assert {r["message"] for r in recs} == {GENERIC_FAILURE}
    assert {r["error_code"] for r in recs} == {"internal_error"}
    public = [Fleet.public_attempt(r) for r in recs]
    assert all("true_reason" not in p and "checked_suffix" not in p for p in public)
    causes = [f.admin_view(n)["true_last_failure"]["cause"] for n in ("WS-0001", "WS-0002", "WS-0003")]
    assert causes == ["unsupported_version", "suffix_blank", "suffix_mismatch"]


def test_success_sets_amt_host_and_domain_from_client_record():
    f = make_fleet(dev(dhcp_suffix="contoso.com", primary_suffix="sales.contoso.com"),
                   dev("WS-0002", "127.10.0.2", dhcp_suffix="contoso.com", primary_suffix="corp.fabrikam.com"))
    f.provision("WS-0001")
    f.provision("WS-0002")
    a, b = f.device("WS-0001"), f.device("WS-0002")
    assert (a.host_name, a.domain_name, a.state) == ("WS-0001", "sales.contoso.com", "provisioned")
    # an OS suffix that would fail the rule is not written into AMT: the certificate's suffix is
    assert b.domain_name == "contoso.com"


def test_attempt_after_success_is_counted_and_flagged():
    f = make_fleet(dev(dhcp_suffix="contoso.com"))
    assert f.provision("WS-0001")["after_success"] is False
    again = f.provision("WS-0001")
    assert again["result"] == "success" and again["message"] == ALREADY_PROVISIONED and again["after_success"]
    assert f.admin_view("WS-0001")["provision_attempts"] == 2


# ---------------------------------------------------------------- the window
def test_window_open_at_start_closes_after_window(manual_clock):
    f = make_fleet(dev(interface_open=True), dev("WS-0002", "127.10.0.2"), clock=manual_clock)
    a, b = f.device("WS-0001"), f.device("WS-0002")
    assert f.interface_open(a) and not f.interface_open(b)
    manual_clock.advance(29.9)
    assert f.interface_open(a)
    manual_clock.advance(0.2)
    assert not f.interface_open(a)


def test_every_attempt_reopens_window(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock)
    d = f.device("WS-0001")
    assert not f.interface_open(d)
    f.provision("WS-0001")
    assert f.interface_open(d)
    manual_clock.advance(20)
    f.provision("WS-0001")  # reopens for a full window from now, not from the first attempt
    manual_clock.advance(20)
    assert f.interface_open(d)
    manual_clock.advance(11)
    assert not f.interface_open(d)


def test_renew_with_window_closed_changes_only_the_os(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com", os_suffix="fabrikam.com"), clock=manual_clock)
    rec = f.dhcp_renew("WS-0001")
    d = f.device("WS-0001")
    assert rec["amt_took"] is False and "closed" in rec["reason"]
    assert d.os_suffix == "contoso.com" and d.dhcp_suffix == "fabrikam.com"
    assert f.provision("WS-0001")["result"] == "failed"


def test_seed_remediation_attempt_renew_attempt(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock)
    assert f.provision("WS-0001")["result"] == "failed"   # fails, but opens the window
    manual_clock.advance(5)
    assert f.dhcp_renew("WS-0001")["amt_took"] is True
    assert f.device("WS-0001").dhcp_suffix == "contoso.com"
    assert f.provision("WS-0001")["result"] == "success"


def test_renew_after_window_expired_does_not_take(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock, retry_interval="1h")
    f.provision("WS-0001")
    manual_clock.advance(31)
    assert f.dhcp_renew("WS-0001")["amt_took"] is False
    assert f.device("WS-0001").dhcp_suffix == "fabrikam.com"


def test_renew_from_a_scope_with_wrong_option15_makes_it_wrong(manual_clock):
    f = make_fleet(dev(address="127.11.0.5", dhcp_suffix="contoso.com", interface_open=True), clock=manual_clock)
    assert f.device("WS-0001").scope == "lab-old"  # default scope: the one whose subnet holds the address
    f.dhcp_renew("WS-0001")
    assert f.device("WS-0001").dhcp_suffix == "contoso.local"


def test_renew_failure_rate_is_seeded_and_roughly_the_rate():
    devices = [dev(f"WS-{i:04d}", f"127.10.1.{i}", interface_open=True, dhcp_suffix="fabrikam.com")
               for i in range(1, 201)]
    runs = []
    for _ in range(2):
        f = make_fleet(*devices, renew_failure_rate=0.3)
        runs.append([f.dhcp_renew(d["name"])["amt_took"] for d in devices])
    assert runs[0] == runs[1]                       # deterministic from the seed
    failed = runs[0].count(False)
    assert 35 <= failed <= 85                       # ~30 % of 200
    f = make_fleet(*devices[:5], renew_failure_rate=1.0)
    assert not any(f.dhcp_renew(d["name"])["amt_took"] for d in devices[:5])


def test_renew_ignored_fault_never_takes(manual_clock):
    f = make_fleet(dev(interface_open=True, dhcp_suffix="fabrikam.com", faults=["renew_ignored"]), clock=manual_clock)
    for _ in range(5):
        assert f.dhcp_renew("WS-0001")["amt_took"] is False
    assert f.device("WS-0001").os_suffix == "contoso.com"


# ---------------------------------------------------------------- background behaviour
def test_failed_provisioning_is_retried_by_the_device_every_retry_interval(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock)
    f.provision("WS-0001")
    manual_clock.advance(29)
    assert f.tick() == 0
    manual_clock.advance(1)
    assert f.tick() >= 1
    d = f.device("WS-0001")
    assert [a["source"] for a in d.attempts] == ["server", "self-retry"]
    manual_clock.advance(65)  # two more retries due; each runs at its own due time
    f.tick()
    assert [a["at"][-3:] for a in d.attempts] == ["00Z", "30Z", "00Z", "30Z"]


def test_self_retry_succeeds_once_a_renew_fixed_the_suffix_and_then_stops(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock)
    f.provision("WS-0001")
    manual_clock.advance(10)
    f.dhcp_renew("WS-0001")            # window open: AMT takes option 15
    manual_clock.advance(20)
    f.tick()
    d = f.device("WS-0001")
    assert d.state == "provisioned" and d.attempts[-1]["source"] == "self-retry"
    manual_clock.advance(600)
    f.tick()
    assert d.provision_attempts == 2   # no retries after success


def test_os_renews_by_itself_at_half_lease(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com", os_suffix="fabrikam.com"), clock=manual_clock)
    d = f.device("WS-0001")
    due = d.lease_obtained + 1800
    manual_clock.set(due - 1)
    f.tick()
    assert d.renews == []
    manual_clock.set(due)
    f.tick()
    assert len(d.renews) == 1 and d.renews[0]["source"] == "half-lease"
    assert d.os_suffix == "contoso.com" and d.dhcp_suffix == "fabrikam.com"  # window closed
    manual_clock.advance(1800)
    f.tick()
    assert len(d.renews) == 2


def test_half_lease_renew_inside_window_fixes_amt(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), clock=manual_clock, window="24h")
    d = f.device("WS-0001")
    f.provision("WS-0001")
    manual_clock.set(d.lease_obtained + 1800)
    f.tick()
    assert d.dhcp_suffix == "contoso.com"


def test_tick_cost_does_not_scan_the_fleet():
    devices = [dev(f"WS-{i:05d}", f"127.10.{i // 250}.{i % 250 + 1}") for i in range(10_000)]
    f = make_fleet(*devices)
    t = time.perf_counter()
    for _ in range(1000):
        f.tick()
    assert time.perf_counter() - t < 0.5  # nothing due: O(1) per tick, not O(devices)


# ---------------------------------------------------------------- direct writes
def test_mebx_sets_trusted_suffix_with_window_closed(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"), dev("WS-0002", "127.10.0.2", state="legacy", legacy=LEGACY,
                                                         domain_name="fabrikam.com"), clock=manual_clock)
    assert not f.interface_open(f.device("WS-0001"))
    f.mebx_set_trusted_suffix("WS-0001", "Contoso.com.")
    assert f.device("WS-0001").trusted_suffix == "contoso.com"
    assert f.provision("WS-0001")["result"] == "success"
    with pytest.raises(ValueError):
        f.mebx_set_trusted_suffix("WS-0002", "bad suffix;rm")


def test_wsman_domain_name_write_works_on_legacy_at_any_time_only(manual_clock):
    f = make_fleet(dev(state="legacy", legacy=LEGACY, domain_name="fabrikam.com"),
                   dev("WS-0002", "127.10.0.2", dhcp_suffix="fabrikam.com"), clock=manual_clock)
    manual_clock.advance(86400)
    f.wsman_set_domain_name("WS-0001", "sales.contoso.com")
    assert f.provision("WS-0001")["result"] == "success"
    with pytest.raises(LabError):
        f.wsman_set_domain_name("WS-0002", "contoso.com")
    with pytest.raises(LabError):  # once the new server owns it, the legacy write is gone
        f.wsman_set_domain_name("WS-0001", "contoso.com")


def test_host_interface_write_works_in_pre_provisioning_only(manual_clock):
    f = make_fleet(dev(dhcp_suffix="fabrikam.com"),
                   dev("WS-0002", "127.10.0.2", state="legacy", legacy=LEGACY, domain_name="fabrikam.com"),
                   clock=manual_clock)
    manual_clock.advance(86400)
    f.hi_set_trusted_suffix("WS-0001", "contoso.com")
    assert f.provision("WS-0001")["result"] == "success"
    with pytest.raises(LabError, match="pre-provisioning"):
        f.hi_set_trusted_suffix("WS-0002", "contoso.com")
    with pytest.raises(LabError):
        f.hi_set_trusted_suffix("WS-0001", "contoso.com")  # provisioned now


# ---------------------------------------------------------------- faults and loading
def test_unreachable_and_5xx_are_not_attempts():
    f = make_fleet(dev(faults=["down"], dhcp_suffix="contoso.com"),
                   dev("WS-0002", "127.10.0.2", faults=[{"server_5xx": 0.5}], dhcp_suffix="fabrikam.com"))
    with pytest.raises(DeviceUnreachable):
        f.provision("WS-0001")
    assert f.device("WS-0001").provision_attempts == 0
    outcomes = []
    for _ in range(40):
        try:
            f.provision("WS-0002")
            outcomes.append("ok")
        except ServerBusy:
            outcomes.append("503")
    assert 8 <= outcomes.count("503") <= 32
    assert f.device("WS-0002").provision_attempts == outcomes.count("ok")


def test_fault_parsing():
    f = make_fleet(dev(faults=[{"slow": "5s"}, {"latency": "20ms-80ms"}, "ssh_auth"]))
    fl = f.device("WS-0001").faults
    assert fl.slow == 5 and fl.latency == (0.02, 0.08) and fl.ssh_auth and not fl.down
    assert 0.02 <= f.latency_for(f.device("WS-0001"), "ssh") <= 0.08


@pytest.mark.parametrize("bad,msg", [
    ({"address": "10.0.0.1"}, "outside 127.0.0.0/8"),
    ({"faults": ["explode"]}, "unknown fault"),
    ({"state": "active"}, "state must be"),
    ({"amt_version": "eleven"}, "AMT version"),
    ({"dhcp_suffix": "a b.com"}, "label"),
    ({"address": "127.99.0.1"}, "no DHCP scope"),
])
def test_bad_fleet_entries_are_rejected_with_the_device_named(bad, msg):
    with pytest.raises(ValueError, match=msg) as exc:
        make_fleet(dev(**bad))
    assert "WS-0001" in str(exc.value)


def test_duplicate_address_rejected():
    with pytest.raises(ValueError, match="already used"):
        make_fleet(dev(), dev("WS-0002", "127.10.0.1"))


def test_manual_clock_never_goes_back():
    c = ManualClock()
    with pytest.raises(ValueError):
        c.advance(-1)
