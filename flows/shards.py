"""Sharding: a wave too large for one process fans out to child runs of its deployment on workers."""

from __future__ import annotations

import contextvars
import threading

from prefect import get_run_logger

from tasks.rules.host_state import Status
from tasks.steps.context import WaveContext


def run_shards(ctx: WaveContext, inventory: str, state: str | None) -> str | None:
    """Child flow runs of the wave's deployment, `shard_size` hosts each, `shards_in_flight` at a time.

    Process workers on any machine pick them up; host leases in the store keep two of them off the
    same host. Returns a halt reason if a shard halted.
    """
    from concurrent.futures import ThreadPoolExecutor

    from prefect.deployments import run_deployment

    from flows.deployments import deployment_name

    logger = get_run_logger()
    w = ctx.wave
    records = {r.host: r for r in ctx.store.hosts(w.name)}
    names = [n for n in ctx.hosts_by_name if records[n].status not in (Status.PROVISIONED, Status.UNSUPPORTED)]
    shards = [names[i:i + w.shard_size] for i in range(0, len(names), w.shard_size)]
    gate = threading.Semaphore(w.shards_in_flight)
    name = f"migrate-wave/{deployment_name(ctx.inv, w.name)}"
    logger.info("wave %s: %d hosts in %d shards of up to %d, %d at a time, on deployment %s",
                w.name, len(names), len(shards), w.shard_size, w.shards_in_flight, name)

    def one(i: int, hosts: list[str]):
        with gate:
            run = run_deployment(name, parameters={"inventory": inventory, "wave": w.name,
                                                   "inventory_name": ctx.inv.name, "state": state, "shard": hosts},
                                 flow_run_name=f"{ctx.inv.name}-{w.name}-shard-{i:03d}", timeout=None,
                                 poll_interval=2, tags=[f"wave:{w.name}", "shard"])
            logger.info("shard %03d (%d hosts): %s %s", i, len(hosts), run.state.name, run.state.message or "")
            return run.state

    # each thread runs in a copy of this context: Prefect's settings and client live in contextvars
    with ThreadPoolExecutor(max_workers=max(1, len(shards))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, i, hosts) for i, hosts in enumerate(shards, 1)]
        states = [f.result() for f in futures]
    halted = [s.message for s in states if s.is_failed() and (s.message or "").startswith("halted")]
    # a shard that ran to its end with hosts left failed or for a technician is Failed-typed and named
    # "Completed with ..." (flows/migrate.py final_state): finished, not broken
    broken = [s for s in states if not s.is_completed() and not (s.message or "").startswith("halted")
              and not (s.is_failed() and (s.name or "").startswith("Completed with"))]
    if broken:
        logger.error("%d shard(s) did not complete: %s", len(broken), ", ".join(s.name for s in broken))
    return halted[0][len("halted: "):] if halted else None
