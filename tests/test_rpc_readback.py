"""The read-back decides the verdict (issue 17): what AMT (rpc amtinfo, read after the attempt) and the new
server (MPS's record) say, on real-shaped rpc-go/RPS outputs (tests/fixtures/rpc/SOURCES.md says where each
came from); the log only explains. And every form rpc-go prints amtinfo in."""

from __future__ import annotations

import pytest

from tasks.adapters.dmt_api import MpsDevice
from tasks.adapters.rpc_cli import parse_amtinfo, read_activation
from tasks.rules.classify import HostFacts, classify_failure
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue
from tests.test_rpc_adapter import ACTIVATED, PRE, UUID, _Mps, _provision, _Res, _secret, fx

UUID3 = "7d3f1c2a-5b9e-4e61-8c0d-2f4a6b8e1d93"


# ---------------------------------------------------------------- amtinfo, every form

@pytest.mark.parametrize("name,form,mode,activated,control", [
    ("amtinfo_3x_text_acm.txt", "text 3.x", "admin control mode", True, "acm"),
    ("amtinfo_3x_text_pre_trimmed.txt", "text 3.x", "not activated", False, "pre"),
    ("amtinfo_3x_text_boxed_ansi.txt", "text 3.x boxed", "client control mode", True, "ccm"),
    ("amtinfo_3x_table.txt", "text 3.x table", "admin control mode", True, "acm"),
])
def test_rpc_go_3x_text_forms_are_read_by_structure(name, form, mode, activated, control):
    info = parse_amtinfo(fx(name))
    assert (info.form, info.control_mode, info.activated, info.control) == (form, mode, activated, control)
    assert info.uuid == UUID3 and info.version == "16.1.25" and info.dns_suffix_os == "corp.example.com"
    # the MAC's colons are no separator, and the wired section's rows are its own
    assert info.wired_adapter["MAC Address"] == "a4:bb:6d:12:34:56"


def test_3x_text_empty_dns_suffix_row_stays_empty_and_the_next_row_is_not_taken():
    acm = parse_amtinfo(fx("amtinfo_3x_text_acm.txt"))
    assert acm.dns_suffix == "" and acm.hostname_os == "ws-0412"
    pre = parse_amtinfo(fx("amtinfo_3x_text_pre_trimmed.txt"))  # trailing blanks trimmed by a paste
    assert pre.dns_suffix == "fabrikam.com" and pre.provisioning_state == "pre-provisioning"
    assert pre.pre_provisioning is True


def test_3x_text_without_the_mei_is_unknown_with_what_rpc_said():
    info = parse_amtinfo(fx("amtinfo_3x_text_not_elevated.txt"))
    assert info.activated is None and info.heci_available is False and info.control_mode == ""
    assert any("Not running as administrator" in p for p in info.problems)


@pytest.mark.parametrize("text", [
    "Segmentation fault: core dumped\n",
    "\n  Some Other Tool\n  ───────────────\n  Colour                         blue\n",
    "\x00\x01garbage",
    "",
])
def test_an_unreadable_amtinfo_is_could_not_read_never_empty_values(text):
    with pytest.raises(InvalidValue, match="could not read"):
        parse_amtinfo(text)


def test_an_unreadable_amtinfo_after_the_attempt_keeps_the_raw_text():
    raw = "\n  Some Other Tool\n  ───────────────\n  Colour                         blue\n"
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_text_success.stderr")), _Res(0, raw, ""),
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert not out.ok and out.error_code == "unverified" and "could not read" in out.message
    assert out.evidence["amtinfo_output"] == raw


# ---------------------------------------------------------------- what rpc's log says, named as such

def test_amt19_extract_domain_certificate_is_a_suffix_problem():
    r = read_activation(0, "", fx("activate_2x_json_extract_domain_cert_amt19.stderr"))
    assert r.hint == "suffix_mismatch" and r.server_error.startswith("Failed to extract domain certificate")
    facts = HostFacts(amt_version="19.0.5", effective_suffix=None, os_suffix=None, os_source="inventory")
    assert classify_failure(facts, "contoso.com", error_code=r.hint, message=r.server_error).cause \
        == Cause.SUFFIX_MISMATCH


@pytest.mark.parametrize("status,stdout,stderr", [
    (111, "activate_2x_local_already_activated.stdout", "activate_2x_local_already_activated.stderr"),
    (0, None, "activate_2x_text_already_enabled_acm.stderr"),
])
def test_already_activated_is_named_as_such_even_after_a_password_prompt(status, stdout, stderr):
    for sent in (False, True):
        r = read_activation(status, fx(stdout) if stdout else "", fx(stderr), password_sent=sent)
        assert r.hint == "already_activated" and not r.claims_success, (sent, r)


def test_a_prompt_when_no_password_was_sent_means_amt_is_activated():
    r = read_activation(23, fx("activate_3x_prompt_exit23.stdout"), fx("activate_3x_prompt_exit23.stderr"))
    assert r.hint == "already_activated" and any("activated AMT" in p for p in r.problems)


@pytest.mark.parametrize("status,stderr,said", [
    (0, "activate_2x_json_unknown_error_after_adminsetup.stderr", "Unknown error has occured"),
    (10, "activate_3x_exit10_unknown_error.stderr", "Unknown error has occured"),
    (107, "activate_3x_exit107_amtfeatures_ebusy.stderr", "device or resource busy"),
])
def test_errors_logged_after_activation_are_only_hints(status, stderr, said):
    r = read_activation(status, "", fx(stderr))
    assert r.rejected and not r.claims_success and r.hint == "internal_error" and said in r.server_error


# ---------------------------------------------------------------- the verdict: AMT and MPS decide

ERRORS_AFTER_ACTIVATION = [(0, "activate_2x_json_unknown_error_after_adminsetup.stderr"),
                           (10, "activate_3x_exit10_unknown_error.stderr"),
                           (107, "activate_3x_exit107_amtfeatures_ebusy.stderr")]
CCM = _Res(0, fx("amtinfo_3x_text_boxed_ansi.txt").replace(UUID3, UUID), "")  # 3.x text, client control mode


@pytest.mark.parametrize("status,stderr", ERRORS_AFTER_ACTIVATION)
@pytest.mark.parametrize("after", [ACTIVATED, CCM], ids=["acm-json", "ccm-3x-text"])
def test_an_error_after_activation_with_amt_activated_and_mps_holding_it_is_provisioned(status, stderr, after):
    out, host, _ = _provision(_Res(status, "", fx(stderr)), after, api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and out.error_code is None and out.evidence["verified"] == "amtinfo + MPS"
    assert out.warning and out.evidence["warning"] == out.warning and f"exited {status}" in out.warning
    assert out.evidence["rpc_exit"] == status and fx(stderr).splitlines()[-1] in out.evidence["rpc_output"]
    assert len(host.commands) == 2  # activate, then amtinfo read back


@pytest.mark.parametrize("status,stderr", ERRORS_AFTER_ACTIVATION)
def test_an_error_after_activation_that_amt_and_mps_do_not_confirm_is_not_provisioned(status, stderr):
    act = _Res(status, "", fx(stderr))
    out, _, _ = _provision(act, PRE, api=_Mps({UUID: MpsDevice(UUID)}))  # AMT says: not activated
    assert not out.ok and out.error_code == "internal_error"
    out, _, _ = _provision(act, ACTIVATED, api=_Mps())  # activated, MPS has no record: not ours
    assert not out.ok and out.error_code == "internal_error"
    out, _, _ = _provision(act, ACTIVATED, api=_Mps(fail=True))  # MPS can't be asked: unverified, not failed
    assert not out.ok and out.error_code == "unverified" and "ConnectError" in out.message
    out, _, _ = _provision(act, ACTIVATED)  # no provisioning.api: AMT alone can't attribute an error run
    assert not out.ok and out.error_code == "unverified" and "no provisioning.api" in out.message


def test_adopt_with_an_error_after_the_takeover_is_shown_only_by_mps():
    act = _Res(10, "", fx("activate_3x_exit10_unknown_error.stderr"))
    out, host, _ = _provision(act, ACTIVATED, api=_Mps({UUID: MpsDevice(UUID)}), password=_secret(),
                              legacy_managed=True)
    assert out.ok and out.warning and "adopt" in out.evidence and host.envs[1] == {"AMT_PASSWORD": "s3cret-Pw!"}
    # AMT was activated before rpc ran: amtinfo reads the same before and after, MPS alone can tell
    out, _, _ = _provision(act, ACTIVATED, api=_Mps(), password=_secret(), legacy_managed=True)
    assert not out.ok and out.error_code == "internal_error"
    out, _, _ = _provision(act, ACTIVATED, password=_secret(), legacy_managed=True)
    assert not out.ok and out.error_code == "unverified"


def test_already_activated_carries_what_amt_reads_for_the_adopt_path():
    prompt = _Res(23, fx("activate_3x_prompt_exit23.stdout"), fx("activate_3x_prompt_exit23.stderr"))
    out, _, _ = _provision(prompt, ACTIVATED, api=_Mps())
    assert not out.ok and out.error_code == "already_activated" and not out.reached_device
    assert out.evidence["provisioning_state"] == 2 and out.evidence["control_mode"] == "activated in admin control mode"
    # MPS holds it: the is-provisioned answer, whatever rpc said
    out, _, _ = _provision(prompt, ACTIVATED, api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and out.warning
    # rpc says activated, AMT says not: neither wins, unverified
    out, _, _ = _provision(prompt, PRE, api=_Mps())
    assert not out.ok and out.error_code == "unverified" and "provisioning_state" not in out.evidence


def test_refusals_before_amt_was_asked_keep_their_cause_whatever_amt_reads():
    out, _, _ = _provision(_Res(0, "", fx("activate_2x_text_suffix_mismatch.stderr")), ACTIVATED)
    assert not out.ok and out.error_code == "suffix_mismatch" and not out.warning


def test_2x_text_aligned_with_spaces_ccm():
    # verbatim from rpc-go issue #782 (placeholders as the reporter wrote them)
    info = parse_amtinfo(fx("amtinfo_2x_text_spaces_issue782.txt"))
    assert info.form == "text 2.x" and info.control == "ccm" and info.version == "12.0.45"
    assert info.dns_suffix == "" and info.uuid == "[uuid]"  # the empty row never takes the next one's value
    assert info.wired_adapter["MAC Address"] == "[mac]"  # the wired section's, not the wireless one's blank
