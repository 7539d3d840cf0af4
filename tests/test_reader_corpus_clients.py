"""Client-OS readers against outputs shaped as real systems printed them and as they get published (forum
copies, Markdown blocks, PowerShell 5.1 JSON, Linux tools of several versions): what the reader must get for
the adapter AMT shares (MAC, IPv4, DHCP on/off, DNS suffix) and "could not read" for what is not readable.
Each fixture's origin is in tests/fixtures/clients/SOURCES.md ("Red-team corpus" section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.adapters import windows
from tasks.adapters.netfacts import pick_interface

FIX = Path(__file__).parent / "fixtures" / "clients"


def text(name: str) -> str:
    return windows.decode_console((FIX / name).read_bytes())


def amt_adapter(facts, mac: str):
    choice = pick_interface(facts, mac)
    assert choice.adapter is not None, choice.why
    return choice


# --------------------------------------------------------------------------------------------------
# ipconfig /all as published: indent lost or added
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, mac, ipv4, suffix, dhcp, others", [
    # a forum copy: every row at column 0, continuation rows too (DNS servers, the search list)
    ("ipconfig_all_en_forum_flat_constructed.txt", "3c:97:0e:41:7a:2c", ("10.61.4.117",), "corp.example.net", True,
     3),
    # a Markdown block: every line indented alike, header and rows at the same indent
    ("ipconfig_all_en_markdown_indented_constructed.txt", "54:e1:ad:6b:20:9f", ("172.20.8.54",),
     "branch.example.org", True, 2),
])
def test_ipconfig_copy_that_lost_or_gained_indent(name, mac, ipv4, suffix, dhcp, others):
    facts = windows.ipconfig_facts(text(name))
    assert facts.readable, facts.problems
    a = amt_adapter(facts, mac).adapter
    assert (a.ipv4, a.suffix, a.dhcp_enabled, a.connected) == (ipv4, suffix, dhcp, True)
    assert len(facts.adapters) == others


def test_flat_copy_keeps_search_list_and_disconnected_adapters():
    facts = windows.ipconfig_facts(text("ipconfig_all_en_forum_flat_constructed.txt"))
    assert facts.search_list == ("corp.example.net", "example.net")
    bt = facts.adapters[0]
    assert (bt.mac, bt.connected, bt.dhcp_enabled, bt.ipv4) == ("5c:f3:70:8a:11:3b", False, True, ())


@pytest.mark.parametrize("name", ["ipconfig_all_en_win10_jc.txt", "ipconfig_all_it_wintun_constructed.cp850_crlf.txt",
                                  "ipconfig_all_ko_wsl_constructed.cp949_crlf.txt",
                                  "ipconfig_all_de_win11_nwt.cp850_crlf.txt"])
def test_every_capture_reads_the_same_flattened_or_quoted(name):
    """The same output with its indent stripped (forum) or a uniform indent added (Markdown, e-mail quote)
    reads the same: adapters, MACs, addresses, suffixes, DHCP flags (Italian leader-less rows included)."""
    original = text(name)
    lines = original.replace("\r\n", "\n").split("\n")

    def key(facts):
        return [(a.name, a.mac, a.ipv4, a.suffix, a.dhcp_enabled, a.connected) for a in facts.adapters]

    want = key(windows.ipconfig_facts(original))
    assert want
    assert key(windows.ipconfig_facts("\n".join(ln.lstrip() for ln in lines))) == want
    assert key(windows.ipconfig_facts("\n".join("    " + ln for ln in lines))) == want


# --------------------------------------------------------------------------------------------------
# ipconfig /renew that printed only a message: it renewed nothing
# --------------------------------------------------------------------------------------------------


def _jc_ethernet2():
    after = windows.ipconfig_facts(text("ipconfig_all_en_win10_jc.txt"))
    return after, amt_adapter(after, "f8:e4:3b:ad:f2:6d").adapter


@pytest.mark.parametrize("output", [
    text("ipconfig_renew_en_no_adapter_permissible_constructed.txt"),
    # any message line without an adapter block (the wording does not matter, the structure does)
    "\r\nWindows IP Configuration\r\n\r\nThe requested operation requires elevation.\r\n",
])
def test_renew_that_printed_no_adapter_block_renewed_nothing(output):
    """ipconfig /renew prints a block per adapter it worked on; a message and no block means it renewed
    nothing, and the adapter read back afterwards still shows the lease it had (Windows keeps it)."""
    after, target = _jc_ethernet2()
    assert target.ipv4 == ("10.50.13.132",) and target.dhcp_enabled  # the old lease, still shown
    verdict = windows.judge_renew(output, after, target)
    assert (verdict.ok, verdict.reached) == (False, False)
    assert "renewed no adapter" in verdict.detail and ("permissible" in verdict.detail or "elevation" in verdict.detail)
