"""Generate a realistic fleet file, the matching legacy-console inventory and an SSH key pair.

The mix is deterministic for a seed and covers every case the migration must handle; the first
hosts take one of each case so even a 20-host fleet has them all.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CERT_SUFFIX = "contoso.com"
LEGACY_USER = "admin"

SCOPES = [
    {"name": "hq", "subnet": "127.10.0.0/16", "domain_name": "contoso.com", "lease": "1h"},
    {"name": "branch", "subnet": "127.12.0.0/16", "domain_name": "branch.contoso.com", "lease": "1h"},
    # option 15 is wrong here: a renew can never fix a device in this scope
    {"name": "lab-old", "subnet": "127.11.0.0/16", "domain_name": "contoso.local", "lease": "1h"},
]
_SCOPE_NET = {"hq": 10, "lab-old": 11, "branch": 12}
PRIMARY = {"hq": ["sales.contoso.com", "eng.contoso.com", "contoso.com"],
           "branch": ["branch.contoso.com"], "lab-old": ["contoso.com", "sales.contoso.com"]}
WRONG = ["fabrikam.com", "contoso.local", "corp.northwindtraders.com"]

#: (case, weight). Each case is one line of the migration's decision table.
CASES = [
    ("legacy_match", 26),            # legacy console set a matching DomainName: provisions at once
    ("legacy_mismatch", 12),         # DomainName wrong -> WS-Man write fixes it
    ("legacy_blank", 4),             # DomainName blank, DHCP suffix wrong -> WS-Man write
    ("pre_trusted_match", 7),        # PKI suffix set in MEBx earlier
    ("pre_dhcp_match", 10),          # option 15 right when the window was open
    ("pre_dhcp_mismatch_open", 7),   # window open now: a renew fixes it
    ("pre_dhcp_mismatch_closed", 8), # window closed: attempt, renew, attempt
    ("pre_blank", 4),                # AMT never got a suffix
    ("pre_trusted_wrong", 3),        # PKI suffix set wrong: renews can't help; host-interface write can
    ("pre_wrong_scope", 5),          # scope lab-old hands out contoso.local
    ("unsupported", 2),              # firmware < 3.2.1
    ("down", 1), ("blackhole", 1), ("ssh_auth", 1), ("renew_ignored", 2),
]
OLD_VERSIONS = ["2.6.3", "3.0.1", "2.2.1"]
VERSIONS = ["11.8.50.3425", "12.0.70.1652", "15.0.35.2039", "16.1.25.2124", "7.1.91.3272",
            "9.5.60.1952", "6.2.61.3535", "3.2.1.1082"]


def write_keypair(out: Path) -> tuple[Path, Path]:
    """keys/id_ed25519 (+ .pub) under out, created once; the client key a served fleet authorizes."""
    out = Path(out)
    keys = out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    priv, pub = keys / "id_ed25519", keys / "id_ed25519.pub"
    if not priv.exists() or not pub.exists():
        k = Ed25519PrivateKey.generate()
        priv.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()))
        priv.chmod(0o600)
        pub.write_text(k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH).decode()
                       + " amt-lab-migrator\n")
    return priv, pub


_keypair = write_keypair  # older name, used by tests elsewhere


def _case_list(hosts: int, rng: random.Random) -> list[str]:
    names = [c for c, _ in CASES]
    first = names[:] if hosts >= len(names) else rng.sample(names, hosts)
    rng.shuffle(first)
    rest = rng.choices(names, weights=[w for _, w in CASES], k=max(0, hosts - len(first)))
    return first + rest


_PER_NET = 256 * 254  # host addresses .0.1 to .255.254 in one 127.NET.0.0/16


def _address(scope: str, n: int) -> str:
    """The n-th (1-based) address of a scope: 127.NET.(n // 254).(n % 254 + 1) in its /16; past 65,023 hosts
    the scope spills into sibling /16s 20 apart (127.10 -> 127.30 -> 127.50 ...), each declared as a copy."""
    k, m = divmod(n, _PER_NET)
    net = _SCOPE_NET[scope] + 20 * k
    if net > 255:
        raise ValueError(f"scope {scope} cannot hold {n:,} hosts on loopback addresses")
    return f"127.{net}.{m // 254}.{m % 254 + 1}"


def _scopes_for(used: dict[str, int]) -> list[dict]:
    """SCOPES plus one copy per sibling /16 a scope spilled into (same option 15 and lease)."""
    out = [dict(s) for s in SCOPES]
    for s in SCOPES:
        for k in range(1, used[s["name"]] // _PER_NET + 1):
            net = _SCOPE_NET[s["name"]] + 20 * k
            out.append({**s, "name": f"{s['name']}-{k + 1}", "subnet": f"127.{net}.0.0/16"})
    return out


def build(hosts: int, seed: int, *, window: str = "30s", retry_interval: str = "30s",
          renew_failure_rate: float = 0.0, password: str | None = None) -> tuple[dict, dict]:
    """Return (fleet, inventory) mappings without touching the disk."""
    if hosts < 1:
        raise ValueError("hosts must be at least 1")
    rng = random.Random(seed)
    password = password or f"Lab-{rng.getrandbits(48):012x}!"
    used: dict[str, int] = {"hq": 0, "lab-old": 0, "branch": 0}
    devices, inv_hosts = [], []
    width = max(4, len(str(hosts)))
    for i, case in enumerate(_case_list(hosts, rng), start=1):
        scope = "lab-old" if case == "pre_wrong_scope" else ("branch" if rng.random() < 0.15 else "hq")
        n = used[scope] = used[scope] + 1
        address = _address(scope, n)
        os_type = "linux" if rng.random() < 0.25 else "windows"
        name = f"{'LX' if os_type == 'linux' else 'WS'}-{i:0{width}d}"
        primary = rng.choice(PRIMARY[scope])
        option15 = next(s["domain_name"] for s in SCOPES if s["name"] == scope)
        d = {"name": name, "address": address, "os": os_type, "os_suffix": option15, "primary_suffix": primary,
             "amt_version": rng.choice(VERSIONS), "state": "pre", "trusted_suffix": "", "dhcp_suffix": "",
             "domain_name": "", "interface_open": False, "legacy": None, "faults": []}
        good = rng.choice(["contoso.com", "sales.contoso.com", "eng.contoso.com"])
        if case.startswith("legacy") or case in ("down", "blackhole") and rng.random() < 0.5:
            d["state"] = "legacy"
            d["legacy"] = {"user": LEGACY_USER, "password": password}
            d["dhcp_suffix"] = rng.choice(WRONG + [good])
        if case == "legacy_match":
            d["domain_name"] = good
        elif case == "legacy_mismatch":
            d["domain_name"] = rng.choice(WRONG)
        elif case == "legacy_blank":
            d["dhcp_suffix"] = rng.choice(WRONG)
        elif case == "pre_trusted_match":
            d["trusted_suffix"] = good
            d["dhcp_suffix"] = rng.choice(WRONG + [""])
        elif case == "pre_dhcp_match":
            d["dhcp_suffix"] = option15
        elif case == "pre_dhcp_mismatch_open":
            d["dhcp_suffix"], d["interface_open"] = rng.choice(WRONG), True
        elif case == "pre_dhcp_mismatch_closed":
            d["dhcp_suffix"] = rng.choice(WRONG)
        elif case == "pre_blank":
            d["interface_open"] = rng.random() < 0.3
        elif case == "pre_trusted_wrong":
            d["trusted_suffix"], d["dhcp_suffix"] = rng.choice(WRONG), option15
        elif case == "pre_wrong_scope":
            d["dhcp_suffix"] = "contoso.local"
            d["interface_open"] = rng.random() < 0.5
        elif case == "unsupported":
            d["amt_version"] = rng.choice(OLD_VERSIONS)
            d["dhcp_suffix"] = rng.choice([option15, "contoso.com"])
        elif case in ("down", "blackhole", "ssh_auth", "renew_ignored"):
            d["faults"] = [case]
            if d["state"] == "legacy":
                d["domain_name"] = rng.choice([good, rng.choice(WRONG)])
            else:
                d["dhcp_suffix"] = rng.choice(WRONG)
                d["interface_open"] = case == "renew_ignored"
        if d["state"] == "legacy":
            d["host_name"] = name
        devices.append(d)
        h = {"name": name, "address": address, "amt_version": d["amt_version"], "os": os_type,
             "tags": [scope, f"floor{rng.randint(1, 6)}"], "legacy_managed": d["state"] == "legacy"}
        if d["state"] == "legacy":
            h["amt_suffix"] = d["domain_name"]  # the legacy console knows what it wrote
        if rng.random() < 0.9:
            h["os_suffix"] = primary
        inv_hosts.append(h)
    fleet = {
        "certificate_suffix": CERT_SUFFIX, "seed": seed, "window": window, "retry_interval": retry_interval,
        "renew_failure_rate": renew_failure_rate, "ssh": {"authorized_keys": "keys/id_ed25519.pub"},
        "scopes": _scopes_for(used), "devices": devices,
    }
    inventory = {
        "name": "lab-fleet",
        "state": "sqlite:///state/lab-fleet.db",
        "provisioning": {"server": "lab", "url": "http://127.0.0.1:8480", "certificate_suffix": CERT_SUFFIX},
        "window": {"interface_open": window, "retry_interval": retry_interval},
        "credentials": {
            "ssh": {"user": "migrator", "key_env": "AMTMIG_SSH_KEY", "known_hosts": "known_hosts"},
            "legacy_amt": {"user": LEGACY_USER, "password_env": "AMTMIG_LEGACY_AMT_PASSWORD"},
        },
        "dhcp_scopes": _scopes_for(used),
        "defaults": {"os": "windows", "ssh_port": 2222, "amt_port": 16992},
        # the lab's own host-interface tool (lab/shell.py); a real site names its tool or leaves these out
        "host_tools": {"hi_set": ["lab-amt-hi", "set-dns-suffix", "{suffix}", "--json"],
                       "hi_get": ["lab-amt-hi", "get-dns-suffix", "--json"]},
        "hosts": inv_hosts,
        "waves": [{"name": "wave-1", "hosts": ["*"], "max_concurrency": 50, "max_fail_percentage": 20,
                   "remediation": ["amt_write", "dhcp_renew", "mebx"]}],
    }
    return fleet, inventory


def generate_fleet(hosts: int, seed: int, out_dir, window: str = "30s", retry_interval: str = "30s",
                   renew_failure_rate: float = 0.0, password: str | None = None) -> dict[str, Path]:
    """Write fleet.yaml, inventory.yaml and keys/id_ed25519(.pub) into out_dir; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fleet, inventory = build(hosts, seed, window=window, retry_interval=retry_interval,
                             renew_failure_rate=renew_failure_rate, password=password)
    priv, pub = write_keypair(out)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    fleet_path, inv_path = out / "fleet.yaml", out / "inventory.yaml"
    header = ("# amt-lab fleet file (see lab/README.md). Holds the lab's legacy admin password:\n"
              "# export it as AMTMIG_LEGACY_AMT_PASSWORD for the migration, never copy it into an inventory.\n")
    fleet_path.write_text(header + yaml.dump(fleet, Dumper=dumper, sort_keys=False, default_flow_style=None, width=120))
    fleet_path.chmod(0o600)
    inv_path.write_text("# Generated by amt-migrate lab generate: only what a legacy console export knows.\n"
                        + yaml.dump(inventory, Dumper=dumper, sort_keys=False, default_flow_style=None, width=120))
    return {"fleet": fleet_path, "inventory": inv_path, "private_key": priv, "public_key": pub}


def next_steps(paths: dict[str, Path]) -> list[str]:
    """What a user types after `lab generate` to run a wave against the fleet just written: serve it,
    export the variables the inventory names (read from the files written, so they can't drift), run.

    The legacy password is a lab value (stored in fleet.yaml), so printing it is fine; quoted for a POSIX
    shell (it holds `!`). The inventory's URL and ports are `lab serve`'s defaults."""
    import shlex

    inventory = yaml.safe_load(Path(paths["inventory"]).read_text())
    fleet = yaml.safe_load(Path(paths["fleet"]).read_text())
    creds = inventory.get("credentials") or {}
    lines = ["next: serve the fleet (in another terminal; it stays in the foreground):",
             f"    amt-migrate lab serve {shlex.quote(str(paths['fleet']))}",
             "then, in this shell, export what the inventory references and run a wave:"]
    key_env = (creds.get("ssh") or {}).get("key_env")
    if key_env:
        lines.append(f"    export {key_env}={shlex.quote(str(Path(paths['private_key']).resolve()))}")
    password_env = (creds.get("legacy_amt") or {}).get("password_env")
    if password_env:
        password = next((d["legacy"]["password"] for d in fleet["devices"] if d.get("legacy")), None)
        if password is None:
            lines.append(f"    export {password_env}=unused   # no device of this fleet is legacy-managed: any value")
        else:
            lines.append(f"    export {password_env}={shlex.quote(password)}   # the lab's legacy admin password")
    inv = shlex.quote(str(paths["inventory"]))
    waves = [w["name"] for w in inventory.get("waves") or []]
    lines.append(f"    amt-migrate plan {inv}")
    for w in waves[:1]:
        lines.append(f"    amt-migrate run {inv} --wave {w}")
    return lines
