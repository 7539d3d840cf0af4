"""The served lab over real protocols: paramiko against the SSH server (host keys checked against the
known_hosts file the lab wrote), httpx against WS-Management and the provisioning server."""

from __future__ import annotations

import json
import random
import socket
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import httpx
import paramiko
import pytest
import yaml

from lab.clock import ManualClock
from lab.generate import _keypair, generate_fleet
from lab.model import GENERIC_FAILURE
from lab.server import LabServer

pytest.register_assert_rewrite("tests.lab_fixtures")
from tests.lab_fixtures import BASE_FLEET, ssh_connect, ssh_run, wsman_envelope  # noqa: E402

pytest_plugins = ["tests.lab_fixtures"]

GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
PUT = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
GS = "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"
SCS = "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService"
PASSWORD = "Lab-Pw-1!"
LEGACY = {"user": "admin", "password": PASSWORD}


def _d(name, address, **kw):
    d = {"name": name, "address": address, "os": "windows", "amt_version": "11.8.50", "state": "pre",
         "trusted_suffix": "", "dhcp_suffix": "", "domain_name": "", "os_suffix": "contoso.com",
         "interface_open": False, "legacy": None, "faults": []}
    d.update(kw)
    return d


DEVICES = [
    _d("WIN-PRE", "127.10.0.1", dhcp_suffix="fabrikam.com", os_suffix="fabrikam.com", primary_suffix="sales.contoso.com"),
    _d("LX-PRE", "127.10.0.2", os="linux", primary_suffix="eng.contoso.com"),
    _d("WIN-LEG", "127.10.0.3", state="legacy", legacy=LEGACY, domain_name="fabrikam.com", host_name="WIN-LEG",
       dhcp_suffix="contoso.com"),
    _d("LX-LEG", "127.10.0.4", os="linux", state="legacy", legacy=LEGACY, domain_name="sales.contoso.com"),
    _d("DOWN", "127.10.0.5", faults=["down"]),
    _d("HOLE", "127.10.0.6", faults=["blackhole"]),
    _d("AUTH", "127.10.0.7", faults=["ssh_auth"]),
    _d("SLOW", "127.10.0.8", faults=[{"slow": "300ms"}]),
    _d("HUNG", "127.10.0.9", faults=["hung"]),
    _d("BUSY", "127.10.0.10", faults=[{"server_5xx": 1.0}], dhcp_suffix="contoso.com"),
    _d("OLD", "127.11.0.1", amt_version="3.0.1", dhcp_suffix="contoso.com"),
]


@pytest.fixture(scope="module")
def proto_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("proto")
    _keypair(out)
    data = dict(BASE_FLEET, devices=DEVICES, ssh={"authorized_keys": "keys/id_ed25519.pub"})
    (out / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.fixture
def plab(proto_dir, tmp_path):
    with LabServer(proto_dir / "fleet.yaml", known_hosts=tmp_path / "known_hosts", clock=ManualClock()) as lab:
        yield lab


def admin(lab, name):
    return httpx.get(f"{lab.http_url}/admin/devices/{name}").json()


# ---------------------------------------------------------------- SSH
def test_known_hosts_written_for_every_device_and_stable_across_restarts(proto_dir, tmp_path):
    paths = []
    for i in range(2):
        with LabServer(proto_dir / "fleet.yaml", ssh_port=0, known_hosts=tmp_path / f"kh{i}") as lab:
            port = lab.ssh_port
            paths.append(lab.known_hosts_path.read_text())
    lines = paths[0].splitlines()
    assert len(lines) == len(DEVICES)
    assert lines[0].startswith("[127.10.0.1]:") and " ssh-ed25519 AAAA" in lines[0]
    keys = [[ln.split()[1:] for ln in p.splitlines()] for p in paths]
    assert keys[0] == keys[1]                                   # same key per device, port aside
    assert len({tuple(k) for k in keys[0]}) == len(DEVICES)     # and a different key per device
    assert port


def test_host_key_is_verified_against_known_hosts(plab, tmp_path):
    status, out, _ = ssh_run(plab, "WIN-PRE", "hostname")
    assert (status, out.strip()) == (0, "WIN-PRE")
    # the key of another device must be rejected for this address
    other = plab.known_hosts_path.read_text().splitlines()[1].split()
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.10.0.1]:{plab.ssh_port}", other[1],
                               paramiko.PKey.from_type_string(other[1], __import__("base64").b64decode(other[2])))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect("127.10.0.1", port=plab.ssh_port, username="x", pkey=paramiko.Ed25519Key.from_private_key_file(
            str(plab.private_key_path)), look_for_keys=False, allow_agent=False, timeout=5)
    client.close()


def test_only_the_authorized_key_logs_in(plab):
    stranger = paramiko.Ed25519Key.from_private_key_file(str(plab.private_key_path))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    import io
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                     serialization.NoEncryption()).decode()
    stranger = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(plab, "127.10.0.1", pkey=stranger)
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(plab, "127.10.0.7")  # ssh_auth fault: even the right key is refused
    assert ssh_run(plab, "WIN-PRE", "echo hi", user="anyone")[1] == "hi\n"


def test_windows_ipconfig_all_format(plab):
    status, out, _ = ssh_run(plab, "WIN-PRE", "ipconfig /all")
    assert status == 0
    lines = out.split("\r\n")
    assert "Windows IP Configuration" in lines
    assert "   Primary Dns Suffix  . . . . . . . : sales.contoso.com" in lines
    assert "Ethernet adapter Ethernet:" in lines
    assert "   Connection-specific DNS Suffix  . : fabrikam.com" in lines
    assert "   IPv4 Address. . . . . . . . . . . : 127.10.0.1(Preferred)" in lines
    assert "   DHCP Enabled. . . . . . . . . . . : Yes" in lines
    assert any(ln.startswith("   Lease Obtained. . . . . . . . . . : ") for ln in lines)
    assert any(ln.startswith("   Lease Expires . . . . . . . . . . : ") for ln in lines)
    # case-insensitive like cmd.exe
    assert ssh_run(plab, "WIN-PRE", "IPCONFIG /ALL")[1] == out


def test_ipconfig_renew_updates_os_and_amt_only_inside_window(plab):
    status, out, _ = ssh_run(plab, "WIN-PRE", "ipconfig /renew")
    assert status == 0 and "   Connection-specific DNS Suffix  . : contoso.com" in out.split("\r\n")
    a = admin(plab, "WIN-PRE")
    assert (a["os_suffix"], a["dhcp_suffix"], a["primary_suffix"]) == ("contoso.com", "fabrikam.com", "sales.contoso.com")
    r = httpx.post(f"{plab.http_url}/api/v1/provision", json={"host": "WIN-PRE", "profile": "p"}).json()
    assert r["result"] == "failed"
    assert ssh_run(plab, "WIN-PRE", "ipconfig /renew")[0] == 0     # window open now
    assert admin(plab, "WIN-PRE")["dhcp_suffix"] == "contoso.com"
    assert ssh_run(plab, "WIN-PRE", "ipconfig /flushallthings")[0] == 1


def test_linux_dhclient_resolv_conf_hostname(plab):
    assert ssh_run(plab, "LX-PRE", "dhclient eth0")[0] == 1          # needs root
    status, out, err = ssh_run(plab, "LX-PRE", "sudo -n dhclient -r eth0 && sudo -n dhclient -v eth0")
    assert status == 0 and "DHCPACK of 127.10.0.2" in err and "bound to 127.10.0.2" in err
    assert ssh_run(plab, "LX-PRE", "cat /etc/resolv.conf")[1].splitlines()[1:3] == ["domain contoso.com",
                                                                                    "search contoso.com"]
    assert ssh_run(plab, "LX-PRE", "hostname -f")[1] == "lx-pre.eng.contoso.com\n"
    assert ssh_run(plab, "LX-PRE", "hostname -d")[1] == "eng.contoso.com\n"
    assert ssh_run(plab, "LX-PRE", "cat /etc/shadow")[0] == 1
    assert ssh_run(plab, "LX-PRE", "sudo -n dhclient ens3")[0] == 1
    assert ssh_run(plab, "LX-PRE", "ipconfig /all")[0] == 127


def test_rpc_amtinfo_shows_trusted_suffix_only(plab):
    status, out, _ = ssh_run(plab, "WIN-PRE", "rpc amtinfo --json")
    info = json.loads(out)
    assert status == 0
    # rpc-go 2.x: a Go map marshalled in key order, no provisioningState (research/rpc.md 1.3)
    assert list(info) == sorted(info) and "provisioningState" not in info
    assert set(info) >= {"amt", "buildNumber", "sku", "features", "uuid", "controlMode", "dnsSuffix",
                         "dnsSuffixOS", "hostnameOS", "ras", "wiredAdapter", "wirelessAdapter"}
    assert list(info["wiredAdapter"]) == ["isEnable", "linkStatus", "dhcpEnabled", "dhcpMode", "ipAddress",
                                          "osIpAddress", "macAddress"]
    assert info["dnsSuffix"] == ""                 # AMT's DHCP suffix (fabrikam.com) is never shown here
    assert info["dnsSuffixOS"] == "fabrikam.com" and info["controlMode"] == "pre-provisioning state"
    assert "DhcpDNSSuffix" not in out and "fabrikam.com" not in json.dumps(info["wiredAdapter"])
    text = ssh_run(plab, "WIN-LEG", "rpc amtinfo")[1]
    assert "Control Mode\t\t: activated in admin control mode\n" in text and "OS  IP Address\t\t: " in text
    rows = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln and not ln.startswith("---"))
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["Control Mode"] == "activated in admin control mode" and rows["Version"] == "11.8.50"
    assert {"DNS Suffix", "DNS Suffix (OS)", "AMT IP Address"} <= set(rows)
    # rpc-go 3.x (beta.4+): struct order, omitempty (no dnsSuffix when blank), its own vocabulary
    httpx.post(f"{plab.http_url}/admin/rpc", json={"version": 3})
    info3 = json.loads(ssh_run(plab, "WIN-PRE", "rpc amtinfo --json")[1])
    assert "dnsSuffix" not in info3 and info3["controlMode"] == "not activated"
    assert info3["provisioningState"] == "pre-provisioning" and info3["heciAvailable"] is True
    assert list(info3)[:6] == ["amt", "buildNumber", "sku", "features", "uuid", "controlMode"]


def test_rpc_activate_follows_rpc_go_2_and_3(plab):
    url = "wss://prov.contoso.com/activate"
    # 2.x, OS suffix fabrikam.com reported: RPS refuses it, logged on stderr, nothing on stdout, exit 0
    status, out, err = ssh_run(plab, "WIN-PRE", f"rpc activate -u {url} -profile acm -json")
    lines = [json.loads(ln) for ln in err.splitlines()]
    assert status == 0 and out == "" and lines[-1]["level"] == "error"
    assert lines[-1]["msg"].endswith("Specified AMT domain suffix: fabrikam.com does not match list of available "
                                     "AMT domain suffixes.")
    assert admin(plab, "WIN-PRE")["provision_attempts"] == 0  # RPS refused before touching AMT
    # LX-PRE reports its OS suffix contoso.com: RPS accepts, AMT (blank) refuses; the message stays generic
    status, out, err = ssh_run(plab, "LX-PRE", f"rpc activate -u {url} --profile acm")
    assert status == 0 and out == "" and 'level=error msg="Failed to activate in admin control mode."' in err
    assert admin(plab, "LX-PRE")["true_last_failure"]["cause"] == "suffix_blank"
    # 3.x for one device: exit 10 and the wrapped error; single-dash long flags are refused
    httpx.post(f"{plab.http_url}/admin/rpc", json={"version": 3, "device": "LX-PRE"})
    status, out, err = ssh_run(plab, "LX-PRE", f"rpc activate -u {url} --profile acm --json")
    assert status == 10 and "rps returned error: Failed to activate in admin control mode." in err
    assert ssh_run(plab, "LX-PRE", f"rpc activate -u {url} -profile acm")[0] == 28
    ssh_run(plab, "LX-PRE", "sudo dhclient -r eth0; sudo dhclient eth0")  # window open after the attempt
    httpx.post(f"{plab.http_url}/admin/devices/LX-PRE/mebx", json={"trusted_suffix": "contoso.com"})
    status, out, _ = ssh_run(plab, "LX-PRE", f"rpc activate -u {url} --profile acm --json")
    assert status == 0 and json.loads(out)["status"] == "success"
    assert admin(plab, "LX-PRE")["state"] == "provisioned"
    assert json.loads(ssh_run(plab, "LX-PRE", "rpc amtinfo --json")[1])["controlMode"] == "admin control mode"
    assert ssh_run(plab, "BUSY", f"rpc activate -u {url} -profile acm -json")[0] == 10  # dial error: 10 in 2.x too
    assert ssh_run(plab, "WIN-PRE", "rpc activate -profile acm -json")[0] == 20
    assert ssh_run(plab, "WIN-PRE", f"rpc activate -u {url} -profile acm --bogus")[0] == 28


def test_rps_and_mps_rest(plab):
    base = plab.http_url
    assert httpx.post(f"{base}/mps/login/api/v1/authorize", json={"username": "admin", "password": "x"}).status_code == 401
    assert httpx.post(f"{base}/mps/login/api/v1/authorize", json={"username": "admin"}).status_code == 400
    assert httpx.get(f"{base}/rps/api/v1/admin/domains").status_code == 401
    token = httpx.post(f"{base}/mps/login/api/v1/authorize",
                       json={"username": "Admin", "password": "lab-Pa55w0rd"}).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    domains = httpx.get(f"{base}/rps/api/v1/admin/domains", headers=h).json()
    assert isinstance(domains, list) and domains[0]["domainSuffix"] == "contoso.com" and "expirationDate" in domains[0]
    counted = httpx.get(f"{base}/rps/api/v1/admin/domains", params={"$count": "true"}, headers=h).json()
    assert counted["totalCount"] == len(counted["data"]) >= 1
    uuid = admin(plab, "LX-PRE")["uuid"]
    r = httpx.get(f"{base}/mps/api/v1/devices/{uuid}", headers=h)
    assert r.status_code == 404 and r.content == b""
    assert httpx.get(f"{base}/mps/api/v1/devices/not-a-uuid", headers=h).status_code == 400
    httpx.post(f"{base}/admin/devices/LX-PRE/mebx", json={"trusted_suffix": "contoso.com"})
    assert ssh_run(plab, "LX-PRE", "rpc activate -u wss://prov.contoso.com/activate --profile acm")[0] == 0
    rec = httpx.get(f"{base}/mps/api/v1/devices/{uuid}", headers=h).json()
    assert rec["guid"] == uuid and rec["hostname"] == "LX-PRE"  # the lab's RPS registered what it activated


def test_host_interface_suffix_write(plab):
    status, out, _ = ssh_run(plab, "WIN-PRE", "amt-hi set-dns-suffix contoso.com --json")
    assert status == 0 and json.loads(out) == {"status": "success", "dnsSuffix": "contoso.com"}
    assert json.loads(ssh_run(plab, "WIN-PRE", "amt-hi get-dns-suffix --json")[1]) == {
        "trustedDnsSuffix": "contoso.com", "dhcpDnsSuffix": "fabrikam.com"}
    status, out, _ = ssh_run(plab, "WIN-LEG", "amt-hi set-dns-suffix contoso.com --json")
    assert status == 1 and json.loads(out)["status"] == "failed"
    assert admin(plab, "WIN-LEG")["trusted_suffix"] == ""
    assert ssh_run(plab, "WIN-PRE", "amt-hi set-dns-suffix 'a;b' --json")[0] == 1


def test_shell_parsing_never_evaluates(plab):
    status, _, err = ssh_run(plab, "WIN-PRE", "nosuch --flag")
    assert status == 127 and err == "bash: nosuch: command not found\n"
    assert ssh_run(plab, "WIN-PRE", "echo $(id)")[0] == 2
    assert ssh_run(plab, "WIN-PRE", "hostname | tee /tmp/x")[0] == 2
    status, out, err = ssh_run(plab, "WIN-PRE", "echo a; rm -rf /; echo b")
    assert (status, out, err) == (0, "a\nb\n", "bash: rm: command not found\n")
    assert ssh_run(plab, "WIN-PRE", "false && echo no")[1] == ""
    assert ssh_run(plab, "WIN-PRE", "echo 'a && b'")[1] == "a && b\n"


def test_down_blackhole_slow_hung(plab):
    with pytest.raises((paramiko.SSHException, ConnectionError, EOFError, OSError)):
        ssh_connect(plab, "127.10.0.5", timeout=2)
    s = socket.create_connection(("127.10.0.6", plab.ssh_port), timeout=1)
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(10)                       # black hole: accepted, never a banner
    s.close()
    t = time.monotonic()
    assert ssh_run(plab, "SLOW", "echo x")[1] == "x\n"
    assert time.monotonic() - t >= 0.3
    client = ssh_connect(plab, "127.10.0.9")
    try:
        _, out, _ = client.exec_command("hostname", timeout=0.5)
        with pytest.raises(socket.timeout):
            out.read()
    finally:
        client.close()


# ---------------------------------------------------------------- WS-Management
def wsman(lab, address, body, user="admin", password=PASSWORD):
    return httpx.post(f"http://{address}:{lab.amt_port}/wsman", content=body,
                      headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
                      auth=httpx.DigestAuth(user, password), timeout=5)


def field(xml_text, name):
    root = ET.fromstring(xml_text)
    return next(el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == name)


def test_wsman_get_both_classes(plab):
    r = wsman(plab, "127.10.0.3", wsman_envelope(GET, GS, message_id="uuid:42"))
    assert r.status_code == 200 and "<g:AMT_GeneralSettings" in r.text
    assert field(r.text, "DomainName") == "fabrikam.com" and field(r.text, "HostName") == "WIN-LEG"
    assert field(r.text, "RelatesTo") == "uuid:42"
    assert field(r.text, "Action") == GET + "Response"
    r = wsman(plab, "127.10.0.3", wsman_envelope(GET, SCS))
    assert (field(r.text, "ProvisioningState"), field(r.text, "DhcpDNSSuffix"), field(r.text, "TrustedDNSSuffix")) == (
        "2", "contoso.com", "")


def test_wsman_put_domain_name_then_provision(plab):
    got = wsman(plab, "127.10.0.3", wsman_envelope(GET, GS)).text
    inst = got[got.index("<g:AMT_GeneralSettings"):got.index("</g:AMT_GeneralSettings>") + len("</g:AMT_GeneralSettings>")]
    inst = inst.replace("<g:DomainName>fabrikam.com</g:DomainName>", "<g:DomainName>Sales.Contoso.com</g:DomainName>")
    r = wsman(plab, "127.10.0.3", wsman_envelope(PUT, GS, inst))
    assert r.status_code == 200 and field(r.text, "DomainName") == "sales.contoso.com"
    assert field(r.text, "Action") == PUT + "Response"
    assert admin(plab, "WIN-LEG")["domain_name"] == "sales.contoso.com"
    assert httpx.post(f"{plab.http_url}/api/v1/provision", json={"host": "WIN-LEG"}).json()["result"] == "success"
    # after the new server took over, the legacy credentials stop working
    assert wsman(plab, "127.10.0.3", wsman_envelope(GET, GS)).status_code == 401


def test_wsman_auth_failures(plab):
    r = wsman(plab, "127.10.0.3", wsman_envelope(GET, GS), password="wrong")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Digest realm=\"Digest:")
    assert 'qop="auth"' in r.headers["WWW-Authenticate"]
    assert wsman(plab, "127.10.0.1", wsman_envelope(GET, GS)).status_code == 401   # pre: no remote admin
    assert httpx.post(f"http://127.10.0.3:{plab.amt_port}/wsman", content="x").status_code == 401


def test_wsman_faults(plab):
    r = wsman(plab, "127.10.0.3", wsman_envelope(GET, "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_Nope"))
    assert r.status_code == 400 and field(r.text, "Value") == "a:Sender" and "DestinationUnreachable" in r.text
    r = wsman(plab, "127.10.0.3", wsman_envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete", GS))
    assert r.status_code == 400 and "b:ActionNotSupported" in r.text
    r = wsman(plab, "127.10.0.3", wsman_envelope(PUT, SCS, "<x/>"))
    assert r.status_code == 400 and "ActionNotSupported" in r.text
    bad = '<g:AMT_GeneralSettings xmlns:g="%s"><g:DomainName>evil;rm -rf</g:DomainName></g:AMT_GeneralSettings>' % GS
    r = wsman(plab, "127.10.0.3", wsman_envelope(PUT, GS, bad))
    assert r.status_code == 400 and "InvalidRepresentation" in r.text
    assert admin(plab, "WIN-LEG")["domain_name"] == "fabrikam.com"
    assert wsman(plab, "127.10.0.3", "<not xml").status_code == 400


def test_wsman_down_and_blackhole(plab):
    with pytest.raises(httpx.TransportError):
        wsman(plab, "127.10.0.5", wsman_envelope(GET, GS))
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"http://127.10.0.6:{plab.amt_port}/wsman", content="x", timeout=0.5)


# ---------------------------------------------------------------- provisioning server + admin
def test_provision_api_and_attempts(plab):
    url = plab.http_url
    r = httpx.post(f"{url}/api/v1/provision", json={"address": "127.11.0.1", "profile": "acm"})
    body = r.json()
    assert r.status_code == 200 and body["host"] == "OLD" and body["attempt"] == 1
    assert (body["result"], body["error_code"], body["message"]) == ("failed", "internal_error", GENERIC_FAILURE)
    attempts = httpx.get(f"{url}/api/v1/attempts", params={"host": "OLD"}).json()
    assert [a["attempt"] for a in attempts] == [1] and "true_reason" not in attempts[0]
    view = admin(plab, "OLD")
    assert view["true_last_failure"]["cause"] == "unsupported_version"
    assert view["interface_open"] and view["interface_open_until"]
    assert {"trusted_suffix", "dhcp_suffix", "os_suffix", "state", "provision_attempts", "amt_version", "address",
            "legacy", "domain_name", "faults"} <= set(view)
    r = httpx.post(f"{url}/api/v1/provision", json={"host": "DOWN"}).json()
    assert r["error_code"] == "device_unreachable" and r["attempt"] is None
    r = httpx.post(f"{url}/api/v1/provision", json={"host": "BUSY"})
    assert r.status_code == 503 and r.json()["error"] == "service_unavailable"
    assert httpx.post(f"{url}/api/v1/provision", json={"host": "NOPE"}).status_code == 404
    assert httpx.post(f"{url}/api/v1/provision", content=b"{").status_code == 400


def test_admin_mebx_faults_and_clock(plab):
    url = plab.http_url
    assert len(httpx.get(f"{url}/admin/devices").json()) == len(DEVICES)
    r = httpx.post(f"{url}/admin/devices/WIN-PRE/mebx", json={"trusted_suffix": "contoso.com"})
    assert r.status_code == 200 and r.json()["trusted_suffix"] == "contoso.com"
    assert httpx.post(f"{url}/api/v1/provision", json={"host": "WIN-PRE"}).json()["result"] == "success"
    again = httpx.post(f"{url}/api/v1/provision", json={"host": "WIN-PRE"}).json()
    assert again["after_success"] is True and again["result"] == "success"
    assert httpx.post(f"{url}/admin/devices/LX-PRE/faults", json={"faults": ["down"]}).json()["faults"] == ["down"]
    with pytest.raises((paramiko.SSHException, ConnectionError, EOFError, OSError)):
        ssh_connect(plab, "127.10.0.2", timeout=2)
    assert httpx.post(f"{url}/admin/devices/LX-PRE/faults", json={"faults": ["nope"]}).status_code == 400
    # clock: a failed attempt retried by the device after retry_interval
    httpx.post(f"{url}/api/v1/provision", json={"host": "WIN-LEG"})
    r = httpx.post(f"{url}/admin/clock", json={"advance": "30s"}).json()
    assert r["manual"] and r["events_run"] >= 1
    assert [a["source"] for a in admin(plab, "WIN-LEG")["attempts"]] == ["server", "self-retry"]


def test_admin_clock_refused_on_real_clock(proto_dir, tmp_path):
    with LabServer(proto_dir / "fleet.yaml", known_hosts=tmp_path / "kh") as lab:
        assert httpx.post(f"{lab.http_url}/admin/clock", json={"advance": "30s"}).status_code == 409


# ---------------------------------------------------------------- a 1,000-device fleet in one process
def test_thousand_device_fleet_in_one_process(tmp_path):
    paths = generate_fleet(1000, 5, tmp_path / "f1000")
    with LabServer(paths["fleet"], known_hosts=tmp_path / "kh", clock=ManualClock()) as lab:
        healthy = [d for d in lab.fleet.devices.values() if not d.faults.as_list()]
        sample = random.Random(1).sample(healthy, 60)

        def one(dev):
            cmd = "ipconfig /all" if dev.os == "windows" else "cat /etc/resolv.conf"
            status, out, _ = ssh_run(lab, dev.name, f"{cmd} && rpc amtinfo --json")
            return dev, status, out

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one, sample))
        for dev, status, out in results:
            assert status == 0 and dev.uuid in out and dev.address in out
        legacy = [d for d in healthy if d.state == "legacy"][:5]
        password = legacy[0].legacy.password
        for d in legacy:
            r = wsman(lab, d.address, wsman_envelope(GET, GS), password=password)
            assert r.status_code == 200 and field(r.text, "DomainName") == d.domain_name
        assert lab.ssh.connections >= 60


# ---------------------------------------------------------------- real clock, time scale, latency
def test_sped_up_real_clock_drives_self_retry_through_the_ticker(tmp_path):
    data = dict(BASE_FLEET, devices=[_d("WIN-PRE", "127.10.0.1", dhcp_suffix="fabrikam.com")])
    with LabServer(data, time_scale=60) as lab:   # 30 s of lab time = 0.5 s
        dev = lab.fleet.device("WIN-PRE")
        assert httpx.post(f"{lab.http_url}/api/v1/provision", json={"host": "WIN-PRE"}).json()["result"] == "failed"
        deadline = time.monotonic() + 5
        while len(dev.attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)   # no request to the lab: only the background ticker can add attempts
        assert [a["source"] for a in dev.attempts[:3]] == ["server", "self-retry", "self-retry"]
        assert lab.known_hosts_path.exists()
    assert not lab.known_hosts_path.exists()   # a mapping fleet gets a temporary known_hosts


def test_fleet_latency_delays_ssh_commands(proto_dir, tmp_path):
    data = yaml.safe_load((proto_dir / "fleet.yaml").read_text())
    data["latency"] = {"ssh": "200ms-250ms"}
    (tmp_path / "keys").symlink_to(proto_dir / "keys")
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    with LabServer(tmp_path / "fleet.yaml", clock=ManualClock()) as lab:
        t = time.monotonic()
        assert ssh_run(lab, "WIN-PRE", "hostname")[0] == 0
        assert time.monotonic() - t >= 0.2


def test_admin_renew_endpoint(plab):
    r = httpx.post(f"{plab.http_url}/admin/devices/WIN-PRE/renew").json()
    assert r["option15"] == "contoso.com" and r["amt_took"] is False
    assert admin(plab, "WIN-PRE")["renews"][-1]["source"] == "admin"


def test_addresses_that_are_not_devices_are_refused(plab):
    for port in (plab.ssh_port, plab.amt_port):
        with pytest.raises((ConnectionResetError, ConnectionRefusedError, ConnectionAbortedError)):
            s = socket.create_connection(("127.10.9.9", port), timeout=2)
            try:
                s.settimeout(2)
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert s.recv(10) == b"reset expected"   # an orderly close (b"") would fail here
            finally:
                s.close()
