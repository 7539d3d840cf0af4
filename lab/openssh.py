"""A real OpenSSH sshd in front of the simulated fleet: `OpenSshFront(lab)`.

Debian's /usr/sbin/sshd runs by absolute path on a high port with its own generated host key, the
fleet's authorized_keys and a ForceCommand script. The script hands the requested command
(``$SSH_ORIGINAL_COMMAND``) and the address that was dialled (third field of ``$SSH_CONNECTION``) to
the lab's ``POST /admin/exec``, which runs it with the same `lab.shell.DeviceShell` (and the same
faults) as the lab's own paramiko listener, then replays stdout, stderr and the exit status.

One listener on 0.0.0.0 answers every 127.x.y.z address (Linux delivers any loopback address to a
socket bound to 0.0.0.0); ``AllowUsers USER@127.0.0.0/8`` refuses other peers and the bridge refuses
addresses outside 127.0.0.0/8. Every device presents the same host key (one sshd): `known_hosts_for`
writes one ``[addr]:port`` line per device with that key.

Differences from the lab's paramiko listener (the sshd owns the connection before the lab sees it):
the SSH user is a real local account (the current user); ``down`` is a session that exits 255 (a
connection-dropped status) instead of a reset at connect; ``hung``/``blackhole`` complete the SSH
handshake and never answer the command; ``ssh_auth`` can't refuse the key (sshd already accepted it),
so the session exits 255 with a "Permission denied" message instead.

The command path is kept lean (shared/ssh-notes.md: sshd itself costs 24-37 ms CPU per connection),
since the benchmarks charge the bridge's CPU to the server: a small C program (lab/bridge.c, built with
the system's cc at start; ~1 ms per session), or without a compiler a POSIX sh script running one curl
(~11 ms), or a ``python3 -SE`` script (socket + json, no site import; ~25 ms). ``SetEnv SHLVL=1`` keeps
bash (the usual login shell that runs ForceCommand) from sourcing ~/.bashrc, which Debian's bash
otherwise does for commands run by sshd.

Usage::

    with LabServer(fleet) as lab, OpenSshFront(lab, workdir=tmp) as front:
        known_hosts = front.known_hosts_for()          # every device, [addr]:front.port
        ...connect to any device address on front.port as front.user...
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSHD = "/usr/sbin/sshd"
CURL = shutil.which("curl")
CC = shutil.which("cc") or shutil.which("gcc")
BRIDGE_C = Path(__file__).with_name("bridge.c")
# the system interpreter: a `python3` found on PATH may be a version manager's shell shim (pyenv: ~100 ms)
PYTHON3 = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)),
               None) or shutil.which("python3") or "/usr/bin/python3"

CURL_SCRIPT = """#!/bin/sh
# amt-lab OpenSSH bridge: run the requested command on the device whose address was dialled.
set -f
set -- $SSH_CONNECTION
r=$({curl} -q -sSf --noproxy '*' --max-time {max_time} -H 'Expect:' \\
    --data-urlencode format=sh --data-urlencode "address=$3" --data-urlencode "user=$LOGNAME" \\
    --data-urlencode "command=$SSH_ORIGINAL_COMMAND" {url}) || {{
  echo "amt-lab bridge: the lab at {url} did not answer" >&2; exit 255; }}
eval "$r"
"""

PYTHON_SCRIPT = """#!{python} -SE
# amt-lab OpenSSH bridge (no curl here): run the requested command on the device whose address was dialled.
import json, os, socket, sys
env = os.environ
fields = env.get("SSH_CONNECTION", "").split()
body = json.dumps({{"address": fields[2] if len(fields) > 2 else "", "user": env.get("LOGNAME", ""),
                   "command": env.get("SSH_ORIGINAL_COMMAND", "")}}).encode()
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout={max_time})
    s.sendall(b"POST /admin/exec HTTP/1.0\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n"
              % len(body) + body)
    raw = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    r = json.loads(raw.partition(b"\\r\\n\\r\\n")[2])
except Exception as exc:
    sys.stderr.write("amt-lab bridge: the lab at 127.0.0.1:{port} did not answer (%s)\\n" % type(exc).__name__)
    sys.exit(255)
sys.stdout.write(r["stdout"]); sys.stdout.flush()
sys.stderr.write(r["stderr"]); sys.stderr.flush()
sys.exit(r["exit_status"] & 255)
"""


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK)


def free_port() -> int:
    """A TCP port nothing listens on right now (bound to 0.0.0.0 so every loopback address is free)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def write_host_key(path: Path) -> paramiko.PKey:
    """A fresh Ed25519 host key in OpenSSH format (mode 600, as sshd demands); returns its public key."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    tmp.replace(path)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    Path(f"{path}.pub").write_bytes(pub + b"\n")
    return public_key(path)


def public_key(path: Path) -> paramiko.PKey:
    import base64

    key_type, blob = Path(f"{path}.pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))


class OpenSshFront:
    """Debian's sshd on ``port`` (0 = a free one) in front of ``lab`` (a started `lab.server.LabServer`).

    Files live in ``workdir`` (a temp dir when None): sshd_config, host_ed25519(.pub), authorized_keys,
    the bridge (``bridge``, built from lab/bridge.c, or ``bridge.sh``), sshd.pid, sshd.log. `start`/`stop`
    or use it as a context manager; `restart` keeps the port; `regenerate_host_key` makes a new host key
    (takes effect on the next start).
    """

    def __init__(self, lab, port: int = 0, workdir: str | Path | None = None, *,
                 authorized_keys: str | Path | None = None, user: str | None = None,
                 max_startups: str = "500:30:1000", log_level: str = "ERROR", bridge: str = "auto",
                 max_time: float = 600.0, sshd: str = SSHD):
        self.lab = lab
        self.sshd = sshd
        self._requested_port = int(port)
        self.port: int | None = None
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="amt-openssh-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.user = user or getpass.getuser()
        self.max_startups = max_startups
        self.log_level = log_level
        self.max_time = max_time
        # the bridge runs once per SSH session, and its CPU is charged to the server: the compiled one
        # costs ~1 ms, curl ~11 ms, python ~25 ms (bench/results/NOTES.md)
        if bridge == "auto":
            bridge = "c" if CC else "curl" if CURL else "python"
        if bridge not in ("c", "curl", "python"):
            raise ValueError("bridge is 'c', 'curl', 'python' or 'auto'")
        if bridge == "c" and not CC:
            raise RuntimeError("no C compiler (cc): use bridge='curl' or 'python'")
        if bridge == "curl" and not CURL:
            raise RuntimeError("curl is not installed: use bridge='python'")
        self.bridge = bridge
        src = authorized_keys or getattr(lab, "authorized_keys_path", None)
        if src is None:
            raise ValueError("no authorized_keys: the fleet has none; pass authorized_keys=")
        self._authorized_src = Path(src)
        self.config_path = self.workdir / "sshd_config"
        self.host_key_path = self.workdir / "host_ed25519"
        self.authorized_keys_path = self.workdir / "authorized_keys"
        self.script_path = self.workdir / ("bridge" if bridge == "c" else "bridge.sh")
        self.pid_path = self.workdir / "sshd.pid"
        self.log_path = self.workdir / "sshd.log"
        self.process: subprocess.Popen | None = None

    # -------------------------------------------------------------- files
    def host_key(self) -> paramiko.PKey:
        """The sshd's public host key (the same for every device)."""
        return public_key(self.host_key_path)

    def regenerate_host_key(self) -> paramiko.PKey:
        """A new host key, like a reinstalled host; a running sshd keeps the old one until `restart`."""
        return write_host_key(self.host_key_path)

    def known_hosts_for(self, addresses: Iterable[str] | None = None, path: str | Path | None = None) -> Path:
        """Write ``[addr]:port ssh-ed25519 AAAA...`` for each address (default: every device); returns the path."""
        if self.port is None:
            raise RuntimeError("start the front first: known_hosts lines carry its port")
        if addresses is None:
            addresses = [d.address for d in self.lab.fleet.devices.values()]
        key = self.host_key()
        path = Path(path) if path is not None else self.workdir / "known_hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"[{a}]:{self.port} {key.get_name()} {key.get_base64()}\n" for a in addresses))
        return path

    def _write_files(self) -> None:
        if not self.host_key_path.exists():
            write_host_key(self.host_key_path)
        shutil.copyfile(self._authorized_src, self.authorized_keys_path)
        if self.bridge == "c":
            built = subprocess.run([CC, "-O2", "-o", str(self.script_path), str(BRIDGE_C),
                                    f"-DLAB_PORT={int(self.lab.http_port)}",
                                    f"-DMAX_TIME={max(1, int(self.max_time))}"], capture_output=True, text=True)
            if built.returncode != 0:
                raise RuntimeError(f"building the bridge failed: {built.stderr.strip()[-2000:]}")
        else:
            if self.bridge == "curl":
                script = CURL_SCRIPT.format(curl=CURL, url=f"{self.lab.http_url}/admin/exec",
                                            max_time=int(self.max_time))
            else:
                script = PYTHON_SCRIPT.format(python=PYTHON3, port=self.lab.http_port, max_time=self.max_time)
            self.script_path.write_text(script)
            self.script_path.chmod(0o755)
        self.config_path.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 0.0.0.0",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}@127.0.0.0/8",
            f"MaxStartups {self.max_startups}",
            "LoginGraceTime 30",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "PermitUserEnvironment no",
            "PermitTTY no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            # bash sources ~/.bashrc for commands run by sshd unless it thinks it is nested (SHLVL >= 1)
            "SetEnv SHLVL=1",
            f"LogLevel {self.log_level}",
            f"ForceCommand {self.script_path}",
            "",
        ]))

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "OpenSshFront":
        if not os.access(self.sshd, os.X_OK):
            raise FileNotFoundError(f"{self.sshd} is absent: install Debian's openssh-server")
        if self.lab.http_url is None:
            raise RuntimeError("start the lab first")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # Debian's privilege-separation directory
        for attempt in range(5):
            self.port = self._requested_port or free_port()
            self._write_files()
            check = subprocess.run([self.sshd, "-t", "-f", str(self.config_path)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"sshd refused its config: {check.stderr.strip()}")
            with open(self.log_path, "ab") as log_file:
                self.process = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(self.config_path)],
                                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
            if self._wait_ready(time.monotonic() + 10):
                return self
            code = self.process.poll()
            self.process = None
            if code is None or self._requested_port or "Address already in use" not in self.log():
                self.stop()
                raise RuntimeError(f"sshd did not start (exit {code}): {self.log()[-2000:]}")
        raise RuntimeError("sshd: no free port after 5 tries")

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the listener only: sessions in flight finish on their own
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> "OpenSshFront":
        """Stop and start again on the same port (e.g. after `regenerate_host_key`)."""
        if self.port:
            self._requested_port = self.port
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "OpenSshFront":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- observation
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cpu_seconds(self) -> float:
        """CPU the sshd listener and every session it has reaped used so far (utime+stime+cutime+cstime).

        Finished sessions (sshd's monitor, its unprivileged child, the shell, the bridge's curl) are
        counted once reaped; take the difference over a batch of connections for a per-connection cost.
        """
        if self.process is None:
            raise RuntimeError("sshd is not running")
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")
