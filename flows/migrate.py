"""migrate_wave: discovery -> pass 1 -> classify -> remediate -> pass 2 -> report, as Prefect subflows.

Thin orchestration: which hosts each stage takes comes from the state store, per-host work lives in
tasks/, and one task run covers a batch of hosts (a task run costs 8-15 ms of client CPU and the
server ingests only ~20-35/s, so one per host would drown it at fleet scale).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import math
import threading
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
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from tasks.steps import provision as passes
from tasks.rules.host_state import Status, counts_toward_failure_limit
from tasks.inventory.model import load_inventory
from tasks.store.reports import artifact_key, host_rows, summarize, summary_markdown, write_wave_reports
from tasks.rules.selection import Selection, discovery_order, stage_hosts
from tasks.store.state import StateStore
from tasks.steps.context import WaveContext, build_context, lookup, register, unregister

STAGES = ("discovery", "pass1", "remediate", "pass2")


def _chunks(names: list[str], size: int) -> list[list[str]]:
    return [names[i:i + size] for i in range(0, len(names), size)]


def _log_results(results: dict[str, str]) -> None:
    """One line per batch, hosts grouped by outcome: a log record per host cost the client and
    Prefect's server more CPU than the work it reported; the host table artifact has the rest."""
    logger = get_run_logger()
    logger.info("%s", passes.results_line(results))


# -- tasks: one run per batch -------------------------------------------------------------------

@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5)
def discover_batch(ctx_key: str, names: list[str]) -> dict[str, str]:
    from tasks.steps.discover import discover_host

    ctx = lookup(ctx_key)
    results = passes.run_leased(ctx, names, lambda n: discover_host(ctx, n))
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
            results = passes.run_leased(ctx, names, lambda n: passes.provision_host(ctx, n, pass_no))
    else:
        results = passes.run_leased(ctx, names, lambda n: passes.provision_host(ctx, n, pass_no))
    _log_results(results)
    transient = [n for n, label in results.items() if label == "transient"]
    if transient:
        raise passes.TransientHosts(transient)
    return results


@task(cache_policy=NO_CACHE)
def remediate_batch(ctx_key: str, names: list[str]) -> dict[str, str]:
    from tasks.steps.remediate import remediate_host

    ctx = lookup(ctx_key)
    results = passes.run_leased(ctx, names, lambda n: remediate_host(ctx, n))
    _log_results(results)
    return results


# -- the batch loop shared by every stage -------------------------------------------------------

def _halt_reason(ctx: WaveContext) -> str | None:
    """Ansible's max_fail_percentage: halt when non-suffix failures *exceed* it; unreachable counts."""
    pct = ctx.wave.max_fail_percentage
    if pct >= 100:
        return None
    counts = ctx.store.status_cause_counts(ctx.wave.name)
    total = sum(counts.values())
    causes: dict[str, int] = {}
    for (status, cause), n in counts.items():
        if counts_toward_failure_limit(status, cause):
            causes[cause or "unknown"] = causes.get(cause or "unknown", 0) + n
    failures = sum(causes.values())
    if not total or failures * 100.0 / total <= pct:
        return None
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(causes.items()))
    return (f"{failures} of {total} hosts ({failures * 100.0 / total:.1f}%) failed for reasons "
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
    max_batches = _batches_in_flight(ctx, batch_size)
    queued_enough = 2 * ctx.wave.max_concurrency  # hosts handed out but unfinished before we hold back
    progress_id = create_progress_artifact(
        0.0, key=artifact_key(ctx.inv.name, ctx.wave.name, stage, "progress"),
        description=f"{stage}: 0 of {len(names)} hosts")
    queue = deque(enumerate(batches, 1))
    running: dict[cf.Future, tuple[object, list[str]]] = {}
    finished = 0
    halted = None
    while queue or running:
        while queue and len(running) < max_batches and ctx.unfinished_hosts < queued_enough and not halted:
            i, batch = queue.popleft()
            label = f"{stage}-{batch[0]}" if name_single and len(batch) == 1 else f"{stage}-batch-{i:03d}"
            ctx.batch_started(batch)
            fut = submit(label, batch)
            running[fut.wrapped_future] = (fut, batch)
        if not running:
            break
        # wake on a finished batch, or every half second to hand out more hosts as stuck batches idle
        done, _ = cf.wait(list(running), timeout=0.5, return_when=cf.FIRST_COMPLETED)
        for raw in done:
            fut, batch = running.pop(raw)
            ctx.batch_finished(batch)
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
                not_started = sum(len(b) for _, b in queue)
                logger.error("wave %s halted in %s: %s; %d host(s) not started", ctx.wave.name, stage, halted,
                             not_started)
                ctx.store.record_wave_event(ctx.wave.name, stage=stage, action="halt", outcome="halted",
                                            evidence={"reason": halted, "not_started": not_started},
                                            flow_run_id=ctx.flow_run_id)
    return halted


def _batches_in_flight(ctx: WaveContext, batch_size: int) -> int:
    """A bound on batch task runs at once. Batches waiting for one slow host each hold a runner
    thread while new batches keep the host pool busy, so allow one per host slot plus those that
    fill the queue; the host pool, not this, bounds concurrency."""
    return ctx.wave.max_concurrency + 2 * math.ceil(ctx.wave.max_concurrency / batch_size) + 1


def _runner(ctx: WaveContext, batch_size: int) -> ThreadPoolTaskRunner:
    """Always bounded: Prefect's default pool is unbounded (705 threads were seen for 1,000 tasks)."""
    return ThreadPoolTaskRunner(max_workers=_batches_in_flight(ctx, batch_size))


# -- stages as subflows, so the operator sees each in the UI ------------------------------------

@flow(name="discovery")
def discovery_stage(ctx_key: str) -> int:
    ctx = lookup(ctx_key)
    names = discovery_order(ctx, stage_hosts(ctx, "discovery", ctx.selected))
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
    return len(names)


def publish_worklist(ctx: WaveContext) -> None:
    from tasks.store.reports import worklist_rows

    rows = worklist_rows(ctx.inv, ctx.store.hosts(ctx.wave.name, status=Status.NEEDS_MEBX))
    create_table_artifact(rows or [{"host": "", "why_remote_failed": "no host needs a technician"}],
                          key=artifact_key(ctx.inv.name, ctx.wave.name, "mebx-worklist"),
                          description=f"Technician (MEBx) work list: enter DNS suffix {ctx.cert_suffix}")


def publish_report(ctx_key: str, halted: str | None = None) -> dict:
    """Files beside the state and the operator's artifacts, made in the wave's own run so its page shows them."""
    ctx = lookup(ctx_key)
    publish_worklist(ctx)
    files = write_wave_reports(ctx.inv, ctx.store, ctx.wave.name, halted=halted)
    records = ctx.store.hosts(ctx.wave.name)
    summary = summarize(records, ctx.wave.name)
    create_table_artifact(host_rows(records), key=artifact_key(ctx.inv.name, ctx.wave.name, "hosts"),
                          description=f"Hosts of {ctx.wave.name}: status, cause, evidence, window, next step")
    md = summary_markdown(ctx.inv, summary, halted=halted, files={k: v for k, v in files.items()})
    create_markdown_artifact(md, key=artifact_key(ctx.inv.name, ctx.wave.name, "summary"),
                             description=f"Summary of {ctx.wave.name}")
    return {"summary": summary.__dict__, "files": {k: str(v) for k, v in files.items()}, "markdown": md}


# -- between the passes: an operator's go/no-go, or pass 2 scheduled for later -------------------

class GoNoGo(RunInput):
    """Pass 2 of this wave: go ahead? Answered in the UI (the paused run's Resume button shows this form)."""

    go: bool = Field(default=True, description="Run pass 2 now. Untick for no-go: pass 2 is not run "
                                               "(`amt-migrate rerun INVENTORY --wave W --from pass2` later).")
    note: str = Field(default="", description="Why: kept in the wave's history with the answer")


def _gate(ctx: WaveContext) -> bool:
    """Pause the run (its process and worker slot stay busy) until an operator answers GoNoGo in the UI.

    No answer within the wave's gate_timeout fails the run (Prefect's pause timeout); the hosts keep
    their state, so `rerun --from pass2` continues from here.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.settings import PREFECT_API_URL

    logger = get_run_logger()
    wave = ctx.wave.name
    counts = ctx.store.counts(wave)
    if not PREFECT_API_URL.value():
        logger.error("wave %s has gate: true, but this run uses Prefect's embedded server, where nobody can answer "
                     "the go/no-go: pass 2 not run. Run the wave through a Prefect server (PREFECT_API_URL, "
                     "`amt-migrate schedule`) to use the gate", wave)
        ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="no-go",
                                    evidence={"note": "no Prefect server to answer on", "counts": counts},
                                    flow_run_id=ctx.flow_run_id)
        return False
    timeout = max(1, int(ctx.wave.gate_timeout.total_seconds()))
    waiting = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    create_markdown_artifact(
        f"# {ctx.inv.name} / {wave}: go/no-go for pass 2\n\nHosts now: {waiting}.\n\n"
        f"Pass 2 provisions the {counts.get(Status.REMEDIATED, 0)} remediated host(s). Answer with the paused "
        f"run's **Resume** button (go ticked = run pass 2; unticked = don't) within {ctx.wave.gate_timeout}.\n",
        key=artifact_key(ctx.inv.name, wave, "gate"), description=f"{wave}: waiting for go/no-go before pass 2")
    logger.info("waiting for go/no-go before pass 2 (%s): resume this run in the UI within %s", waiting,
                ctx.wave.gate_timeout)
    try:
        answer = pause_flow_run(wait_for_input=GoNoGo, timeout=timeout, poll_interval=min(5, timeout),
                                key=f"{wave}-pass2-gate")
    except FlowPauseTimeout:
        logger.error("no go/no-go within %s: the run fails here; `amt-migrate rerun INVENTORY --wave %s --from pass2` "
                     "continues when ready", ctx.wave.gate_timeout, wave)
        ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="no-answer",
                                    evidence={"timeout": str(ctx.wave.gate_timeout), "counts": counts},
                                    flow_run_id=ctx.flow_run_id)
        raise
    logger.info("operator answered %s%s", "go" if answer.go else "no-go", f": {answer.note}" if answer.note else "")
    ctx.store.record_wave_event(wave, stage="gate", action="go-no-go", outcome="go" if answer.go else "no-go",
                                evidence={"note": answer.note, "counts": counts}, flow_run_id=ctx.flow_run_id)
    return answer.go


def _schedule_pass2(ctx: WaveContext, inventory: str) -> str:
    """Pass 2 as a later run of the wave's deployment, once the clients' own renewals have had time.

    Idempotent per round: running the wave again before that run happened finds the same run (same
    idempotency key, same time); once it has run, a later wave run schedules a new round.
    """
    from uuid import UUID

    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.runtime import deployment, flow_run

    from flows.deployments import full_name

    logger = get_run_logger()
    wave = ctx.wave.name
    target = UUID(deployment.id) if deployment.id else full_name(ctx.inv, wave)
    params = {"inventory": inventory, "wave": wave, "inventory_name": ctx.inv.name, "from_stage": "pass2"}
    if (flow_run.parameters or {}).get("state"):
        params["state"] = flow_run.parameters["state"]
    when = datetime.now(timezone.utc) + ctx.wave.pass2_after
    round_no = int(ctx.store.wave_mark(wave, "pass2-round") or 1)
    while True:
        key = f"{ctx.inv.name}-{wave}-pass2-{round_no}"
        try:
            run = run_deployment(target, parameters=params, scheduled_time=when, timeout=0, as_subflow=False,
                                 idempotency_key=key, tags=[f"wave:{wave}", f"inventory:{ctx.inv.name}", "pass2"])
        except ObjectNotFound:
            msg = (f"pass 2 not scheduled: no deployment {full_name(ctx.inv, wave)} (`amt-migrate schedule` makes it); "
                   f"run `amt-migrate rerun INVENTORY --wave {wave} --from pass2` after {when:%Y-%m-%d %H:%M} UTC")
            ctx.store.record_wave_event(wave, stage="pass2", action="schedule", outcome="no-deployment",
                                        evidence={"due": when.isoformat()}, flow_run_id=ctx.flow_run_id)
            return msg
        if run.state is None or not run.state.is_final():
            break
        logger.info("pass 2 round %d (flow run %s) already ended %s: scheduling round %d", round_no, run.name,
                    run.state.name, round_no + 1)
        round_no += 1
    ctx.store.mark_wave(wave, "pass2-round", str(round_no))
    due = run.expected_start_time or when
    ctx.store.record_wave_event(wave, stage="pass2", action="schedule", outcome="scheduled",
                                evidence={"flow_run_id": str(run.id), "flow_run": run.name, "due": due.isoformat(),
                                          "idempotency_key": key}, flow_run_id=ctx.flow_run_id)
    return f"pass 2 scheduled for {due.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC (flow run {run.name})"


def _missing_concurrency_limit(name: str | None) -> str | None:
    """A misspelt global limit would otherwise fail every batch mid-wave; refuse before touching a host."""
    if not name:
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return (f"global concurrency limit {name!r} (provisioning.concurrency_limit) does not exist: create it "
                    f"with `prefect global-concurrency-limit create {name} --limit N`; no host was touched")
    return None


# -- sharding: a wave too large for one process fans out to workers ------------------------------

def _run_shards(ctx: WaveContext, inventory: str, state: str | None) -> str | None:
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
    shards = _chunks(names, w.shard_size)
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
    broken = [s for s in states if not s.is_completed() and not (s.message or "").startswith("halted")]
    if broken:
        logger.error("%d shard(s) did not complete: %s", len(broken), ", ".join(s.name for s in broken))
    return halted[0][len("halted: "):] if halted else None


# -- the wave -----------------------------------------------------------------------------------

def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    inv = Path(str(params.get("inventory", "inventory"))).stem
    return f"{params.get('inventory_name') or inv}-{params.get('wave')}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"


@flow(name="migrate-wave", flow_run_name=_run_name, log_prints=False)
def migrate_wave(inventory: str, wave: str, inventory_name: str | None = None, selection: dict | None = None,
                 state: str | None = None, from_stage: str = "discovery", shard: list[str] | None = None):
    """One wave end to end. `selection` (statuses, causes, host glob, from_stage) makes it a rerun of a subset;
    `from_stage` resumes a plain run later (a scheduled pass 2); `state` overrides the inventory's state URL;
    `shard` limits a child run of a sharded wave to its hosts."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    inv = load_inventory(inventory)
    store = StateStore(state or inv.state_url)
    w = inv.wave(wave)
    sel = Selection.from_dict(selection)
    store.ensure_hosts(w.name, [(h.name, h.address) for h in inv.wave_hosts(w)])
    ctx = build_context(inv, wave, store, flow_run_id=str(flow_run.id) if flow_run.id else None)
    ctx.selected = sel.resolve(store.hosts(w.name)) if sel.explicit else None
    ctx.from_stage = sel.from_stage if sel.explicit else from_stage
    ctx.restrict = set(shard) if shard else None
    for what, why in ctx.unavailable.items():
        logger.warning("%s not available: %s", what, why)
    missing_limit = _missing_concurrency_limit(inv.provisioning.concurrency_limit)
    if missing_limit:
        store.close()
        ctx.close()
        return Failed(message=missing_limit)
    key = register(ctx)
    halted = note = None
    try:
        if sel.explicit:
            logger.info("rerun of %d host(s) from %s: %s", len(ctx.selected), sel.from_stage,
                        ", ".join(sorted(ctx.selected)[:50]))
        if sel.is_empty and store.wave_mark(w.name, "completed"):
            logger.info("wave %s already completed at %s: nothing to do (use `amt-migrate rerun` to act again)",
                        w.name, store.wave_mark(w.name, "completed"))
        else:
            start = STAGES.index(ctx.from_stage)
            store.clear_wave_mark(w.name, "completed")
            runner = _runner(ctx, w.batch_size)
            sharded = not shard and w.shard_size and len(ctx.hosts_by_name) > w.shard_size
            if sharded:
                halted = _run_shards(ctx, inventory, state)
                start = len(STAGES)  # the shards ran every stage
            if start <= 0:
                discovery_stage.with_options(task_runner=runner)(key)
            if start <= 1:
                halted = pass_stage.with_options(task_runner=runner)(key, 1)
            if not halted and start <= 2:
                remediation_stage.with_options(task_runner=_runner(ctx, 1))(key)
            run_pass2 = not halted and (start <= 3 or bool(sharded))
            if sharded and (w.gate or w.pass2_after):
                logger.warning("wave %s is sharded: its shards ran pass 2 themselves; gate and pass2_after apply "
                               "only to unsharded waves", w.name)
            between = run_pass2 and start < 3 and not shard  # shards leave the decision to unsharded runs
            if between and w.gate and not _gate(ctx):
                run_pass2, note = False, ("gate: pass 2 not run (no-go, or no Prefect server to answer on; see the "
                                          "log); rerun --from pass2 when ready")
            if between and run_pass2 and w.pass2_after:
                run_pass2, note = False, _schedule_pass2(ctx, inventory)
            if run_pass2 and not sharded:
                halted = pass_stage.with_options(task_runner=runner)(key, 2)
            unfinished = sum(store.counts(w.name).get(st, 0) for st in (Status.PENDING, Status.REMEDIATING, Status.REMEDIATED))
            if not halted and sel.is_empty and run_pass2 and not unfinished and not shard:
                store.mark_wave(w.name, "completed")
            if note:
                logger.warning(note)
        if shard:  # a child of a sharded wave: the parent reports on the whole wave
            s_ = summarize(store.hosts(w.name), w.name)
            report = {"summary": s_.__dict__, "files": {}, "markdown": ""}
        else:
            report = publish_report(key, halted)
    finally:
        unregister(key)
        store.close()
    if halted:
        return Failed(message=f"halted: {halted}", data=report)
    s = report["summary"]
    message = f"{s['by_status'].get('provisioned', 0)} of {s['total']} provisioned"
    return Completed(message=f"{message}; {note}" if note else message, data=report)
