"""The demo (issue 18): its inventory shows every path, including a host for the technician, and
`amt-migrate demo --keep` leaves the lab serving so the commands it prints work from another shell."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from flows.demo import every_path
from lab.generate import generate_fleet
from tasks.inventory.model import load_inventory
from tasks.rules.plan import PATHS, build_plan

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_inventory_takes_every_path(tmp_path):
    paths = generate_fleet(60, 7, tmp_path, window="20s", retry_interval="20s")
    data = yaml.safe_load(paths["inventory"].read_text())
    every_path(data, "20s")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    inv = load_inventory(path)
    plan = build_plan(inv)
    # adopt comes from discovery (it reads the legacy hosts as activated); the export's own word gives the rest
    assert set(PATHS) - {"adopt"} <= {h.path for h in plan.hosts}
    assert inv.technicians and all(str(r) == "2/20s" for r in inv.technicians.values())
    assert str(inv.provisioning.rate) == "3/s"


def _read_until(lines: "queue.Queue[str | None]", text: str, timeout: float) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not printed within {timeout} s:\n{seen[-3000:]}")


def _lines(proc) -> "queue.Queue[str | None]":
    """The child's output line by line, read by a thread (a pipe's buffer may hold more than select says)."""
    q: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def test_demo_keep_leaves_the_lab_serving_for_the_printed_commands(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "demo", "--keep", "-o", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        seen = _read_until(_lines(proc), "the lab keeps serving", 400)
        assert "forecast of wave-1 made at its run's start" in seen
        env_file = out / "demo.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        shell = {**env, **{k: v.strip("'") for k, v in values.items()}}
        inv = out / "demo-inventory.yaml"
        rerun = subprocess.run([sys.executable, "-m", "flows.cli", "rerun", str(inv), "--wave", "wave-1", "--status",
                                "failed", "--dry-run"], cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "a real rerun would stop here" not in rerun.stderr  # the server and every credential answer
        status = subprocess.run([sys.executable, "-m", "flows.cli", "forecast", str(inv), "--wave", "wave-1", "--json"],
                                cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
