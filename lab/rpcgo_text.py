"""What the lab's rpc-go prints as text, where a form needs more than a line or two (lab/shell.py runs it).

Follows rpc-go's source, not the product's readers (the lab never imports the product).
"""

from __future__ import annotations


def amtinfo_text_3x(info: dict) -> str:
    """rpc-go 3.x (beta.12+) `amtinfo` on a stdout that is not a terminal (internal/commands/amtinfo.go
    OutputText, single column): each section's title, a line of "─" as long as it, then rows of two
    spaces, the label padded to 30 columns (lipgloss Width(30)), a space and the value; no colour and no
    ":" at all. Rows with an empty value are printed only for the two DNS suffixes."""
    def section(title: str, rows: list[tuple[str, str]]) -> str:
        return f"\n  {title}\n  {'─' * len(title)}\n" + "".join(f"  {k:<30} {v}\n" for k, v in rows)

    device = [(k, info.get(key, "")) for k, key in (
        ("Version", "amt"), ("Build Number", "buildNumber"), ("SKU", "sku"), ("Features", "features"),
        ("UUID", "uuid"), ("Control Mode", "controlMode"), ("Provisioning State", "provisioningState"),
        ("AMT Operational State (BIOS)", "operationalState"))]
    device = [(k, v) for k, v in device if v] + [("DNS Suffix", info.get("dnsSuffix", "")),
                                                  ("DNS Suffix (OS)", info.get("dnsSuffixOS", ""))]
    device += [("Hostname (OS)", info["hostnameOS"])] if info.get("hostnameOS") else []
    ras = info["ras"]
    out = section("AMT Device Information", device)
    out += section("Remote Access", [("Network", ras["networkStatus"]), ("Remote Status", ras["remoteStatus"]),
                                     ("Trigger", ras["remoteTrigger"]), ("MPS Hostname", ras["mpsHostname"])])
    for title, key in (("Wired Adapter", "wiredAdapter"), ("Wireless Adapter", "wirelessAdapter")):
        a = info[key]
        if key == "wiredAdapter" and a["macAddress"] == "00:00:00:00:00:00":
            continue  # buildWiredSection skips a wired adapter without a MAC
        out += section(title, [("DHCP Enabled", str(a["dhcpEnabled"]).lower()), ("DHCP Mode", a["dhcpMode"]),
                               ("Link Status", a["linkStatus"]), ("AMT IP Address", a["ipAddress"]),
                               ("OS IP Address", a["osIpAddress"]), ("MAC Address", a["macAddress"])])
    return out + "\n"
