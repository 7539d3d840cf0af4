"""One embedded SSH server (paramiko server mode) for every device of the fleet.

A single listener on 0.0.0.0 tells devices apart by the loopback address a connection arrived on,
so 10,000 devices need one socket. Host keys are Ed25519 keys derived from the fleet seed and the
device name: stable across restarts, never stored, and ~30 us each to make.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import ipaddress
import logging
import socket
import struct
import threading
import time
from pathlib import Path

import nacl.signing
import paramiko

from lab.model import LOOPBACK, Device, Fleet
from lab.shell import DeviceShell

log = logging.getLogger("lab.sshd")
# paramiko logs every client that hangs up abruptly at ERROR level; in a lab that's the normal case.
_transport_log = logging.getLogger("lab.sshd.transport")
_transport_log.addHandler(logging.NullHandler())
_transport_log.propagate = False


def derive_host_key(seed, name: str) -> paramiko.Ed25519Key:
    """Deterministic per-device host key. Lab-only: anyone with the fleet file can recompute it."""
    signing = nacl.signing.SigningKey(hashlib.sha256(f"amt-lab-hostkey:{seed}:{name}".encode()).digest())
    key = paramiko.Ed25519Key.__new__(paramiko.Ed25519Key)
    key.public_blob = None
    key._signing_key = signing
    key._verifying_key = signing.verify_key
    return key


def host_key_line(seed, name: str) -> str:
    """``ssh-ed25519 AAAA...`` for one device, without building a paramiko key."""
    vk = nacl.signing.SigningKey(hashlib.sha256(f"amt-lab-hostkey:{seed}:{name}".encode()).digest()).verify_key
    raw = bytes(vk)
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", len(raw)) + raw
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def known_hosts_host(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def write_known_hosts(fleet: Fleet, path: str | Path, port: int) -> Path:
    """One line per device: ``[127.10.0.1]:2222 ssh-ed25519 AAAA...`` (plain address on port 22)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{known_hosts_host(d.address, port)} {host_key_line(fleet.seed, d.name)}\n"
             for d in fleet.devices.values()]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)
    return path


def load_authorized_keys(path: str | Path) -> set[tuple[str, bytes]]:
    """(type, blob) pairs from an authorized_keys / .pub file, parsed once at start."""
    keys = set()
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.lstrip().startswith("#"):
            keys.add((parts[0], base64.b64decode(parts[1])))
    return keys


def refuse(conn: socket.socket) -> None:
    """Reset the connection at once: the closest a shared listener gets to 'connection refused'."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def classify(fleet: Fleet, conn: socket.socket, peer) -> tuple[str, Device | None]:
    """'ok' / 'refuse' / 'blackhole' for a fresh connection, from the address it was dialled on."""
    try:
        local = conn.getsockname()[0]
        if ipaddress.ip_address(peer[0]) not in LOOPBACK or ipaddress.ip_address(local) not in LOOPBACK:
            return "refuse", None
    except (OSError, ValueError):
        return "refuse", None
    dev = fleet.by_address.get(local)
    if dev is None or dev.faults.down:
        return "refuse", dev
    if dev.faults.blackhole:
        return "blackhole", dev
    return "ok", dev


class _DeviceSSH(paramiko.ServerInterface):
    def __init__(self, service: "SSHService", dev: Device):
        self.service, self.dev = service, dev
        self.user = ""
        self.replies: dict[int, threading.Event] = {}
        self.envs: dict[int, dict[str, str]] = {}  # channel id -> env accepted for its command

    def hook(self, transport: paramiko.Transport) -> None:
        """Tell exec threads when the reply to their exec request has gone out.

        paramiko sends CHANNEL_SUCCESS only after check_channel_exec_request returns; a fast command
        that closed its channel earlier would make the client report "Channel closed".
        """
        orig = transport._send_user_message
        replies = self.replies

        def send(m, _orig=orig):
            _orig(m)
            data = m.asbytes()
            if data[:1] in (b"\x63", b"\x64") and len(data) >= 5:  # CHANNEL_SUCCESS / CHANNEL_FAILURE
                ev = replies.pop(struct.unpack(">I", data[1:5])[0], None)
                if ev is not None:
                    ev.set()

        transport._send_user_message = send

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_none(self, username):
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        if self.dev.faults.ssh_auth:
            return paramiko.AUTH_FAILED
        if (key.get_name(), key.asbytes()) in self.service.authorized:
            self.user = username
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args):
        return True

    def check_channel_env_request(self, channel, name, value):
        """RFC 4254 6.4 "env": kept only when the name is on the allow-list, as OpenSSH's sshd does with
        ``AcceptEnv`` (sshd_config(5): "Only variable names listed ... are accepted"; the rest are
        refused and never reach the command). The value is held for that channel's command only."""
        key = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        if not any(fnmatch.fnmatchcase(key, pat) for pat in self.service.accept_env):
            return False
        val = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        self.envs.setdefault(channel.chanid, {})[key] = val
        return True

    def check_channel_shell_request(self, channel):
        return False  # no interactive shells: the lab answers exec requests only

    def check_channel_exec_request(self, channel, command):
        cmd = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        replied = self.replies[channel.remote_chanid] = threading.Event()
        env = self.envs.pop(channel.chanid, {})
        threading.Thread(target=self.service._exec, args=(channel, self.dev, self.user, cmd, replied, env),
                         name=f"ssh-exec-{self.dev.name}", daemon=True).start()
        return True


class SSHService:
    """The accept loop; each connection gets a paramiko Transport (its own thread) and a command thread."""

    def __init__(self, fleet: Fleet, port: int = 0, authorized_keys: set[tuple[str, bytes]] | None = None,
                 host: str = "0.0.0.0", accept_env: tuple[str, ...] | None = None):
        self.fleet = fleet
        #: sshd_config AcceptEnv patterns: Debian's default (LANG LC_*) plus rpc-go's AMT_PASSWORD, which a
        #: site driving rpc over SSH must add (research/rpc.md 2.2); the fleet file's ssh.accept_env overrides
        self.accept_env = tuple(accept_env if accept_env is not None else
                                (fleet.ssh or {}).get("accept_env") or ("LANG", "LC_*", "AMT_PASSWORD"))
        self.authorized = authorized_keys or set()
        self._keys: dict[str, paramiko.Ed25519Key] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(1024)
        self.port = self._sock.getsockname()[1]
        self._transports: set[paramiko.Transport] = set()
        self._parked: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="lab-sshd", daemon=True)
        self.connections = 0

    def host_key(self, dev: Device) -> paramiko.Ed25519Key:
        key = self._keys.get(dev.name)
        if key is None:
            key = self._keys[dev.name] = derive_host_key(self.fleet.seed, dev.name)
        return key

    def start(self) -> "SSHService":
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.01)
                continue
            verdict, dev = classify(self.fleet, conn, peer)
            if verdict == "refuse":
                refuse(conn)
                continue
            if verdict == "blackhole":
                with self._lock:
                    self._parked.append(conn)
                continue
            self.connections += 1
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = paramiko.Transport(conn)
                t.set_log_channel("lab.sshd.transport")
                t.add_server_key(self.host_key(dev))
                si = _DeviceSSH(self, dev)
                si.hook(t)
                t.start_server(event=threading.Event(), server=si)
            except Exception as exc:  # a broken client must never stop the listener
                log.debug("ssh handshake setup failed for %s: %s", dev.name, exc)
                conn.close()
                continue
            with self._lock:
                self._transports.add(t)
                if len(self._transports) > 256:
                    self._transports = {x for x in self._transports if x.is_active()}

    def _exec(self, channel: paramiko.Channel, dev: Device, user: str, command: str,
              replied: threading.Event, env: dict[str, str] | None = None) -> None:
        try:
            delay = self.fleet.latency_for(dev, "ssh") + dev.faults.slow
            if dev.faults.hung:
                while not self._stop.is_set() and not channel.closed and channel.get_transport().is_active():
                    self._stop.wait(0.2)
                return
            if delay and self._stop.wait(delay):
                return
            shell = DeviceShell(self.fleet, dev, user, sleep=lambda s: s and self._stop.wait(s), env=env)
            res = shell.run(command)
            replied.wait(10)
            if res.stdout:
                channel.sendall(res.stdout_bytes())  # in the console code page a Windows program writes
            if res.stderr:
                channel.sendall_stderr(res.stderr_bytes())
            channel.send_exit_status(res.status)
        except Exception as exc:  # the client went away mid-command
            log.debug("ssh exec on %s failed: %s", dev.name, exc)
        finally:
            try:
                channel.close()
            except Exception:
                pass

    def stop(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            transports, parked = list(self._transports), list(self._parked)
            self._transports.clear()
            self._parked.clear()
        for s in parked:
            refuse(s)
        for t in transports:
            try:
                t.close()
            except Exception:
                pass
        self._thread.join(timeout=5)
