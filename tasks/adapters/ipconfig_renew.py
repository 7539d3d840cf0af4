"""Whether ``ipconfig /renew`` reached the adapter AMT shares, judged from what it printed and from
``ipconfig /all`` read right after it, never from its exit status. No I/O here.

``ipconfig /renew`` renews every adapter and prints, in the display language: the title, one column-0
line per adapter it could not renew ("An error occurred while renewing interface Ethernet : unable to
contact your DHCP server. Request has timed out.", "No operation can be performed on Ethernet while it
has its media disconnected."), then a short block per adapter (captures in tests/fixtures/clients/
SOURCES.md). Each of those lines names the adapter by its connection name, which is how its ``ipconfig
/all`` header ends ("Ethernet adapter Ethernet 2", "Адаптер Ethernet Ethernet 2", "이더넷 어댑터 이더넷 2"):
the judge finds the adapter named in a line, whatever words surround the name. A renew leaves a failed
adapter on its old lease (Windows keeps it until it expires), so an error line about the adapter is a
failure even when the adapter still shows an address.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tasks.adapters.ipconfig import IpConfigAdapter, html_encoded, parse_ipconfig
from tasks.adapters.netfacts import NetAdapter, NetFacts, normalize_mac


@dataclass(frozen=True)
class RenewVerdict:
    ok: bool
    detail: str
    reached: bool | None  # True: the adapter holds a DHCP address after the renew; None: could not tell
    renewed_instead: tuple[str, ...] = ()  # the other adapters that hold an address after the renew


def _named(message: str, header: str) -> int:
    """How long a part of ``header`` the message names: the longest run of the header's last words
    ("<type words> <connection name>") that appears in the message as whole words, or, in the XP form
    "<connection name> - <type words>", the part before " - ". 0: not named; a lone number does not count."""
    words = header.split()
    parts = [" ".join(words[-k:]) for k in range(1, len(words) + 1)]
    if " - " in header:
        parts.append(header.split(" - ", 1)[0].strip())
    best = 0
    for part in parts:
        if part.isdigit() or len(part) <= best:
            continue
        if _as_word(part, message):
            best = len(part)
    return best


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def _as_word(part: str, message: str) -> bool:
    """``part`` in ``message`` as a word of its own: not inside a longer word, where a wide (CJK, kana,
    Hangul) letter next to it is a boundary too: Japanese and Chinese write no blank between words and
    Korean attaches its particles to the name ("이더넷에서")."""
    for m in re.finditer(re.escape(part), message, re.IGNORECASE):
        before = message[m.start() - 1] if m.start() else " "
        after = message[m.end()] if m.end() < len(message) else " "
        if (not before.isalnum() or _wide(before)) and (not after.isalnum() or _wide(after)):
            return True
    return False


def _errors_about(messages: list[str], header: str, headers: set[str]) -> list[str]:
    """The lines that name ``header`` better than any other adapter's header."""
    out = []
    for message in messages:
        mine = _named(message, header)
        if mine and all(_named(message, other) <= mine for other in headers if other != header):
            out.append(message)
    return out


def _find(facts: NetFacts, adapter: NetAdapter) -> NetAdapter | None:
    if not facts.readable:
        return None
    mac = normalize_mac(adapter.mac)
    by_mac = [a for a in facts.adapters if mac and a.mac == mac]
    if by_mac:
        return by_mac[0]
    by_ip = [a for a in facts.adapters if set(a.ipv4) & set(adapter.ipv4)]
    if by_ip:
        return by_ip[0]
    return next((a for a in facts.adapters if a.name == adapter.name), None)


def _state(name: str, connected: bool, ipv4: tuple[str, ...], suffix: str, dhcp: bool | None) -> str | None:
    """Why an adapter shown like this did not get a lease from the renew (None: it holds one)."""
    if not connected:
        stale = f"; the suffix it still shows ({suffix}) is from an earlier lease" if suffix else ""
        return f"{name} is media disconnected (no link): the renew cannot reach it{stale}"
    if not ipv4:
        return f"{name} has no IPv4 address after the renew"
    if all(a.startswith("169.254.") for a in ipv4):
        return f"{name} holds only {ipv4[0]} (autoconfiguration: no DHCP server answered)"
    if dhcp is False:
        return f"DHCP is not enabled on {name} (static address): a renew cannot hand it option 15"
    return None


def judge_renew(output: str, after: NetFacts, adapter: NetAdapter) -> RenewVerdict:
    """``output``: what ``ipconfig /renew`` printed (stdout and stderr); ``after``: ``ipconfig /all`` read
    right after it; ``adapter``: the adapter AMT shares as read before (MAC, addresses, name)."""
    target = _find(after, adapter)
    name = target.name if target is not None else adapter.name
    readable = bool(output and output.strip()) and not html_encoded(output)
    cfg = parse_ipconfig(output) if readable else None
    blocks: list[IpConfigAdapter] = []
    messages: list[str] = []
    if cfg is not None:
        last = max([a.section for a in cfg.adapters] + list(cfg.message_sections) + [0])
        blocks = [a for a in cfg.adapters if a.section == last]  # release + renew: the renew's part
        messages = [m for m, s in zip(cfg.messages, cfg.message_sections) if s == last]
    headers = {b.header for b in blocks} | {a.name for a in after.adapters} | {name}
    mine = [b for b in blocks if b.header == name] or [b for b in blocks if set(b.ipv4) & set(adapter.ipv4)]
    others = tuple(f"{b.header} ({b.ipv4[0]})" for b in blocks if b not in mine and b.ipv4 and b.connected
                   and not b.autoconfig_ipv4)
    also = f"; adapters holding an address after it: {', '.join(others)}" if others else ""
    errors = _errors_about(messages, name, headers)
    if errors:
        return RenewVerdict(False, f"ipconfig /renew did not renew {name}: {errors[0][:300]}{also}", False, others)
    if cfg is not None and not blocks and messages:
        # a renew that ran prints a block per adapter; only messages ("The operation failed as no adapter is in
        # the state permissible for this operation.", "The requested operation requires elevation.") means it
        # renewed nothing, and the adapter read afterwards still shows the lease it had before
        said = " ".join(messages)[:300]
        return RenewVerdict(False, f"ipconfig /renew renewed no adapter ({name} included): {said}", False, ())
    if target is not None:
        why = _state(name, target.connected, target.ipv4, target.suffix, target.dhcp_enabled)
        if why:
            return RenewVerdict(False, f"{why}{also}", False, others)
        return RenewVerdict(True, f"{name} holds {target.ipv4[0]} after the renew (ipconfig /all read back)", True,
                            others)
    if after.readable:
        return RenewVerdict(False, f"ipconfig /all after the renew lists no adapter with MAC {adapter.mac or '?'} "
                                   f"or address {', '.join(adapter.ipv4) or '?'}{also}", False, others)
    if mine:
        block = mine[-1]
        why = _state(name, block.connected, block.ipv4, block.suffix, None)
        if why:
            return RenewVerdict(False, f"{why} (ipconfig /renew's own output){also}", False, others)
        return RenewVerdict(True, f"{name} shows {block.ipv4[0]} in ipconfig /renew's output (ipconfig /all "
                                  f"unreadable after it: {'; '.join(after.problems)[:150]})", True, others)
    why = "is not readable" if not readable else f"shows no block for {name}"
    return RenewVerdict(True, f"ipconfig /renew ran; its output {why} and ipconfig /all could not be read "
                              "after it: whether it reached the adapter is unverified (AMT's read-back decides)",
                        None, others)
