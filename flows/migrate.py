"""migrate_wave: discovery -> pass 1 -> classify -> remediate -> pass 2 -> report, as Prefect subflows.

Thin orchestration: which hosts each stage takes comes from the state store, per-host work lives in
tasks/, and one task run covers a batch of hosts (a task run costs 8-15 ms of client CPU and the
server ingests only ~20-35/s, so one per host would drown it at fleet scale).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from tasks import passes
from tasks.host_state import SUFFIX_CAUSES, Cause, Status
from tasks.inventory import load_inventory
from tasks.reports import artifact_key, host_rows, summarize, summary_markdown, write_wave_reports
from tasks.selection import Selection, stage_hosts
from tasks.state import StateStore
from tasks.wave_context import WaveContext, build_context, lookup, register, unregister

STAGES = ("discovery", "pass1", "remediate", "pass2")


def _chunks(names: list[str], size: int) -> list[list[str]]:
    return [names[i:i + size] for i in range(0, len(names), size)]


def _log_results(results: dict[str, str]) -> None:
    logger = get_run_logger()
    for name, label in results.items():
        if label != "skipped":
            logger.info("%s: %s", name, label)


# -- tasks: one run per batch -------------------------------------------------------------------

@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5)
def discover_batch(ctx_key: str, names: list[str]) -> dict[str, str]:
    from tasks.discovery import discover_host

    ctx = lookup(ctx_key)
    results = passes.run_hosts(names, lambda n: discover_host(ctx, n), workers=len(names))
    _log_results(results)
    return results


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5)
def provision_batch(ctx_key: str, names: list[str], pass_no: int) -> dict[str, str]:
    """Transient server errors raise at the end so Prefect retries the batch; finished hosts are skipped then."""
    ctx = lookup(ctx_key)
    limit = ctx.inv.provisioning.concurrency_limit
    if limit:
        from prefect.concurrency.sync import concurrency

        with concurrency(limit, occupy=len(names), strict=True):
            results = passes.run_hosts(names, lambda n: passes.provision_host(ctx, n, pass_no), workers=len(names))
    else:
        results = passes.run_hosts(names, lambda n: passes.provision_host(ctx, n, pass_no), workers=len(names))
    _log_results(results)
    transient = [n for n, label in results.items() if label == "transient"]
    if transient:
        raise passes.TransientHosts(transient)
    return results


@task(cache_policy=NO_CACHE)
def remediate_batch(ctx_key: str, names: list[str]) -> dict[str, str]:
    from tasks.remediation import remediate_host

    ctx = lookup(ctx_key)
    results = passes.run_hosts(names, lambda n: remediate_host(ctx, n), workers=len(names))
    _log_results(results)
    return results


# -- the batch loop shared by every stage -------------------------------------------------------

def _halt_reason(ctx: WaveContext) -> str | None:
    """Ansible's max_fail_percentage: halt when non-suffix failures *exceed* it; unreachable counts."""
    pct = ctx.wave.max_fail_percentage
    if pct >= 100:
        return None
    records = ctx.store.hosts(ctx.wave.name)
    s = summarize(records, ctx.wave.name)
    if not s.total or s.limit_failures * 100.0 / s.total <= pct:
        return None
    causes: dict[str, int] = {}
    for r in records:
        if r.status in (Status.FAILED, Status.REMEDIATION_FAILED) and r.cause and Cause(r.cause) not in SUFFIX_CAUSES:
            causes[r.cause] = causes.get(r.cause, 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(causes.items()))
    return (f"{s.limit_failures} of {s.total} hosts ({s.limit_failures * 100.0 / s.total:.1f}%) failed for reasons "
            f"other than the DNS suffix ({detail}), more than max_fail_percentage {pct:g}%")


def _run_batches(ctx: WaveContext, ctx_key: str, stage: str, names: list[str], submit: Callable, *,
                 batch_size: int, check_halt: bool, on_failed_batch: Callable[[list[str]], None] | None = None,
                 name_single: bool = False) -> str | None:
    """Submit batches as slots free up, update the progress artifact, stop submitting once halted."""
    logger = get_run_logger()
    if not names:
        logger.info("%s: no host to work on", stage)
        return None
    batches = _chunks(names, batch_size)
    in_flight = max(2, math.ceil(ctx.wave.max_concurrency / batch_size) + 1)
    progress_id = create_progress_artifact(
        0.0, key=artifact_key(ctx.inv.name, ctx.wave.name, stage, "progress"),
        description=f"{stage}: 0 of {len(names)} hosts")
    queue = deque(enumerate(batches, 1))
    running: dict[cf.Future, tuple[object, list[str]]] = {}
    finished = 0
    halted = None
    while queue or running:
        while queue and len(running) < in_flight and not halted:
            i, batch = queue.popleft()
            label = f"{stage}-{batch[0]}" if name_single and len(batch) == 1 else f"{stage}-batch-{i:03d}"
            fut = submit(label, batch)
            running[fut.wrapped_future] = (fut, batch)
        if not running:
            break
        done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
        for raw in done:
            fut, batch = running.pop(raw)
            result = fut.result(raise_on_failure=False)
            if isinstance(result, BaseException):
                logger.warning("%s: a batch of %d hosts failed after retries: %s", stage, len(batch), result)
                if on_failed_batch:
                    on_failed_batch(batch)
            finished += len(batch)
        update_progress_artifact(progress_id, 100.0 * finished / len(names),
                                 description=f"{stage}: {finished} of {len(names)} hosts")
        if check_halt and not halted:
            halted = _halt_reason(ctx)
            if halted:
                logger.error("wave %s halted in %s: %s; %d host(s) not started", ctx.wave.name, stage, halted,
                             sum(len(b) for _, b in queue))
    return halted


def _runner(ctx: WaveContext, batch_size: int) -> ThreadPoolTaskRunner:
    """Always bounded: Prefect's default pool is unbounded (705 threads were seen for 1,000 tasks)."""
    return ThreadPoolTaskRunner(max_workers=max(2, math.ceil(ctx.wave.max_concurrency / batch_size) + 1))


# -- stages as subflows, so the operator sees each in the UI ------------------------------------

@flow(name="discovery")
def discovery_stage(ctx_key: str) -> int:
    ctx = lookup(ctx_key)
    names = stage_hosts(ctx, "discovery", ctx.selected)
    _run_batches(ctx, ctx_key, "discovery", names,
                 lambda label, b: discover_batch.with_options(task_run_name=label).submit(ctx_key, b),
                 batch_size=ctx.wave.batch_size, check_halt=False)
    return len(names)


@flow(name="provision-pass")
def pass_stage(ctx_key: str, pass_no: int) -> str | None:
    ctx = lookup(ctx_key)
    stage = f"pass{pass_no}"
    names = stage_hosts(ctx, stage, ctx.selected)
    return _run_batches(ctx, ctx_key, stage, names,
                        lambda label, b: provision_batch.with_options(task_run_name=label).submit(ctx_key, b, pass_no),
                        batch_size=ctx.wave.batch_size, check_halt=True,
                        on_failed_batch=lambda b: passes.give_up_transient(ctx, b, pass_no))


@flow(name="remediation")
def remediation_stage(ctx_key: str) -> int:
    ctx = lookup(ctx_key)
    names = stage_hosts(ctx, "remediate", ctx.selected)
    small = len(names) <= 50  # a small failed subset gets one task run per host, named after it
    _run_batches(ctx, ctx_key, "remediate", names,
                 lambda label, b: remediate_batch.with_options(task_run_name=label).submit(ctx_key, b),
                 batch_size=1 if small else ctx.wave.batch_size, check_halt=False, name_single=True)
    publish_worklist(ctx)
    return len(names)


def publish_worklist(ctx: WaveContext) -> None:
    from tasks.reports import worklist_rows

    rows = worklist_rows(ctx.inv, ctx.store.hosts(ctx.wave.name, status=Status.NEEDS_MEBX))
    create_table_artifact(rows or [{"host": "", "why_remote_failed": "no host needs a technician"}],
                          key=artifact_key(ctx.inv.name, ctx.wave.name, "mebx-worklist"),
                          description=f"Technician (MEBx) work list: enter DNS suffix {ctx.cert_suffix}")


@flow(name="report")
def report_stage(ctx_key: str, halted: str | None = None) -> dict:
    ctx = lookup(ctx_key)
    files = write_wave_reports(ctx.inv, ctx.store, ctx.wave.name, halted=halted)
    records = ctx.store.hosts(ctx.wave.name)
    summary = summarize(records, ctx.wave.name)
    create_table_artifact(host_rows(records), key=artifact_key(ctx.inv.name, ctx.wave.name, "hosts"),
                          description=f"Hosts of {ctx.wave.name}: status, cause, evidence, window, next step")
    md = summary_markdown(ctx.inv, summary, halted=halted, files={k: v for k, v in files.items()})
    create_markdown_artifact(md, key=artifact_key(ctx.inv.name, ctx.wave.name, "summary"),
                             description=f"Summary of {ctx.wave.name}")
    return {"summary": summary.__dict__, "files": {k: str(v) for k, v in files.items()}, "markdown": md}


# -- the wave -----------------------------------------------------------------------------------

def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    inv = Path(str(params.get("inventory", "inventory"))).stem
    return f"{params.get('inventory_name') or inv}-{params.get('wave')}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"


@flow(name="migrate-wave", flow_run_name=_run_name, log_prints=False)
def migrate_wave(inventory: str, wave: str, inventory_name: str | None = None, selection: dict | None = None,
                 state: str | None = None):
    """One wave end to end. `selection` (statuses, causes, host glob, from_stage) makes it a rerun of a subset;
    `state` overrides the inventory's state URL."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    inv = load_inventory(inventory)
    store = StateStore(state or inv.state_url)
    w = inv.wave(wave)
    sel = Selection.from_dict(selection)
    store.ensure_hosts(w.name, [(h.name, h.address) for h in inv.wave_hosts(w)])
    ctx = build_context(inv, wave, store, flow_run_id=str(flow_run.id) if flow_run.id else None)
    ctx.selected = sel.resolve(store.hosts(w.name)) if sel.explicit else None
    ctx.from_stage = sel.from_stage
    for what, why in ctx.unavailable.items():
        logger.warning("%s not available: %s", what, why)
    key = register(ctx)
    halted = None
    try:
        if sel.explicit:
            logger.info("rerun of %d host(s) from %s: %s", len(ctx.selected), sel.from_stage,
                        ", ".join(sorted(ctx.selected)[:50]))
        if sel.is_empty and store.wave_mark(w.name, "completed"):
            logger.info("wave %s already completed at %s: nothing to do (use `amt-migrate rerun` to act again)",
                        w.name, store.wave_mark(w.name, "completed"))
        else:
            start = STAGES.index(sel.from_stage)
            store.clear_wave_mark(w.name, "completed")
            if start <= 0:
                discovery_stage(key)
            if start <= 1:
                halted = pass_stage(key, 1)
            if not halted and start <= 2:
                remediation_stage(key)
            if not halted and start <= 3:
                halted = pass_stage(key, 2)
            if not halted and sel.is_empty:
                store.mark_wave(w.name, "completed")
        report = report_stage(key, halted)
    finally:
        unregister(key)
        store.close()
    if halted:
        return Failed(message=f"halted: {halted}", data=report)
    s = report["summary"]
    return Completed(message=f"{s['by_status'].get('provisioned', 0)} of {s['total']} provisioned", data=report)
