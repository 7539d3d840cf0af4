"""The whole `amt-migrate` app: every command module registers on the shared app when imported (in the
order `--help` lists them), sub-apps are mounted once (Python imports a module once)."""

from __future__ import annotations

from flows.commands import inventory as _inventory  # noqa: F401 - validate, suffix-check, plan, import-legacy
from flows.commands import store as _store  # noqa: F401 - closeout, status, history
from flows.commands import wave as _wave  # noqa: F401 - run, rerun, schedule, trust-hosts
from flows.commands import forecast as _forecast  # noqa: F401 - forecast
from flows.commands.base import app
from flows.commands.mebx import mebx_app
from flows.commands.waves import waves_app


def _mount_subcommands() -> None:
    from flows.dhcp_cli import app as dhcp_app

    app.add_typer(dhcp_app, name="dhcp", help="DHCP scopes (Kea, Windows DHCP): show option 15 and lease; set them.")
    app.add_typer(mebx_app, name="mebx")
    app.add_typer(waves_app, name="waves")


def _mount_optional() -> None:
    """Sub-apps from other capabilities (the lab) attach here when present."""
    from flows.demo import mount  # the CLI's one way into the lab

    mount(app)


_mount_subcommands()
_mount_optional()
