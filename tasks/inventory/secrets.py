"""Secrets by reference: environment variables or Prefect Secret blocks, never the inventory.

Values are wrapped so that repr(), logs and exceptions show only where a secret came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tasks.inventory.model import Inventory


class SecretUnavailable(Exception):
    """A referenced secret is missing; says which reference, never a value."""


@dataclass(frozen=True)
class Secret:
    source: str
    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def _from_block(name: str) -> str:
    try:
        from prefect.blocks.system import Secret as SecretBlock

        value = SecretBlock.load(name).get()
    except Exception as exc:  # noqa: BLE001 - Prefect raises ValueError/ObjectNotFound/HTTP errors
        raise SecretUnavailable(f"Prefect Secret block {name!r} could not be loaded ({type(exc).__name__})") from None
    return value if isinstance(value, str) else str(value)


def ssh_private_key(inv: Inventory) -> Secret | None:
    """The SSH private key's text: key_env names an env var holding the key's path."""
    ssh = inv.credentials.ssh
    if ssh is None:
        return None
    if ssh.key_secret:
        return Secret(f"Prefect Secret block {ssh.key_secret!r}", _from_block(ssh.key_secret))
    path = os.environ.get(ssh.key_env or "")
    if not path:
        raise SecretUnavailable(f"environment variable {ssh.key_env} (path of the SSH private key) is not set")
    try:
        return Secret(f"${ssh.key_env}", Path(path).expanduser().read_text())
    except OSError as exc:
        raise SecretUnavailable(f"SSH key named by ${ssh.key_env} can't be read ({exc.strerror})") from None


def _password(ref, what: str) -> Secret | None:
    """A password by reference: a Prefect Secret block (``password_secret``) or an environment variable
    (``password_env``); ``ref`` None = the inventory names no such credential."""
    if ref is None:
        return None
    if ref.password_secret:
        return Secret(f"Prefect Secret block {ref.password_secret!r}", _from_block(ref.password_secret))
    value = os.environ.get(ref.password_env or "")
    if not value:
        raise SecretUnavailable(f"environment variable {ref.password_env} ({what}) is not set")
    return Secret(f"${ref.password_env}", value)


def legacy_amt_password(inv: Inventory) -> Secret | None:
    return _password(inv.credentials.legacy_amt, "legacy AMT admin password")


def provisioning_api_password(inv: Inventory) -> Secret | None:
    """The new server's API password (MPS web admin), from provisioning.api's reference."""
    return _password(inv.provisioning.api, "provisioning API password")
