"""AMT's WS-Man replies as they reach a reader in the wild (red-team round; tests/fixtures/wsman/SOURCES.md):
a whole HTTP response with AMT's chunked framing, a body still in its chunk framing after a paste turned CRLF
into LF, a SOAP 1.1 fault, and the same chunked fault over a real socket behind AMT's digest challenge."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tasks.adapters.wsman import (URI_GENERAL_SETTINGS, WsmanClient, WsmanFault, http_body, parse_instance,
                                  parse_response, typed_setup_and_configuration)
from tasks.rules.host_state import Cause

FIX = Path(__file__).parent / "fixtures" / "wsman"


def raw(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_a_whole_http_response_with_chunked_framing_is_read_to_its_fault():
    header, _, fault = parse_response(raw("amt16_http500_destination_unreachable_chunked_constructed.http"))
    assert fault is not None and (fault.code, fault.subcode) == ("Sender", "DestinationUnreachable")
    assert fault.reason.startswith("No route can be determined")
    assert header["RelatesTo"] == "14"


def test_a_body_still_in_its_chunk_framing_with_lf_line_ends_is_read():
    text = raw("amt_setup_and_configuration_chunk_framed_lf_constructed.txt")
    values = typed_setup_and_configuration(parse_instance(text, "AMT_SetupAndConfigurationService"))
    assert values["ProvisioningState"] == 0 and values["ProvisioningMode"] == 4
    assert values["DhcpDNSSuffix"] == "sales.contoso.com" and values["TrustedDNSSuffix"] == "contoso.com"
    assert values["ZeroTouchConfigurationEnabled"] is True


def test_the_same_body_with_exact_crlf_chunks_and_a_bare_body_read_alike():
    body = http_body(raw("amt_setup_and_configuration_chunk_framed_lf_constructed.txt"))
    assert body.startswith(b"<?xml") and body.endswith(b"</a:Envelope>")
    framed = b"%X\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    assert http_body(framed) == body and http_body(body) == body
    two_chunks = b"%X\r\n" % 100 + body[:100] + b"\r\n" + b"%X\r\n" % (len(body) - 100) + body[100:] + b"\r\n0\r\n\r\n"
    assert http_body(two_chunks) == body


def test_a_soap_1_1_fault_is_a_fault_not_an_empty_one():
    _, _, fault = parse_response(raw("soap11_fault_constructed.xml"))
    assert fault is not None and fault.code == "Client"
    assert fault.reason == "The action is not supported by the service."
    assert fault.detail.endswith("faultDetail/ActionMismatch")


class _RawAmt:
    """A socket that answers like AMT: 401 with its digest challenge, then the captured bytes as they are."""

    CHALLENGE = (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"Digest:A3829B3827DE4D33D4449B366831FD01\", "
                 b"nonce=\"ywg2hLkBAAAAAAAA/4qjAb3LP8IDjzCU\",stale=\"false\",qop=\"auth\"\r\n"
                 b"Content-Type: text/html\r\nServer: Intel(R) Active Management Technology 16.1.25.2124\r\n"
                 b"Content-Length: 0\r\n\r\n")

    def __init__(self, reply: bytes):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while True:
                    request = self._read(conn)
                    if request is None:
                        break
                    authorized = b"\r\nauthorization: digest " in request.lower()
                    conn.sendall(self.reply if authorized else self.CHALLENGE)

    @staticmethod
    def _read(conn) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head

    def close(self):
        self.sock.close()


def test_a_chunked_fault_behind_amt_s_digest_challenge_over_a_real_socket():
    server = _RawAmt(raw("amt16_http500_destination_unreachable_chunked_constructed.http"))
    try:
        with WsmanClient("127.0.0.1", server.port, "admin", "P@ssw0rd", timeout=5) as client:
            with pytest.raises(WsmanFault) as err:
                client.get(URI_GENERAL_SETTINGS)
    finally:
        server.close()
    assert err.value.subcode == "DestinationUnreachable" and err.value.cause == Cause.UNKNOWN
    assert "P@ssw0rd" not in str(err.value)
