"""`amt-migrate demo` and `amt-migrate lab ...`: the CLI's one way into the lab.

`demo` runs a whole wave against an in-process lab, from nothing, in about a minute: it generates a
~60-host fleet covering every case, serves it on ephemeral loopback ports with windows of seconds,
points a copy of the generated inventory at it, and runs the same migrate_wave flow a site runs: the
lab is reached only through the adapters (HTTP API, SSH, WS-Man).

The orchestration lives here, on the product's side, because it drives the product (flows.cli); the
lab itself imports nothing from tasks/ or flows/ so that it stays an independent judge. flows/cli.py
mounts the lab's own typer app and the demo command through :func:`mount`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import typer
import yaml


def prepare_demo(out: Path, hosts: int, seed: int, window: str, lab):
    """Write the inventory that points at a running lab; returns its path and the env it needs."""
    inv_src = out / "inventory.yaml"
    data = yaml.safe_load(inv_src.read_text())
    data["name"] = data.get("name") or "lab-demo"
    data["state"] = f"sqlite:///{(out / 'state' / 'demo.db').resolve()}"
    # the path a site uses: rpc-go on each client over SSH against RPS, every activation verified in MPS
    # (the lab's rpc-go emulation and its RPS/MPS REST API); the lab's own /api/v1/provision is for tests
    data["provisioning"] = {"server": "rpc", "url": lab.http_url.replace("http://", "wss://") + "/activate",
                            "certificate_suffix": data["provisioning"]["certificate_suffix"],
                            "profile": data["provisioning"].get("profile", "amt-migrate"),
                            "api": {"url": lab.http_url, "user": DMT_USER, "password_env": "AMTMIG_DMT_PASSWORD"}}
    data.setdefault("defaults", {})
    data["defaults"]["ssh_port"] = lab.ssh_port
    data["defaults"]["amt_port"] = lab.amt_port
    for wave in data.get("waves", []):
        wave["remediation"] = ["dhcp_renew", "amt_write", "mebx"]  # show renews first, direct writes as fallback
    data["credentials"]["ssh"]["known_hosts"] = str(Path(lab.known_hosts_path).resolve())
    every_path(data, window)
    path = out / "demo-inventory.yaml"
    path.write_text("# The generated inventory, pointed at the in-process lab by amt-migrate demo.\n"
                    + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=140))
    return path


def every_path(data: dict, window: str) -> None:
    """Two legacy hosts as other exports describe them, so the demo shows every path: one the console reports
    activated with nobody holding its password (ConfigMgr *Detected*: the technician path), one whose legacy
    record must be removed before the new server takes it (unprovision first). Technicians per site (the hosts' scope tags) at 2 visits per lab
    day (the window stands for 24 h), and the pace the demo's server reaches here, for the forecast."""
    legacy = [h for h in data["hosts"] if h.get("legacy_managed")]
    if len(legacy) >= 2:
        legacy[0].update(legacy_managed=False, amt_state="activated", control_mode="acm")
        legacy[0].pop("amt_suffix", None)
        legacy[1]["legacy"] = {"console": "configmgr", "remove_first": True}
    data["technicians"] = {s["name"]: f"2/{window}" for s in data.get("dhcp_scopes", [])}
    # measured: the demo's pass 1 (rpc-go over SSH, 50 at a time, lab and client on 2 cores) did ~3 attempts/s
    data["provisioning"]["rate"] = "3/s"


DMT_USER, DMT_PASSWORD = "admin", "lab-Pa55w0rd"  # the lab's MPS web admin (lab/api.py, fleet `dmt:` default)


def legacy_password(fleet_path: Path) -> str | None:
    fleet = yaml.safe_load(fleet_path.read_text())
    for dev in fleet.get("devices", []):
        if dev.get("legacy"):
            return dev["legacy"]["password"]
    return None


def demo(
    out: Path = typer.Option(Path("state/demo"), "-o", "--out", help="where the fleet, state and reports go"),
    hosts: int = typer.Option(60, "--hosts", min=10),
    seed: int = typer.Option(7, "--seed"),
    window: str = typer.Option("20s", "--window", help="AMT window in the lab (24h in reality)"),
    keep: bool = typer.Option(False, "--keep", help="leave the lab serving after the wave (Ctrl-C stops it), so "
                              "the printed rerun, status and forecast commands work from another shell"),
):
    """Generate a lab fleet, serve it in-process, run a whole wave, print the summary and its forecast."""
    # the CLI mounts this module, so its names are resolved at call time
    from flows.commands.base import EXIT_HOSTS_LEFT
    from flows.commands.base import out as console
    from flows.commands.wave import run_wave
    from lab.generate import generate_fleet
    from lab.server import LabServer

    started = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    paths = generate_fleet(hosts, seed, out, window=window, retry_interval=window)
    with LabServer(paths["fleet"], known_hosts=out / "known_hosts") as lab:
        inventory = prepare_demo(out, hosts, seed, window, lab)
        env = demo_env(out, paths)
        inv = yaml.safe_load(inventory.read_text())
        wave = inv["waves"][0]["name"]
        console.print(f"lab: {hosts} hosts, SSH :{lab.ssh_port}, WS-Man :{lab.amt_port}, server {lab.http_url}; "
                      f"window {window}", highlight=False)
        code = run_wave(inventory, wave)
        closing(console, out, inventory, wave, started)
        if keep:
            serve_on(console, env)
        else:
            console.print("the lab stops with the demo, so the commands above have nothing to talk to: "
                          "`amt-migrate demo --keep` leaves it serving until Ctrl-C", highlight=False)
    # the demo fleet fails some hosts on purpose (SSH down, wrong credentials, old firmware): a wave that
    # ran to its end with those left over is the demo working (exit 4 of `run`), not the demo failing
    raise typer.Exit(0 if code == EXIT_HOSTS_LEFT else code)


def demo_env(out: Path, paths: dict) -> Path:
    """The variables the inventory names, set for this process and written (0600) for another shell."""
    values = {"AMTMIG_SSH_KEY": str(Path(paths["private_key"]).resolve()), "AMTMIG_DMT_PASSWORD": DMT_PASSWORD}
    password = legacy_password(paths["fleet"])
    if password:
        values["AMTMIG_LEGACY_AMT_PASSWORD"] = password
    os.environ.update(values)
    env = out / "demo.env"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
    return env


def closing(console, out: Path, inventory: Path, wave: str, started: float) -> None:
    from flows.commands.forecast import forecast_vs_actual

    reports = out / "state" / "reports" / wave
    console.print(f"\nstate:     {out / 'state' / 'demo.db'}\nreports:   {reports / 'report.html'}, "
                  f"{reports / 'hosts.csv'}\nwork list: {reports / 'mebx-worklist.csv'}\n"
                  f"inventory: {inventory}\nelapsed:   {time.monotonic() - started:.0f}s\n", highlight=False)
    console.print("\n".join(forecast_vs_actual(inventory, wave)), highlight=False, markup=False)


def serve_on(console, env: Path) -> None:
    """Keep the lab up until Ctrl-C (or SIGTERM), saying how to reach it from another shell."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"\nthe lab keeps serving: in another shell, `set -a; . {env.resolve()}; set +a`, then the "
                  f"commands above (rerun, status, forecast, mebx done); Ctrl-C here stops it", highlight=False)
    while not stop.wait(0.5):
        pass


def mount(app: typer.Typer) -> bool:
    """Attach `lab generate|serve` (the lab's own CLI) and `demo` to the product's CLI, if the lab is there."""
    try:
        from lab.cli import app as lab_app
    except ImportError:
        return False

    app.add_typer(lab_app, name="lab", help="The simulated AMT fleet: generate and serve.")
    app.command(help="The demo: a whole wave against an in-process lab of ~60 hosts covering every case.")(demo)
    return True
