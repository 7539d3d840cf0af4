"""rpc-go's readers against outputs real rpc-go builds printed (red-team round; tests/fixtures/rpc/SOURCES.md
says where each came from): success statuses of rpc-go's own, logrus' terminal form, errors rpc-go recovered
from, 3.x's indented JSON summary, RPS's per-component result, and amtinfo cut short by a crash."""

from __future__ import annotations

import pytest

from tasks.adapters.dmt_api import MpsDevice
from tasks.adapters.rpc_cli import parse_amtinfo, parse_log, read_activation
from tests.test_rpc_adapter import ACTIVATED, UUID, _Mps, _provision, _Res, fx


# ---------------------------------------------------------------- rpc activate

def test_rpc_go_own_success_status_device_activated_in_admin_control_mode_is_a_success():
    # rpc-go issue #1191 (3.x local ACM) / #316 (2.x local): "Status: Device activated in Admin Control Mode"
    r = read_activation(0, "", fx("activate_3x_local_acm_status_issue1191.stderr"))
    assert r.claims_success and r.hint is None and not r.rejected
    assert r.success_status == "Status: Device activated in Admin Control Mode"


def test_that_success_verifies_without_an_api_when_amt_was_not_activated_before():
    out, _, _ = _provision(_Res(0, "", fx("activate_3x_local_acm_status_issue1191.stderr")), ACTIVATED)
    assert out.ok and out.evidence["verified"] == "amtinfo only (no provisioning.api)" and not out.warning


@pytest.mark.parametrize("text", [
    "Failed to activate in admin control mode.",
    "Admin control mode activation in progress",
    "Status: Failed to enumerate Management Presence Remote SAP",
])
def test_a_control_mode_inside_another_sentence_is_no_success(text):
    r = read_activation(0, "", f'time="t" level=info msg="{text}"\n')
    assert not r.claims_success and r.hint == "unverified"


def test_logrus_terminal_form_with_colour_codes_is_read_and_its_json_status_unwrapped():
    entries = parse_log(fx("activate_2x_tty_colour_suffix_mismatch.stderr"))
    assert [e.level for e in entries if e.level] == ["info", "info", "info", "error"]
    r = read_activation(0, "", fx("activate_2x_tty_colour_suffix_mismatch.stderr"))
    assert r.hint == "suffix_mismatch" and r.reported_suffix == "sales.contoso.com"
    assert r.server_error.startswith("Device 7d3f1c2a-") and not r.server_error.startswith("{")
    # "Starting MicroLMS." is rpc-go's own plain line, said as such
    assert any("not rpc-go log entries" in p for p in r.problems)


def test_logrus_terminal_form_with_full_timestamps():
    r = read_activation(0, "", "INFO[2021-12-01T10:00:05Z] connecting to wss://x/activate\n"
                               "ERRO[2021-12-01T10:00:11Z] Missing DNS Suffix.                         \n")
    assert r.hint == "suffix_blank" and r.server_error == "Missing DNS Suffix."


def test_the_2021_raw_json_status_is_the_message():
    r = read_activation(0, "", fx("activate_2021_short_form_issue27.stderr"))
    assert r.server_error == ("Device a94a55cc-267e-11b2-a85c-e2a9c1f3470e activation failed. "
                              "Error while activating the AMT device in admin mode.")


def test_an_error_rpc_recovered_from_before_rps_success_is_not_the_verdict():
    # rpc-go issue #1065: 3.x logs "device or resource busy" (LMS busy), falls back to the MEI, and RPS succeeds
    r = read_activation(0, "", fx("activate_3x_busy_then_success_issue1065.stderr"))
    assert r.claims_success and r.hint is None and r.server_error == ""
    assert r.success_status == "Status: admin control mode."
    assert any("recovered from: device or resource busy" in p for p in r.problems)


def test_errors_after_the_success_status_still_stand():
    r = read_activation(107, "", fx("activate_3x_exit107_amtfeatures_ebusy.stderr"))
    assert not r.claims_success and r.hint == "internal_error" and "device or resource busy" in r.server_error
    r = read_activation(0, "", fx("activate_2x_components_cira_failed.stderr"))
    assert not r.claims_success and r.hint == "internal_error"
    assert r.server_error == "CIRA Connection: Failed to put AMT_RemoteAccessPolicyAppliesToMPS"
    assert r.success_status.strip().startswith("Activation:")
    # AMT activated and MPS holds it: provisioned, the CIRA failure kept as a warning
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_components_cira_failed.stderr")), ACTIVATED,
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and out.warning and "CIRA Connection" in out.warning


def test_3x_json_summary_printed_indented_over_several_lines():
    r = read_activation(0, fx("activate_3x_json_indent_success.stdout"),
                        fx("activate_3x_busy_then_success_issue1065.stderr"))
    assert r.claims_success and r.hint is None and not any("not rpc-go log entries" in p for p in r.problems)
    failed = fx("activate_3x_json_indent_success.stdout").replace('"success"', '"failed"')
    r = read_activation(0, failed, "")
    assert not r.claims_success and r.hint == "internal_error"


# ---------------------------------------------------------------- rpc amtinfo

def test_amtinfo_cut_short_by_a_go_crash_says_so():
    info = parse_amtinfo(fx("amtinfo_2x_text_crash_issue521.txt"))
    assert info.control_mode == "activated in admin control mode" and info.control == "acm"
    assert info.uuid == "54d39e4c-2fcd-11b2-a85c-b963f4f3b3b2"
    assert info.complete is False and any("crashed after 'Control Mode" in p for p in info.problems)
    assert not parse_amtinfo(fx("amtinfo_2x_text_issue227.txt")).problems  # a whole output says nothing


@pytest.mark.parametrize("name,mode,control,suffix,wired", [
    ("amtinfo_2x_text_pre_v21_issue1094.txt", "pre-provisioning state", "pre", "", "98:4f:ee:19:59:df"),
    ("amtinfo_c_rpc_issue26.txt", "activated in admin control mode", "acm", "", None),
    ("amtinfo_2x_text_unknown_state_issue26.txt", "unknown state", "", "", None),
])
def test_real_colon_forms(name, mode, control, suffix, wired):
    info = parse_amtinfo(fx(name))
    assert (info.control_mode, info.control, info.dns_suffix, info.complete) == (mode, control, suffix, True)
    assert info.wired_adapter.get("MAC Address") == wired
    if name.startswith("amtinfo_2x_text_pre"):
        assert info.dns_suffix_os == "localdomain6" and info.pre_provisioning is True and info.version == "21.0.2"
    if "unknown_state" in name:
        assert info.activated is None and info.pre_provisioning is None and info.uuid == ""


# ---------------------------------------------------------------- rpc version

@pytest.mark.parametrize("name,version,major,form", [
    ("version_2x_issue227.txt", "2.15.0", 2, "text"),
    ("version_3x_text_constructed.txt", "3.0.0-beta.50", 3, "text"),
    ("version_3x_json_constructed.json", "3.0.0-beta.50", 3, "json"),
])
def test_rpc_version_in_each_form(name, version, major, form):
    from tasks.adapters.rpc_version import parse_rpc_version

    v = parse_rpc_version(fx(name))
    assert (v.version, v.major, v.form, v.protocol) == (version, major, form, "4.0.0")


def test_rpc_version_of_a_development_build_has_no_major_and_garbage_is_could_not_read():
    from tasks.adapters.rpc_version import parse_rpc_version
    from tasks.rules.suffix import InvalidValue

    assert parse_rpc_version("RPC\nVersion Development Build\nProtocol 4.0.0\n").major is None
    with pytest.raises(InvalidValue, match="could not read rpc version"):
        parse_rpc_version("rpc: error: unexpected argument version\n")


@pytest.mark.parametrize("major", [2, 3])
def test_the_lab_prints_rpc_version_as_its_major_does(major):
    from lab.model import Fleet
    from lab.shell import DeviceShell
    from tasks.adapters.rpc_version import parse_rpc_version
    from tests.lab_fixtures import BASE_FLEET

    dev = {"name": "V", "address": "127.10.0.9", "os": "linux", "amt_version": "16.1.25", "state": "pre",
           "trusted_suffix": "", "dhcp_suffix": "", "domain_name": "", "os_suffix": "contoso.com", "faults": []}
    fleet = Fleet.from_dict(dict(BASE_FLEET, devices=[dev], rpc_version=major))
    for args in ("rpc version", "rpc version --json"):
        out = DeviceShell(fleet, fleet.device("V"), "migrator").run(args).stdout
        assert parse_rpc_version(out).major == major
    text = DeviceShell(fleet, fleet.device("V"), "migrator").run("rpc version").stdout
    assert ("───" in text) == (major == 3)


# ---------------------------------------------------------------- RPS's firmware gate

GATE = [
    "Device 7d3f1c2a-5b9e-4e61-8c0d-2f4a6b8e1d93 activation failed. Please check with your OEM for a firmware update.",
    "Device 7d3f1c2a-5b9e-4e61-8c0d-2f4a6b8e1d93 activation failed. AMT version: 6.2. Version less than 7 cannot be "
    "remotely configured ",
    "Only version 10.0.47 with build greater than 3000 can be remotely configured",
]


@pytest.mark.parametrize("said", GATE)
def test_rps_firmware_gate_is_an_unsupported_version_not_a_suffix_problem(said):
    from tasks.rules.classify import HostFacts, classify_failure
    from tasks.rules.host_state import Cause

    r = read_activation(0, "", f'time="t" level=error msg="{said}"\n')
    assert r.hint == "unsupported_version" and not r.transient
    # AMT 9.5 compares the last two labels, and its OS suffix does not match: still the firmware, not the suffix
    facts = HostFacts(amt_version="9.5.60", os_suffix="fabrikam.com")
    c = classify_failure(facts, "contoso.com", error_code=r.hint, message=r.server_error)
    assert c.cause == Cause.UNSUPPORTED_VERSION and not c.inferred


@pytest.mark.parametrize("version,refused", [("9.5.60.1952", True), ("6.2.61.3535", True), ("11.8.50.3425", False),
                                             ("11.6.20.2900", True), ("12.0.70.1652", False)])
def test_the_lab_rps_applies_the_same_gate(version, refused):
    from lab.model import Fleet
    from lab.shell import DeviceShell
    from tests.lab_fixtures import BASE_FLEET

    dev = {"name": "G", "address": "127.10.0.9", "os": "linux", "amt_version": version, "state": "pre",
           "trusted_suffix": "contoso.com", "dhcp_suffix": "", "domain_name": "", "os_suffix": "contoso.com",
           "faults": []}
    fleet = Fleet.from_dict(dict(BASE_FLEET, devices=[dev]))
    res = DeviceShell(fleet, fleet.device("G"), "migrator", sleep=lambda s: None).run(
        "rpc activate -u wss://rps.contoso.com/activate --profile acm --json")
    r = read_activation(res.status, res.stdout, res.stderr)
    assert (r.hint == "unsupported_version") == refused


# ---------------------------------------------------------------- AMT 19+: a failed ACM activation left in CCM

def test_a_failed_acm_activation_that_left_amt_in_client_control_mode_is_provisioned_in_ccm_with_a_warning():
    # rps issue #2177: on AMT 19+ RPS starts an admin-mode profile in CCM; when ACM fails the device stays in CCM.
    # AMT is activated and MPS holds it: provisioned (the read-back decides), with a warning that names the
    # mode it is in, the mode asked for and the cause of the failed step
    ccm = _Res(0, '{"controlMode": "activated in client control mode", "uuid": "%s"}' % UUID, "")
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_json_extract_domain_cert_amt19.stderr")), ccm,
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and "client control mode, not the admin control mode" in out.warning
    assert "suffix_mismatch" in out.warning and out.evidence["rpc_hint"] == "suffix_mismatch"
    assert "rps issue #2177" in out.evidence["note"]
    # without MPS's record the same read-back is not provisioned
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_json_extract_domain_cert_amt19.stderr")), ccm,
                           api=_Mps({}))
    assert not out.ok
    # the same activation that reached admin control mode is provisioned (the error kept as a warning)
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_json_extract_domain_cert_amt19.stderr")), ACTIVATED,
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and out.warning


def test_a_provisioning_certificate_amt_does_not_trust_is_no_suffix_problem():
    # rps src/stateMachines/activation.ts COMPARE_DEVICE_HASHES
    said = "Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT"
    r = read_activation(0, "", f'{{"level":"error","msg":"{said}","time":"t"}}\n')
    assert r.hint == "config_error"
    r = read_activation(0, "", '{"level":"error","msg":"Failed to upgrade to admin control mode.","time":"t"}\n')
    assert r.hint == "internal_error"
