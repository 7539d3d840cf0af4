"""The `amt-migrate` command line: tables for people, --json/--csv for scripts, exit 2 on bad input.

The commands live in flows/commands/ (one module per kind); this module is the entry point
(`amt-migrate = flows.cli:main`, `python -m flows.cli`) and keeps the names other modules import."""

from __future__ import annotations

from flows.commands.assemble import app
from flows.commands.base import (EXIT_BAD_INPUT, EXIT_HOSTS_LEFT, EXIT_WAITING, STAGE_CHOICES, err, fail, out,
                                 window_text)
from flows.commands.wave import run_wave

__all__ = ["app", "main", "run_wave", "window_text", "out", "err", "fail", "EXIT_BAD_INPUT", "EXIT_WAITING",
           "EXIT_HOSTS_LEFT", "STAGE_CHOICES"]


def main() -> None:
    import logging

    # paramiko logs a traceback for every refused or reset connection; each host's cause says it once
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    app()


if __name__ == "__main__":
    main()
