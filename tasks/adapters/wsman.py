"""WS-Management client for Intel AMT: read the suffixes AMT holds, write its DomainName.

AMT speaks SOAP 1.2 over HTTP on port 16992 (TLS on 16993) at ``/wsman`` with HTTP digest auth.
Message building and parsing are plain functions, so they can be tested against real AMT XML
without a network; `WsmanClient` only moves bytes. The password never appears in errors, logs or
reprs.
"""

from __future__ import annotations

import logging
import re
import ssl
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

import httpx

from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_dns_name

log = logging.getLogger("amt_migrate.wsman")

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
AMT_SCHEMA = "http://intel.com/wbem/wscim/1/amt-schema/1/"
URI_GENERAL_SETTINGS = AMT_SCHEMA + "AMT_GeneralSettings"
URI_SETUP_AND_CONFIGURATION = AMT_SCHEMA + "AMT_SetupAndConfigurationService"
ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_PUT = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
ANONYMOUS = NS_ADDRESSING + "/role/anonymous"

#: Fault subcodes that name a cause better than "unknown". A fault is an answer, so AMT was reached:
#: `wsa:DestinationUnreachable` is WS-Addressing's "no route to the destination *role*" - AMT does not
#: serve that resource URI (DSP0226 WS-Management 1.x, faultDetail InvalidResourceURI), not a host that
#: is off; it stays `unknown` (a protocol problem) rather than sending someone to check the power.
_FAULT_CAUSES = {
    "AccessDenied": Cause.AUTH_FAILED,
    "TimedOut": Cause.UNREACHABLE,
}

_INT_FIELDS = {"ProvisioningState", "ProvisioningMode", "PowerSource", "PreferredAddressFamily",
               "DHCPSyncRequiresHostname", "ThunderboltDockEnabled", "AMTNetworkEnabled",
               "PrivacyLevel", "IdleWakeTimeout", "NetworkInterfaceEnabled"}


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class WsmanError(Exception):
    """A WS-Man exchange failed. ``cause`` feeds the host state, ``kind`` says what happened."""

    default_cause = Cause.UNKNOWN
    default_kind = "protocol"

    def __init__(self, address: str, port: int, detail: str, *, kind: str | None = None,
                 cause: Cause | None = None):
        self.address, self.port, self.detail = address, port, detail
        self.kind = kind or self.default_kind
        self.cause = Cause(cause or self.default_cause)
        super().__init__(f"{address}:{port}: {detail}")


class WsmanUnreachable(WsmanError):
    default_cause = Cause.UNREACHABLE
    default_kind = "timeout"


class WsmanTlsError(WsmanError):
    """AMT's TLS certificate was refused: not issued by the inventory's CA bundle, expired, or for
    another name. Recorded as cause auth_failed with kind "tls": the host is reachable, but it could
    not prove it is the AMT we mean, so no digest credentials were sent to it."""

    default_cause = Cause.AUTH_FAILED
    default_kind = "tls"


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """Verify AMT against this CA bundle only (the enterprise CA the legacy console used), host name included."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidValue(f"CA bundle {ca_bundle}: {exc}") from None
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class WsmanAuthError(WsmanError):
    """HTTP 401 after the digest exchange: wrong user or password (or AMT locked the account)."""

    default_cause = Cause.AUTH_FAILED
    default_kind = "auth"


class WsmanFault(WsmanError):
    """AMT answered with a SOAP fault."""

    default_kind = "fault"

    def __init__(self, address: str, port: int, fault: SoapFault):
        self.fault = fault
        self.code, self.subcode, self.reason = fault.code, fault.subcode, fault.reason
        cause = _FAULT_CAUSES.get(fault.subcode, Cause.UNKNOWN)
        super().__init__(address, port, f"SOAP fault {fault.code}/{fault.subcode}: {fault.reason}",
                         cause=cause)


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


def build_envelope(action: str, resource_uri: str, body: str = "", *, to: str = "/wsman",
                   message_id: str | None = None, operation_timeout: str = "PT60S") -> str:
    """A WS-Man request envelope; ``body`` is already-serialized XML (empty for Get)."""
    message_id = message_id or f"uuid:{uuid.uuid4()}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:w="{NS_WSMAN}">'
        "<s:Header>"
        f'<a:Action s:mustUnderstand="true">{escape(action)}</a:Action>'
        f'<a:To s:mustUnderstand="true">{escape(to)}</a:To>'
        f'<w:ResourceURI s:mustUnderstand="true">{escape(resource_uri)}</w:ResourceURI>'
        f'<a:MessageID s:mustUnderstand="true">{escape(message_id)}</a:MessageID>'
        f"<a:ReplyTo><a:Address>{ANONYMOUS}</a:Address></a:ReplyTo>"
        f"<w:OperationTimeout>{escape(operation_timeout)}</w:OperationTimeout>"
        "</s:Header>"
        f"<s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )


def get_message(resource_uri: str, **kw) -> str:
    return build_envelope(ACTION_GET, resource_uri, **kw)


def instance_xml(resource_uri: str, class_name: str, values: dict[str, object]) -> str:
    """Serialize an instance for Put, in the order given (AMT checks the schema's element order,
    which is the order Get returned)."""
    parts = [f'<h:{class_name} xmlns:h="{escape(resource_uri)}">']
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            text = "true" if item is True else "false" if item is False else "" if item is None else str(item)
            parts.append(f"<h:{name}>{escape(text)}</h:{name}>")
    parts.append(f"</h:{class_name}>")
    return "".join(parts)


def put_message(resource_uri: str, class_name: str, values: dict[str, object], **kw) -> str:
    return build_envelope(ACTION_PUT, resource_uri, instance_xml(resource_uri, class_name, values), **kw)


@dataclass(frozen=True)
class SoapFault:
    code: str  # e.g. "Sender"
    subcode: str  # e.g. "AccessDenied", "DestinationUnreachable" (prefix dropped)
    reason: str
    detail: str = ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _strip_prefix(text: str | None) -> str:
    text = (text or "").strip()
    return text.split(":", 1)[1] if ":" in text and not text.startswith("http") else text


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}(?:;[^\r\n]*)?\r?\n")


def _dechunk(body: bytes) -> bytes:
    """HTTP/1.1 chunked framing (RFC 9112 7.1: hex size line, data, CRLF, ..., a 0 size line) removed. A capture
    whose CRLFs became LFs no longer matches its sizes: then the XML is what lies between the first '<' and the
    last '>'."""
    out, rest = bytearray(), body.lstrip(b"\r\n")
    while True:
        m = _CHUNK_SIZE.match(rest)
        if not m:
            break
        size = int(m.group().split(b";")[0].strip(), 16)
        if size == 0:
            return bytes(out)
        chunk = rest[m.end():m.end() + size]
        if len(chunk) < size:
            break
        out += chunk
        rest = rest[m.end() + size:].lstrip(b"\r\n")
    start, end = body.find(b"<"), body.rfind(b">")
    return body[start:end + 1] if 0 <= start < end else body


def http_body(raw: str | bytes) -> bytes:
    """The XML of a WS-Man reply however it was captured: the body alone, the body still in its chunked framing
    (AMT answers with Transfer-Encoding: chunked; RPS and rpc-go trace logs print it so: "04CE\\r\\n<?xml ..."),
    or the whole HTTP response, status line and headers included."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    text = data.lstrip()
    if text.startswith(b"HTTP/1."):
        head, sep, body = text.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = text.partition(b"\n\n")
        chunked = re.search(rb"(?im)^transfer-encoding:[ \t]*chunked", head)
        return _dechunk(body) if chunked else body
    if _CHUNK_SIZE.match(text) and b"<" in text[:12]:
        return _dechunk(text)
    return data


def parse_response(xml_text: str | bytes) -> tuple[dict[str, str], ET.Element | None, SoapFault | None]:
    """Parse a response into (header fields, first body element, fault); namespace prefixes ignored. The reply
    may come with its HTTP framing (`http_body`)."""
    try:
        root = ET.fromstring(http_body(xml_text))
    except ET.ParseError as exc:
        raise InvalidValue(f"WS-Man response is not XML: {exc}") from None
    if _local(root.tag) != "Envelope":
        raise InvalidValue(f"WS-Man response root is {_local(root.tag)}, not Envelope")
    header = {_local(c.tag): (c.text or "").strip() for c in (_child(root, "Header") or [])}
    body = _child(root, "Body")
    first = next(iter(body), None) if body is not None else None
    if first is not None and _local(first.tag) == "Fault" and _child(first, "Code") is None and \
            _child(first, "faultcode") is not None:
        # SOAP 1.1 (faultcode / faultstring / detail), as some WS-Management stacks still answer
        detail_el = _child(first, "detail")
        return header, first, SoapFault(
            code=_strip_prefix(_child(first, "faultcode").text),
            subcode="",
            reason=(_child(first, "faultstring").text or "").strip() if _child(first, "faultstring") is not None
            else "",
            detail=" ".join(t.strip() for t in detail_el.itertext() if t.strip()) if detail_el is not None else "")
    if first is not None and _local(first.tag) == "Fault":
        code_el = _child(first, "Code")
        subcode_el = _child(_child(code_el, "Subcode"), "Value")
        reason_el = _child(_child(first, "Reason"), "Text")
        detail_el = _child(first, "Detail")
        fault = SoapFault(
            code=_strip_prefix(_child(code_el, "Value").text if _child(code_el, "Value") is not None else ""),
            subcode=_strip_prefix(subcode_el.text if subcode_el is not None else ""),
            reason=(reason_el.text or "").strip() if reason_el is not None else "",
            detail=" ".join(t.strip() for t in detail_el.itertext() if t.strip()) if detail_el is not None else "",
        )
        return header, first, fault
    return header, first, None


def instance_fields(element: ET.Element) -> dict[str, object]:
    """An instance's properties by local name, in document order; repeated properties become lists.
    Values stay text (nested elements such as references become their concatenated text)."""
    out: dict[str, object] = {}
    for child in element:
        name = _local(child.tag)
        value = "".join(child.itertext()).strip() if len(child) else (child.text or "").strip()
        if name in out:
            existing = out[name]
            out[name] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            out[name] = value
    return out


def parse_instance(xml_text: str | bytes, expected_class: str | None = None) -> dict[str, object]:
    """The instance in a Get/Put response; raises `SoapFaultError` for a fault."""
    _, element, fault = parse_response(xml_text)
    if fault is not None:
        raise SoapFaultError(fault)
    if element is None:
        raise InvalidValue("WS-Man response has an empty body")
    if expected_class and _local(element.tag) != expected_class:
        raise InvalidValue(f"WS-Man response holds {_local(element.tag)}, expected {expected_class}")
    return instance_fields(element)


class SoapFaultError(Exception):
    """A fault found while parsing, before an address is known; the client re-raises it as `WsmanFault`."""

    def __init__(self, fault: SoapFault):
        self.fault = fault
        super().__init__(f"SOAP fault {fault.code}/{fault.subcode}: {fault.reason}")


def typed_setup_and_configuration(values: dict[str, object]) -> dict[str, object]:
    """AMT_SetupAndConfigurationService with integers as ints and the two suffixes normalized
    ("" when absent). A suffix that is not a DNS name is kept as AMT reported it (lower-cased)."""
    out = _with_ints(values)
    for name in ("DhcpDNSSuffix", "TrustedDNSSuffix"):
        raw = str(values.get(name) or "").strip()
        try:
            out[name] = normalize_dns_name(raw)
        except InvalidValue:
            out[name] = raw.lower()
    return out


def _with_ints(values: dict[str, object]) -> dict[str, object]:
    out = dict(values)
    for name in _INT_FIELDS & values.keys():
        try:
            out[name] = int(str(values[name]))
        except ValueError:
            pass
    for name, value in values.items():
        if value in ("true", "false"):
            out[name] = value == "true"
    return out


# --------------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------------


def _tls_failure(exc: BaseException) -> str | None:
    """The certificate check's own words when a connect failed on TLS verification, else None."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if isinstance(seen, ssl.SSLError):
            return f"TLS handshake failed ({seen.reason or seen})"
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            break
    text = str(exc)
    return text if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text else None


class WsmanClient:
    """One AMT's WS-Man endpoint. Use as a context manager, or call `close`.

    ``verify`` for TLS (16993): the path of the CA bundle that issued AMT's certificate (or an
    `ssl.SSLContext`); AMT's certificate and the name dialled are checked before any credentials go out.
    """

    def __init__(self, address: str, port: int = 16992, user: str = "admin", password: str = "", *,
                 timeout: float = 15.0, scheme: str = "http", verify=True):
        if scheme not in ("http", "https"):
            raise InvalidValue(f"WS-Man scheme must be http or https, not {scheme!r}")
        if scheme == "https" and (isinstance(verify, str) or hasattr(verify, "__fspath__")):
            verify = tls_context(verify)
        self.address, self.port, self.user, self.scheme = address, int(port), user, scheme
        host = f"[{address}]" if ":" in address else address
        self.url = f"{scheme}://{host}:{self.port}/wsman"
        self._client = httpx.Client(
            auth=httpx.DigestAuth(user, password), timeout=timeout,
            verify=verify if scheme == "https" else False,  # plain http: no TLS, and True costs ~45 ms CPU (CA bundle) per client
            headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
        )

    def __repr__(self) -> str:
        return f"WsmanClient({self.url!r}, user={self.user!r})"

    def __enter__(self) -> WsmanClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _post(self, envelope: str) -> bytes:
        try:
            response = self._client.post(self.url, content=envelope.encode())
        except httpx.ConnectTimeout:
            raise WsmanUnreachable(self.address, self.port, "connection timed out", kind="timeout") from None
        except httpx.ConnectError as exc:
            text = str(exc).lower()
            tls = _tls_failure(exc)
            if tls is not None:
                raise WsmanTlsError(self.address, self.port, f"AMT's TLS certificate was refused: {tls}") from None
            kind = "refused" if "refused" in text else "no_route" if "route" in text or "unreachable" in text \
                else "connect"
            raise WsmanUnreachable(self.address, self.port, f"cannot connect ({kind})", kind=kind) from None
        except httpx.TimeoutException:
            raise WsmanUnreachable(self.address, self.port, "no answer in time", kind="timeout") from None
        except httpx.TransportError as exc:
            raise WsmanUnreachable(self.address, self.port, f"transport error ({type(exc).__name__})",
                                   kind="network") from None
        if response.status_code == 401:
            raise WsmanAuthError(self.address, self.port, f"HTTP 401: digest authentication failed for user "
                                 f"{self.user!r}")
        content = response.content
        if response.status_code != 200:
            # AMT reports faults with 400/500 and a SOAP body; anything else is a plain HTTP error
            try:
                _, _, fault = parse_response(content)
            except InvalidValue:
                fault = None
            if fault is not None:
                raise WsmanFault(self.address, self.port, fault)
            raise WsmanError(self.address, self.port, f"HTTP {response.status_code} without a SOAP fault",
                             kind="http")
        return content

    def _instance(self, envelope: str, class_name: str) -> dict[str, object]:
        content = self._post(envelope)
        try:
            return parse_instance(content, class_name)
        except SoapFaultError as exc:
            raise WsmanFault(self.address, self.port, exc.fault) from None
        except InvalidValue as exc:
            raise WsmanError(self.address, self.port, str(exc), kind="protocol") from None

    def get(self, resource_uri: str) -> dict[str, object]:
        return self._instance(get_message(resource_uri), resource_uri.rsplit("/", 1)[-1])

    def get_general_settings(self) -> dict[str, object]:
        """AMT_GeneralSettings (HostName, DomainName, ...), values as AMT sent them."""
        return _with_ints(self.get(URI_GENERAL_SETTINGS))

    def get_setup_and_configuration(self) -> dict[str, object]:
        """AMT_SetupAndConfigurationService: ProvisioningState (0 pre, 1 in, 2 post) and
        ProvisioningMode as ints, DhcpDNSSuffix and TrustedDNSSuffix normalized."""
        return typed_setup_and_configuration(self.get(URI_SETUP_AND_CONFIGURATION))

    def put_domain_name(self, domain: str) -> dict[str, object]:
        """Set AMT_GeneralSettings.DomainName: Get the instance, change DomainName, Put it back whole
        (AMT rejects a partial instance), and return the instance AMT answers with."""
        name = normalize_dns_name(domain, allow_blank=False)
        current = self.get(URI_GENERAL_SETTINGS)
        if "DomainName" not in current:
            raise WsmanError(self.address, self.port, "AMT_GeneralSettings has no DomainName property",
                             kind="protocol")
        current["DomainName"] = name
        result = self._instance(put_message(URI_GENERAL_SETTINGS, "AMT_GeneralSettings", current),
                                "AMT_GeneralSettings")
        log.info("%s: AMT DomainName set to %s", self.address, name)
        return _with_ints(result)
