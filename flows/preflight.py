"""Before a run touches any host: is the provisioning server there, and is every referenced credential set?

A run whose own infrastructure is missing would otherwise fail every host for a reason that is not the
host's (and, worse, record that reason over the cause the host really has). So `run`/`rerun` ask these
questions first and stop, naming what is missing, before anything is written.
"""

from __future__ import annotations

from tasks.inventory.model import Inventory
from tasks.inventory.secrets import SecretUnavailable, legacy_amt_password, ssh_private_key


def missing_credentials(inv: Inventory) -> list[str]:
    """Each credential the inventory references but this process can't read (unset variable, unreadable
    key file, missing Secret block): said by reference, never by value."""
    problems = []
    for read in (ssh_private_key, legacy_amt_password):
        try:
            read(inv)
        except SecretUnavailable as exc:
            problems.append(str(exc))
    return problems


def unreachable_server(inv: Inventory, timeout: float = 5.0) -> str | None:
    """Does the lab's provisioning API answer at provisioning.url? For `rpc` the URL is the one rpc-go on
    each client dials: whether this machine reaches it proves nothing, so it is not asked here."""
    if inv.provisioning.server != "lab":
        return None
    url = inv.provisioning.url
    if not url:
        return "provisioning.url is not set"
    import httpx

    try:
        httpx.get(url, timeout=timeout)
    except httpx.TransportError as exc:
        return f"provisioning server {url} did not answer ({type(exc).__name__})"
    return None


def infrastructure_problems(inv: Inventory) -> list[str]:
    problems = missing_credentials(inv)
    server = unreachable_server(inv)
    if server:
        problems.insert(0, server)
    return problems
