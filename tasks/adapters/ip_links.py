"""A Linux host's interfaces from iproute2: ``ip -j addr`` (JSON, iproute2 >= 4.14.1) or, where ip has no JSON
(CentOS/RHEL 7 ship iproute 3.10/4.11: jc issue #464; an EdgeRouter's ip printed nothing for ``--json``:
edgerouter-exporter#151), the text of ``ip addr show``. No I/O here.
"""

from __future__ import annotations

import json
import re

from tasks.adapters.netfacts import NetAdapter, normalize_mac


def parse_ip_json(text: str) -> list[NetAdapter]:
    """``ip -j addr``: always an array; links without L2 have no ``address``; ``dynamic`` marks DHCP."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("ip -j addr did not print an array")
    out = []
    for link in data:
        if not isinstance(link, dict) or link.get("link_type") == "loopback" or not link.get("ifname"):
            continue  # iproute2 4.x printed empty objects for links a family filter left out
        infos = [i for i in link.get("addr_info") or [] if isinstance(i, dict)]
        v4 = [i for i in infos if i.get("family") == "inet" and isinstance(i.get("local"), str)]
        out.append(NetAdapter(
            name=str(link.get("ifname") or ""),
            mac=normalize_mac(link.get("address")),
            ipv4=tuple(i["local"] for i in v4),
            dhcp_enabled=True if any(i.get("dynamic") for i in v4) else (False if v4 else None),
            index=link.get("ifindex") if isinstance(link.get("ifindex"), int) else None,
            connected=link.get("operstate") not in ("DOWN",) and bool(v4),
        ))
    return out


#: ``2: eth0: <FLAGS> mtu ...``; a web page's copy may have lost the ``<FLAGS>`` (taken for an HTML tag)
_IP_LINK = re.compile(r"^(?P<idx>\d+):\s+(?P<name>[^:@\s]+)(?:@\S+)?:\s+(?:<(?P<flags>[^>]*)>)?(?P<rest>.*)$")


def parse_ip_text(text: str) -> list[NetAdapter]:
    """``ip addr show`` as every iproute2 prints it (ip-address(8)): ``N: NAME[@LINK]: <FLAGS> ... state S``,
    then indented ``link/TYPE MAC``, ``inet A/P ... [dynamic] ...`` rows; ``dynamic`` marks a DHCP lease."""
    out: list[dict] = []
    for line in text.splitlines():
        m = _IP_LINK.match(line.strip()) if line[:1].isdigit() else None
        if m:
            state = re.search(r"\bstate\s+(\S+)", m["rest"])
            out.append({"index": int(m["idx"]), "name": m["name"], "state": state[1] if state else "", "mac": "",
                        "loopback": "LOOPBACK" in (m["flags"] or "").split(","), "v4": [], "dynamic": False})
            continue
        words = line.split()
        if not out or not words:
            continue
        if words[0].startswith("link/") and len(words) > 1:
            out[-1]["mac"] = words[1] if words[0] == "link/ether" else ""
            out[-1]["loopback"] |= words[0] == "link/loopback"
        elif words[0] == "inet" and len(words) > 1:
            out[-1]["v4"].append(words[1].split("/")[0])
            out[-1]["dynamic"] |= "dynamic" in words
    return [NetAdapter(name=i["name"], mac=normalize_mac(i["mac"]), ipv4=tuple(i["v4"]),
                       dhcp_enabled=True if i["dynamic"] else (False if i["v4"] else None), index=i["index"],
                       connected=i["state"] != "DOWN" and bool(i["v4"])) for i in out if not i["loopback"]]


def adapters_from_sections(sections: dict[str, str]) -> list[NetAdapter]:
    """``ip -j addr``, or the text of ``ip addr show`` when ip has no JSON (ValueError when neither reads)."""
    try:
        return parse_ip_json(sections.get("ip", "").strip())
    except (ValueError, json.JSONDecodeError) as exc:
        text = parse_ip_text(sections.get("iptext", ""))
        if text:
            return text
        raise ValueError(str(exc)) from exc
