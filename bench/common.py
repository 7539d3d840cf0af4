"""Shared pieces of the benchmarks: fleets with latency, a lab in its own process, CPU and memory probes."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Realistic defaults (issue 6): an SSH round trip 20-80 ms, a provisioning call 1-3 s, a DHCP renew 0.5-2 s.
DEFAULT_LATENCY = {"ssh": "20ms-80ms", "provision": "1s-3s", "renew": "500ms-2s", "wsman": "20ms-80ms"}


def parse_latency(spec: str | None) -> dict:
    """``ssh=20ms-80ms,provision=1s-3s`` -> mapping; empty entries fall back to the defaults."""
    out = dict(DEFAULT_LATENCY)
    for part in (spec or "").split(","):
        if part.strip():
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return {k: v for k, v in out.items() if v not in ("", "0", "0s")}


def latency_means(latency: dict) -> dict[str, float]:
    """Mean seconds per operation of each uniform range (for documentation next to the measured sums)."""
    from lab.model import parse_range

    return {k: sum(parse_range(v)) / 2 for k, v in latency.items()}


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["mem_gb"] = round(int(mem) / 1024 / 1024, 1)
    except OSError:
        pass
    for mod in ("prefect", "paramiko", "sqlalchemy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    try:
        info["openssh"] = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    except OSError:
        pass
    try:
        import ansible.release

        info["ansible_core"] = ansible.release.__version__
    except ImportError:
        pass
    return info


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def make_fleet(out: Path, hosts: int, seed: int, latency: dict, *, window: str = "1h",
               retry_interval: str = "1h", healthy_only: bool = False, os_type: str | None = None) -> dict:
    """A generated fleet (lab.generate) with fleet-level latency; returns the paths like generate_fleet."""
    from lab.generate import generate_fleet

    paths = generate_fleet(hosts, seed, out, window=window, retry_interval=retry_interval)
    fleet = yaml.load(paths["fleet"].read_text(), Loader=LOADER)
    fleet["latency"] = latency
    if healthy_only or os_type:
        for d in fleet["devices"]:
            if healthy_only:
                d["faults"] = []
            if os_type:
                d["os"] = os_type
    paths["fleet"].write_text(yaml.dump(fleet, Dumper=DUMPER, sort_keys=False, default_flow_style=None, width=120))
    paths["fleet"].chmod(0o600)
    paths["fleet_data"] = fleet
    return paths


@dataclass
class LabProcess:
    """`python -m bench.labserve` in its own session; `stop()` kills the whole group."""

    proc: subprocess.Popen
    ssh_port: int
    amt_port: int
    http_port: int
    http_url: str
    known_hosts_path: Path
    record: Path | None
    startup: float

    @classmethod
    def start(cls, fleet: Path, workdir: Path, *, record: bool = True, timeout: float = 300) -> "LabProcess":
        rec = workdir / "lab-ops.json" if record else None
        kh = workdir / "known_hosts"
        cmd = [PY, "-m", "bench.labserve", str(fleet), "--known-hosts", str(kh)]
        if rec:
            cmd += ["--record", str(rec)]
        log = open(workdir / "lab.log", "ab")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ready") or not line and proc.poll() is not None:
                break
        m = re.search(r"ssh=(\d+) amt=(\d+) http=(\S+) .*startup=([\d.]+)s", line)
        if not m:
            killpg(proc)
            raise RuntimeError(f"lab did not start: {line!r}; see {workdir / 'lab.log'}")
        url = m.group(3)
        return cls(proc, int(m.group(1)), int(m.group(2)), int(url.rsplit(":", 1)[1]), url, kh, rec,
                   float(m.group(4)))

    def cpu_seconds(self) -> float:
        return proc_cpu(self.proc.pid)

    def rss_mb(self) -> float:
        return proc_rss_mb(self.proc.pid)

    def stop(self) -> list:
        """Stop the lab (SIGTERM to its group, then SIGKILL); returns its recorded operations."""
        killpg(self.proc, grace=30)
        if self.record and self.record.exists():
            return json.loads(self.record.read_text())
        return []


def killpg(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """user+sys seconds of one live process (plus its reaped children when asked), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    idx = (11, 12, 13, 14) if children else (11, 12)
    return sum(int(fields[i]) for i in idx) / _TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: Path = ROOT, stdout=None, timeout: float | None = None,
                 sample: float = 0.2) -> dict:
    """Run a child and return wall, its own CPU (sampled from /proc until it exits), its peak RSS
    (VmHWM, sampled) and, from wait4, CPU and max RSS including its reaped descendants."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    own_cpu = hwm = 0.0
    timed_out = False
    try:
        while True:
            try:
                own_cpu = proc_cpu(proc.pid)
                hwm = max(hwm, proc_hwm_mb(proc.pid))
            except (OSError, ValueError, IndexError):
                pass
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout and time.monotonic() - started > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(sample)
    finally:
        if proc.returncode is None and 'pid' in locals() and pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    # whatever the child left running in its session (Prefect's server subprocess) goes too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return {"wall_s": wall, "exit": proc.returncode, "timed_out": timed_out, "own_cpu_s": own_cpu,
            "own_peak_rss_mb": hwm, "tree_cpu_s": ru.ru_utime + ru.ru_stime, "tree_max_rss_mb": ru.ru_maxrss / 1024}


def file_size_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6
