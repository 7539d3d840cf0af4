"""Classification gives every failure a cause with evidence; selection decides who each stage takes."""

from datetime import datetime, timezone

import pytest

from tasks.rules.classify import HostFacts, classify_failure, effective_amt_suffix
from tasks.rules.host_state import Cause
from tasks.rules.selection import Selection, wants
from tasks.store.state import HostRecord

GENERIC = "Device internal error. Possible causes: DHCP options 6 and 15 not configured"


def test_effective_suffix_follows_amt():
    assert effective_amt_suffix(True, "contoso.com", "fabrikam.com", None) == "contoso.com"  # trusted wins (pre)
    assert effective_amt_suffix(True, "", "fabrikam.com", None) == "fabrikam.com"
    assert effective_amt_suffix(True, None, "fabrikam.com", None) is None  # trusted unknown: can't tell
    assert effective_amt_suffix(False, "x.com", "fabrikam.com", "contoso.com") == "contoso.com"  # legacy: DomainName
    assert effective_amt_suffix(False, None, "fabrikam.com", "") == "fabrikam.com"


@pytest.mark.parametrize("facts,code,msg,cause,inferred", [
    (HostFacts("11.8", "fabrikam.com", "wsman"), "internal_error", GENERIC, Cause.SUFFIX_MISMATCH, False),
    (HostFacts("11.8", "", "amt-hi"), "internal_error", GENERIC, Cause.SUFFIX_BLANK, False),
    (HostFacts("11.8", "sales.contoso.com", "amt-hi"), "internal_error", GENERIC, Cause.UNKNOWN, False),
    (HostFacts("11.8", None, os_suffix="fabrikam.com"), "internal_error", GENERIC, Cause.SUFFIX_MISMATCH, True),
    (HostFacts("11.8", None, os_suffix="contoso.com", scope_name="old", scope_option15="contoso.local"),
     "internal_error", GENERIC, Cause.SUFFIX_MISMATCH, True),
    (HostFacts("11.8", None, os_suffix="contoso.com"), "internal_error", GENERIC, Cause.UNKNOWN, True),
    (HostFacts("11.8", None, evidence={"ssh_cause": "auth_failed"}), "internal_error", GENERIC, Cause.AUTH_FAILED, True),
    (HostFacts("3.1", "contoso.com"), "internal_error", GENERIC, Cause.UNSUPPORTED_VERSION, False),
    (HostFacts("11.8", "fabrikam.com"), "device_unreachable", "no response", Cause.UNREACHABLE, False),
    (HostFacts("11.8", None), "internal_error",
     "Device 1 activation failed. Missing DNS Suffix.", Cause.SUFFIX_BLANK, False),
    (HostFacts("11.8", None), "internal_error", "Device 1 activation failed. Specified AMT domain suffix: "
     "a.fabrikam.com does not match list of available AMT domain suffixes.", Cause.SUFFIX_MISMATCH, False),
])
def test_causes(facts, code, msg, cause, inferred):
    c = classify_failure(facts, "contoso.com", error_code=code, message=msg)
    assert (c.cause, c.inferred) == (cause, inferred)
    ev = c.as_evidence()
    assert ev["cause"] == cause.value and ev["server_message"] == msg[:300]


def test_inferred_evidence_names_its_source():
    c = classify_failure(HostFacts("11.8", None, os_suffix="fabrikam.com"), "contoso.com",
                         error_code="internal_error", message=GENERIC)
    assert c.evidence["inferred_from"] == "os" and "fabrikam.com" in c.evidence["verdict"]


def _rec(status, cause=None, last_stage=None):
    return HostRecord("w", "H", "10.0.0.1", status, cause, None, None, 0, None, None,
                      datetime.now(timezone.utc), last_stage)


@pytest.mark.parametrize("stage,rec,explicit,want", [
    ("pass1", _rec("pending"), False, True),
    ("pass1", _rec("failed", "unreachable", "pass1"), False, False),
    ("pass1", _rec("failed", "unreachable", "pass1"), True, True),
    ("remediate", _rec("failed", "suffix_mismatch", "pass1"), False, True),
    ("remediate", _rec("failed", "unreachable", "pass1"), False, False),
    ("remediate", _rec("failed", "suffix_mismatch", "pass2"), False, False),  # pass 2 already failed: a rerun's job
    ("remediate", _rec("remediating", None, "remediate"), False, True),  # interrupted: continue
    ("remediate", _rec("needs_mebx", "suffix_mismatch"), False, False),
    ("remediate", _rec("needs_mebx", "suffix_mismatch"), True, False),  # waits for its technician
    ("pass2", _rec("remediated"), False, True),
    ("pass2", _rec("needs_mebx", "suffix_mismatch"), True, False),
    ("pass2", _rec("provisioned"), True, False),
    ("pass1", _rec("unsupported", "unsupported_version"), True, False),
])
def test_who_each_stage_takes(stage, rec, explicit, want):
    assert wants(stage, rec, explicit=explicit) is want


def test_rerun_from_pass2_takes_needs_mebx_only_once_the_technician_is_recorded():
    assert not wants("pass2", _rec("needs_mebx", "suffix_mismatch"), explicit=True, from_stage="pass2")
    done = _rec("needs_mebx", "suffix_mismatch")
    done = type(done)(**{**done.__dict__, "evidence": {"mebx_done_at": "2025-01-01T07:40:00+00:00"}})
    assert wants("pass2", done, explicit=True, from_stage="pass2")
    # asked for explicitly (`--from remediate`, say after the scope was fixed), remediation is tried again
    assert wants("remediate", _rec("needs_mebx", "dhcp_scope_wrong"), explicit=True, start="remediate")


def test_selection_is_fixed_at_the_start():
    sel = Selection(statuses=("failed",), causes=("suffix_mismatch",), hosts="h*", explicit=True)
    recs = [_rec("failed", "suffix_mismatch"), _rec("failed", "unreachable")]
    assert sel.resolve(recs) == {"H"}
    assert Selection.from_dict(sel.as_dict()) == sel
    with pytest.raises(ValueError):
        Selection.from_dict({"statuses": ["flying"]})


def test_who_gets_the_legacy_credentials_tried_and_when_they_apply():
    """The export's explicit word stands; when it is silent, AMT's activation (discovery, else the export)
    gets the console's credentials tried, and AMT's answer to them decides from then on."""
    from tasks.rules.classify import legacy_credentials_apply, try_legacy_credentials

    activated, pre = {"provisioning_state": 2}, {"provisioning_state": 0}
    assert try_legacy_credentials(True, pre, None) and not try_legacy_credentials(False, activated, "activated")
    assert try_legacy_credentials(None, activated, None) and not try_legacy_credentials(None, pre, "activated")
    assert try_legacy_credentials(None, {}, "activated") and not try_legacy_credentials(None, {}, None)
    assert not try_legacy_credentials(None, {"provisioning_state": 1}, None)  # in provisioning: not activated
    assert legacy_credentials_apply(None, activated) and not legacy_credentials_apply(None, pre)
    assert not legacy_credentials_apply(None, {**activated, "legacy_credentials": "refused"})
    assert legacy_credentials_apply(None, {"legacy_credentials": "opened"})
    assert legacy_credentials_apply(True, {"legacy_credentials": "refused"})  # said so: auth_failed is its cause
    assert not legacy_credentials_apply(False, activated) and not legacy_credentials_apply(None, None)
