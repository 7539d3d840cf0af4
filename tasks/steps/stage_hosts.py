"""Which hosts a stage of this run works on, read from the store and narrowed by the run's selection."""

from __future__ import annotations

from tasks.rules.selection import wants
from tasks.steps.context import WaveContext


def stage_hosts(ctx: WaveContext, stage: str, selected: set[str] | None) -> list[str]:
    """Host names for a stage, in inventory order; `selected` is a rerun's fixed subset (None: a plain run)."""
    now = ctx.now()
    records = {r.host: r for r in ctx.store.hosts(ctx.wave.name)}
    out = []
    for name in ctx.hosts_by_name:
        r = records.get(name)
        if r is None or (selected is not None and name not in selected):
            continue
        if ctx.restrict is not None and name not in ctx.restrict:  # a shard's child run
            continue
        window_open = r.window_closes_at is not None and r.window_closes_at > now
        if wants(stage, r, explicit=selected is not None, pass2_include_failed=ctx.wave.pass2_include_failed,
                 window_open=window_open, from_stage=ctx.from_stage,
                 start=(ctx.start_at or {}).get(name)):
            out.append(name)
    return out


def discovery_order(ctx: WaveContext, names: list[str]) -> list[str]:
    """Longest expected work first (list scheduling's LPT rule): a legacy-managed host is read over SSH
    and WS-Management, so an unreachable one costs both protocols' timeouts; started late, one such
    host kept discovery running 30 s after every other host was done. Inventory order otherwise."""
    return sorted(names, key=lambda n: not ctx.hosts_by_name[n].legacy_managed)
