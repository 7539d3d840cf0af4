"""Turn a legacy AMT console's export (CSV, or XLSX with openpyxl) into an inventory.

Exports differ in column names from console to console, so columns are matched by normalised
synonyms and can be mapped by hand; every row is validated with the inventory's own rules.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from tasks.inventory.model import Host, load_inventory
from tasks.inventory.yaml_source import InputError, Problem

FIELDS = ("name", "address", "amt_version", "amt_suffix", "os_suffix", "os", "legacy_managed", "tags")
REQUIRED = ("name", "address", "amt_version")

SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("name", "host", "hostname", "host name", "computer", "computer name", "device name", "netbios name", "machine name"),
    "address": ("address", "ip", "ip address", "ipv4", "ipv4 address", "ip addresses", "amt ip address"),
    "amt_version": ("amt version", "amt fw version", "firmware version", "me version", "amt firmware", "version"),
    "amt_suffix": ("amt suffix", "amt dns suffix", "amt domain", "amt domain name", "amt fqdn suffix", "domain name (amt)"),
    "os_suffix": ("os suffix", "os dns suffix", "dns suffix", "os domain", "primary dns suffix", "domain"),
    "os": ("os", "operating system", "os name", "platform"),
    "legacy_managed": ("provisioned", "managed", "amt provisioned", "provisioning state", "amt state", "legacy managed"),
    "tags": ("tags", "collection", "group", "site", "location"),
}


def _norm(col: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(col).strip().lower())


def match_columns(columns: list[str], overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Map export columns to inventory fields; returns (field -> column, problems)."""
    problems = []
    by_norm = {_norm(c): c for c in columns}
    mapping: dict[str, str] = {}
    for col, fld in overrides.items():
        if fld not in FIELDS:
            problems.append(f"--map {col}={fld}: unknown field (fields: {', '.join(FIELDS)})")
        elif col not in columns and _norm(col) not in by_norm:
            problems.append(f"--map {col}={fld}: no column {col!r} in the export (columns: {', '.join(columns)})")
        else:
            mapping[fld] = col if col in columns else by_norm[_norm(col)]
    for fld in FIELDS:
        if fld in mapping:
            continue
        for syn in SYNONYMS[fld]:
            if syn in by_norm and by_norm[syn] not in mapping.values():
                mapping[fld] = by_norm[syn]
                break
    for fld in REQUIRED:
        if fld not in mapping:
            problems.append(f"no column for required field {fld!r} (columns: {', '.join(columns)}); use --map COLUMN={fld}")
    return mapping, problems


def _os(value: str) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if "windows" in v or v.startswith("win"):
        return "windows"
    if any(k in v for k in ("linux", "ubuntu", "debian", "rhel", "red hat", "suse", "centos", "fedora")):
        return "linux"
    raise ValueError(f"operating system {value!r} is neither Windows nor Linux")


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if not v:
        return None
    if v in ("1", "yes", "y", "true", "provisioned", "post", "post-provisioning", "managed", "admin", "client", "2"):
        return True
    if v in ("0", "no", "n", "false", "unprovisioned", "pre", "pre-provisioning", "not provisioned", "0 - pre"):
        return False
    raise ValueError(f"{value!r} is not yes/no or a provisioning state")


def read_export(path: Path):
    import pandas as pd

    if not path.exists():
        raise InputError([Problem(str(path), 0, "", "file not found")])
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=str, keep_default_na=False), 2
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"), 2
    except ImportError as exc:
        raise InputError([Problem(str(path), 0, "", f"cannot read {path.suffix} files: {exc} (pip install openpyxl)")]) from None
    except Exception as exc:  # pandas raises many parser error types
        raise InputError([Problem(str(path), 1, "", f"cannot parse the export: {exc}")]) from None


def rows_to_hosts(path: Path, overrides: dict[str, str]) -> tuple[list[dict], list[Problem]]:
    frame, first_line = read_export(path)
    columns = [str(c) for c in frame.columns]
    mapping, col_problems = match_columns(columns, overrides)
    if col_problems:
        raise InputError([Problem(str(path), 1, "", p) for p in col_problems])
    hosts, problems, lines = [], [], []
    for i, record in enumerate(frame.to_dict("records")):
        line = first_line + i
        raw = {fld: str(record.get(col, "")).strip() for fld, col in mapping.items()}
        if not any(raw.values()):
            continue
        entry: dict = {}
        try:
            for fld in ("name", "address", "amt_version"):
                if not raw.get(fld):
                    raise ValueError(f"{mapping[fld]}: empty")
                entry[fld] = raw[fld]
            if "amt_suffix" in raw and raw["amt_suffix"]:
                entry["amt_suffix"] = raw["amt_suffix"]
            if "os_suffix" in raw and raw["os_suffix"]:
                entry["os_suffix"] = raw["os_suffix"]
            if raw.get("os"):
                entry["os"] = _os(raw["os"])
            if raw.get("legacy_managed"):
                entry["legacy_managed"] = _bool(raw["legacy_managed"])
            if raw.get("tags"):
                entry["tags"] = [re.sub(r"[^A-Za-z0-9_.-]+", "-", t.strip()).strip("-") for t in re.split(r"[;,|]", raw["tags"]) if t.strip()]
            Host.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                fld = err["loc"][0] if err["loc"] else ""
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(Problem(str(path), line, f"row {line - 1}: {mapping.get(fld, fld)}", msg))
            continue
        except ValueError as exc:
            problems.append(Problem(str(path), line, f"row {line - 1}", str(exc)))
            continue
        hosts.append(entry)
        lines.append(line)
    # duplicates by row number, like every other bad row (the first occurrence is kept as the reference)
    for fld in ("name", "address"):
        seen: dict[str, int] = {}
        for h, line in zip(hosts, lines):
            key = h[fld].lower()
            if key in seen:
                problems.append(Problem(str(path), line, f"row {line - 1}: {mapping[fld]}",
                                        f"duplicate {'host' if fld == 'name' else 'address'} {h[fld]!r} "
                                        f"(first at row {seen[key] - 1})"))
            else:
                seen[key] = line
    problems.sort(key=lambda p: p.line)
    return hosts, problems


def build_inventory(name: str, cert_suffix: str, hosts: list[dict], server: str, url: str | None) -> dict:
    prov: dict = {"server": server, "certificate_suffix": cert_suffix}
    if url:
        prov["url"] = url
    return {
        "name": name,
        "provisioning": prov,
        "credentials": {
            "ssh": {"user": "migrator", "key_env": "AMTMIG_SSH_KEY", "known_hosts": "state/known_hosts"},
            "legacy_amt": {"user": "admin", "password_env": "AMTMIG_LEGACY_AMT_PASSWORD"},
        },
        "hosts": hosts,
        "waves": [{"name": "wave-1", "hosts": ["*"], "max_concurrency": 50, "max_fail_percentage": 20,
                   "remediation": ["amt_write", "dhcp_renew", "mebx"]}],
    }


def write_inventory_atomically(data: dict, out: Path, *, force: bool) -> None:
    """Validate the finished inventory through the real loader before it replaces anything."""
    if out.exists() and not force:
        raise InputError([Problem(str(out), 0, "", "exists; pass --force to overwrite")])
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".import-", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Imported from a legacy console export by `amt-migrate import-legacy`; review the waves.\n")
            yaml.safe_dump(data, f, sort_keys=False, default_flow_style=None, width=140)
        load_inventory(tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
