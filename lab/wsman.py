"""WS-Management over HTTP (port 16992 style): what the legacy console's admin account can reach.

One listener on 0.0.0.0 serves every device; the local address a connection arrived on names the
device. HTTP digest auth (RFC 2617, MD5, qop=auth) with the device's legacy admin credentials;
a device in pre-provisioning accepts no remote admin login, so every request there gets 401.
Envelopes and faults follow what AMT firmware sends (SOAP 1.2, WS-Addressing 2004/08).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import socket
import socketserver
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from lab.amt_rules import InvalidName, dns_name, host_name
from lab.model import Device, Fleet, LabError
from lab.sshd import classify, refuse

log = logging.getLogger("lab.wsman")

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
AMT_SCHEMA = "http://intel.com/wbem/wscim/1/amt-schema/1/"
GENERAL = AMT_SCHEMA + "AMT_GeneralSettings"
SETUP = AMT_SCHEMA + "AMT_SetupAndConfigurationService"
ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_PUT = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
WSA_FAULT = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"
WSMAN_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

NONCE_LIFETIME = 300.0

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class DigestAuthority:
    """Stateless nonces (timestamp + HMAC), so nothing grows with the number of clients."""

    def __init__(self):
        self._secret = os.urandom(32)

    def realm(self, dev: Device) -> str:
        return "Digest:" + dev.uuid.replace("-", "").upper()

    def nonce(self) -> str:
        ts = f"{time.time():.0f}"
        mac = hmac.new(self._secret, ts.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{ts}{mac}"

    def nonce_ok(self, nonce: str) -> bool:
        ts, mac = nonce[:-32], nonce[-32:]
        good = hmac.new(self._secret, ts.encode(), hashlib.sha256).hexdigest()[:32]
        try:
            fresh = time.time() - float(ts) < NONCE_LIFETIME
        except ValueError:
            return False
        return hmac.compare_digest(mac, good) and fresh

    def challenge(self, dev: Device) -> str:
        return f'Digest realm="{self.realm(dev)}", nonce="{self.nonce()}", stale="false", qop="auth"'

    def check(self, fleet: Fleet, dev: Device, header: str | None, method: str) -> bool:
        if not header or not header.lower().startswith("digest "):
            return False
        p = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
             for m in _PARAM.finditer(header[7:])}
        user = p.get("username", "")
        creds = fleet.wsman_auth_ok(dev, user)
        if creds is None or p.get("realm") != self.realm(dev) or not self.nonce_ok(p.get("nonce", "")):
            return False
        ha1 = _md5(f"{creds.user}:{p['realm']}:{creds.password}")
        ha2 = _md5(f"{method}:{p.get('uri', '')}")
        if p.get("qop"):
            expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{p['nonce']}:{ha2}")
        return hmac.compare_digest(expected, p.get("response", ""))


def _bool(v: bool) -> str:
    return "true" if v else "false"


def general_settings_xml(fleet: Fleet, dev: Device, auth: DigestAuthority) -> str:
    fqdn = f"{dev.name.lower()}.{dev.primary_suffix}" if dev.primary_suffix else dev.name.lower()
    fields = [
        ("AMTNetworkEnabled", "1"), ("DDNSPeriodicUpdateInterval", "1440"), ("DDNSTTL", "900"),
        ("DDNSUpdateByDHCPServerEnabled", "true"), ("DDNSUpdateEnabled", "false"),
        ("DHCPSyncRequiresHostname", "1"), ("DHCPv6ConfigurationTimeout", "0"),
        ("DigestRealm", auth.realm(dev)), ("DomainName", dev.domain_name),
        ("ElementName", "Intel(r) AMT: General Settings"), ("HostName", dev.host_name),
        ("HostOSFQDN", fqdn), ("IdleWakeTimeout", "65535"), ("InstanceID", "Intel(r) AMT: General Settings"),
        ("NetworkInterfaceEnabled", "true"), ("PingResponseEnabled", "true"), ("PowerSource", "0"),
        ("PreferredAddressFamily", "0"), ("PresenceNotificationInterval", "0"), ("PrivacyLevel", "0"),
        ("RmcpPingResponseEnabled", "true"), ("SharedFQDN", "true"), ("ThunderboltDockEnabled", "0"),
        ("WsmanOnlyMode", "false"),
    ]
    inner = "".join(f"<g:{k}>{escape(v)}</g:{k}>" for k, v in fields)
    return f'<g:AMT_GeneralSettings xmlns:g="{GENERAL}">{inner}</g:AMT_GeneralSettings>'


def setup_service_xml(fleet: Fleet, dev: Device) -> str:
    state = 0 if dev.state == "pre" else 2
    fields = [
        ("ConfigurationServerFQDN", ""), ("CreationClassName", "AMT_SetupAndConfigurationService"),
        ("DhcpDNSSuffix", dev.dhcp_suffix), ("ElementName", "Intel(r) AMT Setup and Configuration Service"),
        ("EnabledState", "5"), ("Name", "Intel(r) AMT Setup and Configuration Service"),
        ("PasswordModel", "1"), ("ProvisioningMode", "1"), ("ProvisioningServerOTP", ""),
        ("ProvisioningState", str(state)), ("RequestedState", "12"),
        ("SystemCreationClassName", "CIM_ComputerSystem"), ("SystemName", "Intel(r) AMT"),
        ("TrustedDNSSuffix", dev.trusted_suffix), ("ZeroTouchConfigurationEnabled", "true"),
    ]
    inner = "".join(f"<g:{k}>{escape(v)}</g:{k}>" for k, v in fields)
    return f'<g:AMT_SetupAndConfigurationService xmlns:g="{SETUP}">{inner}</g:AMT_SetupAndConfigurationService>'


def envelope(action: str, relates_to: str, body: str, resource_uri: str | None = None) -> str:
    ru = f"<c:ResourceURI>{escape(resource_uri)}</c:ResourceURI>" if resource_uri else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<a:Envelope xmlns:a="{NS_SOAP}" xmlns:b="{NS_WSA}" xmlns:c="{NS_WSMAN}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<a:Header><b:To>{ANONYMOUS}</b:To><b:RelatesTo>{escape(relates_to)}</b:RelatesTo>"
        f'<b:Action a:mustUnderstand="true">{escape(action)}</b:Action>'
        f"<b:MessageID>uuid:{uuidlib.uuid4()}</b:MessageID>{ru}</a:Header>"
        f"<a:Body>{body}</a:Body></a:Envelope>"
    )


class SoapFault(Exception):
    """A WS-Management fault: (HTTP status, code, subcode, reason, fault action)."""

    def __init__(self, status: int, code: str, subcode: str, reason: str, action: str = WSMAN_FAULT,
                 detail: str = ""):
        super().__init__(reason)
        self.status, self.code, self.subcode, self.reason, self.action, self.detail = (
            status, code, subcode, reason, action, detail)

    def xml(self, relates_to: str) -> str:
        detail = f"<a:Detail>{self.detail}</a:Detail>" if self.detail else ""
        body = (f"<a:Fault><a:Code><a:Value>a:{self.code}</a:Value><a:Subcode><a:Value>{self.subcode}</a:Value>"
                f'</a:Subcode></a:Code><a:Reason><a:Text xml:lang="en-US">{escape(self.reason)}</a:Text>'
                f"</a:Reason>{detail}</a:Fault>")
        return envelope(self.action, relates_to, body)


def destination_unreachable(uri: str) -> SoapFault:
    return SoapFault(400, "Sender", "b:DestinationUnreachable",
                     "No route can be determined to reach the destination role defined by the WS-Addressing To.",
                     WSA_FAULT, "<c:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
                                "InvalidResourceURI</c:FaultDetail>")


def action_not_supported(action: str) -> SoapFault:
    return SoapFault(400, "Sender", "b:ActionNotSupported",
                     "The action is not supported by the service.", WSA_FAULT,
                     f"<b:Action>{escape(action)}</b:Action>")


def invalid_representation(why: str) -> SoapFault:
    return SoapFault(400, "Sender", "c:InvalidRepresentation",
                     f"The XML content is invalid or is not a valid representation of the resource: {why}",
                     WSMAN_FAULT, "<c:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
                                  "InvalidValues</c:FaultDetail>")


def access_denied(why: str) -> SoapFault:
    return SoapFault(400, "Sender", "c:AccessDenied",
                     f"The sender was not authorized to access the resource. {why}".strip(), WSMAN_FAULT)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def handle_soap(fleet: Fleet, dev: Device, auth: DigestAuthority, body: bytes) -> tuple[int, str]:
    """Dispatch one authenticated SOAP request; returns (HTTP status, response envelope)."""
    relates = ""
    try:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise SoapFault(400, "Sender", "c:SchemaValidationError",
                            f"The supplied SOAP message is not well-formed XML: {exc}", WSMAN_FAULT)
        if _local(root.tag) != "Envelope":
            raise SoapFault(400, "Sender", "c:SchemaValidationError", "The message is not a SOAP envelope.")
        header = next((c for c in root if _local(c.tag) == "Header"), None)
        sbody = next((c for c in root if _local(c.tag) == "Body"), None)
        h = {}
        for el in header if header is not None else []:
            h[_local(el.tag)] = (el.text or "").strip()
        relates = h.get("MessageID", "")
        action, resource = h.get("Action", ""), h.get("ResourceURI", "")
        if not action or not h.get("To") or not relates:
            raise SoapFault(400, "Sender", "b:MessageInformationHeaderRequired",
                            "A required header representing a Message Addressing Property is not present",
                            WSA_FAULT)
        if resource not in (GENERAL, SETUP):
            raise destination_unreachable(resource)
        if action == ACTION_GET:
            with fleet._lock:
                fleet.tick()
                inst = general_settings_xml(fleet, dev, auth) if resource == GENERAL else setup_service_xml(fleet, dev)
            return 200, envelope(ACTION_GET + "Response", relates, inst, resource)
        if action == ACTION_PUT and resource == GENERAL:
            inst = next((c for c in (sbody if sbody is not None else []) if _local(c.tag) == "AMT_GeneralSettings"), None)
            if inst is None:
                raise invalid_representation("the body holds no AMT_GeneralSettings instance")
            values = {_local(c.tag): (c.text or "").strip() for c in inst}
            if "DomainName" not in values:
                raise invalid_representation("DomainName is missing from the instance")
            try:
                domain = dns_name(values["DomainName"])
                host = values.get("HostName")
                if host:
                    host_name(host)
            except InvalidName as exc:
                raise invalid_representation(str(exc))
            try:
                fleet.wsman_set_domain_name(dev.name, domain, host_name=host or None)
            except LabError as exc:
                raise access_denied(str(exc))
            with fleet._lock:
                out = general_settings_xml(fleet, dev, auth)
            return 200, envelope(ACTION_PUT + "Response", relates, out, resource)
        raise action_not_supported(action)
    except SoapFault as f:
        return f.status, f.xml(relates)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_WsmanHTTPServer"

    def log_message(self, fmt, *args):  # keep test output clean; nothing secret is logged anyway
        log.debug("%s %s", self.address_string(), fmt % args)

    def version_string(self) -> str:
        return getattr(self, "_server_header", "Intel(R) Active Management Technology")

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _device(self) -> Device | None:
        return self.server.fleet.by_address.get(self.connection.getsockname()[0])

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        dev = self._device()
        if dev is None:
            self.close_connection = True
            return
        fleet, svc = self.server.fleet, self.server.service
        self._server_header = f"Intel(R) Active Management Technology {dev.amt_version}"
        delay = fleet.latency_for(dev, "wsman") + dev.faults.slow
        if dev.faults.hung:
            svc._stop.wait()
            self.close_connection = True
            return
        if delay and svc._stop.wait(delay):
            return
        if self.path != "/wsman":
            self._send(404, b"<HTML><BODY>404 Not Found</BODY></HTML>", "text/html")
            return
        if not svc.auth.check(fleet, dev, self.headers.get("Authorization"), "POST"):
            page = (b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"><html><head>"
                    b"<title>Intel&reg; Active Management Technology</title></head><body>"
                    b"<h2>Log on failed. Incorrect user name or password, or user account temporarily locked."
                    b"</h2></body></html>")
            self._send(401, page, "text/html", {"WWW-Authenticate": svc.auth.challenge(dev)})
            return
        status, xml = handle_soap(fleet, dev, svc.auth, body)
        self._send(status, xml.encode(), "application/soap+xml; charset=UTF-8")

    def do_GET(self):
        dev = self._device()
        if dev is None:
            self.close_connection = True
            return
        self._server_header = f"Intel(R) Active Management Technology {dev.amt_version}"
        self._send(405 if self.path == "/wsman" else 404, b"", "text/html")


class _WsmanHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (slow, and pointless on 0.0.0.0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # a client refusing the device's certificate ends the handshake: expected, not a traceback
        import ssl
        import sys

        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            log.debug("TLS connection from %s ended: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)

    def process_request(self, request, client_address):
        verdict, _ = classify(self.fleet, request, client_address)
        if verdict not in ("refuse", "blackhole") and self.service.tls is not None:
            dev = self.fleet.by_address.get(request.getsockname()[0])
            if dev is None:
                refuse(request)
                return
            # the handshake runs on the handler's thread (first read), never on the accept loop
            ctx = self.service.tls.server_context(self.service.fqdn_of(dev), dev.address)
            request = ctx.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        if verdict == "refuse":
            refuse(request)
        elif verdict == "blackhole":
            with self.service._lock:
                self.service._parked.append(request)
        else:
            super().process_request(request, client_address)


class WsmanService:
    """WS-Man for the fleet; with ``tls`` (a `lab.tls.LabCA`) it serves HTTPS as AMT does on 16993,
    each device presenting a certificate for its own name and address issued by that CA."""

    def __init__(self, fleet: Fleet, port: int = 0, host: str = "0.0.0.0", tls=None):
        self.fleet = fleet
        self.tls = tls
        self.auth = DigestAuthority()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._parked: list[socket.socket] = []
        self.httpd = _WsmanHTTPServer((host, port), _Handler)
        self.httpd.fleet, self.httpd.service = fleet, self
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="lab-wsman", daemon=True)

    def fqdn_of(self, dev: Device) -> str:
        suffix = getattr(dev, "primary_suffix", "") or getattr(dev, "os_suffix", "")
        return f"{dev.name.lower()}.{suffix}" if suffix else dev.name.lower()

    def start(self) -> "WsmanService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            for s in self._parked:
                refuse(s)
            self._parked.clear()
        self._thread.join(timeout=5)
