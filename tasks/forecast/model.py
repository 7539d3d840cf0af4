"""The forecast's inputs and answers as plain data. Times are seconds since the Unix epoch (floats), durations
seconds; None means never (or: not without a person)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

# How a host gets done, as the forecast sees it.
PASS1 = "pass1"  # provisioned (or adopted) by pass 1
REMOTE_FIX = "remote_fix"  # a remote remediation (amt_write, dhcp_renew) in the run, then pass 2
TECHNICIAN = "technician"  # a technician's MEBx visit, then pass 2 (a rerun)
SELF_HEAL = "self_heal"  # the client's own renewal inside a window, then its own retry
NEVER = "never"  # unsupported firmware: no amount of waiting
PERSON = "person"  # someone has to act first, and nothing says when (no technician capacity, SSH down, ...)
DONE = "done"  # the state store says it is provisioned
ROUTES = (PASS1, REMOTE_FIX, TECHNICIAN, SELF_HEAL, NEVER, PERSON, DONE)

# Remediation methods as the forecast distinguishes them (what each needs).
AMT_WRITE_WSMAN = "amt_write_wsman"  # WS-Man with the legacy console's credentials: no SSH, no window
AMT_WRITE_HI = "amt_write_hi"  # the host-interface tool over SSH: no window
DHCP_RENEW = "dhcp_renew"  # a renew over SSH inside AMT's window
MEBX = "mebx"  # the technician's work list
SSH_METHODS = (AMT_WRITE_HI, DHCP_RENEW)


@dataclass(frozen=True)
class HostIn:
    """One host as the plan and the inventory describe it."""

    name: str
    wave: str
    path: str  # the plan's path: reprovision, adopt, unprovision_first, technician
    outcome: str  # the plan's outcome: provision, fail, likely_*, unknown, unsupported
    cause: str | None
    methods: tuple[str, ...]  # usable remediation, in the wave's order (AMT_WRITE_WSMAN ... MEBX)
    ssh: bool  # the run can reach the client's OS over SSH (renew, host-interface write)
    scope: str | None = None
    lease: float | None = None  # the scope's lease (s)
    scope_ok: bool = False  # the scope's option 15 passes AMT's check against the certificate
    renew_blocked: str | None = None  # why a renewal can't fix it (a trusted suffix / DomainName that wins)
    location: str | None = None
    tags: tuple[str, ...] = ()

    def without_ssh(self) -> "HostIn":
        return replace(self, ssh=False, methods=tuple(m for m in self.methods if m not in SSH_METHODS))


@dataclass(frozen=True)
class Now:
    """Where the state store says a host stands at the forecast's time (None fields: not known)."""

    status: str
    since: float  # when it entered this status
    last_attempt: float | None = None  # the last provisioning attempt that reached AMT (opens its window)
    provisioned_at: float | None = None
    mebx_done: bool = False
    cause: str | None = None
    events: tuple["Step", ...] = ()  # what happened, condensed, for the host's chain


@dataclass(frozen=True)
class WaveIn:
    name: str
    start: float  # when the run starts (or started)
    hosts: tuple[HostIn, ...]
    pass2_after: float = 0.0  # pass 2 as a later run (wave.pass2_after)
    gate: bool = False  # a go/no-go before pass 2: taken as answered at once (an assumption)


@dataclass(frozen=True)
class Setup:
    """Facts that hold for every wave, each from the inventory or a documented default."""

    window: float  # window.interface_open: AMT's interface open after each attempt (seed: 24 h)
    retry: float  # window.retry_interval: the client's own retry after a failure (seed: 24 h)
    rate: float | None  # attempts per second the provisioning server completes; None = instant
    client_retries: bool  # does the client retry by itself (ConfigMgr's in-band client: yes; rpc-go: no)
    technicians: dict[str, float] = field(default_factory=dict)  # location -> visits per second
    periods: dict[str, float] = field(default_factory=dict)  # location -> the period its capacity is given in (s)
    discovery: float = 0.0  # seconds per host of discovery before pass 1 (measured; else 0)


@dataclass(frozen=True)
class Step:
    at: float | None
    what: str
    why: str
    actual: bool = False  # from the state store, not predicted


@dataclass
class HostOut:
    name: str
    wave: str
    path: str
    outcome: str
    route: str
    earliest: float | None
    expected: float | None
    latest: float | None
    steps: list[Step]
    person: str | None = None  # who must act, when someone must (technician at X, an operator ...)
    location: str | None = None
    chance: float = 1.0  # the share of unknown lease ages for which the route succeeds (self-heal)
    actual: bool = False  # expected/latest are what the state store recorded
    late_by: float | None = None  # seconds past the forecast made at the wave's start
    baseline: float | None = None  # that forecast's latest time

    @property
    def needs_person(self) -> bool:
        return self.route in (TECHNICIAN, PERSON)


@dataclass
class WaveOut:
    name: str
    start: float
    hosts: list[HostOut]
    rate: float | None
    rate_source: str
    attempts: int  # server attempts this wave's forecast makes (pass 1, reopenings, pass 2, reruns)
    server_busy: float  # seconds of server time those take at the rate

    def done_times(self) -> list[float | None]:
        return [h.expected for h in self.hosts]

    def quantile(self, share: float) -> float | None:
        """When `share` of the wave's hosts are done (None: not without the hosts that never finish)."""
        times = sorted((t for t in self.done_times() if t is not None))
        need = math.ceil(share * len(self.hosts) - 1e-9)
        if need <= 0:
            return self.start
        return times[need - 1] if need <= len(times) else None

    @property
    def people(self) -> list[HostOut]:
        return [h for h in self.hosts if h.needs_person]


def capacity_text(setup: Setup, location: str, per_second: float | None = None) -> str:
    """`6/day`, `2/20 s`: a location's capacity in the period the inventory gives it."""
    from tasks.forecast.words import span

    rate = setup.technicians.get(location, 0.0) if per_second is None else per_second
    period = setup.periods.get(location, 86400.0)
    unit = "day" if period == 86400.0 else span(period)
    return f"{rate * period:g}/{unit}"
