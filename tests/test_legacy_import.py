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


# -- real-shaped console exports (tests/fixtures/legacy, see SOURCES.md) -------------------------

FIX = Path(__file__).parent / "fixtures" / "legacy"
CM_ROWS = [
    ("ResourceId", "Name", "ResourceDomainORWorkgroup", "AMTFullVersion", "AMTStatus", "IPAddresses"),
    ("16777220", "WKS-0001", "CONTOSO", "8.1.40", "3", "10.1.2.31;fe80::1c2d:3e4f:5a6b:7c8d"),
    ("16777221", "WKS-0002", "CONTOSO", "11.8.50", "4", "169.254.3.4;10.1.2.32;192.168.56.1"),
    ("16777222", "WKS-0003", "CONTOSO", "11.8.50", "1", "10.1.2.33"),
    ("16777223", "WKS-0004", "CONTOSO", "12.0.90", "2", "10.1.2.34"),
    ("16777224", "WKS-0005", "CONTOSO", "12.0.90", "", "10.1.2.35"),
    ("16777225", "KIOSK-0006", "WORKGROUP", "", "0", ""),
]


def _cli(tmp_path, src, *extra):
    out = tmp_path / "out" / "inv.yaml"
    res = runner.invoke(app, ["import-legacy", str(src), "-o", str(out), "--cert-suffix", "contoso.com", *extra])
    return res, out


def _bundle(tmp_path):
    p = tmp_path / "legacy-ca.pem"
    p.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return p


def _csv_text(rows, sep=","):
    return "\r\n".join(sep.join(f'"{c}"' for c in r) for r in rows) + "\r\n"


def test_configmgr_status_codes_map_to_states_not_to_a_yes_no(tmp_path):
    src = tmp_path / "cm.csv"
    src.write_text("#TYPE Selected.Microsoft.Management.Infrastructure.CimInstance\r\n" + _csv_text(CM_ROWS))
    res, out = _cli(tmp_path, src, "--ca-bundle", str(_bundle(tmp_path)))
    assert res.exit_code == 0, res.output
    inv = load_inventory(out)
    by = {h.name: h for h in inv.hosts}
    assert "KIOSK-0006" not in by and "Not Supported" in res.stdout  # no AMT: skipped and said so
    w1, w2, w3, w4, w5 = (by[f"WKS-000{i}"] for i in range(1, 6))
    assert (w1.amt_state, w1.control_mode, w1.legacy_managed, w1.amt_tls) == ("activated", "acm", True, True)
    assert (w2.amt_state, w2.legacy_managed) == ("activated", False) and "Externally Provisioned" in w2.legacy.status
    assert "practitioner" in w2.legacy.status  # 4's number is not from Microsoft's page: said so
    assert (w3.amt_state, w3.legacy_managed) == ("activated", False) and "Detected" in w3.legacy.status
    assert (w4.amt_state, w4.legacy_managed) == ("pre_provisioning", False)  # 2 = Not Provisioned, NOT provisioned
    assert (w5.amt_state, w5.legacy_managed) == (None, None)  # null = Unknown
    assert w1.address == "10.1.2.31" and w2.address == "10.1.2.32"  # link-local/APIPA dropped
    assert all(h.amt_suffix is None and h.os_suffix is None for h in inv.hosts)  # CONTOSO is not a DNS suffix
    assert w1.legacy.console == "configmgr" and w1.legacy.id == "16777220"
    assert inv.amt_port_of(w1) == 16993 and inv.amt_port_of(w3) == 16992
    assert "no ConfigMgr export carries AMT's DNS suffix" in res.stdout


def test_configmgr_tls_hosts_need_a_ca_bundle(tmp_path):
    src = tmp_path / "cm.csv"
    src.write_text(_csv_text(CM_ROWS))
    res, out = _cli(tmp_path, src)
    assert res.exit_code == 2 and "--ca-bundle" in res.stderr and "WKS-0001" in res.stderr and not out.exists()
    res, out = _cli(tmp_path, src, "--no-tls")
    assert res.exit_code == 0 and load_inventory(out).hosts[0].amt_tls is False


@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-8", b"\xef\xbb\xbf"), ("cp1252", b"")])
def test_windows_encodings_import(tmp_path, encoding, bom):
    rows = [CM_ROWS[0], ("16777220", "WKS-0001", "CONTOSO", "12.0.90", "2", "10.1.2.31")]
    text = _csv_text(rows).replace("CONTOSO", "CONTOSÖ")
    src = tmp_path / "cm.csv"
    src.write_bytes(bom + text.encode(encoding))
    res, out = _cli(tmp_path, src)
    assert res.exit_code == 0, res.output
    assert load_inventory(out).hosts[0].amt_state == "pre_provisioning"


def test_fixture_utf16_redirect_and_ps7(tmp_path):
    for name in ("sms_r_system_convertto_redirect_utf16le.csv", "sms_r_system_exportcsv_ps7.csv"):
        res, out = _cli(tmp_path, FIX / "configmgr" / name, "--ca-bundle", str(_bundle(tmp_path)), "--force")
        assert res.exit_code == 0, res.output
        assert [(h.name, h.amt_version, h.amt_state) for h in load_inventory(out).hosts] == [
            ("WKS-0001", "8.1.40", "activated"), ("WKS-0002", "11.8.50", "activated")]


def test_fixture_ps51_system_string_array_is_refused_with_the_reexport_hint(tmp_path):
    res, out = _cli(tmp_path, FIX / "configmgr" / "sms_r_system_select_exportcsv_ps51.csv")
    assert res.exit_code == 2 and not out.exists()
    # line 3: the #TYPE line is line 1, the header line 2
    assert "sms_r_system_select_exportcsv_ps51.csv:3: row 1: IPAddresses: the export flattened the array" in res.stderr
    assert "-join ';'" in res.stderr


def test_fixture_joined_reports_blank_version_and_empty_address_by_row(tmp_path):
    res, out = _cli(tmp_path, FIX / "configmgr" / "sms_r_system_joined_notypeinfo_ps51.csv")
    assert res.exit_code == 2 and not out.exists()
    assert ":4: row 3: AMTFullVersion: blank version" in res.stderr
    assert ":5: row 4: IPAddresses: empty" in res.stderr


def test_hardware_inventory_alone_is_explained(tmp_path):
    res, _ = _cli(tmp_path, FIX / "configmgr" / "sms_g_system_amt_agent_notypeinfo_ps51.csv")
    assert res.exit_code == 2 and "SMS_G_System_AMT_AGENT" in res.stderr and "no computer names" in res.stderr


def test_unknown_status_code_and_duplicates(tmp_path):
    rows = CM_ROWS[:2] + [("16777230", "WKS-0009", "C", "11.8.50", "7", "10.1.2.39"),
                          ("16777231", "wks-0001", "C", "11.8.50", "2", "10.1.2.40")]
    src = tmp_path / "cm.csv"
    src.write_text(_csv_text(rows))
    res, out = _cli(tmp_path, src, "--ca-bundle", str(_bundle(tmp_path)))
    assert res.exit_code == 2 and not out.exists()
    assert "cm.csv:3: row 2: AMTStatus: unknown AMTStatus code '7'" in res.stderr
    assert "cm.csv:4: row 3: Name: duplicate host name 'wks-0001' (first at line 2)" in res.stderr


def test_xlsx_export(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ComputerName", "IPAddress", "AMTVersion", "ProvisionState", "ControlMode"])
    ws.append(["WS-1", "10.0.0.1", "11.8.50", 2, "admin"])
    ws.append(["WS-2", "10.0.0.2", "12.0.90", 0, None])
    src = tmp_path / "export.xlsx"
    wb.save(src)
    res, out = _cli(tmp_path, src)
    assert res.exit_code == 0, res.output
    h1, h2 = load_inventory(out).hosts
    assert (h1.amt_state, h1.control_mode, h2.amt_state) == ("activated", "acm", "pre_provisioning")


def test_ema_ints_and_strings(tmp_path):
    res, out = _cli(tmp_path, FIX / "ema" / "endpoints_enum_ints.json")
    assert res.exit_code == 0, res.output
    hosts = {h.name: h for h in load_inventory(out).hosts}
    assert (hosts["WKS-0101"].amt_state, hosts["WKS-0101"].control_mode) == ("activated", "acm")
    assert (hosts["WKS-0102"].control_mode, hosts["WKS-0103"].amt_state) == ("ccm", "pre_provisioning")
    assert hosts["WKS-0101"].address == "wks-0101.corp.contoso.com" and hosts["WKS-0101"].amt_version == "16.1.27"
    assert hosts["WKS-0101"].legacy.id.endswith("5e01") and hosts["WKS-0101"].legacy_managed is None
    res, out = _cli(tmp_path, FIX / "ema" / "endpoints_enum_strings.json", "--force")
    assert res.exit_code == 0 and load_inventory(out).hosts[0].amt_state == "in_provisioning"
    res, out = _cli(tmp_path, FIX / "ema" / "endpoint_detail.json", "--force")
    h = load_inventory(out).hosts[0]
    assert (h.address, h.os_suffix, h.control_mode, h.os) == ("10.20.4.102", "corp.contoso.com", "ccm", "windows")


def test_meshcentral_json(tmp_path):
    res, out = _cli(tmp_path, FIX / "meshcentral" / "meshctrl_listdevices.json", "--ca-bundle", str(_bundle(tmp_path)))
    assert res.exit_code == 0, res.output
    hosts = {h.name: h for h in load_inventory(out).hosts}
    assert set(hosts) == {"WKS-0201", "WKS-0202", "WKS-0203", "LAB-AMT-07"}  # SRV-0301 has no intelamt
    assert (hosts["WKS-0201"].control_mode, hosts["WKS-0201"].amt_tls) == ("acm", True)
    assert (hosts["WKS-0202"].control_mode, hosts["WKS-0203"].amt_state) == ("ccm", "pre_provisioning")
    assert hosts["WKS-0203"].address == "wks-0203"  # host/ip empty: intelamt.host, and said so
    assert "address from intelamt.host" in res.stdout and "holds AMT credentials for: WKS-0201, LAB-AMT-07" in res.stdout
    assert hosts["LAB-AMT-07"].amt_tls is False and hosts["WKS-0201"].tags == ["Contoso-Desktops"]


def test_meshcentral_csv_and_scs_xml_are_explained(tmp_path):
    res, _ = _cli(tmp_path, FIX / "meshcentral" / "meshctrl_listdevices_csv.txt")
    assert res.exit_code == 2 and "--json" in res.stderr
    res, _ = _cli(tmp_path, FIX / "scs" / "scs_system_discovery_constructed.xml")
    assert res.exit_code == 2 and "Intel SCS" in res.stderr and "required field 'name'" in res.stderr


def test_scs_csv(tmp_path):
    src = tmp_path / "scs.csv"
    src.write_text("UUID,FQDN,IP,MAC,Profile,AMTVersion,AMTConfigurationState,AMTControlMode\n"
                   "4C4C4544-0042-3510-8052-B2C04F4D3232,ws-7.corp.contoso.com,10.40.2.17,00:1A:2B:3C:4D:70,"
                   "Corp TLS,11.8.50,Post,Admin\n")
    res, out = _cli(tmp_path, src)
    assert res.exit_code == 0, res.output
    h = load_inventory(out).hosts[0]
    assert (h.name, h.address, h.amt_state, h.control_mode, h.legacy.console, h.tags) == (
        "ws-7", "10.40.2.17", "activated", "acm", "scs", ["Corp-TLS"])


def test_from_overrides_detection_and_bad_from(tmp_path):
    res, _ = _cli(tmp_path, FIX / "ema" / "endpoints_enum_ints.json", "--from", "nonsense")
    assert res.exit_code == 2 and "choose one of" in res.stderr
    res, _ = _cli(tmp_path, FIX / "ema" / "endpoints_enum_ints.json", "--from", "configmgr")
    assert res.exit_code == 2 and "ConfigMgr" in res.stderr and "required field 'address'" in res.stderr
