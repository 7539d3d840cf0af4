"""The wave's stages as Prefect subflows over batch task runs: discovery, a provisioning pass, remediation.

One task run covers a batch of hosts (a task run costs 8-15 ms of client CPU and the server ingests
only ~20-35/s, so one per host would drown it at fleet scale). Concurrency has one bound, the wave's
`max_concurrency`: the run's host pool has that many threads and every batch of every stage feeds
it; batches are handed out while fewer than twice that many hosts wait, and the task runner's
threads are sized from it (Prefect's own default is unbounded).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections import deque
from collections.abc import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.outages import (FIRST_DELAYS, _retry_condition, batch_retries, provisioning_outage,
                           stops_when_state_is_lost)
from tasks.rules.host_state import counts_toward_failure_limit
from tasks.steps import provision as provisioning
from tasks.steps.context import WaveContext, lookup
from tasks.steps.discover import discover_host
from tasks.steps.outcome import HostOutcome, Result, results_line
from tasks.store.state import StateUnavailable
from tasks.steps.remediate import remediate_host
from tasks.steps.stage_hosts import discovery_order, stage_hosts
from flows.live import STAGE_TITLES, view_for

PER_HOST_TASKS_UP_TO = 50  # a small subset (a rerun) gets one task run per host, named after it


def _log(outcomes: list[HostOutcome]) -> None:
    """One line per batch, hosts grouped by outcome: a log record per host cost the client and
    Prefect's server more CPU than the work it reported; the host table artifact has the rest."""
    get_run_logger().info("%s", results_line(outcomes))


NOT_OK = frozenset({Result.FAILED, Result.REMEDIATION_FAILED, Result.NEEDS_MEBX, Result.ERROR})


def batch_state(outcomes: list[HostOutcome]) -> State:
    """The batch's task-run state says how many of its hosts did not make it and why, so the UI's
    task list is not a wall of green "Completed" over failed hosts. Still Completed (a Failed state
    would make Prefect retry the batch): the name carries the count, the message the causes and
    hosts; the outcomes stay the state's data, so `fut.result()` returns them as before."""
    bad = [o for o in outcomes if o.result in NOT_OK]
    if not bad:
        return Completed(message=results_line(outcomes), data=outcomes)
    by: dict[str, list[str]] = {}
    for o in bad:
        by.setdefault(o.label, []).append(o.host)
    why = "; ".join(f"{label} {len(h)}: {', '.join(h[:5])}{' …' if len(h) > 5 else ''}"
                    for label, h in sorted(by.items(), key=lambda kv: -len(kv[1])))
    return Completed(name=f"Completed with {len(bad)} of {len(outcomes)} hosts not done",
                     message=f"{len(bad)} of {len(outcomes)} hosts not done: {why}", data=outcomes)


# -- tasks: one run per batch -------------------------------------------------------------------

# Prefect retries a batch twice with backoff (a 5xx, a passing error); never when the state database is gone
# (the run stops), and for longer while the provisioning server does not answer (flows/outages.py)
RETRIES = dict(retries=2, retry_delay_seconds=list(FIRST_DELAYS), retry_jitter_factor=0.5,
               retry_condition_fn=_retry_condition)


@task(cache_policy=NO_CACHE, **RETRIES)
@stops_when_state_is_lost
def discover_batch(ctx_key: str, names: list[str]) -> list[HostOutcome]:
    ctx = lookup(ctx_key)
    outcomes = provisioning.run_leased(ctx, names, lambda n: discover_host(ctx, n))
    _log(outcomes)
    return batch_state(outcomes)


@task(cache_policy=NO_CACHE, **RETRIES)
@stops_when_state_is_lost
def provision_batch(ctx_key: str, names: list[str], pass_no: int) -> list[HostOutcome]:
    """Transient server errors raise at the end so Prefect retries the batch; finished hosts are skipped then."""
    ctx = lookup(ctx_key)
    step = _with_global_limit(ctx, lambda n: provisioning.provision_host(ctx, n, pass_no))
    outcomes = provisioning.run_leased(ctx, names, step)
    _log(outcomes)
    transient = [o.host for o in outcomes if o.result is Result.TRANSIENT]
    if transient:
        raise provisioning.TransientHosts(transient, [o.host for o in outcomes if o.result is Result.TRANSIENT
                                                      and o.detail == "unreachable"])
    return batch_state(outcomes)


@task(cache_policy=NO_CACHE, **RETRIES)
@stops_when_state_is_lost
def remediate_batch(ctx_key: str, names: list[str]) -> list[HostOutcome]:
    """A retried batch continues its hosts where the store has them (remediating hosts resume)."""
    ctx = lookup(ctx_key)
    outcomes = provisioning.run_leased(ctx, names, lambda n: remediate_host(ctx, n))
    _log(outcomes)
    return batch_state(outcomes)


def _with_global_limit(ctx: WaveContext, step: Callable[[str], HostOutcome]) -> Callable[[str], HostOutcome]:
    """provisioning.concurrency_limit: a Prefect global concurrency limit shared by every run calling the
    provisioning server. One slot per host while it is asked, so any limit >= 1 works whatever the
    batch size (a batch taking all its slots at once is refused by a limit smaller than the batch)."""
    limit = ctx.inv.provisioning.concurrency_limit
    if not limit:
        return step
    from prefect.concurrency.sync import concurrency

    def limited(name: str) -> HostOutcome:
        with concurrency(limit, occupy=1, strict=True):
            return step(name)

    return limited


# -- the batch loop shared by every stage -------------------------------------------------------

def halt_reason(ctx: WaveContext) -> str | None:
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


def batches_in_flight(ctx: WaveContext, batch_size: int) -> int:
    """A bound on batch task runs at once, derived from max_concurrency. Batches waiting for one slow
    host each hold a runner thread while new batches keep the host pool busy, so allow one per host
    slot plus those that fill the queue; the host pool, not this, bounds concurrency."""
    return ctx.wave.max_concurrency + 2 * math.ceil(ctx.wave.max_concurrency / batch_size) + 1


def task_runner(ctx: WaveContext, batch_size: int) -> ThreadPoolTaskRunner:
    """Always bounded: Prefect's default pool is unbounded (705 threads were seen for 1,000 tasks)."""
    return ThreadPoolTaskRunner(max_workers=batches_in_flight(ctx, batch_size))


def _batch_name(stage: str, batch: list[str]) -> str:
    title = STAGE_TITLES[stage]
    return f"{title} · {batch[0]}" if len(batch) == 1 else f"{title} · {batch[0]} … {batch[-1]} ({len(batch)})"


def run_batches(ctx: WaveContext, stage: str, names: list[str], submit: Callable, *, batch_size: int,
                check_halt: bool = True, on_failed_batch: Callable[[list[str], BaseException], None] | None = None,
                take_over: bool = True) -> str | None:
    """Hand batches to the task runner as hosts finish, update the stage's progress artifact, and stop
    handing out once the wave is halted. Returns the halt reason, if any. (Discovery records facts, not
    failures: it does not check the halt, which would only re-read an earlier run's failures.) With
    `take_over`, hosts another worker held are offered again once it released them or its lease ran out
    (discovery does not wait: a host another worker is reading needs no second reading). The state database
    gone past its bound raises StateUnavailable here, after the batches in flight ended."""
    view = view_for(ctx)
    view.stage_started(stage, len(names))
    if not names:
        get_run_logger().info("%s: no host to work on", stage)
        view.stage_finished(stage, None)
        return None
    run = _BatchRun(ctx, stage, submit, batch_size, check_halt, on_failed_batch)
    todo = names
    while todo:
        run.queue.extend(todo[i:i + batch_size] for i in range(0, len(todo), batch_size))
        run.drain()
        todo = run.take_leased_elsewhere() if take_over else []
        if todo and not run.halted and not run.lost:
            from tasks.steps.leases import wait_until_free

            todo = wait_until_free(ctx.store, ctx.wave.name, todo, ctx.worker, say=get_run_logger().info)
    view.stage_finished(stage, run.halted)
    if run.lost:
        raise run.lost
    return run.halted


class _BatchRun:
    """One stage's batches in flight: submitted while the host pool wants work, results taken as they end."""

    def __init__(self, ctx: WaveContext, stage: str, submit: Callable, batch_size: int, check_halt: bool,
                 on_failed_batch):
        self.ctx, self.stage, self.submit, self.check_halt, self.on_failed_batch = \
            ctx, stage, submit, check_halt, on_failed_batch
        self.most_batches = batches_in_flight(ctx, batch_size)
        self.queued_enough = 2 * ctx.wave.max_concurrency  # hosts handed out but unfinished before we hold back
        self.queue: deque[list[str]] = deque()
        self.running: dict[cf.Future, tuple[object, list[str]]] = {}
        self.finished = 0
        self.halted: str | None = None
        self.lost: BaseException | None = None  # StateUnavailable from a batch: the run stops
        self.leased_elsewhere: list[str] = []

    def drain(self) -> None:
        ctx = self.ctx
        while self.queue or self.running:
            while (self.queue and len(self.running) < self.most_batches and ctx.unfinished_hosts < self.queued_enough
                   and not self.halted and not self.lost):
                batch = self.queue.popleft()
                ctx.batch_started(batch)
                fut = self.submit(_batch_name(self.stage, batch), batch)
                self.running[fut.wrapped_future] = (fut, batch)
            if not self.running:
                break
            # wake on a finished batch, or every half second to hand out more hosts as stuck batches idle
            done, _ = cf.wait(list(self.running), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for raw in done:
                fut, batch = self.running.pop(raw)
                ctx.batch_finished(batch)
                self.took(batch, fut.result(raise_on_failure=False))
            if self.lost:
                continue  # no store to read: let the batches in flight end, then raise
            view_for(ctx).stage_progress(self.stage, self.finished)
            if not self.halted:
                self.check()

    def took(self, batch: list[str], result) -> None:
        logger = get_run_logger()
        self.finished += len(batch)
        if isinstance(result, StateUnavailable):
            self.lost = self.lost or result
        elif isinstance(result, provisioning.TransientHosts):
            logger.warning("%s: a batch of %d hosts failed after retries: %s", self.stage, len(batch), result)
            if self.on_failed_batch and not self.lost:
                self.on_failed_batch(batch, result)
        elif isinstance(result, BaseException):
            # not the hosts' doing (Prefect's API away, a bug): they stay as the store has them; the next run
            # continues them
            logger.error("%s: a batch of %d hosts (%s …) failed: %r; its hosts stay as the store has them",
                         self.stage, len(batch), batch[0], result)
        elif isinstance(result, list):
            view_for(self.ctx).hosts_answered(result)
            self.leased_elsewhere += [o.host for o in result if o.result is Result.LEASED_ELSEWHERE]

    def check(self) -> None:
        ctx = self.ctx
        self.halted = ctx.outage or (halt_reason(ctx) if self.check_halt else None)
        if self.halted:
            not_started = sum(len(b) for b in self.queue)
            self.queue.clear()
            get_run_logger().error("wave %s %s in %s: %s; %d host(s) not started", ctx.wave.name,
                                   "stopped" if ctx.outage else "halted", self.stage, self.halted, not_started)
            ctx.store.record_wave_event(ctx.wave.name, stage=self.stage, action="halt",
                                        outcome="stopped" if ctx.outage else "halted",
                                        evidence={"reason": self.halted, "not_started": not_started},
                                        flow_run_id=ctx.flow_run_id)

    def take_leased_elsewhere(self) -> list[str]:
        todo, self.leased_elsewhere = self.leased_elsewhere, []
        return todo


# -- stages as subflows, so the operator sees each in the UI ------------------------------------

@flow(name="discovery")
@stops_when_state_is_lost
def discovery_stage(ctx_key: str) -> str | None:
    ctx = lookup(ctx_key)
    names = discovery_order(ctx, stage_hosts(ctx, "discovery", ctx.selected))
    return run_batches(ctx, "discovery", names,
                       lambda label, b: discover_batch.with_options(task_run_name=label).submit(ctx_key, b),
                       batch_size=ctx.wave.batch_size, check_halt=False, take_over=False)


@flow(name="provision-pass")
@stops_when_state_is_lost
def pass_stage(ctx_key: str, pass_no: int) -> str | None:
    ctx = lookup(ctx_key)
    stage = f"pass{pass_no}"
    names = stage_hosts(ctx, stage, ctx.selected)
    retries = batch_retries(ctx.inv.outages.provisioning_retry_for)

    def gave_up(batch: list[str], exc: provisioning.TransientHosts) -> None:
        provisioning.give_up_transient(ctx, batch, pass_no, exc.unreachable)
        if exc.unreachable and not ctx.outage:  # the server itself is away: the stage stops handing out hosts
            ctx.outage = provisioning_outage(ctx.inv.provisioning.url, ctx.inv.outages.provisioning_retry_for,
                                             exc.unreachable)

    return run_batches(ctx, stage, names,
                       lambda label, b: provision_batch.with_options(task_run_name=label, **retries).submit(
                           ctx_key, b, pass_no),
                       batch_size=ctx.wave.batch_size, on_failed_batch=gave_up)


@flow(name="remediation")
@stops_when_state_is_lost
def remediation_stage(ctx_key: str) -> str | None:
    ctx = lookup(ctx_key)
    names = stage_hosts(ctx, "remediate", ctx.selected)
    per_host = len(names) <= min(PER_HOST_TASKS_UP_TO, ctx.wave.batch_size)
    return run_batches(ctx, "remediate", names,
                       lambda label, b: remediate_batch.with_options(task_run_name=label).submit(ctx_key, b),
                       batch_size=1 if per_host else ctx.wave.batch_size)


def run_stage(ctx: WaveContext, ctx_key: str, stage: str) -> str | None:
    """Run one stage as a subflow named after the wave and the stage (`wave-2 · pass 1`)."""
    wave = ctx.wave.name
    named = {"flow_run_name": f"{wave} · {STAGE_TITLES[stage]}"}
    if stage == "discovery":
        return discovery_stage.with_options(task_runner=task_runner(ctx, ctx.wave.batch_size), **named)(ctx_key)
    if stage in ("pass1", "pass2"):
        return pass_stage.with_options(task_runner=task_runner(ctx, ctx.wave.batch_size), **named)(
            ctx_key, int(stage[-1]))
    return remediation_stage.with_options(task_runner=task_runner(ctx, 1), **named)(ctx_key)
