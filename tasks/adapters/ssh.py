"""SSH fan-out to fleet hosts with paramiko, built for thousands of hosts from a thread pool.

Measured on this machine (shared/ssh-notes.md): parsing known_hosts and the private key in every
connection makes a fleet run quadratic, so `SshRunner` parses both once and hands each short-lived
`SSHClient` only its own host's keys. Host keys are always verified (unknown or changed keys are
refused); recording keys is a separate, explicit `trust-hosts` step (`scan_host_keys` +
`add_known_host`). Errors carry a `Cause` from the project's vocabulary and a precise `.kind`.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import io
import ipaddress
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    IncompatiblePeer,
    NoValidConnectionsError,
    SSHException,
)

from tasks.adapters.commands import OsFlavor, quote_argv
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_host_name

log = logging.getLogger("amt_migrate.ssh")

TRUST_HINT = "run amt-migrate trust-hosts"

#: Host key algorithms paramiko may negotiate for each key type that known_hosts can record.
_ALGORITHMS_FOR_TYPE = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
_ALL_HOST_KEY_ALGORITHMS = tuple(paramiko.Transport._preferred_keys)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class SshError(Exception):
    """A failure talking to one host. ``cause`` feeds the host state; ``kind`` says exactly what happened.

    Messages hold the address, port and a short detail only: never key material or passphrases.
    """

    default_cause = Cause.UNKNOWN
    default_kind = "protocol"

    def __init__(self, address: str, port: int, detail: str, *, kind: str | None = None,
                 cause: Cause | None = None):
        self.address = address
        self.port = port
        self.detail = detail
        self.kind = kind or self.default_kind
        self.cause = Cause(cause or self.default_cause)
        super().__init__(f"{address}:{port}: {detail}")


class SshUnreachable(SshError):
    """Nothing answered, or nothing usable: refused, no route, timeout, reset, no SSH banner."""

    default_cause = Cause.UNREACHABLE
    default_kind = "timeout"


class SshAuthFailed(SshError):
    """The server refused our key (or the user)."""

    default_cause = Cause.AUTH_FAILED
    default_kind = "auth"


class HostKeyError(SshAuthFailed):
    """We refused the server: its identity could not be verified."""


class HostKeyUnknown(HostKeyError):
    default_kind = "host_key_unknown"

    def __init__(self, address: str, port: int, detail: str | None = None):
        super().__init__(address, port, detail or f"host key unknown: {TRUST_HINT}")


class HostKeyChanged(HostKeyError):
    """The server presented a key other than the recorded one. Always refused: it may be an impostor."""

    default_kind = "host_key_changed"


class CommandTimeout(SshError):
    """The command did not finish within its deadline.

    Cause is ``unknown``, not ``unreachable``: the host was reached and authenticated, and the command
    may have taken effect (a DHCP renew half done), so the caller must verify state instead of
    assuming nothing happened. ``stdout``/``stderr`` hold what arrived before the deadline.
    """

    default_cause = Cause.UNKNOWN
    default_kind = "command_timeout"

    def __init__(self, address: str, port: int, detail: str, *, stdout: str = "", stderr: str = ""):
        super().__init__(address, port, detail)
        self.stdout = stdout
        self.stderr = stderr


class SshKeyError(ValueError):
    """The client's private key could not be loaded. Never echoes the key or its passphrase."""


# --------------------------------------------------------------------------------------------------
# Settings and keys
# --------------------------------------------------------------------------------------------------


@dataclass
class SshSettings:
    """How to reach the fleet. Give the private key as exactly one of ``key_env`` (name of an
    environment variable holding the key's path), ``key_path`` or ``key_text`` (e.g. read from a
    Prefect Secret block). Secrets are kept out of ``repr``."""

    user: str
    known_hosts: Path | str
    port: int = 22
    key_env: str | None = None
    key_path: Path | str | None = None
    key_text: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    banner_timeout: float | None = None  # defaults to connect_timeout
    auth_timeout: float | None = None  # defaults to connect_timeout
    command_timeout: float = 120.0

    def __post_init__(self) -> None:
        given = [x for x in (self.key_env, self.key_path, self.key_text) if x]
        if len(given) != 1:
            raise ValueError("give the private key as exactly one of key_env, key_path or key_text")
        if not (0 < int(self.port) < 65536):
            raise ValueError(f"port {self.port} out of range")
        self.port = int(self.port)
        self.known_hosts = Path(self.known_hosts)

    def load_key(self) -> paramiko.PKey:
        if self.key_text:
            return load_private_key(self.key_text, self.key_passphrase)
        if self.key_env:
            path = os.environ.get(self.key_env)
            if not path:
                raise SshKeyError(f"environment variable {self.key_env} (path of the SSH key) is not set")
        else:
            path = str(self.key_path)
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise SshKeyError(f"cannot read SSH private key file {path}: {exc.strerror}") from None
        return load_private_key(text, self.key_passphrase)


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an OpenSSH or PEM private key (ed25519, ECDSA, RSA) once, for every connection to share."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    pw = passphrase.encode() if passphrase else None
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=pw)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=pw)
    except TypeError:
        raise SshKeyError("SSH private key is encrypted and needs a passphrase (or got one it does not need)") from None
    except Exception:
        raise SshKeyError("SSH private key could not be loaded (not a key, or wrong passphrase)") from None
    try:
        if isinstance(loaded, ec.EllipticCurvePrivateKey):
            # Built from cryptography's parse: paramiko's own OpenSSH-format ECDSA reader fails on
            # about half of the keys ssh-keygen writes with an empty comment ("Invalid key curve
            # identifier"), measured with paramiko 4.0.
            return paramiko.ECDSAKey(vals=(loaded, loaded.public_key()))
        if isinstance(loaded, rsa.RSAPrivateKey):
            return paramiko.RSAKey(key=loaded)
        if isinstance(loaded, ed25519.Ed25519PrivateKey):
            return paramiko.Ed25519Key.from_private_key(io.StringIO(data.decode()), password=passphrase or None)
    except Exception:
        raise SshKeyError("SSH private key could not be loaded by paramiko") from None
    raise SshKeyError(f"unsupported SSH private key type {type(loaded).__name__}")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint, what an operator compares with ``ssh-keygen -lf``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_name(address: str, port: int) -> str:
    """The name known_hosts records a host under: ``addr`` on port 22, ``[addr]:port`` otherwise."""
    return address if int(port) == 22 else f"[{address}]:{int(port)}"


def _check_address(address: str) -> str:
    if not isinstance(address, str):
        raise InvalidValue("host address must be text")
    text = address.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return normalize_host_name(text).lower()


# --------------------------------------------------------------------------------------------------
# known_hosts
# --------------------------------------------------------------------------------------------------


class KnownHosts:
    """known_hosts parsed once and indexed by host name, so a lookup costs O(1) for plain entries.

    Hashed entries (``|1|salt|hash``) are checked one by one (their names cannot be indexed);
    ``@revoked`` keys are remembered and refused; ``@cert-authority`` and wildcard patterns are not
    supported and are skipped with a warning.
    """

    def __init__(self, path: Path | str | None = None):
        self._plain: dict[str, dict[str, paramiko.PKey]] = {}
        self._hashed: list[tuple[bytes, bytes, paramiko.PKey]] = []
        self.revoked: set[str] = set()
        self.skipped = 0
        if path is not None and Path(path).exists():
            self.load_text(Path(path).read_text())

    def load_text(self, text: str) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker = None
            if line.startswith("@"):
                marker, _, line = line.partition(" ")
                line = line.strip()
            entry = _parse_known_hosts_line(line)
            if entry is None:
                self.skipped += 1
                log.warning("known_hosts line %d: unreadable, skipped", lineno)
                continue
            names, key = entry
            if marker == "@revoked":
                self.revoked.add(fingerprint(key))
                continue
            if marker is not None:
                self.skipped += 1
                log.warning("known_hosts line %d: marker %s not supported, skipped", lineno, marker)
                continue
            for name in names:
                if name.startswith("|1|"):
                    try:
                        _, _, salt, digest = name.split("|")
                        self._hashed.append((base64.b64decode(salt), base64.b64decode(digest), key))
                    except ValueError:
                        self.skipped += 1
                    continue
                if any(c in name for c in "*?!"):
                    self.skipped += 1
                    log.warning("known_hosts line %d: pattern %r not supported, skipped", lineno, name)
                    continue
                self._plain.setdefault(name.lower(), {})[key.get_name()] = key

    def lookup(self, name: str) -> dict[str, paramiko.PKey]:
        """Keys recorded for ``name`` (as `host_key_name` spells it), by key type."""
        found = dict(self._plain.get(name.lower(), {}))
        if self._hashed:
            encoded = name.lower().encode()
            for salt, digest, key in self._hashed:
                if hmac.compare_digest(hmac.new(salt, encoded, hashlib.sha1).digest(), digest):
                    found.setdefault(key.get_name(), key)
        return found

    def __len__(self) -> int:
        return len(self._plain) + len(self._hashed)


def _parse_known_hosts_line(line: str) -> tuple[list[str], paramiko.PKey] | None:
    fields = line.split()
    if len(fields) < 3:
        return None
    names, key_type, blob = fields[0], fields[1], fields[2]
    try:
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    except Exception:
        return None
    return names.split(","), key


_known_hosts_write_lock = threading.Lock()


def add_known_host(path: Path | str, address: str, port: int, key: paramiko.PKey) -> bool:
    """Record ``key`` for the host in known_hosts, like ``ssh-keyscan >> known_hosts``.

    Returns False if that exact key is already recorded. A *different* key of the same type already
    recorded raises `HostKeyChanged`: a trust step must never silently replace a key.
    """
    address = _check_address(address)
    path = Path(path)
    name = host_key_name(address, port)
    with _known_hosts_write_lock:
        existing = KnownHosts(path).lookup(name)
        old = existing.get(key.get_name())
        if old is not None:
            if old == key:
                return False
            raise HostKeyChanged(
                address, port,
                f"known_hosts already holds {old.get_name()} {fingerprint(old)} for {name}, "
                f"server now offers {fingerprint(key)}; remove the old entry deliberately if the change is expected",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    log.info("trusted %s %s %s", name, key.get_name(), fingerprint(key))
    return True


def scan_host_keys(address: str, port: int = 22, *, timeout: float = 10.0,
                   key_types: Sequence[str] = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"),
                   ) -> list[paramiko.PKey]:
    """Fetch the server's host keys of the given types (one connection per type, like ssh-keyscan).

    Types the server does not offer are left out. Does not authenticate and trusts nothing by itself.
    """
    address = _check_address(address)
    keys = []
    for key_type in key_types:
        algorithms = _ALGORITHMS_FOR_TYPE.get(key_type)
        if algorithms is None:
            raise ValueError(f"unknown host key type {key_type!r}")
        try:
            keys.append(_fetch_host_key(address, port, timeout, algorithms))
        except _NoSuchKeyType:
            continue
    return keys


def scan_host_key(address: str, port: int = 22, *, timeout: float = 10.0) -> paramiko.PKey:
    """The host key the server prefers to present (ed25519 when it has one)."""
    keys = scan_host_keys(address, port, timeout=timeout)
    if not keys:
        raise SshError(address, port, "server offers no supported host key type", kind="protocol")
    return keys[0]


class _NoSuchKeyType(Exception):
    pass


def _fetch_host_key(address: str, port: int, timeout: float, algorithms: Sequence[str]) -> paramiko.PKey:
    disabled = [a for a in _ALL_HOST_KEY_ALGORITHMS if a not in algorithms]
    transport = None
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
        transport = paramiko.Transport(sock, disabled_algorithms={"keys": disabled})
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except IncompatiblePeer as exc:
        if "host key" in str(exc):
            raise _NoSuchKeyType() from None
        raise _map_exception(exc, address, port) from None
    except Exception as exc:
        raise _map_exception(exc, address, port) from None
    finally:
        if transport is not None:
            transport.close()


# --------------------------------------------------------------------------------------------------
# Running commands
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    address: str
    port: int
    command: str
    exit_status: int  # -1 when the server closed the channel without sending one
    stdout: str
    stderr: str
    duration: float  # seconds, connect + command

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Belt and braces: `SshRunner` refuses unknown hosts before dialling; this refuses if one slips through."""

    def missing_host_key(self, client, hostname, key):  # noqa: D401 - paramiko's signature
        raise _UnknownFromPolicy(fingerprint(key))


class _UnknownFromPolicy(Exception):
    def __init__(self, offered: str):
        self.offered = offered


class SshRunner:
    """Runs one command per host; `run` is safe to call from many threads at once.

    The private key and known_hosts are parsed here, once. Each `run` opens its own SSHClient,
    gives it only the target's recorded keys, and always closes it.
    """

    def __init__(self, settings: SshSettings):
        self.settings = settings
        self._pkey = settings.load_key()
        self._lock = threading.Lock()
        self._known = KnownHosts(settings.known_hosts)
        if not len(self._known):
            log.warning("known_hosts %s holds no usable entry: every host will be refused (%s)",
                        settings.known_hosts, TRUST_HINT)

    def __repr__(self) -> str:
        return f"SshRunner(user={self.settings.user!r}, known_hosts={str(self.settings.known_hosts)!r})"

    def reload_known_hosts(self) -> None:
        """Re-read known_hosts (after a trust-hosts step); in-flight runs keep the old index."""
        known = KnownHosts(self.settings.known_hosts)
        with self._lock:
            self._known = known

    def render(self, command: Sequence[str] | str, os_flavor: OsFlavor | str = OsFlavor.LINUX) -> str:
        """The exact command line sent. A list is quoted for the target; a string is sent verbatim, so
        only pass fixed strings from code (or strings built by `tasks.adapters.commands`)."""
        if isinstance(command, str):
            if not command.strip() or "\x00" in command or "\n" in command or "\r" in command:
                raise InvalidValue("a command string must be one non-empty line")
            return command
        return quote_argv(command, os_flavor)

    def run(self, address: str, command: Sequence[str] | str, *, port: int | None = None,
            timeout: float | None = None, os_flavor: OsFlavor | str = OsFlavor.LINUX,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run ``command`` on ``address`` over a connection of its own and return its exit status and output.

        Raises an `SshError` subclass for anything but a completed command (a non-zero exit status
        is a result, not an error). Validation errors (`InvalidValue`) are raised before dialling.
        """
        self.render(command, os_flavor)  # refuse a bad command before dialling
        with self.session(address, port=port, os_flavor=os_flavor) as sh:
            return sh.run(command, timeout=timeout, env=env)

    @contextmanager
    def session(self, address: str, *, port: int | None = None,
                os_flavor: OsFlavor | str = OsFlavor.LINUX) -> Iterator[SshSession]:
        """One verified, authenticated connection for several commands (one channel each).

        A handshake costs client and server several ms of CPU (key exchange, signatures); a stage
        that runs three commands on a host pays it once. Always closed on leaving the block.
        """
        started = time.monotonic()
        address = _check_address(address)
        port = int(port or self.settings.port)
        name = host_key_name(address, port)
        with self._lock:
            known_hosts = self._known
        keys = known_hosts.lookup(name)
        if not keys:
            raise HostKeyUnknown(address, port, f"host key unknown for {name}: {TRUST_HINT}")

        allowed = {a for t in keys for a in _ALGORITHMS_FOR_TYPE.get(t, (t,))}
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_RejectUnknown())
        for key_type, key in keys.items():
            client.get_host_keys().add(name, key_type, key)
        s = self.settings
        try:
            try:
                client.connect(
                    address, port=port, username=s.user, pkey=self._pkey,
                    timeout=s.connect_timeout,
                    banner_timeout=s.banner_timeout or s.connect_timeout,
                    auth_timeout=s.auth_timeout or s.connect_timeout,
                    channel_timeout=s.connect_timeout,
                    look_for_keys=False, allow_agent=False,
                    # Offer only the algorithms of the key types we hold, so the server cannot pick
                    # another type and look like a changed key (paramiko otherwise asks for
                    # "ssh-rsa", which OpenSSH >= 8.8 refuses, and falls through to ed25519).
                    disabled_algorithms={"keys": [a for a in _ALL_HOST_KEY_ALGORITHMS if a not in allowed]},
                )
                server_key = client.get_transport().get_remote_server_key()
                if fingerprint(server_key) in known_hosts.revoked:
                    raise HostKeyChanged(address, port, f"host key {fingerprint(server_key)} is revoked",
                                         kind="host_key_revoked")
            except SshError:
                raise
            except _UnknownFromPolicy as exc:
                raise HostKeyUnknown(address, port,
                                     f"host key {exc.offered} unknown for {name}: {TRUST_HINT}") from None
            except BadHostKeyException as exc:
                raise HostKeyChanged(
                    address, port,
                    f"host key changed for {name}: known_hosts has {exc.expected_key.get_name()} "
                    f"{fingerprint(exc.expected_key)}, server offered {exc.key.get_name()} "
                    f"{fingerprint(exc.key)}; refused",
                ) from None
            except IncompatiblePeer as exc:
                if "host key" in str(exc):
                    recorded = ", ".join(f"{t} {fingerprint(k)}" for t, k in keys.items())
                    raise HostKeyChanged(
                        address, port,
                        f"server offers none of the host key types recorded for {name} ({recorded}); refused",
                    ) from None
                raise _map_exception(exc, address, port) from None
            except Exception as exc:
                raise _transport_error(client, exc, address, port) from None
            yield SshSession(self, client, address, port, os_flavor, started)
        finally:
            client.close()


class SshSession:
    """Commands on one host over one connection (`SshRunner.session`); one command at a time."""

    def __init__(self, runner: SshRunner, client: paramiko.SSHClient, address: str, port: int,
                 os_flavor: OsFlavor | str, started: float):
        self._runner, self._client = runner, client
        self.address, self.port, self.os_flavor = address, port, os_flavor
        self._started = started  # the first command's duration includes the handshake, as `run`'s does

    def run(self, command: Sequence[str] | str, *, timeout: float | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run one command on its own channel; same results and errors as `SshRunner.run`.

        ``env`` is sent as SSH "env" requests (RFC 4254 6.4), so a secret such as rpc-go's
        ``AMT_PASSWORD`` never appears on a command line. sshd drops names its ``AcceptEnv`` does not
        list, silently: the command must be able to tell (rpc-go then prompts, which its reader sees).
        """
        address, port = self.address, self.port
        line = self._runner.render(command, self.os_flavor)
        started, self._started = self._started or time.monotonic(), None
        deadline_s = float(timeout if timeout is not None else self._runner.settings.command_timeout)
        try:
            channel = self._client.get_transport().open_session(timeout=self._runner.settings.connect_timeout)
        except Exception as exc:
            raise _transport_error(self._client, exc, address, port) from None
        try:
            deadline = time.monotonic() + deadline_s
            try:
                for key, value in (env or {}).items():
                    channel.set_environment_variable(key, value)
                channel.exec_command(line)
                channel.shutdown_write()
            except Exception as exc:
                raise _map_exception(exc, address, port) from None
            exit_status, out, err = _collect(channel, deadline, address, port, deadline_s)
        finally:
            channel.close()
        duration = time.monotonic() - started
        log.debug("%s: exit %s in %.3fs", host_key_name(address, port), exit_status, duration)
        return CommandResult(address, port, line, exit_status, out, err, duration)


def _transport_error(client: paramiko.SSHClient, exc: BaseException, address: str, port: int) -> SshError:
    """paramiko's start_client can return before its reader thread marks the transport dead, so the
    first visible error ("No existing session") hides the real one."""
    transport = client.get_transport()
    saved = transport.get_exception() if transport is not None else None
    return _map_exception(saved or exc, address, port)


def _decode(data: bytes | bytearray) -> str:
    """UTF-8 when valid, else the Windows console's OEM code page recognised from the bytes (cp850, cp852,
    cp866, cp932, cp936, cp949); a leading BOM dropped. See tasks.adapters.console.decode_console."""
    from tasks.adapters.windows import decode_console

    return decode_console(bytes(data))


def _collect(channel: paramiko.Channel, deadline: float, address: str, port: int,
             timeout_s: float) -> tuple[int, str, str]:
    """Read stdout and stderr until EOF and exit status, or raise `CommandTimeout` at the deadline.

    Both streams are drained as data arrives, so a chatty stderr cannot fill the window and stall
    stdout; sshd may send the exit status before the last data, so both are awaited.
    """
    out, err = bytearray(), bytearray()

    def drain() -> None:
        while channel.recv_ready():
            out.extend(channel.recv(65536))
        while channel.recv_stderr_ready():
            err.extend(channel.recv_stderr(65536))

    while True:
        drain()
        if channel.closed or (channel.eof_received and channel.exit_status_ready()):
            drain()
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommandTimeout(address, port, f"command did not finish within {timeout_s:g}s",
                                 stdout=_decode(out), stderr=_decode(err))
        wait = min(remaining, 0.25)
        if channel.eof_received:
            channel.status_event.wait(wait)
        else:
            select.select([channel], [], [], wait)
    status = channel.exit_status if channel.exit_status_ready() else -1
    return status, _decode(out), _decode(err)


_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def _map_exception(exc: BaseException, address: str, port: int) -> SshError:
    """Translate socket/paramiko exceptions into `SshError`s without copying their text blindly."""
    if isinstance(exc, SshError):
        return exc
    if isinstance(exc, NoValidConnectionsError):
        errs = list(exc.errors.values())
        inner = errs[0] if errs else exc
        return _map_exception(inner, address, port)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return SshUnreachable(address, port, "connection timed out", kind="timeout")
    if isinstance(exc, ConnectionRefusedError):
        return SshUnreachable(address, port, "connection refused", kind="refused")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return SshUnreachable(address, port, "connection closed by the server", kind="reset")
    if isinstance(exc, socket.gaierror):
        return SshUnreachable(address, port, f"name does not resolve ({exc.strerror})", kind="dns")
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return SshUnreachable(address, port, "connection refused", kind="refused")
        if exc.errno in _NO_ROUTE:
            return SshUnreachable(address, port, f"no route to host ({exc.strerror})", kind="no_route")
        if exc.errno == errno.ETIMEDOUT:
            return SshUnreachable(address, port, "connection timed out", kind="timeout")
        return SshUnreachable(address, port, f"network error ({exc.strerror or type(exc).__name__})",
                              kind="network")
    if isinstance(exc, AuthenticationException):
        text = str(exc)
        if "timeout" in text.lower():
            return SshUnreachable(address, port, "authentication timed out", kind="timeout")
        return SshAuthFailed(address, port, "authentication failed (key not accepted for this user)",
                             kind="auth")
    if isinstance(exc, SSHException):
        text = str(exc)
        if "banner" in text.lower():
            # paramiko folds the socket error into the banner message
            if "reset" in text.lower() or "errno 104" in text.lower():
                return SshUnreachable(address, port, "connection reset before the SSH banner", kind="reset")
            # the server took the connection and said nothing within the timeout: the same fact as the
            # negotiation timing out ("No existing session" below), which of the two paramiko reports first
            # is a race between its banner thread and start_client's wait, so both are kind "timeout"
            return SshUnreachable(address, port, "no SSH banner within the timeout (a silent server, not SSH, "
                                  "or overloaded)", kind="timeout")
        if text == "No existing session":
            # paramiko's start_client returns silently when its timeout expires mid-negotiation,
            # and the next step finds no session: the server was too slow (or not SSH at all).
            return SshUnreachable(address, port, "SSH negotiation did not finish in time", kind="timeout")
        if "timeout" in text.lower() or "timed out" in text.lower():
            return SshUnreachable(address, port, "SSH negotiation timed out", kind="timeout")
        return SshError(address, port, f"SSH protocol error: {text[:200]}", kind="protocol")
    return SshError(address, port, f"unexpected {type(exc).__name__}", kind="protocol")
