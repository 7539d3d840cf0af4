"""The adopt path through the rpc adapter against the lab: RPS takes over a device the legacy console
activated in admin control mode, given its CURRENT admin password (research/rpc.md 4.2), which travels
only as AMT_PASSWORD in the remote command's environment (SSH "env" request, sshd AcceptEnv)."""

from __future__ import annotations

import logging

import httpx
import pytest
import yaml

from lab.server import LabServer
from tasks.rules.host_state import Status
from tasks.steps.discover import discover_host
from tasks.steps.provision import provision_host
from tests.site_fixtures import PASSWORD, device, inventory_for, write_fleet
from tests.test_migrate_flow import _ctx
from tests.site_fixtures import Site

WRONG = "Wrong-Legacy-Pw-4711"


def _site(tmp_path, monkeypatch, *, major=2, accept_env=None) -> Site:
    # legacy ACM devices whose AMT suffix (fabrikam.com) does not pass against the certificate (contoso.com):
    # the takeover runs no suffix check
    devs = [device("A-WIN", "127.10.8.1", state="legacy", domain="fabrikam.com", legacy=True),
            device("A-LIN", "127.10.8.2", state="legacy", domain="fabrikam.com", legacy=True, os="linux")]
    fleet_path = write_fleet(tmp_path, devs)
    if accept_env is not None:
        fleet = yaml.safe_load(fleet_path.read_text())
        fleet["ssh"]["accept_env"] = accept_env
        fleet_path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    lab = LabServer(fleet_path, known_hosts=tmp_path / "known_hosts").start()
    inv = inventory_for(lab, devs, [{"name": "w", "hosts": ["*"]}])
    inv["provisioning"] = {"server": "rpc", "url": "wss://rps.contoso.com/activate", "certificate_suffix": "contoso.com",
                           "profile": "acm-contoso",
                           "api": {"url": lab.http_url, "user": "admin", "password_env": "AMTMIG_DMT_PASSWORD"}}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    monkeypatch.setenv("AMTMIG_SSH_KEY", str(lab.private_key_path))
    monkeypatch.setenv("AMTMIG_LEGACY_AMT_PASSWORD", PASSWORD)
    monkeypatch.setenv("AMTMIG_DMT_PASSWORD", "lab-Pa55w0rd")
    httpx.post(f"{lab.http_url}/admin/rpc", json={"version": major}, timeout=10)
    return Site(lab, path, tmp_path)


@pytest.fixture
def commands(monkeypatch):
    """Every command line the lab's hosts received (a spy on the lab's shell, which still runs them)."""
    from lab.shell import DeviceShell

    seen: list[tuple[str, dict]] = []
    orig = DeviceShell.run

    def spy(self, command):
        seen.append((command, dict(self.env)))
        return orig(self, command)

    monkeypatch.setattr(DeviceShell, "run", spy)
    return seen


def _leaks(site, secret: str, caplog) -> list[str]:
    where = []
    if secret in caplog.text:
        where.append("logs")
    for f in site.dir.rglob("*.db*"):
        if secret.encode() in f.read_bytes():
            where.append(str(f))
    return where


@pytest.mark.parametrize("major", [2, 3])
def test_adopt_with_the_current_password(tmp_path, monkeypatch, caplog, commands, major):
    caplog.set_level(logging.DEBUG)
    site = _site(tmp_path, monkeypatch, major=major)
    try:
        ctx = _ctx(site)
        assert ctx.provisioner.adopts_activated
        for name in ("A-WIN", "A-LIN"):
            discover_host(ctx, name)
            out = provision_host(ctx, name, 1)
            assert out.result == "provisioned", ctx.store.get("w", name).evidence
            rec = ctx.store.get("w", name)
            assert rec.status == Status.PROVISIONED and rec.evidence["verified"] == "amtinfo + MPS"
            assert "$AMTMIG_LEGACY_AMT_PASSWORD" in rec.evidence["adopt"]
            truth = site.admin(name)
            assert truth["state"] == "provisioned" and truth["uuid"] in site.lab.fleet.mps_devices
            assert truth["attempts"][-1]["checked_suffix"] is None  # no suffix check on a takeover
            # RPS rotated the admin password: the legacy one no longer opens it
            assert site.lab.fleet.vault[truth["uuid"]] != PASSWORD
        activates = [(c, env) for c, env in commands if " activate " in f" {c} "]
        assert len(activates) == 2 and all(env.get("AMT_PASSWORD") == PASSWORD for _c, env in activates)
        assert all(PASSWORD not in c for c, _env in commands)  # never on a command line
        assert any("--preserve-env=AMT_PASSWORD" in c for c, _env in activates)  # sudo keeps it on Linux
        assert _leaks(site, PASSWORD, caplog) == []
        # a rerun activates nothing again
        n = len(site.admin("A-WIN")["attempts"])
        assert provision_host(ctx, "A-WIN", 1).result in ("skipped", "already provisioned")
        assert len(site.admin("A-WIN")["attempts"]) == n
        # the adapter itself attributes the device to the new server (activated and in MPS)
        assert ctx.provisioner.is_provisioned(ctx.host("A-WIN")) is True
    finally:
        site.lab.stop()


@pytest.mark.parametrize("major", [2, 3])
def test_adopt_with_a_wrong_password_is_auth_failed(tmp_path, monkeypatch, caplog, commands, major):
    caplog.set_level(logging.DEBUG)
    site = _site(tmp_path, monkeypatch, major=major)
    monkeypatch.setenv("AMTMIG_LEGACY_AMT_PASSWORD", WRONG)
    try:
        ctx = _ctx(site)
        discover_host(ctx, "A-WIN")
        out = provision_host(ctx, "A-WIN", 1)
        rec = ctx.store.get("w", "A-WIN")
        assert out.label == "failed:auth_failed", rec.evidence
        assert rec.status != Status.PROVISIONED and rec.cause == "auth_failed"
        assert "DOES NOT match stored version" in rec.evidence["server_message"]
        assert rec.evidence["rpc_exit"] == (0 if major == 2 else 10)
        truth = site.admin("A-WIN")
        assert truth["state"] == "legacy" and truth["uuid"] not in site.lab.fleet.mps_devices
        assert all(WRONG not in c for c, _env in commands)
        assert _leaks(site, WRONG, caplog) == []
    finally:
        site.lab.stop()


def test_sshd_without_acceptenv_drops_the_password(tmp_path, monkeypatch, commands):
    """A site whose sshd does not AcceptEnv AMT_PASSWORD: the variable never arrives, rpc-go prompts
    on a closed stdin and exits 23; the host is auth_failed, never provisioned."""
    site = _site(tmp_path, monkeypatch, accept_env=["LANG", "LC_*"])
    try:
        ctx = _ctx(site)
        discover_host(ctx, "A-WIN")
        out = provision_host(ctx, "A-WIN", 1)
        rec = ctx.store.get("w", "A-WIN")
        assert out.label == "failed:auth_failed", rec.evidence
        assert rec.evidence["rpc_exit"] == 23 and "AMT_PASSWORD did not reach it" in rec.evidence["rpc"]
        assert all("AMT_PASSWORD" not in env for _c, env in commands)
        assert site.admin("A-WIN")["state"] == "legacy"
    finally:
        site.lab.stop()
