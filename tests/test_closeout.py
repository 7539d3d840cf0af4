"""The close-out: the new server's records, the legacy records to remove (per console), what is still open."""

import csv
import io
import json
from datetime import datetime, timezone

from typer.testing import CliRunner

from flows.cli import app
from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Cause, Status
from tasks.store.closeout import build_closeout
from tasks.store.state import StateStore

runner = CliRunner()

INV = """name: t
state: sqlite:///state/t.db
provisioning: {certificate_suffix: contoso.com}
credentials:
  legacy_amt: {user: admin, password_env: P}
hosts:
  - {name: WKS-0001, address: 10.1.2.31, amt_version: '11.8.50', amt_state: activated, control_mode: acm, legacy_managed: true, legacy: {console: configmgr, id: '16777220', status: 'AMTStatus 3 (Provisioned)'}}
  - {name: WKS-0002, address: 10.1.2.32, amt_version: '11.8.50', amt_state: activated, legacy_managed: false, legacy: {console: configmgr, id: '16777221'}}
  - {name: WKS-0003, address: 10.1.2.33, amt_version: '12.0.90', amt_state: pre_provisioning, legacy: {console: configmgr, id: '16777222'}}
  - {name: WKS-0201, address: 10.30.1.21, amt_version: '16.1.27', legacy: {console: meshcentral, id: 'node//JzCaj@x$'}}
  - {name: WKS-0009, address: 10.1.2.39, amt_version: '12.0.90'}
waves: [{name: w1, hosts: ['*']}]
"""


def _setup(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text(INV)
    inv = load_inventory(f)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w1", [(h.name, h.address) for h in inv.hosts])
    store.record("w1", "WKS-0001", stage="discovery", action="discover", outcome="ok",
                 evidence={"uuid": "4c4c4544-0042-3510-8052-b2c04f4d3232", "control_mode": "activated in admin control mode",
                           "provisioning_state": 2})
    store.transition("w1", "WKS-0001", Status.PROVISIONED, stage="pass1", action="provision", outcome="ok",
                     provisioned_in_pass=1, evidence={"path": "adopt"})
    store.transition("w1", "WKS-0201", Status.PROVISIONED, stage="pass1", action="provision", outcome="ok",
                     provisioned_in_pass=1)
    store.transition("w1", "WKS-0002", Status.NEEDS_MEBX, stage="pass1", action="route", outcome="technician",
                     cause=Cause.CREDENTIALS_UNKNOWN, evidence={"path": "technician"},
                     next_step="MEBx at the desk: activated per configmgr export")
    closes = datetime(2026, 12, 2, 20, 0, tzinfo=timezone.utc)
    store.transition("w1", "WKS-0003", Status.FAILED, stage="pass1", action="provision", outcome="failed",
                     cause=Cause.SUFFIX_MISMATCH, attempted=True, window_closes_at=closes,
                     next_step="remediate the AMT suffix, then pass 2")
    store.close()
    return f, inv


def test_closeout_report_per_host(tmp_path):
    f, inv = _setup(tmp_path)
    store = StateStore(inv.state_url, create=False)
    report = build_closeout(inv, store, "w1")
    store.close()
    migrated = {m.host: m for m in report.migrated}
    assert set(migrated) == {"WKS-0001", "WKS-0201"}
    m = migrated["WKS-0001"]
    assert m.uuid == "4c4c4544-0042-3510-8052-b2c04f4d3232" and m.path == "adopt" and m.provisioned_at
    assert "read before provisioning" in m.control_mode and m.legacy_id == "16777220"
    opened = {o.host: o for o in report.open}
    assert opened["WKS-0002"].path == "technician" and opened["WKS-0002"].next_step.startswith("MEBx")
    assert opened["WKS-0003"].deadline == "2026-12-02T20:00:00+00:00" and opened["WKS-0003"].cause == "suffix_mismatch"
    assert opened["WKS-0009"].status == "pending" and opened["WKS-0009"].deadline is None
    csvs = report.removal_csvs()
    rows = list(csv.DictReader(io.StringIO(csvs["configmgr"])))
    assert [(r["ResourceID"], r["Name"]) for r in rows] == [("16777220", "WKS-0001")]  # only what the new server holds
    assert list(csv.DictReader(io.StringIO(csvs["meshcentral"])))[0]["NodeId"] == "node//JzCaj@x$"


def test_closeout_cli_writes_the_files(tmp_path):
    f, inv = _setup(tmp_path)
    res = runner.invoke(app, ["closeout", str(f), "--wave", "w1", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "2 host(s) in the new server, 3 still open" in res.stdout
    removal = (tmp_path / "out" / "legacy-removal-w1-configmgr.csv").read_bytes()
    assert removal.startswith(b"\xef\xbb\xbf\"ResourceID\"" ) or removal.startswith(b"\xef\xbb\xbfResourceID")
    assert b"16777220,WKS-0001" in removal and b"\r\n" in removal and b"WKS-0002" not in removal
    assert (tmp_path / "out" / "closeout-w1.md").read_text().startswith("# Close-out of wave w1")
    res = runner.invoke(app, ["closeout", str(f), "--wave", "w1", "--out", str(tmp_path / "out"), "--json"])
    data = json.loads(res.stdout)
    assert {o["host"] for o in data["open"]} == {"WKS-0002", "WKS-0003", "WKS-0009"}
    res = runner.invoke(app, ["closeout", str(f), "--wave", "nope"])
    assert res.exit_code == 2 and "no wave 'nope'" in res.stderr
