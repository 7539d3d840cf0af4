"""Kea's control-agent answers as a real Kea prints them (captured from kea-ctrl-agent 2.2.0) and as its ARM
documents Kea 2.4+ (never-send): what option 15 a host really gets, and every error answer read as an error.
Origins: tests/fixtures/dhcp/SOURCES.md."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tasks.adapters.dhcp_kea import KeaAdapter, KeaSubnetRef, config_of
from tasks.adapters.dhcp_scope import DhcpError, option15_text
from tasks.rules import dhcp_option15 as o15

FIX = Path(__file__).parent / "fixtures" / "dhcp"


def answer(name: str):
    return json.loads((FIX / name).read_text())


def test_the_answer_list_the_control_agent_prints_is_read_as_it_comes():
    raw = answer("kea22_config_get_captured.json")  # a list of one answer, upper-case hex echoed back
    scope = KeaAdapter.effective(raw, KeaSubnetRef(subnet_id=7), "kea")
    assert (scope.domain_name, scope.domain_name_level) == ("old.contoso.local", o15.SUBNET)
    in_hex_pool = scope.for_host("10.7.1.20")
    assert (in_hex_pool.domain_name, in_hex_pool.level) == ("contoso.com", o15.POOL)
    other_pool = scope.for_host("10.7.2.50")  # "10.7.2.10-10.7.2.99", no blanks
    assert (other_pool.domain_name, other_pool.level) == ("old.contoso.local", o15.SUBNET)
    # the same from the answer object and from its arguments
    assert KeaAdapter.effective(raw[0], KeaSubnetRef(subnet="10.7.0.0/16"), "kea").domain_name == "old.contoso.local"
    assert KeaAdapter.effective(raw[0]["arguments"], KeaSubnetRef(subnet_id=7), "kea").domain_name == \
        "old.contoso.local"


@pytest.mark.parametrize("name,result,said", [
    ("kea22_unsupported_captured.json", 2, "'frobnicate' command not supported."),
    ("kea22_no_socket_captured.json", 1, "forwarding socket is not configured for the server type dhcp6"),
    ("kea22_config_set_bad_captured.json", 1, "mandatory 'subnet' parameter is missing"),
])
def test_error_answers_are_errors_with_kea_s_words(name, result, said):
    with pytest.raises(DhcpError, match=f"result {result}") as err:
        config_of(answer(name))
    assert said in str(err.value)


def test_the_agent_s_own_configuration_is_not_a_dhcp4_configuration():
    # config-get without "service": the control agent answers with its own Control-agent configuration
    with pytest.raises(DhcpError, match="no Dhcp4 section"):
        config_of(answer("kea22_no_service_captured.json"))


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_or_command_are_an_auth_error(status):
    body = {"result": status, "text": "Unauthorized" if status == 401 else "Forbidden"}
    kea = KeaAdapter("http://kea.test/", transport=httpx.MockTransport(lambda r: httpx.Response(status, json=body)))
    with pytest.raises(DhcpError) as err:
        kea.config_get()
    assert err.value.kind == "auth" and str(status) in str(err.value)


def test_an_unsupported_command_over_the_agent_is_a_failed_command():
    raw = (FIX / "kea22_unsupported_captured.json").read_bytes()
    kea = KeaAdapter("http://kea.test/", transport=httpx.MockTransport(lambda r: httpx.Response(200, content=raw)))
    with pytest.raises(DhcpError, match="not supported") as err:
        kea.config_get()
    assert err.value.kind == "config-get"


# ---------------------------------------------------------------- never-send (Kea >= 2.4)

def test_never_send_on_a_pool_leaves_its_hosts_without_option_15():
    scope = KeaAdapter.effective(answer("kea26_never_send_constructed.json"), KeaSubnetRef(subnet_id=30), "kea")
    cancelled = scope.for_host("10.30.1.40")
    assert cancelled.domain_name == "" and cancelled.level == o15.NONE and "never-send" in cancelled.where
    assert ("contoso.com", "subnet 30") in cancelled.shadowed
    other = scope.for_host("10.30.2.40")
    assert (other.domain_name, other.level) == ("contoso.com", o15.SUBNET)
    assert ("", o15.POOL, "pool 10.30.1.10-10.30.1.250") in scope.placements()


def test_never_send_is_sticky_a_less_specific_level_cancels_a_more_specific_value():
    # ARM: "if one of the flags is enabled in the global scope, but disabled at the subnet level, it will act
    # as enabled": the shared network cancels option 15 although its subnet sets guest.contoso.com
    scope = KeaAdapter.effective(answer("kea26_never_send_constructed.json"), KeaSubnetRef(subnet_id=31), "kea")
    assert scope.domain_name == "" and scope.domain_name_level == o15.NONE
    host = scope.for_host("10.31.0.40")
    assert host.domain_name == "" and "shared network 'guest'" in host.where
    assert scope.placements() == [("", o15.NONE, host.where)]


def test_a_planned_change_says_never_send_still_cancels_it():
    raw = answer("kea26_never_send_constructed.json")
    kea = KeaAdapter("http://kea.test/", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=raw)))
    plan = kea.plan_change(KeaSubnetRef(subnet_id=31), domain_name="contoso.com")
    assert plan.shadowed and any("never-send" in s for s in plan.shadowed)


@pytest.mark.parametrize("data,csv,want", [
    ("636F6E746F736F2E636F6D", False, "contoso.com"),  # how Kea echoes hex back
    ("63 6f 6e 74 6f 73 6f 2e 63 6f 6d 00", False, "contoso.com"),  # a trailing NUL (RFC 2132: delete it)
    ("0x636f6e746f736f2e636f6d", False, "contoso.com"),
    ("'contoso.com'", False, "contoso.com"),
])
def test_option_data_spellings(data, csv, want):
    assert option15_text(data, csv) == want
