"""A real OpenSSH sshd for tests, started once per test module.

paramiko's behaviour against a real server (host key negotiation, auth errors, exit status ordering)
is what `tasks.adapters.ssh` must get right, so the tests talk to Debian's /usr/sbin/sshd, not a mock. One
listener on 0.0.0.0 serves every 127.x.y.z address; its ForceCommand reports on stderr which address
was dialled and which command line arrived, then runs that line with /bin/sh (no login shell, so the
user's rc files stay out of the command path).

Import in a test module with ``from tests.sshd_fixture import sshd  # noqa: F401``.
"""

from __future__ import annotations

import base64
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

from lab.openssh import free_port  # one definition for every test server

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"

FORCE_COMMAND = """#!/bin/sh
# Report what arrived, then run it: lets tests prove quoting and which address was dialled.
set -- $SSH_CONNECTION
printf 'dialled=%s\\n' "$3" >&2
printf 'command=%s\\n' "$SSH_ORIGINAL_COMMAND" >&2
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "", bits: int | None = None) -> Path:
    args = [SSH_KEYGEN, "-q", "-t", key_type, "-N", passphrase, "-C", "", "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def public_key(path: Path) -> paramiko.PKey:
    key_type, blob = Path(f"{path}.pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))


@dataclass
class Sshd:
    port: int
    workdir: Path
    user: str
    host_keys: dict[str, Path]  # key type ("ed25519", "rsa") -> private key path
    client_keys: dict[str, Path]  # name -> private key path (all authorized except "stranger")
    passphrase: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def host_key(self, key_type: str = "ed25519") -> paramiko.PKey:
        return public_key(self.host_keys[key_type])

    def known_hosts_line(self, address: str, key_type: str = "ed25519", key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key(key_type)
        return f"[{address}]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def write_known_hosts(self, path: Path, addresses, key_type: str = "ed25519",
                          key: paramiko.PKey | None = None) -> Path:
        path.write_text("".join(self.known_hosts_line(a, key_type, key) for a in addresses))
        return path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _wait_ready(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Sshd:
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is absent: install Debian's openssh-server to run the SSH tests")
    work = tmp_path_factory.mktemp("sshd")
    user = getpass.getuser()
    host_keys = {"ed25519": keygen(work / "host_ed25519"), "rsa": keygen(work / "host_rsa", "rsa", bits=2048)}
    passphrase = "pw-Xq7#never-log-me"
    client_keys = {
        "ed25519": keygen(work / "client_ed25519"),
        "ecdsa": keygen(work / "client_ecdsa", "ecdsa", bits=256),
        "rsa": keygen(work / "client_rsa", "rsa", bits=2048),
        "encrypted": keygen(work / "client_encrypted", passphrase=passphrase),
        "stranger": keygen(work / "client_stranger"),
    }
    authorized = "".join(
        Path(f"{p}.pub").read_text() for name, p in client_keys.items() if name != "stranger"
    )
    (work / "authorized_keys").write_text(authorized)
    script = work / "force.sh"
    script.write_text(FORCE_COMMAND)
    script.chmod(0o755)
    config = work / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 0.0.0.0",
        *(f"HostKey {p}" for p in host_keys.values()),
        f"PidFile {work / 'sshd.pid'}",
        f"AuthorizedKeysFile {work / 'authorized_keys'}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        f"AllowUsers {user}@127.0.0.0/8",
        "MaxStartups 500:30:1000",
        "UseDNS no",
        "PrintMotd no",
        "LogLevel ERROR",
        f"ForceCommand {script}",
        "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # Debian's privilege-separation directory
    port = free_port()
    log_path = work / "sshd.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
                                stdout=log_file, stderr=subprocess.STDOUT)
    _wait_ready(port, proc, time.monotonic() + 10)
    if proc.poll() is not None:
        raise RuntimeError(f"sshd exited with {proc.returncode}: {log_path.read_text()}")
    server = Sshd(port, work, user, host_keys, client_keys, passphrase, log_path, proc)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
