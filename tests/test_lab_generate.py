"""The fleet generator and the lab CLI (generate, serve)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from lab.amt_rules import Firmware
from lab.cli import app
from lab.generate import CASES, build, generate_fleet
from lab.model import Fleet

pytest.register_assert_rewrite("tests.lab_fixtures")
pytest_plugins = ["tests.lab_fixtures"]

HOST_KEYS = {"name", "address", "amt_version", "amt_suffix", "os_suffix", "os", "tags", "legacy_managed",
             "ssh_port", "amt_port"}
ROOT = Path(__file__).resolve().parents[1]


def test_same_seed_same_fleet_other_seed_other_fleet():
    a, _ = build(200, 42, password="x")
    b, _ = build(200, 42, password="x")
    c, _ = build(200, 43, password="x")
    assert a == b and a != c


def test_every_case_is_present_even_in_a_small_fleet():
    fleet, _ = build(len(CASES), 1)
    f = Fleet.from_dict(fleet)
    devs = list(f.devices.values())
    assert {d.state for d in devs} == {"pre", "legacy"}
    assert {d["os"] for d in build(60, 1)[0]["devices"]} == {"windows", "linux"}
    faults = Counter(fl for d in devs for fl in d.faults.as_list())
    assert {"down", "blackhole", "ssh_auth", "renew_ignored"} <= set(faults)
    assert any(Firmware.parse(d.amt_version) < Firmware.parse("3.2.1") for d in devs)
    assert any(d.scope == "lab-old" for d in devs)
    verdicts = Counter(f.verdict(d).refused or "accepted" for d in devs)
    assert {"accepted", "blank", "mismatch", "firmware-too-old"} <= set(verdicts)
    windows = {f.interface_open(d) for d in devs}
    assert windows == {True, False}
    # a mismatch sharing nothing with the certificate, and one that differs only in the TLD
    wrong = {d.effective_suffix for d in devs if not f.verdict(d).accepted and d.effective_suffix}
    assert wrong & {"contoso.local"} and wrong & {"fabrikam.com", "corp.northwindtraders.com"}


def test_generated_files_and_inventory_contract(tmp_path):
    paths = generate_fleet(40, 9, tmp_path)
    assert {p.name for p in paths.values()} == {"fleet.yaml", "inventory.yaml", "id_ed25519", "id_ed25519.pub"}
    assert paths["private_key"].stat().st_mode & 0o077 == 0
    fleet = yaml.safe_load(paths["fleet"].read_text())
    inv = yaml.safe_load(paths["inventory"].read_text())
    password = next(d["legacy"]["password"] for d in fleet["devices"] if d["legacy"])
    assert password not in paths["inventory"].read_text()          # the secret stays in the fleet file
    assert {d["legacy"]["password"] for d in fleet["devices"] if d["legacy"]} == {password}
    for h in inv["hosts"]:
        assert set(h) <= HOST_KEYS
        assert not set(h["tags"]) & {"down", "blackhole", "pre", "legacy", "unsupported"}  # no lab-only facts
    by_name = {d["name"]: d for d in fleet["devices"]}
    for h in inv["hosts"]:
        d = by_name[h["name"]]
        assert h["legacy_managed"] == (d["state"] == "legacy")
        if d["state"] == "legacy":
            assert h["amt_suffix"] == d["domain_name"]          # the legacy console knows what it wrote
        else:
            assert "amt_suffix" not in h                        # nobody knows a pre-provisioning AMT's suffix
    assert inv["provisioning"]["certificate_suffix"] == fleet["certificate_suffix"]
    assert inv["dhcp_scopes"] == fleet["scopes"]


def test_tasks_inventory_loader_accepts_a_generated_inventory(tmp_path):
    from tasks.inventory import model as inventory

    paths = generate_fleet(25, 3, tmp_path)
    inv = inventory.load_inventory(paths["inventory"])
    assert len(inv.hosts) == 25
    assert {h.name for h in inv.hosts} == {d["name"] for d in yaml.safe_load(paths["fleet"].read_text())["devices"]}


def test_cli_generate(tmp_path):
    result = CliRunner().invoke(app, ["generate", "--hosts", "12", "--seed", "4", "-o", str(tmp_path / "g"),
                                      "--window", "2m", "--retry-interval", "1m"])
    assert result.exit_code == 0, result.output
    fleet = yaml.safe_load((tmp_path / "g" / "fleet.yaml").read_text())
    assert (len(fleet["devices"]), fleet["window"], fleet["retry_interval"]) == (12, "2m", "1m")
    bad = CliRunner().invoke(app, ["generate", "--hosts", "3", "-o", str(tmp_path / "h"), "--window", "soon"])
    assert bad.exit_code != 0


def test_cli_serve_prints_ready_and_stops_on_sigterm(tmp_path):
    paths = generate_fleet(20, 2, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "serve", str(paths["fleet"]), "--ssh-port", "0", "--amt-port", "0",
         "--http-port", "0", "--known-hosts", str(tmp_path / "kh")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready "), line + proc.stderr.read()
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        assert httpx.get(fields["http"] + "/healthz").json()["devices"] == 20
        assert (tmp_path / "kh").read_text().count(f"]:{fields['ssh']} ssh-ed25519 ") == 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""   # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_scope_past_65023_hosts_spills_into_a_declared_sibling_subnet():
    """127.10.(n // 254) overflowed past 255 (127.10.256.1 is no address): a 100,000-host fleet was invalid."""
    import ipaddress

    from lab.generate import _address, _scopes_for

    assert _address("hq", 1) == "127.10.0.2" and _address("hq", 65023) == "127.10.255.254"
    assert _address("hq", 65024) == "127.30.0.1" and _address("lab-old", 65024 * 2 + 5) == "127.51.0.6"
    scopes = _scopes_for({"hq": 65024 * 2, "lab-old": 10, "branch": 65023})
    nets = {s["name"]: (ipaddress.ip_network(s["subnet"]), s["domain_name"]) for s in scopes}
    assert set(nets) == {"hq", "hq-2", "hq-3", "lab-old", "branch"}
    assert nets["hq-3"] == (ipaddress.ip_network("127.50.0.0/16"), nets["hq"][1])
    # every address of a full fleet is a distinct valid address inside exactly one declared scope
    fleet, inv = build(90000, 1)  # hq gets ~80 % of the hosts: past one /16
    addrs = [ipaddress.ip_address(h["address"]) for h in inv["hosts"]]
    assert len(set(addrs)) == len(addrs)
    declared = [ipaddress.ip_network(s["subnet"]) for s in inv["dhcp_scopes"]]
    assert all(sum(a in n for n in declared) == 1 for a in addrs)
    assert fleet["scopes"] == inv["dhcp_scopes"] and "hq-2" in {s["name"] for s in inv["dhcp_scopes"]}


def test_cli_generate_prints_what_to_export_serve_and_run(tmp_path, monkeypatch):
    """After `lab generate` a new user must not have to read the inventory to learn which variables it names:
    the output says how to serve the fleet, what to export (values included; the password is a lab value)
    and the command that runs a wave. Each printed line is held to the files written and to `lab serve`."""
    import inspect
    import shlex

    from flows.preflight import missing_credentials
    from lab.cli import serve
    from tasks.inventory.model import load_inventory

    out = tmp_path / "g"
    result = CliRunner().invoke(app, ["generate", "--hosts", "20", "--seed", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [ln.strip() for ln in result.output.splitlines()]
    assert f"amt-migrate lab serve {out / 'fleet.yaml'}" in lines
    exports = [ln.split("   #")[0] for ln in lines if ln.startswith("export ")]
    # what a POSIX shell makes of the printed lines (the password holds a `!`)
    shell = subprocess.run(["bash", "-c", "\n".join(exports) + '\nprintf "%s\\n%s" "$AMTMIG_SSH_KEY" '
                            '"$AMTMIG_LEGACY_AMT_PASSWORD"'], capture_output=True, text=True, env={})
    key, password = shell.stdout.split("\n")
    fleet = yaml.safe_load((out / "fleet.yaml").read_text())
    assert key == str((out / "keys" / "id_ed25519").resolve())
    assert password == next(d["legacy"]["password"] for d in fleet["devices"] if d["legacy"])
    # exactly the variables the inventory references, and with them nothing is missing
    inv = load_inventory(out / "inventory.yaml")
    assert {e.split()[1].split("=")[0] for e in exports} == {inv.credentials.ssh.key_env,
                                                             inv.credentials.legacy_amt.password_env}
    for k, v in (("AMTMIG_SSH_KEY", key), ("AMTMIG_LEGACY_AMT_PASSWORD", password)):
        monkeypatch.setenv(k, v)
    assert missing_credentials(inv) == []
    # the run command names the inventory written and one of its waves
    run = next(ln for ln in lines if ln.startswith("amt-migrate run "))
    argv = shlex.split(run)
    assert argv[2] == str(out / "inventory.yaml") and argv[3:] == ["--wave", inv.waves[0].name]
    # `lab serve FLEET` with its defaults is where the inventory points
    defaults = {name: p.default.default for name, p in inspect.signature(serve).parameters.items()
                if hasattr(p.default, "default")}
    assert inv.provisioning.url == f"http://127.0.0.1:{defaults['http_port']}"
    assert (inv.defaults.ssh_port, inv.defaults.amt_port) == (defaults["ssh_port"], defaults["amt_port"])
    assert inv.resolve(inv.credentials.ssh.known_hosts) == out / "known_hosts"  # serve writes it beside the fleet
