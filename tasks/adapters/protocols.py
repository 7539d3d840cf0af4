"""The boundaries between the per-host steps and the adapters, as `typing.Protocol`s.

A step depends on these shapes, never on a concrete adapter: a test fake is a plain class with the
same methods (no subclassing), and a new adapter is one file that satisfies one Protocol. The concrete
adapters: `ssh.SshRunner` (CommandRunner), `wsman.WsmanClient` (AmtClient), `dhcp.KeaAdapter` and
`dhcp.WindowsDhcpAdapter` (DhcpServer), `lab_api.LabProvisioner` and `rpc.RpcProvisioner` (Provisioner,
defined beside its outcome type in provisioner.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tasks.adapters.provisioner import ProvisionOutcome, Provisioner

if TYPE_CHECKING:
    from tasks.adapters.commands import OsFlavor
    from tasks.adapters.dhcp import ScopeChange, ScopeOptions

__all__ = ["AmtClient", "CommandResultLike", "CommandRunner", "CommandSession", "DhcpServer", "ProvisionOutcome",
           "Provisioner"]


class CommandResultLike(Protocol):
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool: ...


@runtime_checkable
class CommandSession(Protocol):
    """Several commands over one verified connection to one host."""

    def run(self, command: Sequence[str] | str, *, timeout: float | None = None) -> CommandResultLike: ...


@runtime_checkable
class CommandRunner(Protocol):
    """Runs validated, quoted commands on a host's OS (SSH with verified host keys)."""

    def run(self, address: str, command: Sequence[str] | str, *, port: int | None = None,
            os_flavor: OsFlavor | str = ..., timeout: float | None = None) -> CommandResultLike: ...

    def session(self, address: str, *, port: int | None = None,
                os_flavor: OsFlavor | str = ...) -> AbstractContextManager[CommandSession]: ...


@runtime_checkable
class AmtClient(Protocol):
    """Reads and writes AMT's own settings over WS-Management with the legacy console's credentials."""

    def get_general_settings(self) -> dict[str, object]: ...

    def get_setup_and_configuration(self) -> dict[str, object]: ...

    def put_domain_name(self, domain: str) -> dict[str, object]: ...

    def close(self) -> None: ...


@runtime_checkable
class DhcpServer(Protocol):
    """A DHCP server holding a scope's option 15 (domain-name) and lease time: read, plan, apply, read back.

    ``read`` answers with every place the scope sets option 15 (`ScopeOptions.layout`; the value one host
    gets: `ScopeOptions.for_host`). A change writes at ``level`` (None: the level the scope already uses),
    ``reservations`` also rewrites reservations with their own value; what still hands out another value
    after it is listed in `ScopeChange.shadowed`, never silent."""

    def label(self, ref: Any = None) -> str: ...

    def read(self, ref: Any) -> ScopeOptions: ...

    def plan_change(self, ref: Any, *, domain_name: str | None = None, lease: timedelta | None = None,
                    level: str | None = None, reservations: bool = False) -> ScopeChange: ...

    def apply_change(self, ref: Any, *, domain_name: str | None = None, lease: timedelta | None = None,
                     level: str | None = None, reservations: bool = False) -> ScopeChange: ...
