"""MPS's answers to GET /api/v1/devices/{guid} as MPS and what stands in front of it print them (red-team round;
tests/fixtures/dmt/SOURCES.md): MPS's own 404 has no body; a 404 with a body is a gateway or route speaking,
and reading it as "device not registered" would fail hosts that are provisioned."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.adapters.dmt_api import DmtApiError, parse_device_answer

FIX = Path(__file__).parent / "fixtures" / "dmt"
GUID = "4c4c4544-0042-3010-8052-b4c04f4e3332"


def raw(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_mps_record_200():
    dev = parse_device_answer(200, raw("mps_device_200_constructed.json"), GUID.upper())
    assert dev is not None and dev.guid == GUID and dev.hostname == "WKS-0412" and dev.dns_suffix == ""
    assert not dev.other_tenant


@pytest.mark.parametrize("body", [b"", b"\r\n", b'{"error":"Not Found","message":"Device ID ' + GUID.encode() + b' not found"}'])
def test_mps_404_without_a_body_or_naming_the_device_is_not_registered(body):
    assert parse_device_answer(404, body, GUID) is None


@pytest.mark.parametrize("name", ["kong_404_no_route_constructed.json", "express_404_cannot_get_constructed.html"])
def test_a_404_from_the_gateway_or_an_unrouted_path_is_an_error_not_an_unknown_device(name):
    with pytest.raises(DmtApiError, match="other than MPS"):
        parse_device_answer(404, raw(name), GUID)


def test_204_is_another_tenant_and_an_html_200_is_no_record():
    assert parse_device_answer(204, b"", GUID).other_tenant
    with pytest.raises(DmtApiError, match="not JSON"):
        parse_device_answer(200, b"<!doctype html><html><body>Sample Web UI</body></html>", GUID)
    with pytest.raises(DmtApiError, match="another guid"):
        parse_device_answer(200, raw("mps_device_200_constructed.json"), "00000000-0000-0000-0000-000000000000")


def test_the_client_against_the_lab_gateway_tells_an_unrouted_path_from_an_unknown_device():
    from lab.api import ApiService
    from tasks.adapters.dmt_api import DmtClient
    from tasks.inventory.secrets import Secret
    from tests.lab_fixtures import make_fleet

    fleet = make_fleet()
    api = ApiService(fleet).start()
    password = Secret("test", fleet.extra.get("dmt", {}).get("password", "lab-Pa55w0rd"))
    try:
        client = DmtClient(api.url, "admin", password)
        assert client.device(GUID) is None  # MPS's own 404: no body
        client.MPS_DEVICE = "/mps/api/v2/devices/{guid}"  # a path the gateway does not route
        with pytest.raises(DmtApiError, match="no Route matched"):
            client.device(GUID)
        client.close()
    finally:
        api.stop()
