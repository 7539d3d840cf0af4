"""Everything one wave run needs, built once: inventory, store, adapters, credentials, bounds.

Flows pass only a key to this object (never the object) so no secret or client ever becomes a
Prefect parameter that the API would store.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tasks.inventory.model import Host, Inventory, Wave
from tasks.adapters.protocols import AmtClient, CommandRunner, Provisioner
from tasks.adapters.provisioner import make_provisioner
from tasks.inventory.secrets import Secret, SecretUnavailable, legacy_amt_password, ssh_private_key
from tasks.store.state import StateStore, utcnow, worker_id


@dataclass
class WaveContext:
    inv: Inventory
    wave: Wave
    store: StateStore
    provisioner: Provisioner
    ssh: CommandRunner | None
    legacy_password: Secret | None
    unavailable: dict[str, str] = field(default_factory=dict)  # capability -> why (no credentials, ...)
    flow_run_id: str | None = None
    now: Callable[[], datetime] = utcnow
    renew_attempts: int = 3
    renew_verify_delay: float = 1.0
    renew_settle: float = 10.0  # how long a read-back waits for an asynchronous renew's lease (renew_check)
    selected: set[str] | None = None  # a rerun's fixed subset; None = a plain run
    worker: str = field(default_factory=worker_id)  # this run's name in host leases
    lease_ttl: timedelta = timedelta(minutes=15)  # a lost worker's hosts are free again after this (outages.lease_ttl)
    from_stage: str = "discovery"
    start_at: dict[str, str] | None = None  # a rerun: the stage each selected host starts at
    restrict: set[str] | None = None  # a shard's hosts (child run of a sharded wave)
    # per pass: hosts whose attempt in this run failed for a cause of their own (not a 5xx). A batch
    # is retried whole when some of its hosts met server errors: these are not asked again, and
    # giving up on the batch must not relabel them server_error.
    _answered: dict[int, set[str]] = field(default_factory=lambda: {1: set(), 2: set()})
    # the run's own infrastructure went away past its bound (provisioning server unreachable): what, said once;
    # the stage stops handing out hosts and the run ends "Stopped: ..." (exit 2), every host as it stood
    outage: str | None = None

    def __post_init__(self) -> None:
        # one pool of max_concurrency threads for every host step of the run, whatever batch it is in
        self.host_pool = ThreadPoolExecutor(max_workers=self.wave.max_concurrency, thread_name_prefix="host")
        self._unfinished: dict[str, int] = {}  # batch (its first host) -> hosts not finished yet
        self._unfinished_lock = threading.Lock()
        self.hosts_by_name = {h.name: h for h in self.inv.wave_hosts(self.wave)}
        from tasks.steps.leases import LeaseKeeper

        self.lease_keeper = LeaseKeeper(self.store, self.wave.name, self.worker, self.lease_ttl)

    # hosts handed to batches and not finished yet: the flow submits more batches only while this is
    # low, so the pool always has work queued but never thousands of idle batch threads. Counted per
    # batch, so a batch that failed or was retried can't leave the count wrong.
    def batch_started(self, batch: list[str]) -> None:
        with self._unfinished_lock:
            self._unfinished[batch[0]] = len(batch)

    def batch_finished(self, batch: list[str]) -> None:
        with self._unfinished_lock:
            self._unfinished.pop(batch[0], None)

    def hosts_done(self, batch: list[str], n: int = 1) -> None:
        with self._unfinished_lock:
            if batch[0] in self._unfinished:
                self._unfinished[batch[0]] = max(0, self._unfinished[batch[0]] - n)

    @property
    def unfinished_hosts(self) -> int:
        with self._unfinished_lock:
            return sum(self._unfinished.values())

    def counted(self, batch: list[str], step):
        def run(name: str) -> str:
            try:
                return step(name)
            finally:
                self.hosts_done(batch)
        return run

    def answered(self, pass_no: int) -> set[str]:
        return self._answered[pass_no]

    def host(self, name: str) -> Host:
        return self.hosts_by_name[name]

    @property
    def cert_suffix(self) -> str:
        return self.inv.certificate_suffix

    def wsman(self, host: Host, evidence: dict | None = None) -> AmtClient | None:
        """A WS-Man client with the legacy console's credentials for a host they apply to (the export says
        the console manages it, or, when it doesn't say, what discovery learned: `evidence`), or None."""
        from tasks.rules.classify import legacy_credentials_apply

        if not legacy_credentials_apply(host.legacy_managed, evidence):
            return None
        return self.wsman_client(host)

    def wsman_client(self, host: Host) -> AmtClient | None:
        """A WS-Man client with the legacy console's credentials, or None when there are none."""
        if self.legacy_password is None or self.inv.credentials.legacy_amt is None:
            return None
        from tasks.adapters.wsman import WsmanClient

        legacy = self.inv.credentials.legacy_amt
        if self.inv.amt_tls_of(host):  # 16993, AMT's certificate checked against the inventory's CA bundle
            return WsmanClient(host.address, self.inv.amt_port_of(host), legacy.user, self.legacy_password.reveal(),
                               timeout=20.0, scheme="https", verify=str(self.inv.resolve(legacy.ca_bundle)))
        return WsmanClient(host.address, self.inv.amt_port_of(host), legacy.user,
                           self.legacy_password.reveal(), timeout=20.0)

    def close(self) -> None:
        self.lease_keeper.stop()
        self.host_pool.shutdown(wait=False, cancel_futures=True)
        self.provisioner.close()


_CONTEXTS: dict[str, WaveContext] = {}
_LOCK = threading.Lock()


def build_context(inv: Inventory, wave: str, store: StateStore, *, flow_run_id: str | None = None) -> WaveContext:
    unavailable: dict[str, str] = {}
    ssh_runner = None
    key = None
    try:
        key = ssh_private_key(inv)
    except SecretUnavailable as exc:
        unavailable["ssh"] = str(exc)
    if key is not None:
        from tasks.adapters.ssh import SshRunner, SshSettings

        creds = inv.credentials.ssh
        ssh_runner = SshRunner(SshSettings(
            user=creds.user, known_hosts=inv.resolve(creds.known_hosts), port=inv.defaults.ssh_port,
            key_text=key.reveal(), connect_timeout=creds.connect_timeout.total_seconds(),
            command_timeout=creds.command_timeout.total_seconds()))
    elif "ssh" not in unavailable:
        unavailable["ssh"] = "no credentials.ssh in the inventory"
    password = None
    try:
        password = legacy_amt_password(inv)
    except SecretUnavailable as exc:
        unavailable["legacy_amt"] = str(exc)
    if password is None and "legacy_amt" not in unavailable:
        unavailable["legacy_amt"] = "no credentials.legacy_amt in the inventory"
    provisioner = make_provisioner(inv, ssh_runner)
    return WaveContext(inv, inv.wave(wave), store, provisioner, ssh_runner, password, unavailable,
                       flow_run_id=flow_run_id, lease_ttl=inv.outages.lease_ttl)


def register(ctx: WaveContext) -> str:
    key = uuid.uuid4().hex
    with _LOCK:
        _CONTEXTS[key] = ctx
    return key


def lookup(key: str) -> WaveContext:
    return _CONTEXTS[key]


def unregister(key: str) -> None:
    with _LOCK:
        ctx = _CONTEXTS.pop(key, None)
    if ctx is not None:
        ctx.close()
