"""``ipconfig /renew`` judged by what it printed and by ``ipconfig /all`` read right after it, never by its
exit status (outputs shaped as Windows prints them: tests/fixtures/clients/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tasks.adapters import windows
from tasks.adapters.netfacts import NetAdapter, NetFacts, pick_interface
from tasks.adapters.os_network import read_interface, renew
from tasks.rules.host_state import Cause

FIX = Path(__file__).parent / "fixtures" / "clients"


def text(name: str) -> str:
    return windows.decode_console((FIX / name).read_bytes())


WIRED_DOWN = "ipconfig_all_en_wired_down_constructed.txt"
AMT_MAC = "3C-52-82-1A-4F-01"


def _amt_adapter(all_text: str, mac: str = AMT_MAC, address: str = "") -> NetAdapter:
    return pick_interface(windows.ipconfig_facts(all_text), mac, address).adapter


def test_a_renew_that_reached_only_wifi_is_a_failed_renew_with_the_reason():
    after = windows.ipconfig_facts(text(WIRED_DOWN))
    amt = _amt_adapter(text(WIRED_DOWN), address="192.168.1.23")
    verdict = windows.judge_renew(text("ipconfig_renew_en_wifi_only_constructed.txt"), after, amt)
    assert not verdict.ok and verdict.reached is False
    assert "No operation can be performed on Ethernet" in verdict.detail
    assert any(x.startswith("Wireless LAN adapter Wi-Fi (192.168.1.23)") for x in verdict.renewed_instead)
    # without the error line, the adapter's own state says the same: media disconnected, stale suffix
    quiet = text("ipconfig_renew_en_wifi_only_constructed.txt").replace(
        "No operation can be performed on Ethernet while it has its media disconnected.", "")
    verdict = windows.judge_renew(quiet, after, amt)
    assert not verdict.ok and "media disconnected" in verdict.detail and "corp.example.com" in verdict.detail


def test_an_error_line_naming_the_adapter_fails_it_even_with_its_old_lease_shown():
    """A renew that timed out leaves the old lease: the address is still there, the error line decides.
    'Ethernet 2' renewed fine and is not taken for 'Ethernet'."""
    out = text("ipconfig_renew_en_timeout_old_lease_constructed.txt")
    after = windows.ipconfig_facts(text("ipconfig_all_en_win10_jc.txt").replace(
        "Ethernet adapter Bluetooth Network Connection", "Ethernet adapter Ethernet"))
    amt = pick_interface(after, "1C-C1-0C-C3-25-B4").adapter
    verdict = windows.judge_renew(out, after, amt)
    assert not verdict.ok and "unable to contact your DHCP server" in verdict.detail
    dock = pick_interface(after, "F8-E4-3B-AD-F2-6D").adapter  # "Ethernet adapter Ethernet 2"
    fine = windows.judge_renew(out, after, dock)
    assert fine.ok and fine.reached is True and "10.50.13.132" in fine.detail


def test_localized_renew_outputs_are_judged_by_the_adapter_they_name():
    ko_after = windows.ipconfig_facts(text("ipconfig_all_ko_wsl_constructed.cp949_crlf.txt"))
    amt = pick_interface(ko_after, "F4-F1-9E-23-2F-A9").adapter
    verdict = windows.judge_renew(text("ipconfig_renew_ko_timeout_constructed.cp949_crlf.txt"), ko_after, amt)
    assert not verdict.ok and verdict.detail.startswith("ipconfig /renew did not renew 이더넷 어댑터 이더넷")
    wsl = pick_interface(ko_after, "00-15-5D-3E-F8-EE").adapter  # not named by the error line; static
    other = windows.judge_renew(text("ipconfig_renew_ko_timeout_constructed.cp949_crlf.txt"), ko_after, wsl)
    assert not other.ok and "오류" not in other.detail and "DHCP is not enabled" in other.detail
    ru_out = text("ipconfig_renew_ru_wifi_only_constructed.cp866_crlf.txt")
    ru_after = windows.ipconfig_facts(ru_out)  # only the short blocks: no MAC, found by name
    verdict = windows.judge_renew(ru_out, ru_after, NetAdapter(name="Адаптер Ethernet Ethernet", mac=""))
    assert not verdict.ok and "среда передачи" in verdict.detail


def test_autoconfiguration_address_and_no_address_after_the_renew_fail():
    out = text("ipconfig_renew_en_apipa_constructed.txt")
    unreadable = NetFacts.unreadable("ipconfig /all", "exited 1", "")
    amt = NetAdapter(name="Ethernet adapter Ethernet", mac="3c:52:82:1a:4f:01", ipv4=("10.20.30.41",))
    verdict = windows.judge_renew(out, unreadable, amt)
    assert not verdict.ok and "169.254.12.7" in verdict.detail
    after = windows.ipconfig_facts(out)
    verdict = windows.judge_renew("\r\nWindows IP Configuration\r\n", after, amt)
    assert not verdict.ok and "169.254" in verdict.detail


def test_release_then_renew_in_one_output_is_judged_by_the_renew():
    out = text("ipconfig_release_renew_en_constructed.txt")
    amt = NetAdapter(name="Ethernet adapter Ethernet", mac="3c:52:82:1a:4f:01", ipv4=("10.20.30.41",))
    verdict = windows.judge_renew(out, NetFacts.unreadable("ipconfig /all", "timed out", ""), amt)
    assert verdict.ok and verdict.reached is True and "10.20.30.41" in verdict.detail


def test_nothing_to_tell_is_unverified_not_success_or_failure():
    amt = NetAdapter(name="Intel(R) Ethernet Connection", mac="3c:52:82:1a:4f:01")
    verdict = windows.judge_renew("", NetFacts.unreadable("ipconfig /all", "exited 1", ""), amt)
    assert verdict.ok and verdict.reached is None and "unverified" in verdict.detail


# -- through os_network.renew, as remediation calls it -------------------------------------------------

class CannedWindows:
    """The outputs a Windows host gives, by command (what the lab and real hosts print, from fixtures)."""

    def __init__(self, outputs: dict[str, tuple[int, str]]):
        self.outputs, self.ran = outputs, []

    def run(self, command):
        self.ran.append(command)
        key = "powershell" if command.startswith("powershell") else command
        status, out = self.outputs[key]
        return SimpleNamespace(exit_status=status, stdout=out, stderr="")


def test_os_network_renew_without_index_judges_ipconfig_renew_by_output_not_exit_status():
    sh = CannedWindows({"powershell": (1, ""), "ipconfig /all": (0, text(WIRED_DOWN)),
                        "ipconfig /renew": (0, text("ipconfig_renew_en_wifi_only_constructed.txt"))})
    choice = read_interface(sh, "windows", amt_mac=AMT_MAC, address="192.168.1.23")
    assert choice.adapter is not None and choice.adapter.index is None and choice.suffix is None
    out = renew(sh, "windows", choice.adapter)
    assert sh.ran[-2:] == ["ipconfig /renew", "ipconfig /all"]
    assert not out.ok and out.cause is Cause.UNKNOWN and "exit 0" in out.detail
    assert "No operation can be performed on Ethernet" in out.detail
    assert out.evidence["renew_reached"] is False and out.evidence["renewed_instead"]
    assert "media disconnected" in out.evidence["renew_output"]


def test_os_network_renew_when_powershell_is_unusable_falls_back_and_reads_back():
    ok_all = text("ipconfig_all_ru_tunnels_constructed.cp866_crlf.txt")
    adapter = _amt_adapter(ok_all, "3C-52-82-1A-4F-07")
    sh = CannedWindows({"powershell": (1, ""), "ipconfig /all": (0, ok_all), "ipconfig /renew": (1, "")})
    out = renew(sh, "windows", adapter)  # index 12: PowerShell first, unusable, then ipconfig /renew
    assert sh.ran[0].startswith("powershell") and sh.ran[1:] == ["ipconfig /renew", "ipconfig /all"]
    assert out.ok and out.evidence["renew_reached"] is True and "exit 1" in out.detail


@pytest.mark.parametrize("fixture, mac", [("ipconfig_all_ko_wsl_constructed.cp949_crlf.txt", "00-15-5D-3E-F8-EE"),
                                         ("ipconfig_all_ptbr_vbox_constructed.cp850_crlf.txt", "0A-00-27-00-00-13")])
def test_read_back_after_renew_with_dhcp_disabled_fails(fixture, mac):
    facts = windows.ipconfig_facts(text(fixture))
    static = pick_interface(facts, mac).adapter  # DHCP 사용 아니요 / DHCP Habilitado Não
    verdict = windows.judge_renew("", facts, static)
    assert not verdict.ok and "DHCP is not enabled" in verdict.detail
