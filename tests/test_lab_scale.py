"""A generated 10,000-device fleet served by one `lab serve` process: starts in under a minute and
answers SSH and WS-Management on random device addresses."""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paramiko
import pytest
import yaml

from lab.generate import generate_fleet

pytest.register_assert_rewrite("tests.lab_fixtures")
from tests.lab_fixtures import slow, wsman_envelope  # noqa: E402

pytest_plugins = ["tests.lab_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
GS = "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"


@slow
def test_ten_thousand_devices_start_under_a_minute_and_answer(tmp_path):
    paths = generate_fleet(10_000, 2026, tmp_path)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "serve", str(paths["fleet"]), "--ssh-port", "0", "--amt-port", "0",
         "--http-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        startup = time.monotonic() - started
        assert line.startswith("ready "), line + proc.stderr.read()
        assert startup < 60, f"lab serve took {startup:.1f}s to start 10,000 devices"
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        ssh_port, amt_port = int(fields["ssh"]), int(fields["amt"])
        devices = httpx.get(fields["http"] + "/admin/devices", timeout=60).json()
        assert len(devices) == 10_000
        healthy = [d for d in devices if not d["faults"]]
        rng = random.Random()
        known = {}
        for ln in Path(fields["known_hosts"]).read_text().splitlines():
            host, ktype, b64 = ln.split()
            known[host] = (ktype, b64)
        pkey = paramiko.Ed25519Key.from_private_key_file(str(paths["private_key"]))
        for d in rng.sample(healthy, 2):
            client = paramiko.SSHClient()
            host = f"[{d['address']}]:{ssh_port}"
            ktype, b64 = known[host]
            client.get_host_keys().add(host, ktype, paramiko.PKey.from_type_string(ktype, base64.b64decode(b64)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(d["address"], port=ssh_port, username="migrator", pkey=pkey, timeout=10,
                           look_for_keys=False, allow_agent=False)
            try:
                _, out, _ = client.exec_command("rpc amtinfo --json", timeout=10)
                assert d["address"] in out.read().decode()
                assert out.channel.recv_exit_status() == 0
            finally:
                client.close()
        fleet = yaml.load(paths["fleet"].read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        password = next(x["legacy"]["password"] for x in fleet["devices"] if x["legacy"])
        legacy = [d for d in healthy if d["state"] == "legacy"]
        for d in rng.sample(legacy, 2):
            r = httpx.post(f"http://{d['address']}:{amt_port}/wsman", content=wsman_envelope(GET, GS),
                           auth=httpx.DigestAuth("admin", password), timeout=10)
            assert r.status_code == 200 and f"<g:DomainName>{d['domain_name']}</g:DomainName>" in r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
