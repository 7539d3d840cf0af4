"""What each legacy console's export means, field by field, and how it becomes inventory hosts.

Sources for every code are in /work/research/legacy.md (section numbers below). The same digit means
different things per console (ConfigMgr AMTStatus 2 is *Not Provisioned*, MeshCentral state 2 is
*activated*), so each console decodes its own columns; nothing is guessed: an unknown code is an error.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from tasks.inventory.legacy.columns import find, norm
from tasks.inventory.legacy.reading import Table
from tasks.inventory.yaml_source import InputError, Problem
from tasks.rules.suffix import InvalidValue, normalize_dns_name

CONSOLES = ("configmgr", "ema", "meshcentral", "scs", "csv")

#: Fields a column can be mapped to with --map COLUMN=FIELD.
MAPPABLE = ("name", "address", "amt_version", "amt_suffix", "os_suffix", "os", "legacy_managed", "amt_state",
            "control_mode", "tags", "legacy_id", "status", "amt_tls")

#: Why AMT's DNS suffix is left unknown, per console (legacy.md §0.1).
SUFFIX_UNKNOWN = {
    "configmgr": "no ConfigMgr export carries AMT's DNS suffix (SMS_R_System has none; ResourceDomainORWorkgroup is "
                 "the NetBIOS domain or workgroup, not a DNS suffix)",
    "ema": "EMA exports the OS interface's DnsSuffix and the profile's intended suffix, not the one AMT holds",
    "meshcentral": "MeshCentral stores no AMT DNS suffix (only intelamt.host, the OS host name)",
    "scs": "no SCS discovery element for AMT's PKI DNS suffix is known",
    "csv": "the export has no AMT suffix column",
}

#: ConfigMgr SMS_R_System.AMTStatus (legacy.md §1.2: Microsoft "About the AMT Status and Out of Band
#: Management": null Unknown, 0 Not Supported, 1 Detected, 2 Not Provisioned, 3 Provisioned; the value
#: of *Externally Provisioned* is cut off in every copy of that page; 4 comes from a practitioner's
#: SQL report only). Values: (label, amt_state, legacy_managed).
AMT_STATUS: dict[int, tuple[str, str | None, bool | None]] = {
    0: ("Not Supported", None, None),
    1: ("Detected", "activated", False),
    2: ("Not Provisioned", "pre_provisioning", False),
    3: ("Provisioned", "activated", True),
    4: ("Externally Provisioned", "activated", False),
}

#: ME provisioning state, shared by ConfigMgr hardware inventory ProvisionState (Intel: 0 factory
#: set-up, 1 set-up, 2 operational), MeshCentral intelamt.state (0 Pre, 1 In, 2 Activated) and EMA
#: AmtProvisioningState (0 not provisioned, 1 in progress, 2 provisioned) — legacy.md §1.3, §2.3, §3.2.
STATE_WORDS = {
    "pre_provisioning": ("0", "pre", "preprovisioning", "pre provisioning", "not provisioned", "notprovisioned",
                         "unprovisioned", "not activated", "notactivated", "factory", "false", "no"),
    "in_provisioning": ("1", "in", "inprovisioning", "in provisioning", "in progress", "inprogress", "provisioning",
                        "setup", "set up"),
    "activated": ("2", "post", "postprovisioning", "post provisioning", "provisioned", "activated", "configured",
                  "operational", "true", "yes"),
}

#: EMA AmtControlMode (AVISPL Constant.java: 1 Client, 2 Admin, 3 Reserved), SCS AMTControlMode words.
CONTROL_WORDS = {
    "ccm": ("1", "ccm", "client", "clientcontrol", "client control", "client control mode"),
    "acm": ("2", "acm", "admin", "admincontrol", "admin control", "admin control mode"),
    None: ("0", "none", "not activated", "notactivated"),
}

YES = ("1", "yes", "y", "true", "managed", "provisioned")
NO = ("0", "no", "n", "false", "unmanaged", "unprovisioned", "not provisioned")

ARRAY_LOST = ("System.String[]", "System.Object[]")


class RowError(Exception):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column, self.message = column, message


class Skip(Exception):
    """A row that is not a migration target (no AMT): left out and listed in the summary."""


def _words(value: str) -> str:
    return re.sub(r"[\s_\-]+", " ", value.strip().lower())


def _lookup(table: dict, value: Any, column: str, what: str):
    text = _words(str(value))
    for key, words in table.items():
        if text in words or text.replace(" ", "") in words:
            return key
    allowed = "; ".join(f"{k or 'none'}: {', '.join(w[:3])}" for k, w in table.items())
    raise RowError(column, f"unknown {what} {value!r} (known: {allowed})")


@dataclass
class Row:
    """One record and the columns chosen for its fields; `text`/`fail` name the column in errors."""

    line: int
    record: dict[str, Any]
    columns: dict[str, str]
    alternates: dict[str, list[str]] = field(default_factory=dict)  # field -> further columns, tried when empty

    def __post_init__(self):
        self.primary = self.columns
        self.columns = dict(self.columns)
        for fld, cols in self.alternates.items():  # the first non-empty column of a field is the one used
            for col in [self.columns.get(fld)] + cols:
                if col is not None and self.record.get(col) not in (None, "", []):
                    self.columns[fld] = col
                    break

    def has(self, fld: str) -> bool:
        return fld in self.columns and self.raw(fld) not in (None, "", [])

    def raw(self, fld: str) -> Any:
        col = self.columns.get(fld)
        return None if col is None else self.record.get(col)

    def text(self, fld: str) -> str:
        v = self.raw(fld)
        return "" if v is None else str(v).strip()

    def col(self, fld: str) -> str:
        return self.columns.get(fld, fld)

    def fail(self, fld: str, message: str):
        raise RowError(self.col(fld), message)

    def checked_text(self, fld: str) -> str:
        """The cell, refusing PowerShell's flattened arrays with the re-export hint (legacy.md §1.4)."""
        text = self.text(fld)
        if text in ARRAY_LOST:
            col = self.col(fld)
            self.fail(fld, f"the export flattened the array to {text!r}: re-export with "
                           f"Select-Object @{{n='{col}';e={{$_.{col} -join ';'}}}}")
        return text


def pick_address(row: Row, fld: str = "address") -> str:
    """The first routable IPv4 of a multi-valued cell (IPv6 link-local and APIPA dropped), or a DNS name."""
    value = row.raw(fld)
    if isinstance(value, list):  # JSON: a list of addresses, or EMA's NetworkInterfaces objects
        parts = [str((p.get("IPv4Address") or p.get("IPv6Address") or "") if isinstance(p, dict) else p).strip()
                 for p in value]
    else:
        parts = re.split(r"[;,\s]+", row.checked_text(fld))
    parts = [p for p in parts if p]
    if not parts:
        row.fail(fld, "empty: no address to reach the host")
    ips, names = [], []
    for p in parts:
        try:
            ip = ipaddress.ip_address(p)
        except ValueError:
            names.append(p)
            continue
        if not (ip.is_link_local or ip.is_loopback or ip.is_unspecified):
            ips.append(ip)
    for name in names:  # a multi-valued cell may list names, never anything else ("10.1.0.26 | nc")
        try:
            normalize_dns_name(name, allow_blank=False)
        except InvalidValue:
            row.fail(fld, f"{name!r} in {row.text(fld)!r} is neither an IP address nor a DNS name")
    v4 = [ip for ip in ips if ip.version == 4]
    if v4 or ips:
        return str((v4 or ips)[0])
    if names:
        return names[0]
    row.fail(fld, f"{row.text(fld)!r} holds only link-local/loopback addresses")
    return ""


def version(row: Row) -> str:
    from tasks.rules.suffix import AmtVersion, InvalidValue

    text = row.checked_text("amt_version")
    if not text:
        row.fail("amt_version", "blank version: the export does not say which AMT firmware this host has "
                                "(fill it in, or leave the row out)")
    try:
        return str(AmtVersion.parse(text))
    except (InvalidValue, ValueError) as exc:
        row.fail("amt_version", str(exc))
    return ""


def os_of(value: str, column: str) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if "windows" in v or v.startswith("win"):
        return "windows"
    if any(k in v for k in ("linux", "ubuntu", "debian", "rhel", "red hat", "suse", "centos", "fedora")):
        return "linux"
    raise RowError(column, f"operating system {value!r} is neither Windows nor Linux")


def tags_of(value: Any) -> list[str]:
    items = value if isinstance(value, list) else re.split(r"[;,|]", str(value))
    return [t for t in (re.sub(r"[^A-Za-z0-9_.-]+", "-", str(x).strip()).strip("-") for x in items) if t]


# -- per console --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Console:
    name: str
    label: str
    synonyms: dict[str, tuple[str, ...]]
    decode: Callable[[Row, dict], None]  # fills the entry's console-specific fields
    credentials_note: str = ""


COMMON = {
    "name": ("name", "host", "hostname", "host name", "computer", "computer name", "device name", "netbios name",
             "machine name"),
    "address": ("address", "ip", "ip address", "ipv4", "ipv4 address", "ip addresses", "amt ip address"),
    "amt_version": ("amt version", "amt full version", "amt fw version", "firmware version", "me version",
                    "amt firmware", "version"),
    "amt_suffix": ("amt suffix", "amt dns suffix", "amt domain", "amt domain name", "amt fqdn suffix",
                   "domain name (amt)", "pki dns suffix"),
    "os_suffix": ("os suffix", "os dns suffix", "dns suffix", "primary dns suffix", "os domain"),
    "os": ("os", "operating system", "os name", "platform"),
    "legacy_managed": ("provisioned", "managed", "amt provisioned", "legacy managed"),
    "amt_state": ("amt state", "provisioning state", "provision state", "amt provisioning state",
                  "amt configuration state"),
    "control_mode": ("control mode", "amt control mode"),
    "tags": ("tags", "collection", "group", "site", "location"),
    "legacy_id": ("resource id", "endpoint id", "legacy id", "uuid"),
    "status": ("amt status",),
    "amt_tls": ("amt tls", "tls", "uses tls"),
}


def _decode_generic(row: Row, entry: dict) -> None:
    if row.has("status"):
        _decode_amt_status(row, entry)
    if row.has("legacy_managed"):
        v = _words(row.text("legacy_managed"))
        if v not in YES + NO:
            row.fail("legacy_managed", f"{row.text('legacy_managed')!r} is not yes/no")
        entry["legacy_managed"] = v in YES
    _decode_state_and_mode(row, entry)
    if row.has("amt_tls"):
        v = _words(row.text("amt_tls"))
        if v not in YES + NO:
            row.fail("amt_tls", f"{row.text('amt_tls')!r} is not yes/no")
        entry["amt_tls"] = v in YES


def _decode_state_and_mode(row: Row, entry: dict) -> None:
    if row.has("amt_state"):
        state = _lookup(STATE_WORDS, row.text("amt_state"), row.col("amt_state"), "provisioning state")
        if entry.get("amt_state") and entry["amt_state"] != state:
            entry.setdefault("_notes", []).append(
                f"{row.col('amt_state')} says {state} but {row.col('status')} says {entry['amt_state']}: "
                f"took {row.col('amt_state')} (read from the ME by the client)")
        entry["amt_state"] = state
    if row.has("control_mode"):
        text = row.text("control_mode")
        if _words(text) in ("3", "reserved"):
            row.fail("control_mode", f"{text!r} is 'Reserved' in EMA's AmtControlMode: no control mode to act on")
        mode = _lookup(CONTROL_WORDS, text, row.col("control_mode"), "control mode")
        if mode:
            entry["control_mode"] = mode
            entry.setdefault("amt_state", "activated")


def _decode_amt_status(row: Row, entry: dict) -> None:
    text = row.checked_text("status")
    try:
        code = int(text)
    except ValueError:
        code = None
    if code not in AMT_STATUS:
        row.fail("status", f"unknown AMTStatus code {text!r} (ConfigMgr documents empty = Unknown, 0 Not Supported, "
                           "1 Detected, 2 Not Provisioned, 3 Provisioned, 4 Externally Provisioned)")
    label, state, managed = AMT_STATUS[code]
    if code == 0:
        raise Skip("AMTStatus 0 (Not Supported): ConfigMgr found no AMT capability")
    entry["_status"] = f"AMTStatus {code} ({label})" + (" [4 = Externally Provisioned per a practitioner report; "
                                                         "Microsoft's page is cut off before the value]" if code == 4 else "")
    entry["amt_state"] = state
    entry["legacy_managed"] = managed
    if code == 3:
        # ConfigMgr OOB provisions with a PKI provisioning certificate (enterprise mode -> admin control mode)
        # and requests a web-server certificate for each AMT it provisions, so AMT answers on TLS 16993
        # (legacy.md §1.5; the ACM reading is inferred from PKI-based provisioning).
        entry["control_mode"] = "acm"
        entry["amt_tls"] = True


def _decode_configmgr(row: Row, entry: dict) -> None:
    if row.has("status"):
        _decode_amt_status(row, entry)
    else:
        entry["_status"] = "AMTStatus empty (Unknown: AMT status not discovered)"
    _decode_state_and_mode(row, entry)


def _decode_ema(row: Row, entry: dict) -> None:
    _decode_state_and_mode(row, entry)
    if entry.get("amt_state") != "activated":
        entry.pop("control_mode", None)
    parts = [f"{row.col(f)} {row.text(f)}" for f in ("amt_state", "control_mode") if row.has(f)]
    entry["_status"] = ", ".join(parts) or None
    nics = row.record.get("NetworkInterfaces")
    if isinstance(nics, list):
        suffixes = [str(n.get("DnsSuffix") or "").strip() for n in nics if isinstance(n, dict)]
        if suffixes and suffixes[0] and "os_suffix" not in entry:
            entry["os_suffix"] = suffixes[0]


def _decode_meshcentral(row: Row, entry: dict) -> None:
    rec = row.record
    if not any(k.startswith("intelamt.") for k in rec):
        raise Skip("MeshCentral reports no Intel AMT on this device (no intelamt object)")
    state = rec.get("intelamt.state")
    if state is None:
        raise RowError("intelamt.state", "missing: MeshCentral has not read AMT's provisioning state yet")
    entry["amt_state"] = _lookup(STATE_WORDS, state, "intelamt.state", "intelamt.state")
    flags = rec.get("intelamt.flags")
    if entry["amt_state"] == "activated" and flags is not None:
        try:
            flags = int(flags)
        except (TypeError, ValueError):
            raise RowError("intelamt.flags", f"{flags!r} is not a number") from None
        # amtmanager.js: (flags & 2) == CCM, (flags & 4) == ACM
        if flags & 4:
            entry["control_mode"] = "acm"
        elif flags & 2:
            entry["control_mode"] = "ccm"
    tls = rec.get("intelamt.tls")
    if entry["amt_state"] == "activated" and tls is not None:
        entry["amt_tls"] = str(tls) == "1"  # meshctrl.js: tls 1 = "Secured using TLS"
    held = bool(rec.get("intelamt.user")) and rec.get("intelamt.pass") not in (None, "", 0)
    entry["_status"] = f"intelamt.state {state}, flags {flags}" + (", MeshCentral holds AMT credentials" if held else "")
    if held:
        entry["_console_credentials"] = True


def _decode_scs(row: Row, entry: dict) -> None:
    supported = row.record.get(row.columns.get("_supported", ""), "")
    if str(supported).strip().lower() == "false":
        raise Skip("SCS reports IsAMTSupported false")
    _decode_state_and_mode(row, entry)
    parts = [f"{row.col(f)} {row.text(f)}" for f in ("amt_state", "control_mode") if row.has(f)]
    entry["_status"] = ", ".join(parts) or None


CONFIGMGR = Console("configmgr", "Microsoft ConfigMgr (SMS_R_System)", {
    "name": ("Name", "NetbiosName", "Name0", "Netbios_Name0", "ComputerName"),
    "address": ("IPAddresses", "IPAddress", "IP_Addresses0"),
    "amt_version": ("AMTFullVersion", "AMTFullVersion0", "AMT", "AMT0"),
    "status": ("AMTStatus", "AMTStatus0"),
    "amt_state": ("ProvisionState", "ProvisionState0"),
    "legacy_id": ("ResourceID", "ResourceID0"),
    "os": ("OperatingSystemNameandVersion", "OperatingSystemNameandVersion0"),
    # ResourceDomainORWorkgroup is deliberately absent: a NetBIOS domain, not a DNS suffix (legacy.md §1.1)
}, _decode_configmgr, "AMTStatus 3 hosts use ConfigMgr's AMT accounts: put them in credentials.legacy_amt")

EMA = Console("ema", "Intel EMA (endpoints API)", {
    "name": ("ComputerName",),
    "address": ("NetworkInterfaces", "IPv4Address", "IPAddress", "Fqdn"),
    "amt_version": ("MEVersion", "MEInfo.MEVersion", "MEInfo.VersionString"),
    "amt_state": ("AmtProvisioningState", "MEInfo.AmtProvisioningState"),
    "control_mode": ("AmtControlMode", "MEInfo.AmtControlMode"),
    "legacy_id": ("EndpointId",),
    "tags": ("EndpointGroupName",),
    "os": ("OperatingSystem",),
}, _decode_ema, "EMA keeps each endpoint's AMT password itself; the export carries none")

MESHCENTRAL = Console("meshcentral", "MeshCentral (meshctrl ListDevices --json)", {
    "name": ("name",),
    "address": ("host", "ip", "intelamt.host"),
    "amt_version": ("intelamt.ver",),
    "legacy_id": ("_id",),
    "tags": ("groupname",),
    "os": ("osdesc",),
}, _decode_meshcentral, "MeshCentral never exports AMT passwords (meshuser.js replaces intelamt.pass with 1)")

SCS = Console("scs", "Intel SCS", {
    "name": ("ComputerName", "HostName", "SystemName", "Name", "FQDN"),
    "address": ("IP", "IPAddress", "IPv4Address", "FQDN"),
    "amt_version": ("AMTVersion", "AMTVer", "AMTversion"),
    "amt_state": ("AMTConfigurationState", "IsAMTConfigured"),
    "control_mode": ("AMTControlMode",),
    "legacy_id": ("UUID",),
    "tags": ("Profile", "ProfileName", "SCSProfileName"),
    "os": ("OperatingSystem",),
    "_supported": ("IsAMTSupported",),
}, _decode_scs, "SCS keeps AMT admin passwords in its database (or its profile); the export carries none")

GENERIC = Console("csv", "a generic table", COMMON, _decode_generic)

BY_NAME = {c.name: c for c in (CONFIGMGR, EMA, MESHCENTRAL, SCS, GENERIC)}


def detect(table: Table) -> str:
    """The console an export comes from, by its columns (or a clear error for shapes that can't be imported)."""
    cols = {norm(c) for c in table.columns}
    first = table.columns[0] if table.columns else ""
    if table.kind == "csv" and (first.startswith(("mesh//", "node//")) or re.fullmatch(r"[A-Za-z0-9@$]{40,}", first)):
        raise InputError([Problem(str(table.path), 1, "", "this looks like `meshctrl ListDevices --csv`: it has no header "
                                  "and no AMT fields (state, version, control mode); export with `--json` instead")])
    if "amt status" in cols or {"resource id", "amt full version"} <= cols or "amt status0" in cols:
        return "configmgr"
    if "provision state" in cols and "resource id" in cols:
        raise InputError([Problem(str(table.path), 1, "", "this is ConfigMgr hardware inventory (SMS_G_System_AMT_AGENT): "
                                  "it has no computer names or addresses; export SMS_R_System (Name, IPAddresses, "
                                  "AMTFullVersion, AMTStatus) or join the two on ResourceID")])
    if table.kind == "xml" or cols & {"amt configuration state", "is amt configured"} or (
            "uuid" in cols and cols & {"fqdn", "profile", "profile name"}):
        return "scs"
    if cols & {"amt control mode", "amt provisioning state", "endpoint id", "me info amt control mode"}:
        return "ema"
    if any(c.startswith("intelamt ") for c in cols) or {"mtype", "meshid"} & cols:
        return "meshcentral"
    return "csv"


def alternates(console: Console, table: Table, mapping: dict[str, str]) -> dict[str, list[str]]:
    """Further columns for a field, tried in order when the chosen one is empty (MeshCentral host, ip, intelamt.host)."""
    out: dict[str, list[str]] = {}
    for fld, syns in console.synonyms.items():
        cols = [c for c in (find(table.columns, (s,)) for s in syns) if c and c != mapping.get(fld)]
        if fld in mapping and cols:
            out[fld] = list(dict.fromkeys(cols))
    return out


def match_columns(console: Console, table: Table, overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Field -> column for this console (its own names first, then the generic synonyms); --map wins."""
    problems: list[str] = []
    mapping: dict[str, str] = {}
    for col, fld in overrides.items():
        if fld not in MAPPABLE:
            problems.append(f"--map {col}={fld}: unknown field (fields: {', '.join(MAPPABLE)})")
            continue
        found = col if col in table.columns else find(table.columns, (col,))
        if found is None:
            problems.append(f"--map {col}={fld}: no column {col!r} in the export (columns: {', '.join(table.columns)})")
        else:
            mapping[fld] = found
    for fld, syns in console.synonyms.items():
        if fld not in mapping:
            found = find(table.columns, syns, set(mapping.values()))
            if found:
                mapping[fld] = found
    if console.name != "csv":  # console exports may still carry a hand-added column (an AMT suffix an admin collected)
        for fld in ("amt_suffix", "os_suffix"):
            if fld not in mapping:
                found = find(table.columns, COMMON[fld], set(mapping.values()))
                if found:
                    mapping[fld] = found
    for fld in ("name", "address", "amt_version"):
        if fld not in mapping:
            problems.append(f"no column for required field {fld!r} in this {console.label} export "
                            f"(columns: {', '.join(table.columns)}); use --map COLUMN={fld}")
    return mapping, problems
