"""`lab serve` for benchmarks: the same LabServer in its own process, recording every injected delay.

Run as ``python -m bench.labserve FLEET --record OPS.json``. It wraps `lab.model.Fleet.latency_for`
(the one place every SSH command, renew, provisioning call and WS-Man request draws its delay) so
the harness knows, per device, exactly which latencies the lab imposed and when: that is what the
latency bound of each stage is computed from. The recording costs ~1 µs per operation. On SIGTERM
it writes ``[[unix_time, device, op, seconds], ...]`` to the record file, then stops.

Served in a separate process so the lab's CPU never counts as the migration's orchestration CPU.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("fleet", type=Path)
    ap.add_argument("--record", type=Path, default=None)
    ap.add_argument("--known-hosts", type=Path, default=None)
    ap.add_argument("--time-scale", type=float, default=1.0)
    args = ap.parse_args(argv)

    import logging

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    from lab import model
    from lab.server import LabServer

    ops: list[tuple[float, str, str, float]] = []
    if args.record is not None:
        original = model.Fleet.latency_for

        def latency_for(self, dev, op):
            delay = original(self, dev, op)
            ops.append((time.time(), dev.name if dev is not None else "", op, delay))
            return delay

        model.Fleet.latency_for = latency_for

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    lab = LabServer(args.fleet, ssh_port=0, amt_port=0, http_port=0, known_hosts=args.known_hosts,
                    time_scale=args.time_scale)
    lab.start()
    print(f"{lab.ready_line()} startup={time.monotonic() - started:.1f}s", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if args.record is not None:
            tmp = args.record.with_suffix(".tmp")
            tmp.write_text(json.dumps(list(ops)))
            tmp.replace(args.record)
        lab.stop()
        print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
