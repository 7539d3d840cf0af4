"""``amt-migrate lab generate`` / ``amt-migrate lab serve``: the lab from the command line."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="The lab: a simulated AMT fleet served over SSH, WS-Management and HTTP.",
                  no_args_is_help=True)


@app.command()
def generate(
    hosts: int = typer.Option(..., "--hosts", min=1, help="number of devices"),
    seed: int = typer.Option(1, "--seed", help="same seed, same fleet"),
    out: Path = typer.Option(..., "-o", "--out", help="output directory"),
    window: str = typer.Option("30s", "--window", help="interface-open window (24h in reality)"),
    retry_interval: str = typer.Option("30s", "--retry-interval", help="device self-retry interval"),
    renew_failure_rate: float = typer.Option(0.0, "--renew-failure-rate", min=0.0, max=1.0),
) -> None:
    """Write fleet.yaml, inventory.yaml and an SSH key pair with a realistic mix of every case."""
    from lab.generate import generate_fleet, next_steps
    from lab.amt_rules import seconds

    for label, value in (("--window", window), ("--retry-interval", retry_interval)):
        try:
            seconds(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=label)
    paths = generate_fleet(hosts, seed, out, window=window, retry_interval=retry_interval,
                           renew_failure_rate=renew_failure_rate)
    for kind, path in paths.items():
        typer.echo(f"{kind:12} {path}")
    for line in next_steps(paths):
        typer.echo(line)


@app.command()
def serve(
    fleet: Path = typer.Argument(..., exists=True, dir_okay=False, help="fleet file"),
    ssh_port: int = typer.Option(2222, "--ssh-port"),
    amt_port: int = typer.Option(16992, "--amt-port"),
    http_port: int = typer.Option(8480, "--http-port"),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="default: next to the fleet file"),
    time_scale: float = typer.Option(1.0, "--time-scale", min=0.001, help="60 = a minute of lab time per second"),
) -> None:
    """Serve the fleet in the foreground; prints one 'ready' line, stops on SIGTERM or Ctrl-C."""
    from lab.server import LabServer

    started = time.monotonic()
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        lab = LabServer(fleet, ssh_port=ssh_port, amt_port=amt_port, http_port=http_port,
                        known_hosts=known_hosts, time_scale=time_scale)
        lab.start()
    except (OSError, ValueError) as exc:
        typer.echo(f"lab serve: {exc}", err=True)
        raise typer.Exit(1)
    try:
        typer.echo(f"{lab.ready_line()} startup={time.monotonic() - started:.1f}s")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
        typer.echo("stopped", err=True)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
