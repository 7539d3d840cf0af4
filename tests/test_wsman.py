"""WS-Man messages against real AMT XML, and WsmanClient over HTTP digest (a tiny server here, then the lab)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from lab.clock import ManualClock
from lab.server import LabServer
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue
from tasks.adapters.wsman import (
    ACTION_GET,
    ACTION_PUT,
    ANONYMOUS,
    URI_GENERAL_SETTINGS,
    URI_SETUP_AND_CONFIGURATION,
    SoapFaultError,
    WsmanAuthError,
    WsmanClient,
    WsmanError,
    WsmanFault,
    WsmanUnreachable,
    build_envelope,
    parse_instance,
    parse_response,
    put_message,
    typed_setup_and_configuration,
)

RESPONSE_NS = (
    'xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:b="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:c="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:d="http://schemas.xmlsoap.org/ws/2005/02/trust" '
    'xmlns:e="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
    'xmlns:f="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def amt_response(action: str, resource: str, body: str, relates_to: str = "0") -> str:
    """Shaped like AMT 11's answers: prefixes a:..g:, one line per element."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<a:Envelope {RESPONSE_NS} xmlns:g="{resource}">'
            f"<a:Header><b:To>{ANONYMOUS}</b:To><b:RelatesTo>{relates_to}</b:RelatesTo>"
            f'<b:Action a:mustUnderstand="true">{action}</b:Action>'
            "<b:MessageID>uuid:00000000-8086-8086-8086-00000000004A</b:MessageID>"
            f"<c:ResourceURI>{resource}</c:ResourceURI></a:Header><a:Body>{body}</a:Body></a:Envelope>")


def general_settings_body(domain: str = "legacy.contoso.com") -> str:
    return (
        "<g:AMT_GeneralSettings>\n<g:AMTNetworkEnabled>1</g:AMTNetworkEnabled>\n"
        "<g:DDNSPeriodicUpdateInterval>1440</g:DDNSPeriodicUpdateInterval><g:DDNSTTL>900</g:DDNSTTL>\n"
        "<g:DDNSUpdateByDHCPServerEnabled>true</g:DDNSUpdateByDHCPServerEnabled>"
        "<g:DDNSUpdateEnabled>false</g:DDNSUpdateEnabled>\n"
        "<g:DHCPv6ConfigurationTimeout>0</g:DHCPv6ConfigurationTimeout>\n"
        "<g:DigestRealm>Digest:F3EB554784E729164447A89F60B641C5</g:DigestRealm>\n"
        f"<g:DomainName>{domain}</g:DomainName>\n<g:ElementName>Intel(r) AMT: General Settings</g:ElementName>\n"
        "<g:HostName>ws-0142</g:HostName>\n<g:HostOSFQDN>ws-0142.sales.contoso.com</g:HostOSFQDN>\n"
        "<g:IdleWakeTimeout>65535</g:IdleWakeTimeout>\n<g:InstanceID>Intel(r) AMT: General Settings</g:InstanceID>\n"
        "<g:NetworkInterfaceEnabled>true</g:NetworkInterfaceEnabled>\n<g:PingResponseEnabled>true</g:PingResponseEnabled>\n"
        "<g:PowerSource>0</g:PowerSource>\n<g:PreferredAddressFamily>0</g:PreferredAddressFamily>\n"
        "<g:PresenceNotificationInterval>0</g:PresenceNotificationInterval>\n<g:PrivacyLevel>0</g:PrivacyLevel>\n"
        "<g:RmcpPingResponseEnabled>true</g:RmcpPingResponseEnabled>\n<g:SharedFQDN>true</g:SharedFQDN>\n"
        "<g:ThunderboltDockEnabled>0</g:ThunderboltDockEnabled>\n<g:WsmanOnlyMode>false</g:WsmanOnlyMode>\n"
        "</g:AMT_GeneralSettings>"
    )


SETUP_BODY = (
    "<g:AMT_SetupAndConfigurationService><g:CreationClassName>AMT_SetupAndConfigurationService</g:CreationClassName>"
    "<g:DhcpDNSSuffix>Sales.Contoso.com.</g:DhcpDNSSuffix>"
    "<g:ElementName>Intel(r) AMT Setup and Configuration Service</g:ElementName><g:EnabledState>5</g:EnabledState>"
    "<g:Name>Intel(r) AMT Setup and Configuration Service</g:Name><g:PasswordModel>1</g:PasswordModel>"
    "<g:ProvisioningMode>1</g:ProvisioningMode><g:ProvisioningState>0</g:ProvisioningState>"
    "<g:RequestedState>12</g:RequestedState><g:SystemCreationClassName>CIM_ComputerSystem</g:SystemCreationClassName>"
    "<g:SystemName>Intel(r) AMT</g:SystemName><g:TrustedDNSSuffix></g:TrustedDNSSuffix>"
    "<g:ZeroTouchConfigurationEnabled>true</g:ZeroTouchConfigurationEnabled></g:AMT_SetupAndConfigurationService>"
)

FAULT_BODY = (
    "<a:Fault><a:Code><a:Value>a:Sender</a:Value><a:Subcode><a:Value>b:DestinationUnreachable</a:Value>"
    '</a:Subcode></a:Code><a:Reason><a:Text xml:lang="en-US">No route can be determined to reach the destination '
    "role defined by the WSAddressing To.</a:Text></a:Reason><a:Detail><c:FaultDetail>"
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI</c:FaultDetail></a:Detail></a:Fault>"
)
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def test_envelope_headers():
    xml = build_envelope(ACTION_GET, URI_GENERAL_SETTINGS, message_id="uuid:7", operation_timeout="PT30S")
    root = ET.fromstring(xml)
    ns = {"s": "http://www.w3.org/2003/05/soap-envelope", "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
          "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"}
    assert root.find("s:Header/a:Action", ns).text == ACTION_GET
    assert root.find("s:Header/a:To", ns).text == "/wsman"
    assert root.find("s:Header/w:ResourceURI", ns).text == URI_GENERAL_SETTINGS
    assert root.find("s:Header/a:MessageID", ns).text == "uuid:7"
    assert root.find("s:Header/a:ReplyTo/a:Address", ns).text == ANONYMOUS
    assert root.find("s:Header/w:OperationTimeout", ns).text == "PT30S"
    assert len(root.find("s:Body", ns)) == 0
    ids = {ET.fromstring(build_envelope(ACTION_GET, URI_GENERAL_SETTINGS)).find("s:Header/a:MessageID", ns).text
           for _ in range(3)}
    assert len(ids) == 3


def test_put_message_keeps_order_and_escapes():
    values = {"HostName": "ws-0142", "DomainName": "a.example", "ElementName": "Intel(r) AMT: <General> & Co",
              "SharedFQDN": True}
    root = ET.fromstring(put_message(URI_GENERAL_SETTINGS, "AMT_GeneralSettings", values))
    body = next(el for el in root if local(el.tag) == "Body")
    inst = body[0]
    assert inst.tag == "{%s}AMT_GeneralSettings" % URI_GENERAL_SETTINGS
    assert [local(c.tag) for c in inst] == list(values)
    assert [c.text for c in inst] == ["ws-0142", "a.example", "Intel(r) AMT: <General> & Co", "true"]
    action = next(el for el in root.iter() if local(el.tag) == "Action")
    assert action.text == ACTION_PUT


def test_parse_general_settings():
    values = parse_instance(amt_response(ACTION_GET + "Response", URI_GENERAL_SETTINGS, general_settings_body()),
                            "AMT_GeneralSettings")
    assert values["DomainName"] == "legacy.contoso.com" and values["HostName"] == "ws-0142"
    assert list(values)[:2] == ["AMTNetworkEnabled", "DDNSPeriodicUpdateInterval"]
    assert len(values) == 23


def test_parse_setup_and_configuration_typed():
    raw = parse_instance(amt_response(ACTION_GET + "Response", URI_SETUP_AND_CONFIGURATION, SETUP_BODY))
    typed = typed_setup_and_configuration(raw)
    assert typed["ProvisioningState"] == 0 and typed["ProvisioningMode"] == 1
    assert typed["DhcpDNSSuffix"] == "sales.contoso.com" and typed["TrustedDNSSuffix"] == ""
    assert typed["ZeroTouchConfigurationEnabled"] is True
    # a class that lacks a suffix property still yields "" for it
    assert typed_setup_and_configuration({"ProvisioningState": "2"})["TrustedDNSSuffix"] == ""


def test_parse_fault():
    header, _, fault = parse_response(amt_response(FAULT_ACTION, URI_GENERAL_SETTINGS, FAULT_BODY))
    assert header["Action"] == FAULT_ACTION
    assert (fault.code, fault.subcode) == ("Sender", "DestinationUnreachable")
    assert fault.reason.startswith("No route can be determined")
    assert fault.detail.endswith("InvalidResourceURI")
    with pytest.raises(SoapFaultError):
        parse_instance(amt_response(FAULT_ACTION, URI_GENERAL_SETTINGS, FAULT_BODY))


@pytest.mark.parametrize("text", ["<not xml", "<html><body>hi</body></html>"])
def test_parse_rejects_non_envelopes(text):
    with pytest.raises(InvalidValue):
        parse_response(text)


def test_parse_wrong_class_rejected():
    with pytest.raises(InvalidValue):
        parse_instance(amt_response(ACTION_GET + "Response", URI_SETUP_AND_CONFIGURATION, SETUP_BODY),
                       "AMT_GeneralSettings")


# ---------------------------------------------------------------- a tiny AMT over HTTP digest

REALM = "Digest:F3EB554784E729164447A89F60B641C5"
PASSWORD = "P@ssw0rd-Amt-Secret!"


class FakeAmt:
    """Digest auth (MD5, qop=auth) as AMT does it, Get/Put on AMT_GeneralSettings, Get on the setup service."""

    def __init__(self):
        self.domain = "legacy.contoso.com"
        self.puts: list[str] = []
        self.fault_next: str | None = None
        self.plain_500 = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if not fake.authorized(self.headers.get("Authorization", "")):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate",
                                     f'Digest realm="{REALM}", nonce="abc123", stale="false", qop="auth"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, text = fake.answer(body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def authorized(self, header: str) -> bool:
        if not header.startswith("Digest "):
            return False
        f = {k: (v1 or v2) for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', header)}
        md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"admin:{REALM}:{PASSWORD}")
        ha2 = md5(f"POST:{f.get('uri')}")
        want = md5(f"{ha1}:{f.get('nonce')}:{f.get('nc')}:{f.get('cnonce')}:{f.get('qop')}:{ha2}")
        return f.get("username") == "admin" and f.get("response") == want

    def answer(self, body: str) -> tuple[int, str]:
        if self.plain_500:
            return 500, "<html>oops</html>"
        if self.fault_next:
            subcode, self.fault_next = self.fault_next, None
            return 400, amt_response(FAULT_ACTION, URI_GENERAL_SETTINGS, FAULT_BODY.replace(
                "b:DestinationUnreachable", subcode))
        root = ET.fromstring(body)
        action = next(el.text for el in root.iter() if local(el.tag) == "Action")
        uri = next(el.text for el in root.iter() if local(el.tag) == "ResourceURI")
        if uri == URI_SETUP_AND_CONFIGURATION and action == ACTION_GET:
            return 200, amt_response(action + "Response", uri, SETUP_BODY)
        if uri == URI_GENERAL_SETTINGS and action == ACTION_GET:
            return 200, amt_response(action + "Response", uri, general_settings_body(self.domain))
        if uri == URI_GENERAL_SETTINGS and action == ACTION_PUT:
            self.puts.append(body)
            self.domain = next(el.text for el in root.iter() if local(el.tag) == "DomainName")
            return 200, amt_response(action + "Response", uri, general_settings_body(self.domain))
        return 400, amt_response(FAULT_ACTION, uri, FAULT_BODY.replace("b:DestinationUnreachable",
                                                                        "b:ActionNotSupported"))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def amt():
    with FakeAmt() as server:
        yield server


def client_for(amt: FakeAmt, password: str = PASSWORD, **kw) -> WsmanClient:
    return WsmanClient("127.0.0.1", amt.port, "admin", password, timeout=5, **kw)


def test_client_reads_both_classes(amt):
    with client_for(amt) as c:
        setup = c.get_setup_and_configuration()
        general = c.get_general_settings()
    assert setup["ProvisioningState"] == 0 and setup["DhcpDNSSuffix"] == "sales.contoso.com"
    assert general["DomainName"] == "legacy.contoso.com" and general["AMTNetworkEnabled"] == 1


def test_put_domain_name_sends_the_whole_instance(amt):
    with client_for(amt) as c:
        result = c.put_domain_name("Sales.Contoso.com.")
        assert c.get_general_settings()["DomainName"] == "sales.contoso.com"
    assert result["DomainName"] == "sales.contoso.com"
    assert len(amt.puts) == 1
    inst = next(el for el in ET.fromstring(amt.puts[0]).iter() if local(el.tag) == "AMT_GeneralSettings")
    sent = [local(c.tag) for c in inst]
    got = list(parse_instance(amt_response(ACTION_GET + "Response", URI_GENERAL_SETTINGS, general_settings_body())))
    assert sent == got  # every property, in AMT's order
    assert inst.find("{%s}HostName" % URI_GENERAL_SETTINGS).text == "ws-0142"


@pytest.mark.parametrize("bad", ["evil;rm -rf /", "", "a..b", "x" * 64 + ".com"])
def test_put_domain_name_validates_before_sending(amt, bad):
    with client_for(amt) as c, pytest.raises(InvalidValue):
        c.put_domain_name(bad)
    assert amt.puts == []


def test_wrong_password_is_auth_error_without_the_password(amt):
    wrong = "Wr0ng-" + PASSWORD
    with client_for(amt, password=wrong) as c:
        with pytest.raises(WsmanAuthError) as info:
            c.get_general_settings()
        text = f"{info.value} {info.value!r} {c!r}"
    assert (info.value.cause, info.value.kind) == (Cause.AUTH_FAILED, "auth")
    assert wrong not in text and PASSWORD not in text


def test_fault_mapping(amt):
    with client_for(amt) as c:
        amt.fault_next = "b:DestinationUnreachable"
        with pytest.raises(WsmanFault) as info:
            c.get_general_settings()
        assert (info.value.code, info.value.subcode) == ("Sender", "DestinationUnreachable")
        # a fault is AMT answering: the resource is not served there; the host is not "unreachable"
        assert info.value.reason.startswith("No route") and info.value.cause == Cause.UNKNOWN
        assert info.value.kind == "fault"
        amt.fault_next = "c:AccessDenied"
        with pytest.raises(WsmanFault) as info:
            c.get_general_settings()
        assert info.value.cause == Cause.AUTH_FAILED
        amt.fault_next = "c:InvalidRepresentation"
        with pytest.raises(WsmanFault) as info:
            c.get_general_settings()
        assert info.value.cause == Cause.UNKNOWN and info.value.kind == "fault"


def test_http_error_without_fault(amt):
    amt.plain_500 = True
    with client_for(amt) as c, pytest.raises(WsmanError) as info:
        c.get_setup_and_configuration()
    assert info.value.kind == "http" and "500" in str(info.value)


def test_refused_port_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with WsmanClient("127.0.0.1", port, "admin", PASSWORD, timeout=2) as c, pytest.raises(WsmanUnreachable) as info:
        c.get_general_settings()
    assert (info.value.cause, info.value.kind) == (Cause.UNREACHABLE, "refused")
    assert PASSWORD not in str(info.value)


def test_silent_listener_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with WsmanClient("127.0.0.1", listener.getsockname()[1], "admin", PASSWORD, timeout=0.5) as c:
            with pytest.raises(WsmanUnreachable) as info:
                c.get_general_settings()
    assert info.value.kind == "timeout" and info.value.cause == Cause.UNREACHABLE


# ---------------------------------------------------------------- the lab's AMT

LAB_PASSWORD = "Lab-Pw-1!"


@pytest.fixture
def lab_amt(tmp_path):
    from tests.lab_fixtures import BASE_FLEET

    device = {"name": "WIN-LEG", "address": "127.10.0.3", "os": "windows", "amt_version": "11.8.50",
              "state": "legacy", "trusted_suffix": "", "dhcp_suffix": "contoso.com", "domain_name": "fabrikam.com",
              "host_name": "WIN-LEG", "os_suffix": "contoso.com", "interface_open": False,
              "legacy": {"user": "admin", "password": LAB_PASSWORD}, "faults": []}
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(dict(BASE_FLEET, devices=[device]), sort_keys=False))
    with LabServer(tmp_path / "fleet.yaml", known_hosts=tmp_path / "known_hosts", clock=ManualClock()) as lab:
        yield lab


def test_against_the_lab(lab_amt):
    with WsmanClient("127.10.0.3", lab_amt.amt_port, "admin", LAB_PASSWORD, timeout=5) as c:
        setup = c.get_setup_and_configuration()
        assert (setup["ProvisioningState"], setup["DhcpDNSSuffix"], setup["TrustedDNSSuffix"]) == (
            2, "contoso.com", "")
        assert c.get_general_settings()["DomainName"] == "fabrikam.com"
        assert c.put_domain_name("Sales.Contoso.com")["DomainName"] == "sales.contoso.com"
        assert c.get_general_settings()["DomainName"] == "sales.contoso.com"
        # a resource this AMT does not serve: the lab answers wsa:DestinationUnreachable, as AMT does
        with pytest.raises(WsmanFault) as info:
            c.get("http://intel.com/wbem/wscim/1/amt-schema/1/AMT_NoSuchClass")
        assert info.value.subcode == "DestinationUnreachable" and info.value.cause != Cause.UNREACHABLE
    with WsmanClient("127.10.0.3", lab_amt.amt_port, "admin", "wrong", timeout=5) as c:
        with pytest.raises(WsmanAuthError):
            c.get_general_settings()


# -- TLS (16993): hosts a legacy console provisioned with its enterprise CA's certificates ----------

@pytest.fixture
def tls_amt(lab_amt, tmp_path):
    from lab.tls import LabCA
    from lab.wsman import WsmanService

    ca = LabCA(workdir=tmp_path / "ca")
    svc = WsmanService(lab_amt.fleet, 0, tls=ca).start()
    try:
        yield svc, ca
    finally:
        svc.stop()


def test_tls_verified_against_the_inventory_ca(tls_amt):
    svc, ca = tls_amt
    with WsmanClient("127.10.0.3", svc.port, "admin", LAB_PASSWORD, scheme="https", verify=str(ca.ca_pem)) as c:
        assert c.url.startswith("https://") and c.get_general_settings()["DomainName"] == "fabrikam.com"


def test_tls_unknown_ca_is_refused_before_credentials(tls_amt, tmp_path):
    from lab.tls import LabCA
    from tasks.adapters.wsman import WsmanTlsError

    svc, _ = tls_amt
    other = LabCA("some other CA", workdir=tmp_path / "other")
    with WsmanClient("127.10.0.3", svc.port, "admin", LAB_PASSWORD, scheme="https", verify=str(other.ca_pem)) as c:
        with pytest.raises(WsmanTlsError) as info:
            c.get_general_settings()
    e = info.value
    assert (e.kind, e.cause) == ("tls", Cause.AUTH_FAILED) and "certificate" in e.detail and LAB_PASSWORD not in str(e)


def test_tls_certificate_for_another_name_is_refused(tls_amt, tmp_path):
    import ssl

    from tasks.adapters.wsman import WsmanTlsError

    svc, ca = tls_amt
    chain, key = ca.issue("other.contoso.com", "127.9.9.9")  # the right CA, the wrong host
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "c.key").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "c.key")
    ca._contexts["127.10.0.3"] = ctx
    with WsmanClient("127.10.0.3", svc.port, "admin", LAB_PASSWORD, scheme="https", verify=str(ca.ca_pem)) as c:
        with pytest.raises(WsmanTlsError) as info:
            c.get_general_settings()
    assert "mismatch" in info.value.detail.lower() or "doesn't match" in info.value.detail.lower() or \
        "not valid for" in info.value.detail.lower(), info.value.detail


def test_plain_client_against_tls_listener_fails_clearly(tls_amt):
    svc, _ = tls_amt
    with WsmanClient("127.10.0.3", svc.port, "admin", LAB_PASSWORD, timeout=3) as c:
        with pytest.raises(WsmanError):
            c.get_general_settings()


def test_bad_ca_bundle_path_is_bad_input(tmp_path):
    with pytest.raises(InvalidValue):
        WsmanClient("127.10.0.3", 16993, "admin", "x", scheme="https", verify=str(tmp_path / "missing.pem"))


def test_a_host_whose_amt_answers_a_fault_gets_a_next_step_about_amt_not_power_or_the_server(amt):
    """Discovery meets wsa:DestinationUnreachable (AMT does not serve the class); pass 1 then fails with a
    generic error and the cause is `unknown`. Its next step must say AMT answered, not "inspect the
    provisioning server's log" nor "check the host is on"."""
    from types import SimpleNamespace

    from tasks.rules.classify import HostFacts, classify_failure
    from tasks.steps.discover import _wsman_facts
    from tasks.steps.provision import NEXT_STEP, next_step_for

    host = SimpleNamespace(legacy_managed=True, name="WS-0142")
    ctx = SimpleNamespace(wsman_client=lambda h: client_for(amt))
    amt.fault_next = "b:DestinationUnreachable"
    ev = _wsman_facts(ctx, host)
    assert ev["wsman_error"] == "fault" and ev["wsman_cause"] == Cause.UNKNOWN
    assert "DestinationUnreachable" in ev["wsman_detail"] and "legacy_credentials" not in ev
    facts = HostFacts(amt_version="11.8.50", evidence={k: ev[k] for k in ("wsman_error", "wsman_cause", "wsman_detail")})
    c = classify_failure(facts, "contoso.com", error_code=None, message="provisioning failed")
    assert c.cause == Cause.UNKNOWN
    step = next_step_for(c.cause, c.as_evidence())
    assert "answered WS-Management with a fault" in step and "DestinationUnreachable" in step
    assert step != NEXT_STEP[Cause.UNKNOWN] and "check the host is on" not in step
    assert next_step_for(Cause.UNKNOWN, {}) == NEXT_STEP[Cause.UNKNOWN]  # nothing met: the general advice
