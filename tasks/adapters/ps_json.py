"""Network adapters from PowerShell's ``ConvertTo-Json``, whichever cmdlet produced the objects and whichever
PowerShell serialized them. No I/O here.

The objects are read by their property names, which are the CIM classes' API names and never localized
(case-insensitive, aliases included), and by their values' shapes:

- Win32_NetworkAdapterConfiguration (``Description``, ``MACAddress``, ``IPAddress[]``, ``DNSDomain``,
  ``DHCPEnabled``, ``InterfaceIndex``, ``IPEnabled``; learn.microsoft.com cimwin32prov);
- MSFT_NetAdapter / ``Get-NetAdapter`` (``Name`` alias ``InterfaceAlias``/``ifAlias``, ``InterfaceDescription``
  alias ``ifDesc``, ``InterfaceIndex`` alias ``ifIndex``, ``MacAddress`` alias ``LinkLayerAddress``,
  ``PermanentAddress`` as 12 hex digits, ``Status`` "Up"/"Disconnected"; MSFT_NetAdapter class, NetAdapterCim);
- ``Get-NetIPConfiguration`` (``InterfaceAlias``, ``InterfaceIndex``, ``IPv4Address[]`` of MSFT_NetIPAddress
  objects with ``IPAddress``, the MSFT_NetAdapter nested as ``NetAdapter``);
- MSFT_DNSClient / ``Get-DnsClient`` (``ConnectionSpecificSuffix``), MSFT_NetIPInterface (``Dhcp`` 0/1 or
  "Disabled"/"Enabled").

Two serializer quirks are undone, not misread:

- Windows PowerShell 5.1 writes an array it sees as one object as ``{"value": [...], "Count": N}`` (an ETS
  ``Count`` on System.Array: PowerShell/PowerShell#5579, #3153);
- ``ConvertTo-Json`` replaces what lies deeper than ``-Depth`` (default 2) by its ToString():
  ``"System.Object[]"``, ``"@{IPAddress=...}"``, ``"MSFT_NetIPAddress (Name = ...)"`` (#3574). Addresses cut
  that way are unknown, so the output is "could not read" rather than an adapter without an address.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tasks.adapters.commands import lenient_suffix
from tasks.adapters.netfacts import NetAdapter, is_ipv4, normalize_mac

#: what ConvertTo-Json prints for an object or array deeper than -Depth (its ToString())
_CUT = re.compile(r"^(?:System\.[\w.`]+(?:\[\])?|@\{.*\}|[A-Za-z_]\w*(?:\.\w+)* \(.*=.*\))$", re.S)

_MAC = ("macaddress", "linklayeraddress", "permanentaddress")
_INDEX = ("interfaceindex", "ifindex")
_DESCRIPTION = ("description", "interfacedescription", "ifdesc")
_NAME = ("interfacealias", "name", "ifalias", "netconnectionid")
_SUFFIX = ("dnsdomain", "connectionspecificsuffix")
_ADDRESSES = ("ipaddress", "ipv4address", "allipaddresses")


def load(text: str) -> Any:
    """The JSON document, skipping anything printed before the line it starts on (a profile's or a login
    script's output); PS 5.1's ``{"value": [...], "Count": N}`` unwrapped everywhere."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as first:
        start = re.search(r"^[ \t]*[\[{]", text, re.M)
        if start is None or start.start() == 0:
            raise first
        data, _ = json.JSONDecoder().raw_decode(text[start.start():].lstrip())
    return unwrap(data)


def unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if {k.lower() for k in value} == {"value", "count"} and isinstance(_get(value, ("value",)), list):
            return unwrap(_get(value, ("value",)))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def cut(value: Any) -> bool:
    """A value ConvertTo-Json's depth limit replaced by its ToString()."""
    return isinstance(value, str) and bool(_CUT.match(value.strip()))


def _get(item: dict, names: tuple[str, ...]) -> Any:
    lowered = {k.lower(): v for k, v in item.items()}
    for name in names:
        if lowered.get(name) not in (None, ""):
            return lowered[name]
    return None


def _nested(item: dict) -> list[dict]:
    """The item and the objects nested in it (``Get-NetIPConfiguration``'s ``NetAdapter``)."""
    return [item] + [v for v in item.values() if isinstance(v, dict)]


def _find(item: dict, names: tuple[str, ...]) -> Any:
    for obj in _nested(item):
        value = _get(obj, names)
        if value is not None:
            return value
    return None


def has_suffix_property(item: dict) -> bool:
    """Whether the object carries a DNS-suffix property at all (null counts: Win32's DNSDomain is null
    when there is none); ``Get-NetIPConfiguration`` and ``Get-NetAdapter`` objects carry none."""
    return any(k.lower() in _SUFFIX for obj in _nested(item) for k in obj)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _addresses(item: dict, problems: list[str], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for key in _ADDRESSES:
        for value in _as_list(_get(item, (key,))):
            if isinstance(value, dict):
                value = _get(value, ("ipaddress", "ipv4address"))
            if cut(value):
                problems.append(f"{where}: {key} was cut by ConvertTo-Json's depth limit ({str(value)[:60]})")
            elif isinstance(value, str) and is_ipv4(value.split("/")[0]):
                out.append(value.split("/")[0])
    return tuple(dict.fromkeys(out))


def _dhcp(item: dict) -> bool | None:
    value = _find(item, ("dhcpenabled", "dhcp"))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {0: False, 1: True}.get(value)  # MSFT_NetIPInterface.Dhcp: 0 Disabled, 1 Enabled
    if isinstance(value, str):
        return {"enabled": True, "true": True, "disabled": False, "false": False}.get(value.strip().lower())
    return None


def _connected(item: dict, ipv4: tuple[str, ...]) -> bool:
    status = _find(item, ("status",))
    if isinstance(status, str) and status.strip():
        return status.strip().lower() == "up" and bool(ipv4)  # MSFT_NetAdapter.Status "Up", "Disconnected"...
    state = _find(item, ("mediaconnectstate",))
    if isinstance(state, int):
        return state == 1 and bool(ipv4)  # 1 Connected, 2 Disconnected
    return bool(ipv4)


def adapter(item: dict, problems: list[str]) -> NetAdapter | None:
    """One adapter from one serialized object; None for an object that is not an adapter or is not
    IP-enabled (``IPEnabled`` false)."""
    if _get(item, ("ipenabled",)) is False:
        return None
    index = _find(item, _INDEX)
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    index = index if isinstance(index, int) and not isinstance(index, bool) else None
    desc = str(_find(item, _DESCRIPTION) or "")
    name = str(_get(item, _NAME) or desc or (f"interface {index}" if index is not None else ""))
    mac_value = _find(item, _MAC)
    ipv4 = _addresses(item, problems, name or "adapter")
    if not name and not mac_value and not ipv4:
        return None
    return NetAdapter(
        name=name, mac=normalize_mac(mac_value), ipv4=ipv4,
        suffix=lenient_suffix(_find(item, _SUFFIX), f"{name}: DNS suffix", problems),
        dhcp_enabled=_dhcp(item), index=index, description=desc, connected=_connected(item, ipv4))
