"""The steps talk to adapters only through the Protocols in tasks/adapters/protocols.py: the real adapters
satisfy them, and a step runs on plain fakes that subclass nothing (a new adapter is one file)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tasks.adapters.lab_api import LabProvisioner
from tasks.adapters.protocols import AmtClient, CommandRunner, DhcpServer, Provisioner
from tasks.adapters.provisioner import ProvisionOutcome
from tasks.adapters.ssh import SshRunner
from tasks.adapters.wsman import WsmanClient
from tasks.adapters.dhcp import KeaAdapter, WindowsDhcpAdapter
from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Cause, Status
from tasks.steps.context import WaveContext
from tasks.steps.outcome import Result
from tasks.steps.provision import provision_host
from tasks.store.state import StateStore

INVENTORY = """
name: fakes
state: sqlite:///{state}
provisioning: {{server: lab, url: "http://127.0.0.1:9", certificate_suffix: contoso.com, profile: p}}
window: {{interface_open: 24h, retry_interval: 24h}}
hosts:
  - {{name: GOOD, address: 10.1.0.1, amt_version: "11.8.50"}}
  - {{name: BAD, address: 10.1.0.2, amt_version: "11.8.50", amt_suffix: fabrikam.com}}
  - {{name: OLD, address: 10.1.0.3, amt_version: "3.0.0"}}
waves:
  - {{name: w, hosts: ["*"]}}
"""


def test_the_real_adapters_satisfy_the_protocols():
    assert issubclass(SshRunner, CommandRunner)
    assert issubclass(WsmanClient, AmtClient)
    assert issubclass(KeaAdapter, DhcpServer) and issubclass(WindowsDhcpAdapter, DhcpServer)
    lab = LabProvisioner("http://127.0.0.1:9", "p")
    try:
        assert isinstance(lab, Provisioner)
    finally:
        lab.close()


class FakeProvisioner:  # no base class: the Protocol is structural
    name = "fake"

    def __init__(self, answers: dict[str, ProvisionOutcome]):
        self.answers = answers
        self.asked: list[str] = []
        self.done: set[str] = set()

    def provision(self, host):
        self.asked.append(host.name)
        out = self.answers[host.name]
        if out.ok:
            self.done.add(host.name)
        return out

    def is_provisioned(self, host):
        return host.name in self.done

    def close(self):
        pass


@pytest.fixture
def ctx(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text(INVENTORY.format(state=tmp_path / "state.db"))
    inv = load_inventory(path)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.wave_hosts("w")])
    fake = FakeProvisioner({
        "GOOD": ProvisionOutcome(True, message="activated"),
        "BAD": ProvisionOutcome(False, "suffix_mismatch", "Specified AMT domain suffix: fabrikam.com does not match"),
    })
    clock = [datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)]
    c = WaveContext(inv, inv.wave("w"), store, fake, ssh=None, legacy_password=None, now=lambda: clock[0])
    yield c
    c.close()
    store.close()


def test_a_step_runs_on_a_fake_provisioner_and_records_what_it_answered(ctx):
    out = {n: provision_host(ctx, n, 1) for n in ("GOOD", "BAD", "OLD")}
    assert out["GOOD"].result is Result.PROVISIONED
    assert out["BAD"].result is Result.FAILED and out["BAD"].cause is Cause.SUFFIX_MISMATCH
    assert out["OLD"].result is Result.UNSUPPORTED  # firmware < 3.2.1 is never sent to the server
    assert ctx.provisioner.asked == ["GOOD", "BAD"]
    bad = ctx.store.get("w", "BAD")
    assert bad.status == Status.FAILED and bad.cause == "suffix_mismatch"
    # the attempt reached AMT, so it reopened the interface window for the configured 24 h
    assert bad.window_closes_at - datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc) == timedelta(hours=24)
    # asked again (a retried batch, pass 2): the provisioned host is never sent to the server again
    assert provision_host(ctx, "GOOD", 2).result is Result.SKIPPED
    assert ctx.provisioner.asked == ["GOOD", "BAD"]
