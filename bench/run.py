"""`make bench`: the whole benchmark suite in one command; results in bench/results/*.json + README.md.

    .venv/bin/python -m bench.run --quick    # 1,000-host wave, SSH peers (300 hosts each), 10,000-host state,
                                             # 10,000-host forecast
    .venv/bin/python -m bench.run --full     # 10,000-host wave, SSH peers, 100,000-host state
    .venv/bin/python -m bench.run --only wave,peers,state,forecast   # a subset
    .venv/bin/python -m bench.run --table    # rebuild bench/results/README.md from the JSON files

Benchmarks only: nothing here asserts a time. Each part runs its measured work in separate processes
(the lab, the wave, each CLI command) and cleans them up (own session, killpg).
"""

from __future__ import annotations

import argparse
import sys

from bench import report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="default")
    mode.add_argument("--full", action="store_true")
    ap.add_argument("--only", default="wave,peers,state,forecast")
    ap.add_argument("--table", action="store_true", help="only rebuild the README table")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    if not args.table:
        if "wave" in parts:
            from bench import wave

            if args.full:
                wave.main(["--hosts", "10000", "--concurrency", "50"])
            else:
                wave.main(["--hosts", "1000", "--concurrency", "50"])
        if "peers" in parts:
            from bench import ssh_peers

            if args.full:
                ssh_peers.main(["--hosts", "1000", "--ansible-hosts", "1000", "--concurrency", "20,50", "--rounds", "3",
                                "--ansible-rounds", "3", "--name", "ssh-peers-full"])
            else:
                ssh_peers.main(["--hosts", "300", "--ansible-hosts", "300", "--concurrency", "20,50", "--rounds", "3"])
        if "state" in parts:
            from bench import state_scale

            state_scale.main(["--hosts", "100000" if args.full else "10000"])
        if "forecast" in parts:
            from bench import forecast_scale

            forecast_scale.main(["--hosts", "10000"])
    path = report.write_readme()
    print(f"table: {path}; README block: {report.write_main_readme()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
