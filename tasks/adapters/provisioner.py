"""The boundary between the provisioning step and the provisioning servers: `Provisioner`.

Each returns the same `ProvisionOutcome`, so passes and classification don't care whether the
request went to a server API (`lab`) or to rpc-go on the client over SSH (`rpc`). Transient
problems (server 5xx, server unreachable) are marked so the batch is retried, not the host failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tasks.inventory.model import Host, Inventory


@dataclass(frozen=True)
class ProvisionOutcome:
    ok: bool
    error_code: str | None = None  # internal_error | device_unreachable | unreachable | auth_failed | server_error
    #                               | server_unreachable (no answer at all: the run's own outage) | suffix_*
    message: str = ""
    transient: bool = False  # worth retrying the same request later (server busy/down)
    evidence: dict = field(default_factory=dict)
    #: ok, but something said otherwise (rpc logged an error that AMT's and the new server's read-back
    #: overrule): recorded in the host's history and logged as a warning
    warning: str = ""

    @property
    def reached_device(self) -> bool:
        """Did the attempt reach AMT? Only then did it reopen the interface window."""
        return self.error_code not in ("device_unreachable", "unreachable", "auth_failed", "tool_error",
                                       "config_error", "already_activated", "server_unreachable")


@runtime_checkable
class Provisioner(Protocol):
    name: str

    def provision(self, host: Host) -> ProvisionOutcome: ...

    def is_provisioned(self, host: Host) -> bool | None:
        """Did the server already provision it (a client's own retry, or a run killed before it wrote)? None = can't tell."""

    def close(self) -> None: ...


def make_provisioner(inv: Inventory, ssh_runner=None) -> Provisioner:
    p = inv.provisioning
    if p.server == "lab":
        from tasks.adapters.lab_api import LabProvisioner

        if not p.url:
            raise ValueError("provisioning.url is required for the lab adapter")
        return LabProvisioner(p.url, p.profile)
    if p.server == "rpc":
        from tasks.adapters.rpc import RpcProvisioner

        if ssh_runner is None:
            raise ValueError("the rpc adapter runs rpc-go over SSH: credentials.ssh is required")
        if not p.url:
            raise ValueError("provisioning.url (the wss://.../activate URL) is required for the rpc adapter")
        from tasks.inventory.secrets import SecretUnavailable, legacy_amt_password

        try:  # rpc-go needs AMT's current admin password for an activated (legacy) device
            amt_password = legacy_amt_password(inv)
        except SecretUnavailable:
            amt_password = None
        api, api_problem = None, None
        if p.api is not None:
            from tasks.adapters.dmt_api import make_dmt_client

            try:
                api = make_dmt_client(inv)
            except SecretUnavailable as exc:
                api_problem = f"provisioning.api unusable: {exc}"
        return RpcProvisioner(inv, ssh_runner, p.url, p.profile, api=api, amt_password=amt_password,
                              api_problem=api_problem)
    raise ValueError(f"unknown provisioner {p.server!r}")
