"""rpc-go's activate/amtinfo readers and the rpc adapter's verified verdict, on real-shaped outputs
(tests/fixtures/rpc/SOURCES.md says where each came from)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.adapters.dmt_api import MpsDevice, DmtApiError, parse_domain
from tasks.adapters.rpc import RpcProvisioner
from tasks.adapters.rpc_cli import (
    RPC_EXIT_CODES,
    activate_command,
    exit_meaning,
    parse_amtinfo,
    parse_log,
    read_activation,
)
from tasks.rules.classify import HostFacts, classify_failure
from tasks.rules.host_state import Cause

FIX = Path(__file__).parent / "fixtures" / "rpc"
UUID = "4c4c4544-0042-3010-8052-b4c04f4e3332"


def fx(name: str) -> str:
    return (FIX / name).read_text()


# ---------------------------------------------------------------- the exit-code table and the command line

def test_exit_codes_are_rpc_go_constants():
    # pkg/utils/constants.go (research/rpc.md 2.6); 24 is "-d without a value", not a blank AMT suffix
    assert RPC_EXIT_CODES[24][0].startswith("MissingDNSSuffix") and RPC_EXIT_CODES[24][1] == "config_error"
    assert RPC_EXIT_CODES[23][1] == "auth_failed" and RPC_EXIT_CODES[100][1] == "auth_failed"
    assert RPC_EXIT_CODES[2][0].startswith("HECIDriverNotDetected")
    assert exit_meaning(1005)[0].startswith("AMT PT status 5")
    assert exit_meaning(127)[1] == exit_meaning(9009)[1] == "tool_error"


def test_activate_command_uses_forms_both_majors_accept_and_never_a_password():
    argv = shlex.split(activate_command("wss://rps.contoso.com/activate", "acm", "Contoso.com",
                                        keep_password_env=True))
    assert argv == ["sudo", "-n", "--preserve-env=AMT_PASSWORD", "rpc", "activate", "-u",
                    "wss://rps.contoso.com/activate", "--profile", "acm", "-d", "contoso.com", "--json"]
    win = activate_command("wss://rps.contoso.com/activate", "acm", flavor="windows", keep_password_env=True)
    assert win == "rpc activate -u wss://rps.contoso.com/activate --profile acm --json"


# ---------------------------------------------------------------- reading activate's output

def test_2x_json_lines_on_stderr_exit_0_missing_dns_suffix_is_a_rejection():
    r = read_activation(0, "", fx("activate_2x_json_missing_dns_suffix.stderr"))
    assert r.rejected and not r.claims_success
    assert r.hint == "suffix_blank" and r.server_error == f"Device {UUID} activation failed. Missing DNS Suffix."
    assert "exit 0" in r.evidence and "Missing DNS Suffix" in r.evidence


def test_2x_logrus_text_suffix_mismatch_names_the_reported_suffix():
    r = read_activation(0, "", fx("activate_2x_text_suffix_mismatch.stderr"))
    assert r.hint == "suffix_mismatch" and r.reported_suffix == "foo.domain.com" and not r.claims_success


def test_3x_exit_10_unwraps_rps_returned_error():
    r = read_activation(10, "", fx("activate_3x_exit10_missing_dns_suffix.stderr"))
    assert r.hint == "suffix_blank" and r.exit_name == "GenericFailure"
    assert r.server_error == f"Device {UUID} activation failed. Missing DNS Suffix."


def test_generic_amt_refusal_is_left_to_the_classifier():
    r = read_activation(0, "", fx("activate_2x_text_acm_failed.stderr"))
    assert r.hint == "internal_error" and r.server_error == "Failed to activate in admin control mode."
    # the classifier then reads the suffixes it knows
    facts = HostFacts(amt_version="12.0.45", effective_suffix="fabrikam.com", effective_source="rpc amtinfo",
                      os_suffix=None, os_source="inventory", scope_name=None, scope_option15=None, evidence={})
    assert classify_failure(facts, "contoso.com", error_code=r.hint, message=r.server_error).cause \
        == Cause.SUFFIX_MISMATCH


@pytest.mark.parametrize("exit_status,stdout,stderr", [
    (0, "", "activate_2x_text_success.stderr"),
    (0, "", "activate_2x_json_success_components.stderr"),
    (0, "activate_3x_json_success.stdout", None),
])
def test_success_forms(exit_status, stdout, stderr):
    r = read_activation(exit_status, fx(stdout) if stdout else "", fx(stderr) if stderr else "")
    assert r.claims_success and r.hint is None and not r.rejected and r.success_status


def test_2021_short_form_with_json_status_message():
    r = read_activation(0, "", fx("activate_2021_short_form_issue27.stderr"))
    assert r.rejected and r.hint == "internal_error" and "Error while activating" in r.server_error


@pytest.mark.parametrize("stream,status", [("not_found_bash.stderr", 127), ("not_found_cmd.stderr", 9009),
                                           ("not_found_cmd.stderr", 1)])
def test_missing_rpc_binary(stream, status):
    r = read_activation(status, "", fx(stream))
    assert r.hint == "tool_error" and not r.claims_success
    assert "not installed" in r.problems[0] and ("command not found" in r.raw or "not recognized" in r.raw)


def test_garbage_and_truncated_output_are_never_success():
    garbage = read_activation(0, "Segmentation fault\n\x00\x01junk", "")
    assert garbage.hint == "unverified" and not garbage.claims_success
    assert any("not rpc-go log entries" in p for p in garbage.problems)
    cut = read_activation(-1, "", fx("activate_2x_json_truncated.stderr"))
    assert cut.hint == "unverified" and not cut.claims_success
    assert any("cut short" in p for p in cut.problems) and any("no exit status" in p for p in cut.problems)
    silent = read_activation(0, "", "")
    assert silent.hint == "unverified" and not silent.claims_success


def test_password_prompt_means_amt_password_did_not_arrive():
    # a password was handed over (AMT_PASSWORD) and rpc still asked for one: it never reached rpc
    r = read_activation(23, "Please enter AMT Password: ", 'time="x" level=error msg="Error 23: MissingOrIncorrectPassword"\n',
                        password_sent=True)
    assert r.hint == "auth_failed" and any("AMT_PASSWORD" in p for p in r.problems)


def test_raw_evidence_is_capped():
    r = read_activation(0, "x" * 50_000, "")
    assert len(r.raw) < 2200 and "more characters" in r.raw


def test_log_reader_both_forms_and_streams():
    lines = parse_log('time="t" level=warning msg=plain\n{"level":"error","msg":"a \\"q\\"","time":"t"}\nnoise\n')
    assert [(e.level, e.msg) for e in lines] == [("warning", "plain"), ("error", 'a "q"'), ("", "noise")]


# ---------------------------------------------------------------- amtinfo

def test_amtinfo_2x_json_3x_json_and_text():
    two = parse_amtinfo(fx("amtinfo_2x.json"))
    assert two.activated is True and two.control == "acm" and two.uuid == UUID and two.dns_suffix == "corp.example.com"
    three = parse_amtinfo(fx("amtinfo_3x_beta50.json"))
    assert three.activated is False and three.dns_suffix == "" and three.pre_provisioning is True
    text = parse_amtinfo(fx("amtinfo_2x_text_issue227.txt"))
    assert text.activated is True and text.uuid == "04bcf4e9-51e4-4a45-b64c-54b2038bea9a"
    assert text.dns_suffix == "vprodemo.com"


@pytest.mark.parametrize("mode,expected", [("unknown state", None), ("unknown control mode", None),
                                           ("client control mode", True), ("pre-provisioning state", False),
                                           ("something else", None)])
def test_amtinfo_control_modes(mode, expected):
    assert parse_amtinfo('{"controlMode": "%s"}' % mode).activated is expected
    assert parse_amtinfo('{"controlMode": "admin control mode", "heciAvailable": false}').activated is None


# ---------------------------------------------------------------- the adapter's verified verdict

@dataclass
class _Res:
    exit_status: int
    stdout: str
    stderr: str


class _Host:
    """A scripted client: what `rpc activate` and `rpc amtinfo` print there."""

    def __init__(self, activate: _Res, amtinfo: _Res, before: _Res | None = None):
        self.activate, self.amtinfo, self.commands, self.envs = activate, amtinfo, [], []
        self.before = before  # amtinfo until activate has run (default: the same as after)

    def run(self, line, *, timeout=None, env=None):
        self.commands.append(line)
        self.envs.append(env)
        if " activate " in line:
            self.before = None
            return self.activate
        return self.before or self.amtinfo


class _Ssh:
    def __init__(self, host: _Host):
        self.host = host

    def session(self, address, *, port=None, os_flavor="linux"):
        from contextlib import nullcontext

        return nullcontext(self.host)

    def run(self, address, line, *, port=None, os_flavor="linux", env=None):
        return self.host.run(line, env=env)


class _Mps:
    def __init__(self, known: dict | None = None, fail: bool = False):
        self.known, self.fail = known or {}, fail

    def device(self, guid):
        if self.fail:
            raise DmtApiError("GET /mps/api/v1/devices: ConnectError")
        return self.known.get(guid)

    def close(self):
        pass


def _inv(legacy_managed=None):
    from tasks.inventory.model import Inventory

    return Inventory.model_validate({
        "name": "t", "provisioning": {"server": "rpc", "url": "wss://rps.contoso.com/activate",
                                      "certificate_suffix": "contoso.com"},
        "defaults": {"os": "linux"}, "hosts": [{"name": "WS-1", "address": "10.0.0.1", "amt_version": "12.0.45",
                                                "legacy_managed": legacy_managed}]})


ACTIVATED = _Res(0, '{"controlMode": "activated in admin control mode", "uuid": "%s"}' % UUID, "")
PRE = _Res(0, '{"controlMode": "pre-provisioning state", "uuid": "%s"}' % UUID, "")
UNKNOWN = _Res(0, '{"controlMode": "unknown state", "uuid": "%s"}' % UUID, "")


def _provision(activate: _Res, amtinfo: _Res, api=None, password=None, *, legacy_managed=None, before=None):
    inv = _inv(legacy_managed)
    host = _Host(activate, amtinfo, before)
    p = RpcProvisioner(inv, _Ssh(host), inv.provisioning.url, "acm", api=api, amt_password=password)
    return p.provision(inv.hosts[0]), host, p


def test_rejected_activation_that_exited_0_is_a_failure_with_a_cause():
    out, host, _ = _provision(_Res(0, "", fx("activate_2x_text_suffix_mismatch.stderr")), ACTIVATED)
    assert not out.ok and out.error_code == "suffix_mismatch" and "does not match" in out.message
    assert out.evidence["rpc_exit"] == 0 and out.evidence["rpc_reported_suffix"] == "foo.domain.com"
    assert len(host.commands) == 2  # amtinfo was read after the activate


def test_success_needs_amtinfo_and_mps():
    ok_stderr = fx("activate_2x_text_success.stderr")
    out, _, _ = _provision(_Res(0, "", ok_stderr), ACTIVATED, api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and out.evidence["verified"] == "amtinfo + MPS"
    # activated (the legacy console's ACM) but MPS never heard of it: not ours
    out, _, _ = _provision(_Res(0, "", ok_stderr), ACTIVATED, api=_Mps())
    assert not out.ok and out.error_code == "unverified" and "not registered" in out.message
    out, _, _ = _provision(_Res(0, "", ok_stderr), PRE, api=_Mps({UUID: MpsDevice(UUID)}))
    assert not out.ok and "not activated" in out.message
    out, _, _ = _provision(_Res(0, "", ok_stderr), UNKNOWN)
    assert not out.ok and out.error_code == "unverified" and "can't be read" in out.message
    out, _, _ = _provision(_Res(0, "", ok_stderr), ACTIVATED, api=_Mps(fail=True))
    assert not out.ok and out.error_code == "unverified" and "ConnectError" in out.evidence["mps"]
    out, _, _ = _provision(_Res(0, "", ok_stderr), ACTIVATED)
    assert out.ok and out.evidence["verified"].startswith("amtinfo only")


def test_3x_json_summary_verified():
    out, _, _ = _provision(_Res(0, fx("activate_3x_json_success.stdout"), ""), ACTIVATED,
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok


def test_missing_binary_and_garbage_never_provisioned():
    out, host, _ = _provision(_Res(127, "", fx("not_found_bash.stderr")), ACTIVATED)
    assert not out.ok and out.error_code == "tool_error" and not out.reached_device
    assert "command not found" in out.evidence["rpc_output"] and len(host.commands) == 1
    out, _, _ = _provision(_Res(0, "\x1b[31mgarbage", ""), ACTIVATED, api=_Mps())
    assert not out.ok and out.error_code == "unverified" and "garbage" in out.evidence["rpc_output"]
    # lost output, but the server holds the device: that fact wins
    out, _, _ = _provision(_Res(-1, "", fx("activate_2x_json_truncated.stderr")), ACTIVATED,
                           api=_Mps({UUID: MpsDevice(UUID)}))
    assert out.ok and "unreadable" in out.evidence["verified"]


PW = "s3cret-Pw!"
MISMATCH = _Res(0, "", f'time="2026-08-20T10:00:05Z" level=info msg="connecting to wss://rps.contoso.com/activate"\n'
                       f'time="2026-08-20T10:00:06Z" level=error msg="AMT password DOES NOT match stored version '
                       f'for Device {UUID}"\n')


def _secret():
    from tasks.inventory.secrets import Secret

    return Secret("$LEGACY_PW", PW)


def test_adopt_passes_the_current_password_in_the_environment_only():
    out, host, p = _provision(_Res(0, "", fx("activate_2x_text_success.stderr")), ACTIVATED,
                              api=_Mps({UUID: MpsDevice(UUID)}), password=_secret(), legacy_managed=True)
    assert p.adopts_activated and out.ok and out.evidence["verified"] == "amtinfo + MPS"
    assert host.envs == [None, {"AMT_PASSWORD": PW}, None]  # amtinfo, activate, amtinfo
    assert all(PW not in c for c in host.commands) and PW not in repr(out)
    assert "--preserve-env=AMT_PASSWORD" in host.commands[1]
    assert "$LEGACY_PW" in out.evidence["adopt"] and "activated in admin control mode" in out.evidence["adopt"]


def test_adopt_is_verified_only_by_mps():
    ok = _Res(0, "", fx("activate_2x_text_success.stderr"))
    out, _, _ = _provision(ok, ACTIVATED, password=_secret(), legacy_managed=True)  # no provisioning.api
    assert not out.ok and out.error_code == "unverified" and "activated before rpc ran" in out.message
    out, _, _ = _provision(ok, ACTIVATED, api=_Mps(), password=_secret(), legacy_managed=True)
    assert not out.ok and "not registered" in out.message


def test_adopt_with_a_wrong_password_is_auth_failed():
    for major_res in (MISMATCH, _Res(10, "", MISMATCH.stderr + 'time="x" level=error msg="RPS activation failed: '
                                     f'rps returned error: AMT password DOES NOT match stored version for Device {UUID}"\n')):
        out, host, _ = _provision(major_res, ACTIVATED, api=_Mps(), password=_secret(), legacy_managed=True)
        assert not out.ok and out.error_code == "auth_failed" and "DOES NOT match" in out.message
        assert PW not in repr(out)


def test_password_goes_only_to_activated_legacy_hosts():
    ok = _Res(0, "", fx("activate_2x_text_success.stderr"))
    # a legacy-managed host AMT reports pre-provisioning: a plain activation, no password sent
    out, host, _ = _provision(ok, ACTIVATED, api=_Mps({UUID: MpsDevice(UUID)}), password=_secret(),
                              legacy_managed=True, before=PRE)
    assert out.ok and host.envs == [None, None, None] and "adopt" not in out.evidence
    # a host not marked legacy_managed never gets the legacy password, and no amtinfo first
    out, host, _ = _provision(ok, ACTIVATED, api=_Mps({UUID: MpsDevice(UUID)}), password=_secret())
    assert host.envs == [None, None] and "--preserve-env" not in host.commands[0]


def test_is_provisioned_reads_amtinfo_and_mps():
    inv = _inv()
    h = inv.hosts[0]

    def prov(amtinfo, api):
        return RpcProvisioner(inv, _Ssh(_Host(_Res(0, "", ""), amtinfo)), inv.provisioning.url, "acm",
                              api=api).is_provisioned(h)

    assert prov(ACTIVATED, _Mps({UUID: MpsDevice(UUID)})) is True
    assert prov(ACTIVATED, _Mps()) is False  # activated, unknown to MPS: still the legacy console's
    assert prov(ACTIVATED, _Mps({UUID: MpsDevice(UUID, other_tenant=True)})) is False
    assert prov(ACTIVATED, _Mps(fail=True)) is None
    assert prov(ACTIVATED, None) is None  # no API: can't attribute an activated AMT
    assert prov(PRE, _Mps()) is False
    assert prov(UNKNOWN, _Mps({UUID: MpsDevice(UUID)})) is None
    assert prov(_Res(127, "", fx("not_found_bash.stderr")), _Mps()) is None


def test_rps_domain_element():
    d = parse_domain({"profileName": "NewDomain", "domainSuffix": "NewDomain.com",
                      "provisioningCertStorageFormat": "string", "tenantId": "", "version": "2000",
                      "expirationDate": "2024-12-31T23:59:00Z"})  # swagger.yaml DomainResponse example
    assert d.suffix == "newdomain.com" and d.expires.year == 2024 and d.profile_name == "NewDomain"
