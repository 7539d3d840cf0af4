"""The run follows the plan's path: no host the plan does not reprovision is provisioned as if it were fresh."""

from types import SimpleNamespace

from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Status
from tasks.steps.provision import _route_by_path
from tasks.store.state import StateStore

INV = """name: t
provisioning: {server: %s, certificate_suffix: contoso.com}
credentials:
  legacy_amt: {user: admin, password_env: P}
hosts:
  - {name: PRE, address: 10.0.0.1, amt_version: '12.0', amt_state: pre_provisioning}
  - {name: DET, address: 10.0.0.2, amt_version: '12.0', amt_state: activated, legacy_managed: false, legacy: {console: configmgr, status: 'AMTStatus 1 (Detected)'}}
  - {name: CCM, address: 10.0.0.3, amt_version: '12.0', amt_state: activated, control_mode: ccm}
  - {name: ACM, address: 10.0.0.4, amt_version: '12.0', amt_state: activated, control_mode: acm, legacy_managed: true}
waves: [{name: w, hosts: ['*']}]
"""


def _ctx(tmp_path, server="rpc", provisioner=None):
    f = tmp_path / "inv.yaml"
    f.write_text(INV % server)
    inv = load_inventory(f)
    store = StateStore(f"sqlite:///{tmp_path}/s.db")
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
    return SimpleNamespace(inv=inv, wave=inv.wave("w"), store=store, flow_run_id=None,
                           provisioner=provisioner or SimpleNamespace())


def _route(ctx, name):
    return _route_by_path(ctx, ctx.inv.host(name), ctx.store.get("w", name), "pass1")


def test_paths_in_the_run(tmp_path):
    ctx = _ctx(tmp_path)
    assert _route(ctx, "PRE") is None  # reprovision: the provisioner is called
    out = _route(ctx, "DET")
    rec = ctx.store.get("w", "DET")
    assert (rec.status, rec.cause) == (Status.NEEDS_MEBX, "credentials_unknown") and "Detected" in rec.next_step
    assert rec.evidence["path"] == "technician" and out.cause == "credentials_unknown"
    assert _route(ctx, "DET").detail == "technician path"  # second pass: still on the list, no new transition
    ccm = _route(ctx, "CCM")
    rec = ctx.store.get("w", "CCM")
    assert "not attempted" in ccm.detail and rec.status == Status.PENDING and "deactivate -local" in rec.evidence["next_step"]
    acm = _route(ctx, "ACM")  # the rpc provisioner does not declare adopts_activated: never silently reprovisioned
    rec = ctx.store.get("w", "ACM")
    assert "adopt: not attempted" in acm.detail and "AMT_PASSWORD" in rec.evidence["next_step"]


def test_adopting_provisioner_is_called(tmp_path):
    ctx = _ctx(tmp_path, provisioner=SimpleNamespace(adopts_activated=True))
    assert _route(ctx, "ACM") is None
    assert ctx.store.get("w", "ACM").evidence["path"] == "adopt"
