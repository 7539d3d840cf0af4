"""The forecast for an inventory: its inputs gathered (inventory, plan, state store), the simulation run
now and as it would have been made at each run's start (to say who is late), the assumptions named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from tasks.forecast import actuals
from tasks.forecast.inputs import client_retries, setup_from, wave_start, waves_in
from tasks.forecast.model import Setup, WaveIn, WaveOut
from tasks.forecast.simulate import simulate
from tasks.forecast.whatif import what_ifs
from tasks.forecast.words import per_hour, span
from tasks.inventory.model import Inventory
from tasks.rules.durations import format_duration

LATE_GRACE = 0.05  # of the window (at least 1 s): a host done within this of its forecast's latest time is on time


@dataclass(frozen=True)
class Assumption:
    name: str
    value: str
    source: str


@dataclass
class Forecast:
    inventory: str
    made_at: float
    setup: Setup
    waves: list[WaveOut]
    assumptions: list[Assumption]
    inputs: list[WaveIn]
    ran: dict[str, float] = field(default_factory=dict)  # wave -> when its first run started (store)
    whatifs: list = field(default_factory=list)
    states: dict = field(default_factory=dict)
    baseline: list[WaveOut] = field(default_factory=list)  # the forecast made at each run's start (waves that ran)


@dataclass
class StoreData:
    events: list = field(default_factory=list)
    evidence: dict[str, dict] = field(default_factory=dict)


def read_store(inv: Inventory, url: str | None = None) -> StoreData:
    """Events and discovery's evidence from the inventory's state store, when it exists (never created here)."""
    from tasks.store.state import StateError, StateStore

    url = url or inv.state_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return StoreData()
    try:
        store = StateStore(url, create=False)
    except StateError:
        return StoreData()
    try:
        return StoreData(store.history(), {r.host: r.evidence or {} for r in store.hosts()})
    finally:
        store.close()


def pace_of(inv: Inventory, events: list) -> tuple[float | None, float, str]:
    """(attempts per second, discovery seconds per host, where they come from)."""
    rate = inv.provisioning.rate
    measured = actuals.measured_pace(events)
    if rate is not None:
        return rate.per_second, measured.discovery if measured else 0.0, f"provisioning.rate {rate}"
    if measured is not None:
        return measured.rate, measured.discovery, measured.source
    return None, 0.0, "no provisioning.rate and no attempts in the state store: attempts are taken as instant"


def build_forecast(inv: Inventory, wave: str | None = None, at: datetime | None = None, *,
                   store: StoreData | None = None, suffixes: Sequence[str] | None = None,
                   no_ssh: Sequence[str] = (), whatifs: bool = True) -> Forecast:
    """The forecast of one wave (or every wave) as of `at` (default now): the store's events up to then are
    facts, the rest is simulated. Raises KeyError for an unknown wave."""
    store = store or StoreData()
    now = at or datetime.now(timezone.utc)
    chosen = [inv.wave(wave)] if wave else list(inv.waves)
    events = [e for e in store.events if e.at <= now and (wave is None or e.wave == wave)]
    rate, discovery, rate_source = pace_of(inv, [e for e in store.events if e.at <= now])
    setup = setup_from(inv, rate, discovery)
    ran = {w: t for w, t in actuals.first_events(events).items() if w in {c.name for c in chosen}}
    starts = {w.name: ran.get(w.name) or wave_start(w, at, now) for w in chosen}
    inputs = waves_in(inv, chosen, starts, store.evidence, suffixes, no_ssh)
    states = actuals.states(events, now.timestamp())
    outs = simulate(setup, inputs, states, now.timestamp(), rate_source)
    baseline: list[WaveOut] = []
    if ran:  # the forecast made at each run's start: what the store knew then (its pace), nothing after
        first = min(ran.values())
        rate0, disc0, src0 = pace_of(inv, [e for e in store.events if e.at.timestamp() < first])
        baseline = simulate(setup_from(inv, rate0, disc0), [w for w in inputs if w.name in ran], rate_source=src0)
        mark_late(outs, baseline, now.timestamp(), max(1.0, LATE_GRACE * setup.window))
    fc = Forecast(inv.name, now.timestamp(), setup, outs, assumptions(inv, setup, rate_source, inputs), inputs,
                  ran, states=states, baseline=baseline)
    if whatifs:
        fc.whatifs = what_ifs(fc)
    return fc


def mark_late(outs: list[WaveOut], baseline: list[WaveOut], now: float, grace: float = 1.0) -> None:
    """Each host against the forecast made at its wave's start: done (or still not done now) after that
    forecast's latest time is late, by that much."""
    before = {(w.name, h.name): h for w in baseline for h in w.hosts}
    for w in outs:
        for h in w.hosts:
            b = before.get((w.name, h.name))
            if b is None or b.latest is None:
                continue
            h.baseline = b.latest
            seen = h.expected if h.actual and h.expected is not None else now
            if h.actual and h.expected is None:
                continue
            if seen > b.latest + grace and (h.actual or now > b.latest):
                h.late_by = seen - b.latest


def assumptions(inv: Inventory, setup: Setup, rate_source: str, inputs: list[WaveIn]) -> list[Assumption]:
    """Every figure the forecast rests on, with where it comes from."""
    w = inv.window
    retries = client_retries(inv)
    out = [
        Assumption("AMT window", f"{format_duration(w.interface_open)} after each provisioning attempt",
                   "window.interface_open (the seed: 24 h; later OEM documents say 6 h)"),
        Assumption("client retry", (f"every {format_duration(w.retry_interval)} after a failure" if retries
                                    else "none: the client does not retry on its own"),
                   "window.retry_interval (the seed: ConfigMgr's client, 24 h); " +
                   ("window.client_retries" if w.client_retries is not None else
                    f"by provisioning.server {inv.provisioning.server} (rpc-go/RPS do not retry: domain notes)")),
        Assumption("DHCP renewal", "the client renews at T1 = 0.5 × its scope's lease; when it last renewed is "
                   "unknown, so the first renewal is anywhere in the first half-lease (16 cases, earliest/mean/latest)",
                   "RFC 2131 §4.4.5 (no options 58/59 assumed); scope lease from dhcp_scopes[].lease or the DHCP server"),
        Assumption("AMT window before the wave", "closed: nothing records when AMT first met the network",
                   "a conservative default"),
        Assumption("provisioning server", (f"{per_hour(setup.rate)} attempts" if setup.rate else "instant") +
                   "; one queue shared by the waves in start order", rate_source),
        Assumption("discovery", f"{setup.discovery:.3g} s per host before pass 1",
                   "measured in the state store" if setup.discovery else "not measured: taken as instant"),
        Assumption("technicians", ", ".join(f"{loc}: {r}" for loc, r in inv.technicians.items()) or "none given",
                   "technicians: in the inventory (no public figure); visits in deadline order (work list "
                   "deadline = the window after its last attempt); `mebx done` and a rerun right after each visit"),
        Assumption("remediation", "the first method that applies works at once (a renew AMT ignores, or a wrong "
                   "guess about an unknown suffix, shows up as a late host)", "the plan's remediation per host"),
        Assumption("unknown suffix", "a host whose AMT suffix is unknown is taken to fail pass 1 and be remediated",
                   "the plan (outcome unknown)"),
    ]
    if any(wi.gate for wi in inputs):
        out.append(Assumption("go/no-go", "answered at once", "wave.gate: the forecast can't know when a person answers"))
    return out


def summary_line(w: WaveOut) -> str:
    """`wave-3: 50 % by ..., 90 % by ..., 100 % by ...; 4 need a person; server 120 attempts (...)`."""
    from tasks.forecast.words import when

    parts = [f"{int(q * 100)} % by {when(w.quantile(q)) if w.quantile(q) is not None else 'never (without people)'}"
             for q in (0.5, 0.9, 1.0)]
    never = sum(1 for h in w.hosts if h.route == "never")
    server = (f"server {w.attempts} attempts, {span(w.server_busy)} busy at {per_hour(w.rate)}"
              if w.rate else f"server {w.attempts} attempts (rate not known)")
    return (f"{w.name} ({len(w.hosts)} hosts): " + ", ".join(parts) + f"; {len(w.people)} need a person"
            + (f", {never} never (unsupported firmware)" if never else "") + f"; {server}")


__all__ = ["build_forecast", "read_store", "Forecast", "Assumption", "StoreData", "summary_line"]
