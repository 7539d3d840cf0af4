"""The migration's SSH stages through a real OpenSSH sshd (Debian's openssh-server) in front of the lab.

`lab.openssh.OpenSshFront` runs /usr/sbin/sshd on a high port with its own host key; its ForceCommand
hands the command and the dialled address to the lab (`POST /admin/exec`). Discovery and the
`dhcp_renew` remediation run unchanged (tasks.adapters.ssh.SshRunner -> paramiko -> OpenSSH -> the device's
shell), and host keys are checked the way an operator's run would: unknown refused until an explicit
`trust-hosts`, a changed key always refused.
"""

from __future__ import annotations

import re

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from lab.openssh import SSHD, OpenSshFront, sshd_available
from tasks.rules.host_state import Status
from tasks.inventory.model import load_inventory
from tasks.adapters.ssh import fingerprint
from tasks.store.state import StateStore
from tests.site_fixtures import device, start_site

pytestmark = pytest.mark.skipif(not sshd_available(),
                                reason=f"{SSHD} is absent: install Debian's openssh-server to run these tests")

WAVE = "w1"
DEVICES = [
    # pre-provisioning, AMT took a wrong option 15 (fabrikam.com): mismatch a renew can fix in the window
    device("WS-0001", "127.10.0.1", os_suffix="sales.contoso.com", dhcp="fabrikam.com"),
    # the same on Linux (dhclient), wrong option 15 from an old scope
    device("LX-0002", "127.10.0.2", os="linux", os_suffix="eng.contoso.com", dhcp="contoso.local"),
    # already right (trusted suffix): provisioned in pass 1, never renewed
    device("WS-0003", "127.10.0.3", os_suffix="hq.contoso.com", trusted="contoso.com"),
]
NAMES = [d["name"] for d in DEVICES]


class Rig:
    def __init__(self, tmp_path, monkeypatch, known_hosts: str):
        self.site = start_site(tmp_path / "site", DEVICES,
                               [{"name": WAVE, "hosts": ["*"], "remediation": ["dhcp_renew"]}],
                               monkeypatch=monkeypatch)
        self.lab = self.site.lab
        self.front = OpenSshFront(self.lab, workdir=tmp_path / "front", log_level="INFO").start()
        self.known_hosts = tmp_path / "known_hosts"
        if known_hosts == "trusted":
            self.front.known_hosts_for(path=self.known_hosts)
        else:
            self.known_hosts.write_text("")
        data = yaml.safe_load(self.site.inventory.read_text())
        data["defaults"]["ssh_port"] = self.front.port  # every host is reached through the real sshd
        data["credentials"]["ssh"]["user"] = self.front.user  # sshd needs a real local account
        data["credentials"]["ssh"]["known_hosts"] = str(self.known_hosts)
        self.site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        self.store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        self._contexts = []

    def context(self):
        """A fresh WaveContext: its SshRunner reads known_hosts once, as a new run would."""
        from tasks.steps.context import build_context

        inv = load_inventory(self.site.inventory)
        self.store.ensure_hosts(WAVE, [(h.name, h.address) for h in inv.wave_hosts(inv.wave(WAVE))])
        ctx = build_context(inv, WAVE, self.store)
        ctx.renew_verify_delay = 0.1
        self._contexts.append(ctx)
        return ctx

    def execs(self) -> int:
        """Commands that reached a device through the sshd's ForceCommand so far."""
        return getattr(self.lab.api.httpd, "exec_count", 0)

    def accepted(self) -> int:
        """SSH logins the sshd accepted so far (LogLevel INFO logs one line each)."""
        return self.front.log().count("Accepted publickey")

    def close(self):
        for ctx in self._contexts:
            ctx.close()
        self.store.close()
        self.front.close()
        self.lab.stop()


@pytest.fixture
def trusted(tmp_path, monkeypatch):
    rig = Rig(tmp_path, monkeypatch, "trusted")
    yield rig
    rig.close()


@pytest.fixture
def untrusted(tmp_path, monkeypatch):
    rig = Rig(tmp_path, monkeypatch, "empty")
    yield rig
    rig.close()


def trust_hosts(rig):
    from flows.cli import app

    return CliRunner().invoke(app, ["trust-hosts", str(rig.site.inventory)])


def discover_all(ctx) -> dict[str, dict]:
    """Run discovery on every host; what *this* discovery recorded, per host (the host record merges
    evidence over runs, so an earlier run's ssh_error would still show there)."""
    from tasks.steps.discover import discover_host

    for name in NAMES:
        discover_host(ctx, name)
    latest = {}
    for event in ctx.store.history(NAMES, WAVE):
        if event.stage == "discovery":
            latest[event.host] = event.evidence or {}
    return latest


def test_bridge_runs_the_dialled_devices_shell_and_refuses_non_loopback(trusted):
    url = f"{trusted.lab.http_url}/admin/exec"
    r = httpx.post(url, json={"address": "127.10.0.2", "command": "hostname -d && cat /etc/resolv.conf"}).json()
    assert r["device"] == "LX-0002" and r["exit_status"] == 0
    assert r["stdout"].startswith("eng.contoso.com\n") and "search eng.contoso.com\n" in r["stdout"]
    assert httpx.post(url, json={"address": "10.0.0.1", "command": "true"}).status_code == 403
    assert httpx.post(url, json={"address": "127.10.9.9", "command": "true"}).status_code == 404
    # the sh form replays quotes, CRLF and exit status verbatim
    sh = httpx.post(url, params={"format": "sh"}, data={"address": "127.10.0.1", "command": "echo \"it's\" x"}).text
    assert sh == "printf %s 'it'\\''s x\n'\nexit 0\n"
    httpx.post(f"{trusted.lab.http_url}/admin/devices/WS-0003/faults", json={"faults": ["down"]})
    down = httpx.post(url, json={"address": "127.10.0.3", "command": "true"}).json()
    assert (down["exit_status"], down["dropped"], down["fault"]) == (255, True, "down")


def test_discovery_and_dhcp_renew_run_unchanged_through_openssh(trusted):
    from tasks.steps.provision import provision_host
    from tasks.steps.remediate import remediate_host

    ctx = trusted.context()
    ev = discover_all(ctx)
    # each connection reached the device whose address was dialled: every host reports its own suffixes
    assert {n: e.get("os_suffix") for n, e in ev.items()} == {
        "WS-0001": "sales.contoso.com", "LX-0002": "eng.contoso.com", "WS-0003": "hq.contoso.com"}
    assert {n: e.get("dhcp_suffix") for n, e in ev.items()} == {
        "WS-0001": "fabrikam.com", "LX-0002": "contoso.local", "WS-0003": ""}
    assert ev["WS-0003"]["trusted_suffix"] == "contoso.com"
    assert all(not e.get("ssh_error") for e in ev.values())
    # one login per pre-provisioning host, each command its own session on sshd
    # Linux: amtinfo, hi read, probe, its stack's detail, dhclient's lease file (option 15)
    assert (trusted.execs(), trusted.accepted()) == (11, 3)

    labels = {n: provision_host(ctx, n, 1).label for n in NAMES}
    assert labels == {"WS-0001": "failed:suffix_mismatch", "LX-0002": "failed:suffix_mismatch",
                      "WS-0003": "provisioned"}

    for name in ("WS-0001", "LX-0002"):
        assert remediate_host(ctx, name).label == "remediated:dhcp_renew"
    for name in ("WS-0001", "LX-0002"):
        assert provision_host(ctx, name, 2).result == "provisioned"
        assert ctx.store.get(WAVE, name).status == Status.PROVISIONED

    admin = trusted.site.admin_all()
    renews = {n: [r["source"] for r in admin[n]["renews"] if r["source"] not in ("os", "half-lease")] for n in NAMES}
    # Windows renews the one adapter sharing AMT's MAC (RenewDHCPLease by InterfaceIndex), Linux through dhclient
    assert renews == {"WS-0001": ["RenewDHCPLease"], "LX-0002": ["dhclient"], "WS-0003": []}
    assert all(admin[n]["state"] == "provisioned" for n in NAMES)
    assert admin["WS-0001"]["os_suffix"] == "contoso.com"  # the renew went to WS-0001's OS
    assert admin["WS-0003"]["os_suffix"] == "hq.contoso.com"  # and not to anyone else's
    # the device saw the real login name sshd ran the ForceCommand as
    assert re.search(rf"Accepted publickey for {re.escape(trusted.front.user)} from 127\.0\.0\.1", trusted.front.log())


def test_unknown_keys_refused_until_trust_hosts_then_a_changed_key_is_refused(untrusted):
    rig = untrusted
    # 1. empty known_hosts: refused per host before anything is dialled
    ev = discover_all(rig.context())
    assert {n: (e.get("ssh_error"), e.get("ssh_cause")) for n, e in ev.items()} == {
        n: ("host_key_unknown", "auth_failed") for n in NAMES}
    assert rig.execs() == 0 and rig.accepted() == 0

    # 2. the operator's explicit step records one key per host and says which
    result = trust_hosts(rig)
    assert result.exit_code == 0, result.output
    fp = fingerprint(rig.front.host_key())
    for d in DEVICES:
        assert f"{d['name']} ({d['address']}:{rig.front.port}): ssh-ed25519 {fp} recorded" in result.stdout
    assert "3 recorded, 0 already known, 0 changed (refused), 0 not reached" in result.stdout
    recorded = rig.known_hosts.read_text()
    assert sorted(line.split()[0] for line in recorded.splitlines()) == sorted(
        f"[{d['address']}]:{rig.front.port}" for d in DEVICES)
    again = trust_hosts(rig)
    assert again.exit_code == 0 and again.stdout.count("already known") == 3 + 1
    assert rig.known_hosts.read_text() == recorded  # nothing appended twice

    ev = discover_all(rig.context())
    assert {n: e.get("os_suffix") for n, e in ev.items()} == {
        "WS-0001": "sales.contoso.com", "LX-0002": "eng.contoso.com", "WS-0003": "hq.contoso.com"}
    assert all(not e.get("ssh_error") for e in ev.values())
    execs, logins = rig.execs(), rig.accepted()
    # one login per host; Windows 3 commands, Linux 5 (probe, stack detail, dhclient's lease file)
    assert (execs, logins) == (11, 3)

    # 3. the server is "reinstalled": same port, new host key -> every host refused, nothing run
    old = rig.front.host_key()
    new = rig.front.regenerate_host_key()
    rig.front.restart()
    assert fingerprint(new) != fingerprint(old)
    ev = discover_all(rig.context())
    assert {n: (e.get("ssh_error"), e.get("ssh_cause")) for n, e in ev.items()} == {
        n: ("host_key_changed", "auth_failed") for n in NAMES}
    assert (rig.execs(), rig.accepted()) == (execs, logins)  # refused before authenticating

    # trust-hosts refuses to overwrite a changed key, per host, and exits non-zero
    result = trust_hosts(rig)
    assert result.exit_code == 1
    for d in DEVICES:
        assert re.search(rf"{d['name']} \({re.escape(d['address'])}:{rig.front.port}\): host_key_changed: "
                         rf".*{re.escape(fingerprint(old))}.*{re.escape(fingerprint(new))}.*refused, not recorded",
                         result.stderr)
    assert "0 recorded, 0 already known, 3 changed (refused), 0 not reached" in result.stdout
    assert rig.known_hosts.read_text() == recorded


def test_faults_behind_openssh(trusted):
    """down: the session exits 255 (sshd owns the connection, so no reset); hung: the command never answers."""
    from tasks.adapters.ssh import CommandTimeout, SshRunner, SshSettings

    runner = SshRunner(SshSettings(user=trusted.front.user, known_hosts=trusted.known_hosts,
                                   port=trusted.front.port, key_path=trusted.lab.private_key_path))
    admin = f"{trusted.lab.http_url}/admin/devices"
    httpx.post(f"{admin}/WS-0003/faults", json={"faults": ["down"]}).raise_for_status()
    httpx.post(f"{admin}/WS-0001/faults", json={"faults": ["hung"]}).raise_for_status()
    down = runner.run("127.10.0.3", "hostname")
    assert down.exit_status == 255 and "closed by remote host" in down.stderr and down.stdout == ""
    with pytest.raises(CommandTimeout) as hung:
        runner.run("127.10.0.1", "hostname", timeout=1)
    assert hung.value.cause == "unknown"
    assert runner.run("127.10.0.2", "hostname").stdout == "lx-0002\n"  # the others are unaffected


@pytest.mark.parametrize("bridge", ["c", "curl", "python"])
def test_each_bridge_replays_what_the_device_answered_verbatim(trusted, tmp_path, bridge):
    """The ForceCommand bridges (compiled, curl, python) must be interchangeable: the benchmarks use the
    cheapest one available, the tests elsewhere whichever `auto` picks."""
    from lab.openssh import CC, CURL
    from tasks.adapters.ssh import SshRunner, SshSettings

    if (bridge == "c" and not CC) or (bridge == "curl" and not CURL):
        pytest.skip(f"no {bridge} on this machine")
    front = OpenSshFront(trusted.lab, workdir=tmp_path / bridge, bridge=bridge).start()
    try:
        runner = SshRunner(SshSettings(user=front.user, port=front.port, key_path=trusted.lab.private_key_path,
                                       known_hosts=front.known_hosts_for(path=tmp_path / f"kh-{bridge}"),
                                       connect_timeout=10, command_timeout=30))
        url = f"{trusted.lab.http_url}/admin/exec"
        cases = [("127.10.0.2", "hostname -d && cat /etc/resolv.conf"),  # Linux, several lines
                 ("127.10.0.1", "ipconfig /all"),  # Windows: CRLF line ends
                 ("127.10.0.2", "echo \"it's\" 'a  b' é €"),  # quotes, spaces and UTF-8 arrive verbatim
                 ("127.10.0.2", "no-such-tool --flag"),  # exit 127 and stderr
                 ("127.10.0.3", "amt-hi get-dns-suffix")]
        for address, command in cases:
            want = httpx.post(url, json={"address": address, "command": command}).json()
            got = runner.run(address, command)
            assert (got.exit_status, got.stdout, got.stderr) == (want["exit_status"], want["stdout"], want["stderr"])
        assert got.ok and "contoso.com" in got.stdout
        httpx.post(f"{trusted.lab.http_url}/admin/devices/LX-0002/faults", json={"faults": ["down"]})
        down = runner.run("127.10.0.2", "hostname -d")
        assert down.exit_status == 255 and "closed by remote host" in down.stderr
    finally:
        front.stop()
