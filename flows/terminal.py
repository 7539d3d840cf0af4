"""`run`/`rerun` in a terminal: a progress bar per stage and a live count per status (rich); plain lines
when the output is piped or captured; then a closing summary naming the hosts per cause and the exact
next commands. Fed by flows/live.py's snapshots, i.e. by the state store, in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows import live
from tasks.inventory.model import Inventory
from tasks.store.reports import WaveSummary, next_commands

SHOWN = 5  # host names per cause before "and N more"


def _counts(snap: live.Snapshot) -> str:
    return "  ".join(f"{k} {snap.by_status[k]}" for k in live.STATUS_ORDER if snap.by_status.get(k))


class _Bars:
    """rich: one bar per stage as it starts, and a line of counts per status under them."""

    def __init__(self, console: Console):
        self.progress = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console,
                                 transient=False, refresh_per_second=4)
        self.tasks: dict[str, int] = {}

    def __call__(self, snap: live.Snapshot) -> None:
        for stage, p in snap.stages.items():
            if p.state == "not started":
                continue
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(live.STAGE_TITLES[stage], total=max(p.total, 1), counts="")
            self.progress.update(self.tasks[stage], completed=p.done if p.total else 1, total=max(p.total, 1),
                                 counts=_counts(snap) if stage == snap.in_flight else p.state)


class _Lines:
    """Piped: a line when a stage starts or ends and at each tenth of it, never one per batch."""

    def __init__(self, console: Console):
        self.console = console
        self.said: dict[str, tuple[str, int]] = {}

    def __call__(self, snap: live.Snapshot) -> None:
        for stage, p in snap.stages.items():
            if p.state == "not started":
                continue
            tenth = 10 * p.done // p.total if p.total else 10
            if self.said.get(stage) == (p.state, tenth):
                continue
            self.said[stage] = (p.state, tenth)
            self.console.print(f"{snap.wave} {live.STAGE_TITLES[stage]}: {p.done} of {p.total} hosts ({p.state}) | "
                               f"{_counts(snap)}", highlight=False, markup=False, soft_wrap=True)


@contextlib.contextmanager
def progress(console: Console) -> Iterator[None]:
    """Show progress while the wave runs in this process (the flow's view calls the listener)."""
    if console.is_terminal:
        bars = _Bars(console)
        live.LISTENERS.append(bars)
        try:
            with bars.progress:
                yield
        finally:
            live.LISTENERS.remove(bars)
    else:
        lines = _Lines(console)
        live.LISTENERS.append(lines)
        try:
            yield
        finally:
            live.LISTENERS.remove(lines)


def closing_summary(inv: Inventory, summary: dict, hosts_by: dict[tuple[str, str], list[str]],
                    state_name: str, message: str) -> list[str]:
    """The lines printed after the run: the state, hosts per status/cause (first few), the next commands."""
    s = WaveSummary(**summary)
    lines = [f"{state_name}: {message}"]
    for (status, cause), hosts in sorted(hosts_by.items(), key=lambda kv: -len(kv[1])):
        more = f" and {len(hosts) - SHOWN} more" if len(hosts) > SHOWN else ""
        lines.append(f"  {status}{' / ' + cause if cause else ''}: {len(hosts)}: {', '.join(hosts[:SHOWN])}{more}")
    cmds = next_commands(inv, s)
    if cmds:
        lines.append("next:")
        lines += [f"  # {what}\n  {cmd}" for what, cmd in cmds]
    return lines


def unfinished_hosts(store, wave: str) -> dict[tuple[str, str], list[str]]:
    """Hosts not provisioned, grouped by (status, cause), in name order."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in store.hosts(wave):
        if r.status != "provisioned":
            out.setdefault((r.status, r.cause or ""), []).append(r.host)
    return out
