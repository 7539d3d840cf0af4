"""A certificate authority of the lab's own, standing in for the enterprise CA a legacy console used.

ConfigMgr 2007 SP1+ out-of-band management requests "a Web server certificate for each AMT computer it
provisions" from a Microsoft enterprise CA (Microsoft TechNet cc431417; /work/research/legacy.md §1.5),
and AMT then serves WS-Management over TLS on 16993 (Ylianst/MeshCentral amtmanager.js: TLS on 16993,
plain on 16992). The lab issues each device its own server certificate (CN = the device's FQDN, SAN =
its FQDN and its address) on first contact, picked by the local address the connection arrived on.
EC P-256 keys keep issuing cheap for a large fleet. Nothing here imports the product (tasks/, flows/).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "amt-migrate lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class LabCA:
    """Issues server certificates; `ca_pem` is what an inventory's ca_bundle names."""

    def __init__(self, common_name: str = "amt-migrate lab enterprise CA", workdir: Path | None = None):
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="lab-ca-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_pem = self._dir / "lab-ca.pem"
        self.ca_pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def issue(self, fqdn: str, address: str) -> tuple[bytes, bytes]:
        """(certificate PEM with the CA appended, key PEM) for one device."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        sans: list[x509.GeneralName] = [x509.DNSName(fqdn)]
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            sans.append(x509.DNSName(address))
        cert = (x509.CertificateBuilder().subject_name(_name(fqdn)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=825))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                # "Web server (modified)" template: Server Authentication and Intel's AMT OID (legacy.md §1.5)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.ObjectIdentifier("2.16.840.1.113741.1.2.3")]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        return chain, _pem_key(key)

    def server_context(self, fqdn: str, address: str) -> ssl.SSLContext:
        """The TLS server context for one device, issued once."""
        with self._lock:
            ctx = self._contexts.get(address)
            if ctx is None:
                chain, key = self.issue(fqdn, address)
                cert_file, key_file = self._dir / f"{address}.pem", self._dir / f"{address}.key"
                cert_file.write_bytes(chain)
                key_file.write_bytes(key)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(cert_file, key_file)
                self._contexts[address] = ctx
            return ctx
