"""Adapters that ask a provisioning server to provision one host.

Each returns the same `ProvisionOutcome`, so passes and classification don't care whether the
request went to a server API (`lab`) or to rpc-go on the client over SSH (`rpc`). Transient
problems (server 5xx, server unreachable) are marked so the batch is retried, not the host failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from tasks.inventory import Host, Inventory


@dataclass(frozen=True)
class ProvisionOutcome:
    ok: bool
    error_code: str | None = None  # internal_error | device_unreachable | unreachable | auth_failed | server_error | suffix_*
    message: str = ""
    transient: bool = False  # worth retrying the same request later (server busy/down)
    evidence: dict = field(default_factory=dict)

    @property
    def reached_device(self) -> bool:
        """Did the attempt reach AMT? Only then did it reopen the interface window."""
        return self.error_code not in ("device_unreachable", "unreachable", "auth_failed")


class Provisioner(Protocol):
    name: str

    def provision(self, host: Host) -> ProvisionOutcome: ...

    def is_provisioned(self, host: Host) -> bool | None:
        """Did the server already provision it (a client's own retry, or a run killed before it wrote)? None = can't tell."""

    def close(self) -> None: ...


class LabProvisioner:
    """The lab's provisioning-server API (stand-in for the console the fleet migrates to)."""

    name = "lab"

    def __init__(self, url: str, profile: str, *, timeout: float = 60.0, max_connections: int = 100):
        self.url = url.rstrip("/")
        self.profile = profile
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.url, timeout=timeout, limits=limits)

    def provision(self, host: Host) -> ProvisionOutcome:
        try:
            resp = self._client.post("/api/v1/provision", json={"host": host.name, "profile": self.profile})
        except httpx.TransportError as exc:
            return ProvisionOutcome(False, "server_error", f"provisioning server unreachable: {type(exc).__name__}",
                                    transient=True)
        if resp.status_code >= 500:
            return ProvisionOutcome(False, "server_error", f"provisioning server answered {resp.status_code}",
                                    transient=True, evidence={"http_status": resp.status_code})
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200:
            return ProvisionOutcome(False, "server_error",
                                    f"provisioning server answered {resp.status_code}: {str(body.get('message', ''))[:200]}",
                                    evidence={"http_status": resp.status_code})
        ok = body.get("result") == "success"
        return ProvisionOutcome(ok, None if ok else (body.get("error_code") or "internal_error"),
                                str(body.get("message", ""))[:500],
                                evidence={"attempt": body.get("attempt"), "after_success": body.get("after_success")})

    def is_provisioned(self, host: Host) -> bool | None:
        try:
            resp = self._client.get("/api/v1/attempts", params={"host": host.name})
        except httpx.TransportError:
            return None
        if resp.status_code != 200:
            return None
        return any(a.get("result") == "success" for a in resp.json())

    def close(self) -> None:
        self._client.close()


class RpcProvisioner:
    """rpc-go's `rpc activate` run on the client over SSH; exit codes and JSON mapped to outcomes."""

    name = "rpc"

    def __init__(self, inv: Inventory, ssh_runner, url: str, profile: str):
        from tasks.host_commands import validate_server_url

        self.inv = inv
        self.ssh = ssh_runner
        self.url = validate_server_url(url)
        self.profile = profile

    def provision(self, host: Host) -> ProvisionOutcome:
        from tasks.host_commands import activate_command, map_activation
        from tasks.ssh import SshError

        flavor = self.inv.os_of(host)
        try:
            res = self.ssh.run(host.address, activate_command(self.url, self.profile, flavor=flavor),
                               port=self.inv.ssh_port_of(host), os_flavor=flavor)
        except SshError as exc:
            return ProvisionOutcome(False, exc.cause, f"rpc over SSH: {exc.kind}", evidence={"ssh": exc.kind})
        out = map_activation(res.exit_status, res.stdout, res.stderr)
        if out.ok:
            return ProvisionOutcome(True, None, out.message, evidence={"rpc": out.evidence})
        # rpc-go's own verdicts map onto the classifier's vocabulary; a generic exit stays generic
        code = {"suffix_blank": "suffix_blank", "suffix_mismatch": "suffix_mismatch",
                "server_unreachable": "server_error"}.get(out.reason, "internal_error")
        return ProvisionOutcome(False, code, out.message, transient=code == "server_error",
                                evidence={"rpc": out.evidence, "rpc_exit": res.exit_status})

    def is_provisioned(self, host: Host) -> bool | None:
        return None  # an activated AMT may still be the legacy console's: amtinfo can't tell whose

    def close(self) -> None:
        pass


def make_provisioner(inv: Inventory, ssh_runner=None) -> Provisioner:
    p = inv.provisioning
    if p.server == "lab":
        if not p.url:
            raise ValueError("provisioning.url is required for the lab adapter")
        return LabProvisioner(p.url, p.profile)
    if p.server == "rpc":
        if ssh_runner is None:
            raise ValueError("the rpc adapter runs rpc-go over SSH: credentials.ssh is required")
        if not p.url:
            raise ValueError("provisioning.url (the wss://.../activate URL) is required for the rpc adapter")
        return RpcProvisioner(inv, ssh_runner, p.url, p.profile)
    raise ValueError(f"unknown provisioner {p.server!r}")
