"""Importing a legacy console's CSV export: column synonyms, bad rows by row number, nothing half-written."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.inventory.model import load_inventory

runner = CliRunner()

GOOD = """Computer Name,IP Address,AMT Version,AMT Domain,Primary DNS Suffix,Operating System,Provisioned,Collection
WS-0001,10.1.0.21,11.8.50,sales.contoso.com,sales.contoso.com,Windows 10 Enterprise,Yes,Floor 3
WS-0002,10.1.0.22,3.0.1,,contoso.com,Ubuntu 22.04,No,Floor 3
WS-0003,10.1.0.23,15.0.23.1706,FABRIKAM.COM.,contoso.com,Windows 11 Pro,yes,Floor 4;VIP
"""


def _import(tmp_path, text, *extra):
    src = tmp_path / "export.csv"
    src.write_text(text)
    out = tmp_path / "inv" / "imported.yaml"
    res = runner.invoke(app, ["import-legacy", str(src), "-o", str(out), "--cert-suffix", "contoso.com", *extra])
    return res, out


def test_import_writes_a_valid_inventory(tmp_path):
    res, out = _import(tmp_path, GOOD)
    assert res.exit_code == 0, res.output
    inv = load_inventory(out)
    assert [h.name for h in inv.hosts] == ["WS-0001", "WS-0002", "WS-0003"]
    h1, h2, h3 = inv.hosts
    assert (h1.os, h1.legacy_managed, h1.tags, h1.amt_suffix) == ("windows", True, ["Floor-3"], "sales.contoso.com")
    assert (h2.os, h2.legacy_managed, h2.amt_suffix) == ("linux", False, None)  # blank cell = unknown, not blank
    assert h3.amt_suffix == "fabrikam.com" and h3.tags == ["Floor-4", "VIP"]
    assert inv.certificate_suffix == "contoso.com" and inv.name == "imported"


def test_bad_rows_are_reported_by_row_and_nothing_is_written(tmp_path):
    text = GOOD + "WS-0004,10.1.0.999,11.8.50,,,,,\nWS-0005,10.1.0.25,eleven,,,,,\nWS 6;reboot,10.1.0.26,11.8.50,,,,,\n"
    res, out = _import(tmp_path, text)
    assert res.exit_code == 2
    assert "export.csv:5: row 4: IP Address" in res.stderr
    assert "export.csv:6: row 5: AMT Version" in res.stderr
    assert "export.csv:7: row 6: Computer Name" in res.stderr
    assert not out.exists() and not list(out.parent.glob("*")) if out.parent.exists() else True


def test_missing_required_columns_and_map(tmp_path):
    text = "Machine,Addr,Firmware Version\nWS-1,10.0.0.1,11.8.50\n"
    res, out = _import(tmp_path, text)
    assert res.exit_code == 2 and "required field 'name'" in res.stderr and "required field 'address'" in res.stderr
    res, out = _import(tmp_path, text, "--map", "Machine=name", "--map", "Addr=address")
    assert res.exit_code == 0, res.output
    assert load_inventory(out).hosts[0].address == "10.0.0.1"


def test_refuses_to_overwrite_without_force(tmp_path):
    res, out = _import(tmp_path, GOOD)
    before = out.read_text()
    res, _ = _import(tmp_path, GOOD.replace("WS-0003", "WS-0009"))
    assert res.exit_code == 2 and "--force" in res.stderr
    assert out.read_text() == before
    res, _ = _import(tmp_path, GOOD.replace("WS-0003", "WS-0009"), "--force")
    assert res.exit_code == 0 and "WS-0009" in out.read_text()


def test_duplicate_hosts_in_export(tmp_path):
    res, out = _import(tmp_path, GOOD + "ws-0001,10.1.0.99,11.8.50,,,,,\n")
    assert res.exit_code == 2 and "duplicate host" in res.stderr and not out.exists()
