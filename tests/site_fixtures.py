"""A migration site in a box for flow tests: a served lab fleet plus the inventory a lead would write.

The inventory only knows what a legacy console export would; the fleet holds the truth the lab
checks against, so tests compare the tool's conclusions with the lab's admin view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from lab.generate import write_keypair
from lab.server import LabServer

PASSWORD = "Lab-Secret-9f8e7d"  # the legacy console's admin password in these fleets (a known value to grep for)

SCOPES = [
    {"name": "hq", "subnet": "127.10.0.0/16", "domain_name": "contoso.com", "lease": "1h"},
    {"name": "lab-old", "subnet": "127.11.0.0/16", "domain_name": "contoso.local", "lease": "1h"},
]


def device(name, address, *, version="11.8.50", state="pre", trusted="", dhcp="", domain="", os="windows",
           os_suffix="contoso.com", legacy=False, faults=(), interface_open=False) -> dict:
    return {"name": name, "address": address, "os": os, "os_suffix": os_suffix, "amt_version": version,
            "state": state, "trusted_suffix": trusted, "dhcp_suffix": dhcp, "domain_name": domain,
            "interface_open": interface_open, "legacy": {"user": "admin", "password": PASSWORD} if legacy else None,
            "faults": list(faults)}


@dataclass
class Site:
    lab: LabServer
    inventory: Path
    dir: Path

    def admin(self, name: str) -> dict:
        return httpx.get(f"{self.lab.http_url}/admin/devices/{name}", timeout=10).json()

    def admin_all(self) -> dict[str, dict]:
        return {d["name"]: d for d in httpx.get(f"{self.lab.http_url}/admin/devices", timeout=30).json()}


def write_fleet(dirpath: Path, devices: list[dict], *, window="30s", retry_interval="1h", renew_failure_rate=0.0,
                latency=None) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    priv, pub = write_keypair(dirpath)
    fleet = {"certificate_suffix": "contoso.com", "window": window, "retry_interval": retry_interval,
             "renew_failure_rate": renew_failure_rate, "seed": 5, "ssh": {"authorized_keys": str(pub.relative_to(dirpath))},
             "scopes": SCOPES, "devices": devices}
    if latency:
        fleet["latency"] = latency
    path = dirpath / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    return path


#: the lab's host-interface tool (lab/shell.py `lab-amt-hi`); real sites configure their own or none
LAB_HOST_TOOLS = {"hi_set": ["lab-amt-hi", "set-dns-suffix", "{suffix}", "--json"],
                  "hi_get": ["lab-amt-hi", "get-dns-suffix", "--json"]}


DMT_PASSWORD = "lab-Pa55w0rd"  # the lab's MPS web admin (lab/api.py default)


def _provisioning(lab: LabServer, server: str) -> dict:
    """`lab`: the lab's plain provisioning API. `rpc`: what a real site runs — rpc-go on each client over
    SSH against RPS, with RPS/MPS's REST API named so every activation is read back from MPS."""
    if server == "lab":
        return {"server": "lab", "url": lab.http_url, "certificate_suffix": "contoso.com"}
    return {"server": "rpc", "url": "wss://rps.contoso.com/activate", "certificate_suffix": "contoso.com",
            "profile": "acm-contoso",
            "api": {"url": lab.http_url, "user": "admin", "password_env": "AMTMIG_DMT_PASSWORD"}}


def inventory_for(lab: LabServer, devices: list[dict], waves: list[dict], *, window="30s", name="site",
                  state_url: str | None = None, known: str = "legacy", server: str = "lab") -> dict:
    """What a legacy console export gives: names, addresses, versions, legacy AMT domains; no truth."""
    hosts = []
    for d in devices:
        h = {"name": d["name"], "address": d["address"], "amt_version": d["amt_version"], "os": d["os"],
             "legacy_managed": d["legacy"] is not None, "os_suffix": d["os_suffix"]}
        if d["legacy"] is not None and known == "legacy":
            h["amt_suffix"] = d["domain_name"] or d["dhcp_suffix"]
        hosts.append(h)
    inv = {
        "name": name,
        "provisioning": _provisioning(lab, server),
        "window": {"interface_open": window, "retry_interval": "1h"},
        "credentials": {"ssh": {"user": "migrator", "key_env": "AMTMIG_SSH_KEY",
                                "known_hosts": str(lab.known_hosts_path),
                                "connect_timeout": "3s", "command_timeout": "10s"},
                        "legacy_amt": {"user": "admin", "password_env": "AMTMIG_LEGACY_AMT_PASSWORD"}},
        "dhcp_scopes": SCOPES,
        "defaults": {"os": "windows", "ssh_port": lab.ssh_port, "amt_port": lab.amt_port},
        "host_tools": LAB_HOST_TOOLS,
        "hosts": hosts,
        "waves": waves,
    }
    if state_url:
        inv["state"] = state_url
    return inv


def start_site(tmp: Path, devices: list[dict], waves: list[dict], monkeypatch=None, **kw) -> Site:
    fleet_kw = {k: kw.pop(k) for k in ("window", "retry_interval", "renew_failure_rate", "latency") if k in kw}
    fleet_path = write_fleet(tmp, devices, **fleet_kw)
    lab = LabServer(fleet_path, known_hosts=tmp / "known_hosts").start()
    inv = inventory_for(lab, devices, waves, window=fleet_kw.get("window", "30s"), **kw)
    inv_path = tmp / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump(inv, sort_keys=False))
    env = {"AMTMIG_SSH_KEY": str(lab.private_key_path), "AMTMIG_LEGACY_AMT_PASSWORD": PASSWORD,
           "AMTMIG_DMT_PASSWORD": DMT_PASSWORD}
    if monkeypatch is not None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return Site(lab, inv_path, tmp)


def ran_to_its_end(state) -> bool:
    """A wave run that did all it could: Completed, or Failed-typed and named "Completed with ..." because it
    left hosts failed or for a technician (flows/migrate.py final_state). Halted and crashed runs are not."""
    return state.is_completed() or (state.is_failed() and (state.name or "").startswith("Completed with"))
