"""Turn a legacy AMT console's export into an inventory file, all or nothing.

Reading and mapping the consoles' exports lives in `tasks.inventory.legacy`; this module writes the
result, validated by the real inventory loader before it replaces anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from tasks.inventory.legacy import ImportResult, import_export  # noqa: F401 - the importer's entry points
from tasks.inventory.model import load_inventory
from tasks.inventory.yaml_source import InputError, Problem


def build_inventory(name: str, cert_suffix: str, hosts: list[dict], server: str, url: str | None,
                    ca_bundle: str | None = None) -> dict:
    prov: dict = {"server": server, "certificate_suffix": cert_suffix}
    if url:
        prov["url"] = url
    legacy: dict = {"user": "admin", "password_env": "AMTMIG_LEGACY_AMT_PASSWORD"}
    if ca_bundle:
        legacy["ca_bundle"] = ca_bundle
    return {
        "name": name,
        "provisioning": prov,
        "credentials": {
            "ssh": {"user": "migrator", "key_env": "AMTMIG_SSH_KEY", "known_hosts": "state/known_hosts"},
            "legacy_amt": legacy,
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
