"""The DHCP-renew fan-out through three SSH clients, side by side, on the same hosts and concurrency.

    python -m bench.ssh_peers --hosts 1000 --ansible-hosts 300 --concurrency 20,50 --rounds 3

- ``project``: `tasks.adapters.ssh.SshRunner.run` from a thread pool (what the wave's remediation does per host)
- ``paramiko``: a bare thread pool of paramiko clients, known_hosts and key parsed once (the floor)
- ``ansible``: ``ansible all -m raw -a CMD -f CONCURRENCY`` with an inventory of the hosts
  (ansible_host/ansible_port, known_hosts via ansible_ssh_common_args, StrictHostKeyChecking=yes),
  key exchange pinned to curve25519 (what paramiko negotiates: equal crypto)
- ``ansible_default_kex`` (OpenSSH server only): the same with OpenSSH's default key exchange, what a
  user running Ansible gets (OpenSSH 9.2 picks sntrup761x25519, ~90 ms more client CPU per host)

The command is `tasks.adapters.os_network.renew_command("windows", <adapter without index>)` (``ipconfig /renew``): every device of the
bench fleet is a healthy Windows client. Servers: the lab's own paramiko listener and the real OpenSSH
sshd of `lab.openssh.OpenSshFront` (its ForceCommand bridges to the lab's /admin/exec). The lab runs in
its own process, so this process's CPU is the client's only; Ansible's client CPU is its process tree's
(RUSAGE_CHILDREN). Server CPU per connection: the lab process's CPU from /proc; for OpenSSH the sshd's
``cpu_seconds()`` (listener + reaped sessions + the ForceCommand bridge) plus the lab's share.

Order rotates each round; project and paramiko run ``rounds`` times (median), Ansible once per
configuration unless ``--ansible-rounds``. Per-host numbers (wall ÷ hosts, CPU ÷ hosts) make Ansible's
smaller host count comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import paramiko

from bench.common import ROOT, LabProcess, killpg, machine, make_fleet, now_iso, parse_latency, write_result

ANSIBLE = ROOT / ".venv" / "bin" / "ansible"
KEX = "curve25519-sha256,curve25519-sha256@libssh.org"  # (the lab offers only the @libssh.org name); what paramiko negotiates; OpenSSH 9.x's default PQ kex costs ~90 ms more per host


def renew_cmd() -> str:
    """The Windows renew without an adapter index (`ipconfig /renew`): the same short command for every
    tool and every device, as in earlier runs (the wave renews one adapter by index through PowerShell)."""
    from tasks.adapters.netfacts import NetAdapter
    from tasks.adapters.os_network import renew_command

    return renew_command("windows", NetAdapter(name="", mac=""))


# -------------------------------------------------------------------------------------------- clients

def run_project(targets, port, user, key_path, known_hosts, concurrency, command):
    from tasks.adapters.ssh import SshRunner, SshSettings

    runner = SshRunner(SshSettings(user=user, known_hosts=known_hosts, port=port, key_path=key_path,
                                   connect_timeout=30, command_timeout=60))

    def one(addr):
        try:
            r = runner.run(addr, command, os_flavor="windows")
            return r.exit_status
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, targets))


def run_paramiko(targets, port, user, key_path, known_hosts, concurrency, command):
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key_path))
    index: dict[str, tuple[str, paramiko.PKey]] = {}
    import base64

    for line in Path(known_hosts).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            index[parts[0]] = (parts[1], paramiko.PKey.from_type_string(parts[1], base64.b64decode(parts[2])))

    def one(addr):
        name = f"[{addr}]:{port}"
        ktype, key = index[name]
        client = paramiko.SSHClient()
        client.get_host_keys().add(name, ktype, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(addr, port=port, username=user, pkey=pkey, timeout=30, banner_timeout=30, auth_timeout=30,
                           look_for_keys=False, allow_agent=False)
            _, stdout, stderr = client.exec_command(command, timeout=60)
            stdout.read()
            stderr.read()
            return stdout.channel.recv_exit_status()
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__
        finally:
            client.close()

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, targets))


def run_ansible(targets, port, user, key_path, known_hosts, concurrency, command, workdir: Path,
                kex: str | None = KEX):
    """Ansible `-m raw`; ``kex=None`` leaves the key exchange to OpenSSH's default (what a user gets)."""
    inv = workdir / f"ansible-{len(targets)}.ini"
    lines = ["[fleet]"]
    lines += [f"h{i} ansible_host={a}" for i, a in enumerate(targets)]
    common = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    if kex:
        common += f" -o KexAlgorithms={kex}"
    lines += ["[fleet:vars]", f"ansible_port={port}", f"ansible_user={user}",
              f"ansible_ssh_private_key_file={key_path}", f"ansible_ssh_common_args='{common}'"]
    inv.write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env.update({
        "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_HOME": str(workdir / "ansible-home"), "ANSIBLE_SSH_CONTROL_PATH_DIR": "/tmp/abcp",
        # one command per host: a persistent ControlMaster has nothing to reuse, and ansible's default
        # ControlPersist=60s would leave one background ssh per host holding its session
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_TIMEOUT": "30",
        "ANSIBLE_SSH_USETTY": "False", "ANSIBLE_DEPRECATION_WARNINGS": "False",  # raw asks for a PTY (-tt) by default: the servers refuse TTYs
    })
    cmd = [str(ANSIBLE), "all", "-i", str(inv), "-m", "raw", "-a", command, "-f", str(concurrency), "-o"]
    out = workdir / f"ansible-{port}-{concurrency}-{len(targets)}.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=3600)
        finally:
            killpg(proc)
    text = out.read_text(errors="replace")
    ok = text.count("| CHANGED |") + text.count("| SUCCESS |")
    return ["ok"] * ok + ["failed"] * (len(targets) - ok)


# -------------------------------------------------------------------------------------------- measure

def measure(tool: str, fn, targets, server_cpu, *, children: bool = False) -> dict:
    """Run one client over the targets; client CPU from rusage (self, or children for Ansible)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    ru0, s0, t0 = resource.getrusage(who), server_cpu(), time.monotonic()
    results = fn()
    wall = time.monotonic() - t0
    time.sleep(0.3)  # let the server reap the last sessions
    ru1, s1 = resource.getrusage(who), server_cpu()
    n = len(targets)
    ok = sum(1 for r in results if r in (0, "ok"))
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"tool": tool, "hosts": n, "ok": ok, "wall_s": round(wall, 3), "ms_per_host": round(1000 * wall / n, 3),
            "client_cpu_ms_per_host": round(1000 * cpu / n, 2),
            "server_cpu_ms_per_conn": {k: round(1000 * (s1[k] - s0[k]) / n, 2) for k in s0},
            "errors": sorted({str(r) for r in results if r not in (0, "ok")})[:5]}


def med(runs: list[dict], key: str):
    vals = [r[key] for r in runs]
    return statistics.median(vals) if vals else None


def compare(hosts: int, ansible_hosts: int, concurrencies: list[int], rounds: int, ansible_rounds: int,
            latency: dict, servers: list[str], workdir: Path, seed: int = 11, bridge: str = "auto") -> dict:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    paths = make_fleet(workdir / "fleet", hosts, seed, latency, healthy_only=True, os_type="windows")
    fleet = paths.pop("fleet_data")
    addrs = [d["address"] for d in fleet["devices"]]
    command = renew_cmd()
    lab = LabProcess.start(paths["fleet"], workdir, record=False)
    front = None
    configs = []
    try:
        for server in servers:
            if server == "lab":
                port, user, kh = lab.ssh_port, "migrator", lab.known_hosts_path

                def server_cpu():
                    return {"lab": lab.cpu_seconds()}
            else:
                from lab.openssh import OpenSshFront

                shim = SimpleNamespace(http_url=lab.http_url, http_port=lab.http_port,
                                       authorized_keys_path=paths["public_key"], fleet=None)
                front = OpenSshFront(shim, port=0, workdir=workdir / "openssh", bridge=bridge,
                                     authorized_keys=paths["public_key"]).start()
                kh = front.known_hosts_for(addrs, path=workdir / "openssh" / "known_hosts")
                port, user = front.port, front.user

                def server_cpu(front=front):
                    return {"sshd": front.cpu_seconds(), "lab": lab.cpu_seconds()}
            key = paths["private_key"]
            for conc in concurrencies:
                tools = {
                    "project": lambda t, c=conc, p=port, u=user, k=kh: run_project(t, p, u, key, k, c, command),
                    "paramiko": lambda t, c=conc, p=port, u=user, k=kh: run_paramiko(t, p, u, key, k, c, command),
                    "ansible": lambda t, c=conc, p=port, u=user, k=kh: run_ansible(t, p, u, key, k, c, command, workdir),
                }
                if server == "openssh":  # the lab offers curve25519 only; sshd's default is post-quantum
                    tools["ansible_default_kex"] = lambda t, c=conc, p=port, u=user, k=kh: run_ansible(
                        t, p, u, key, k, c, command, workdir, kex=None)
                order = list(tools)
                runs: dict[str, list] = {t: [] for t in tools}
                for r in range(max(rounds, ansible_rounds)):
                    for tool in order[r % len(order):] + order[:r % len(order)]:
                        is_ansible = tool.startswith("ansible")
                        if is_ansible and (r >= ansible_rounds or not ansible_hosts):
                            continue
                        if not is_ansible and r >= rounds:
                            continue
                        targets = addrs[:ansible_hosts] if is_ansible else addrs
                        res = measure(tool, lambda: tools[tool](targets), targets, server_cpu,
                                      children=is_ansible)
                        res["round"] = r
                        runs[tool].append(res)
                        print(f"{server} c={conc} {tool} r{r}: {res['wall_s']}s for {res['hosts']} "
                              f"({res['ok']} ok), client {res['client_cpu_ms_per_host']} ms/host, "
                              f"server {res['server_cpu_ms_per_conn']}", flush=True)
                summary = {}
                for tool, rs in runs.items():
                    if not rs:
                        continue
                    summary[tool] = {"runs": len(rs), "hosts": rs[0]["hosts"],
                                     "wall_s_median": med(rs, "wall_s"), "ms_per_host": med(rs, "ms_per_host"),
                                     "client_cpu_ms_per_host": med(rs, "client_cpu_ms_per_host"),
                                     "server_cpu_ms_per_conn": {k: statistics.median(r["server_cpu_ms_per_conn"][k] for r in rs)
                                                                for k in rs[0]["server_cpu_ms_per_conn"]},
                                     "all_ok": all(r["ok"] == r["hosts"] for r in rs)}
                p, f, a = summary.get("project"), summary.get("paramiko"), summary.get("ansible")
                ratios = {}
                if p and f:
                    ratios["project_over_floor"] = round(p["ms_per_host"] / f["ms_per_host"], 3)
                    ratios["project_cpu_over_floor_cpu"] = round(p["client_cpu_ms_per_host"] / f["client_cpu_ms_per_host"], 3)
                if p and a:
                    ratios["ansible_over_project"] = round(a["ms_per_host"] / p["ms_per_host"], 3)
                d = summary.get("ansible_default_kex")
                if p and d:
                    ratios["ansible_default_kex_over_project"] = round(d["ms_per_host"] / p["ms_per_host"], 3)
                # the latency bound of the fan-out: every host's ssh (+renew) delay, `conc` at a time
                configs.append({"server": server, "concurrency": conc, "summary": summary, "ratios": ratios,
                                "runs": runs, "bridge": front.bridge if front is not None else None})
            if front is not None:
                front.close()
                front = None
    finally:
        if front is not None:
            front.close()
        lab.stop()
    from bench.common import latency_means

    means = latency_means(latency)
    per_host_latency = means.get("ssh", 0) + means.get("renew", 0)
    return {"benchmark": "ssh_peers", "date": now_iso(), "machine": machine(),
            "command": f".venv/bin/python -m bench.ssh_peers --hosts {hosts} --ansible-hosts {ansible_hosts} "
                       f"--concurrency {','.join(map(str, concurrencies))} --rounds {rounds}",
            "parameters": {"hosts": hosts, "ansible_hosts": ansible_hosts, "concurrency": concurrencies,
                           "rounds": rounds, "ansible_rounds": ansible_rounds, "latency": latency,
                           "command": command, "ansible_kex": KEX, "servers": servers,
                           "latency_bound_ms_per_host": {c: round(1000 * per_host_latency / c, 2) for c in concurrencies}},
            "configs": configs}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--ansible-hosts", type=int, default=None, help="default: --hosts (compare like with like)")
    ap.add_argument("--concurrency", default="20,50")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ansible-rounds", type=int, default=1)
    ap.add_argument("--latency", default="ssh=20ms-80ms,renew=0,provision=0,wsman=0",
                    help="lab latency; default: the SSH round trip only, so the clients' own cost shows")
    ap.add_argument("--servers", default="lab,openssh")
    ap.add_argument("--bridge", default="auto", help="OpenSSH ForceCommand bridge: c, curl, python or auto")
    ap.add_argument("--name", default="ssh-peers")
    ap.add_argument("--merge", action="store_true", help="replace only these servers' results in an existing --name file")
    args = ap.parse_args(argv)
    res = compare(args.hosts, args.ansible_hosts if args.ansible_hosts is not None else args.hosts, [int(c) for c in args.concurrency.split(",")], args.rounds,
                  args.ansible_rounds, parse_latency(args.latency), args.servers.split(","),
                  ROOT / "state" / "bench" / args.name, bridge=args.bridge)
    if args.merge:
        from bench.common import RESULTS

        old = json.loads((RESULTS / f"{args.name}.json").read_text())
        keep = [c for c in old["configs"] if c["server"] not in res["parameters"]["servers"]]
        res["configs"] = keep + res["configs"]
        res["parameters"]["servers"] = sorted({c["server"] for c in res["configs"]})
        res["merged_from"] = old["date"]
    path = write_result(args.name, res)
    for c in res["configs"]:
        print(c["server"], c["concurrency"], json.dumps(c["ratios"]),
              {t: (s["ms_per_host"], s["client_cpu_ms_per_host"]) for t, s in c["summary"].items()})
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
