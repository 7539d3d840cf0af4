"""ISC Kea (2.2 and later) through its control agent (HTTP/JSON): option 15 and the lease of a subnet.

Read: `config-get`, then the subnet's `Option15Layout`: its own option-data, its shared network's, the
global one, every pool's, the host reservations Kea looks at for it and the client classes that set option
15 (precedence and sources: tasks/rules/dhcp_option15.py). Change: `config-get` → edit at the level the
site already uses → `config-test` → `config-set` → `config-write` → read back.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from datetime import timedelta

from tasks.adapters.dhcp_scope import (DhcpError, ScopeChange, ScopeOptions, dns_value, forget_cached_scopes, lease_diff, lease_value,
                                       option15_diff, option15_text, shadowed, verify_read_back)
from tasks.rules import dhcp_option15 as o15
from tasks.rules.suffix import InvalidValue

KEA_DEFAULT_VALID_LIFETIME = 7200  # Kea's built-in default when no level sets valid-lifetime
LEVELS = ("subnet", "pool", "shared-network", "global")  # where `apply_change(level=...)` may write


@dataclass(frozen=True)
class KeaSubnetRef:
    """A Kea subnet: by ``subnet_id`` (preferred, it is Kea's key) or by CIDR."""

    subnet_id: int | None = None
    subnet: str | None = None

    def __str__(self) -> str:
        return f"subnet {self.subnet_id}" if self.subnet_id is not None else f"subnet {self.subnet}"


def domain_option(option_data: list | None) -> dict | None:
    """The option-data entry for option 15 (``name: domain-name`` or ``code: 15`` in space dhcp4)."""
    for opt in option_data or []:
        if opt.get("space", "dhcp4") != "dhcp4":
            continue
        if opt.get("name") == "domain-name" or opt.get("code") == 15:
            return opt
    return None


def _value(node: dict | None) -> str | None:
    opt = domain_option((node or {}).get("option-data"))
    if opt is None:
        return None
    if _never(node) and not str(opt.get("data") or "").strip():
        return None  # a cancellation only ("never-send" without data, as the ARM's example): sets no value
    return option15_text(opt.get("data", ""), opt.get("csv-format", True))


def _never(node: dict | None) -> bool:
    """Kea >= 2.4 ``never-send: true`` on this level's option 15 (tasks.rules.dhcp_option15: sticky along the chain)."""
    opt = domain_option((node or {}).get("option-data"))
    return opt is not None and opt.get("never-send") is True


def _pool_range(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """Kea's two pool spellings: "10.1.0.10 - 10.1.0.99" (config-get prints it without blanks) or a prefix."""
    if "-" in text:
        first, last = (ipaddress.IPv4Address(p.strip()) for p in text.split("-", 1))
        return first, last
    net = ipaddress.IPv4Network(text.strip(), strict=False)
    return net.network_address, net.broadcast_address


def _flag(name: str, default: bool, *nodes) -> bool:
    """A reservation flag as Kea inherits it: subnet > shared network > global > built-in default."""
    for node in nodes:
        if node is not None and node.get(name) is not None:
            return bool(node[name])
    return default


def _reservation(r: dict, where: str, subnet: ipaddress.IPv4Network | None = None) -> o15.Reservation:
    ids = tuple(i for i in (o15.client_ids(r.get(k)) for k in ("hw-address", "client-id", "duid")) if i)
    ip = r.get("ip-address")
    if ip and subnet is not None and ipaddress.ip_address(ip) not in subnet:
        ip = None
    name = ip or r.get("hw-address") or r.get("client-id") or r.get("hostname") or "?"
    return o15.Reservation(ip, ids, _value(r), f"reservation {name}{where}", tuple(r.get("client-classes") or ()),
                           _never(r))


def _additional(subnet: dict, net: dict | None) -> set[str]:
    """Classes listed for late evaluation on the subnet, its pools or its shared network
    (`require-client-classes`, renamed `evaluate-additional-classes` in Kea 2.7.4)."""
    out: set[str] = set()
    for node in [subnet, net or {}] + list(subnet.get("pools") or []):
        for key in ("require-client-classes", "evaluate-additional-classes"):
            out.update(node.get(key) or [])
    return out


def _classes(dhcp4: dict, subnet: dict, net: dict | None) -> tuple[o15.ClassOption, ...]:
    listed = _additional(subnet, net)
    out = []
    for c in dhcp4.get("client-classes") or []:
        value, never = _value(c), _never(c)
        if value is None and not never:
            continue
        late = c.get("only-if-required") or c.get("only-in-additional-list")
        test = str(c.get("test") or "")
        evaluated = (bool(test) and not late) or c.get("name") in listed
        out.append(o15.ClassOption(str(c.get("name")), value or "", test or ("listed for additional evaluation"
                                                                               if evaluated else ""), evaluated, never))
    return tuple(out)


def config_of(answer) -> dict:
    """``config-get``'s arguments (``{"Dhcp4": ..., "hash": ...}``) from what the control agent answers, in any of
    the shapes it comes in: the list of one answer per service (the control agent), one answer object (kea-dhcp4's
    own control socket), or the arguments themselves. An answer with a non-zero result is the server's error."""
    if isinstance(answer, list):
        answer = answer[0] if answer else {}
    if isinstance(answer, dict) and "Dhcp4" not in answer and "result" in answer:
        if answer.get("result") != 0:
            raise DhcpError(f"config-get failed (result {answer.get('result')}): {answer.get('text', '')}",
                            kind="config-get")
        answer = answer.get("arguments")
    if not isinstance(answer, dict) or not isinstance(answer.get("Dhcp4"), dict):
        raise DhcpError("config-get holds no Dhcp4 section", kind="protocol")
    return answer


class KeaAdapter:
    """Kea's control agent. ``control_url`` e.g. ``http://kea1.example:8000/``."""

    def __init__(self, control_url: str, timeout: float = 10.0, *, auth: tuple[str, str] | None = None,
                 transport=None):
        import httpx

        self.control_url = control_url
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, auth=auth, transport=transport)

    def __repr__(self) -> str:
        return f"KeaAdapter({self.control_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def label(self, ref: KeaSubnetRef | None = None) -> str:
        return f"Kea at {self.control_url}" + (f" ({ref})" if ref is not None else "")

    # -- transport ----------------------------------------------------------------------------
    def command(self, command: str, arguments: dict | None = None, *, ok_results=(0,)) -> dict:
        """Send one command to the dhcp4 service; return its first answer ``{"result", "text", "arguments"}``."""
        import httpx

        body: dict = {"command": command, "service": ["dhcp4"]}
        if arguments is not None:
            body["arguments"] = arguments
        try:
            resp = self._client.post(self.control_url, json=body)
        except httpx.HTTPError as exc:
            raise DhcpError(f"{self.label()}: {command}: {type(exc).__name__}: {exc}", kind="unreachable",
                            source=self.label()) from None
        if resp.status_code in (401, 403):  # 403: credentials accepted, command not allowed (Kea 2.5+ ACLs)
            raise DhcpError(f"{self.label()}: {command}: {resp.status_code} (control agent "
                            f"{'wants credentials' if resp.status_code == 401 else 'refuses this command'})",
                            kind="auth", source=self.label())
        try:
            data = resp.json()
        except ValueError:
            raise DhcpError(f"{self.label()}: {command}: HTTP {resp.status_code}, not JSON", kind="protocol",
                            source=self.label()) from None
        answer = data[0] if isinstance(data, list) and data else data
        if not isinstance(answer, dict) or "result" not in answer:
            raise DhcpError(f"{self.label()}: {command}: unexpected answer {str(data)[:200]}", kind="protocol",
                            source=self.label())
        if answer["result"] not in ok_results:
            raise DhcpError(f"{self.label()}: {command} failed (result {answer['result']}): "
                            f"{answer.get('text', '')}", kind=command, source=self.label())
        return answer

    def config_get(self) -> dict:
        try:
            return config_of(self.command("config-get"))
        except DhcpError as exc:
            raise DhcpError(f"{self.label()}: {exc}", kind=exc.kind, source=self.label()) from None

    # -- reading ------------------------------------------------------------------------------
    @staticmethod
    def find_subnet(config: dict, ref: KeaSubnetRef) -> tuple[dict, dict | None]:
        """(subnet, its shared network or None) in a config-get result."""
        dhcp4 = config_of(config)["Dhcp4"]
        places = [(s, None) for s in dhcp4.get("subnet4") or []]
        for net in dhcp4.get("shared-networks") or []:
            places += [(s, net) for s in net.get("subnet4") or []]
        want = ipaddress.ip_network(ref.subnet, strict=False) if ref.subnet else None
        for subnet, net in places:
            if ref.subnet_id is not None:
                if subnet.get("id") == ref.subnet_id:
                    return subnet, net
            elif want is not None and ipaddress.ip_network(subnet.get("subnet", "0.0.0.0/32"), strict=False) == want:
                return subnet, net
        known = ", ".join(f"{s.get('id')}={s.get('subnet')}" for s, _ in places) or "none"
        raise DhcpError(f"no Kea {ref} (subnets: {known})", kind="not_found")

    @staticmethod
    def layout(config: dict, ref: KeaSubnetRef) -> o15.Option15Layout:
        """Every place this subnet's clients can get option 15 from, as Kea's precedence orders them."""
        config = config_of(config)
        subnet, net = KeaAdapter.find_subnet(config, ref)
        dhcp4 = config["Dhcp4"]
        chain = [o15.Level(o15.SUBNET, _value(subnet), f"subnet {subnet.get('id')}", _never(subnet))]
        if net is not None:
            chain.append(o15.Level(o15.SHARED_NETWORK, _value(net), f"shared network '{net.get('name')}'", _never(net)))
        chain.append(o15.Level(o15.GLOBAL, _value(dhcp4), "the global option-data", _never(dhcp4)))
        pools = []
        for p in subnet.get("pools") or []:
            first, last = _pool_range(str(p.get("pool", "")))
            pools.append(o15.Pool(first, last, _value(p), f"pool {p.get('pool')}", _never(p)))
        reservations = []
        # a subnet reservation is preferred over a global one for the same client (Kea ARM 2.2, "Host
        # Reservations in DHCPv4": reservations-global / reservations-in-subnet)
        if _flag("reservations-in-subnet", True, subnet, net, dhcp4):
            reservations += [_reservation(r, "") for r in subnet.get("reservations") or []]
        if _flag("reservations-global", False, subnet, net, dhcp4):
            # a global reservation's address outside this subnet is not this subnet's: it matches by identifier
            mine = ipaddress.ip_network(subnet.get("subnet", "0.0.0.0/32"), strict=False)
            reservations += [_reservation(r, " (global)", mine) for r in dhcp4.get("reservations") or []]
        return o15.Option15Layout(tuple(chain), tuple(pools), tuple(reservations), _classes(dhcp4, subnet, net))

    @staticmethod
    def effective(config: dict, ref: KeaSubnetRef, source: str) -> ScopeOptions:
        """The subnet's option 15 layout and valid-lifetime as Kea applies them.

        valid-lifetime: subnet > shared network > global (> default). Kea 2.2's config-get already copies
        inherited lifetimes into each subnet; the walk is still done so a configuration that does not
        (older/newer servers, hand-written files) reads the same.
        """
        config = config_of(config)
        try:
            layout = KeaAdapter.layout(config, ref)
        except (ValueError, InvalidValue) as exc:
            raise DhcpError(f"Kea {ref}: unreadable option 15 or pool: {exc}", kind="protocol") from None
        subnet, net = KeaAdapter.find_subnet(config, ref)
        domain, level, _ = o15.scope_value(layout)
        lease, lease_level = KEA_DEFAULT_VALID_LIFETIME, "default"
        for lvl, node in [("subnet", subnet), ("shared-network", net), ("global", config["Dhcp4"])]:
            if node is not None and node.get("valid-lifetime") is not None:
                lease, lease_level = int(node["valid-lifetime"]), lvl
                break
        return ScopeOptions(domain, timedelta(seconds=lease), source, level, lease_level, layout)

    def read(self, ref: KeaSubnetRef) -> ScopeOptions:
        config = self.config_get()
        try:
            return self.effective(config, ref, self.label(ref))
        except DhcpError as exc:
            raise DhcpError(f"{self.label()}: {exc}", kind=exc.kind, source=self.label()) from None

    # -- changing -----------------------------------------------------------------------------
    @staticmethod
    def _targets(config: dict, ref: KeaSubnetRef, level: str | None,
                 reservations: bool) -> list[tuple[dict, str]]:
        """(node, label) that get the new option 15.

        ``level`` None: the level the site already uses — every pool that sets option 15, and the subnet
        too unless those pools hold every address (a subnet without pools, a pool without option 15, a
        reservation outside the pools, or a subnet that sets it itself). A value inherited from the shared
        network or the global level is set on the subnet: those levels hand out to other subnets too.
        ``reservations``: also rewrite the subnet's reservations that set their own option 15.
        """
        subnet, net = KeaAdapter.find_subnet(config, ref)
        pools = list(subnet.get("pools") or [])
        if level is None:
            own = [p for p in pools if domain_option(p.get("option-data")) is not None]
            targets = [(p, f"pool {p.get('pool')}") for p in own]
            lay = KeaAdapter.layout(config, ref)
            mine = ipaddress.ip_network(subnet.get("subnet", "0.0.0.0/32"), strict=False)
            outside = any(r.domain_name is None and r.ip and ipaddress.ip_address(r.ip) in mine
                          and not o15.in_pools(r.ip, lay.pools) for r in lay.reservations)
            if not own or len(own) < len(pools) or outside or domain_option(subnet.get("option-data")) is not None:
                targets.insert(0, (subnet, f"subnet {subnet.get('id')}"))
        elif level == "subnet":
            targets = [(subnet, f"subnet {subnet.get('id')}")]
        elif level == "pool":
            if not pools:
                raise DhcpError(f"Kea {ref} has no pools to set option 15 on", kind="config")
            targets = [(p, f"pool {p.get('pool')}") for p in pools]
        elif level == "shared-network":
            if net is None:
                raise DhcpError(f"Kea {ref} is in no shared network", kind="config")
            targets = [(net, f"shared network '{net.get('name')}'")]
        elif level == "global":
            targets = [(config["Dhcp4"], "the global option-data")]
        else:
            raise InvalidValue(f"level {level!r}: Kea option 15 can be set at {', '.join(LEVELS)}")
        if reservations:
            targets += [(r, f"reservation {r.get('ip-address') or r.get('hw-address')}")
                        for r in subnet.get("reservations") or [] if domain_option(r.get("option-data")) is not None]
        return targets

    def _edited(self, config: dict, ref: KeaSubnetRef, domain_name: str | None, lease: timedelta | None,
                level: str | None = None, reservations: bool = False) -> tuple[dict, list[str], list]:
        """A copy of ``config`` with the change made; (copy, notes, [(where, value before)] per place written)."""
        new = copy.deepcopy(config)
        # Kea >= 2.4 answers config-get with the config's SHA-256 `hash` beside `Dhcp4` (Kea ARM 2.4.0,
        # "config-hash-get": "config-set and config-get return the SHA-256 hash"); config-test/config-set
        # refuse it ("Unsupported 'hash' parameter"), so it goes, wherever it sits
        new.pop("hash", None)
        new["Dhcp4"].pop("hash", None)
        notes, writes = [], []
        if domain_name is not None:
            for node, where in self._targets(new, ref, level, reservations):
                opts = node.setdefault("option-data", [])
                opt = domain_option(opts)
                old = _value(node)
                writes.append((where, old))
                if opt is None:
                    opts.append({"name": "domain-name", "data": domain_name})
                    notes.append(f"{where}: option-data += domain-name {domain_name}")
                elif old != domain_name:
                    notes.append(f"{where}: option-data domain-name {opt.get('data')} -> {domain_name}")
                    opt["data"] = domain_name
                    if opt.get("csv-format") is False:  # the old value was hex; the new one is text
                        opt["csv-format"] = True
        if lease is not None:
            subnet, _ = self.find_subnet(new, ref)
            notes += self._set_lease(subnet, lease_value(lease))
        return new, notes, writes

    @staticmethod
    def _set_lease(subnet: dict, seconds: int) -> list[str]:
        old = subnet.get("valid-lifetime")
        # Kea 2.2's config-get pins min/max-valid-lifetime to the lifetime when they were not configured;
        # sent back unchanged they would forbid the new value. Bounds that differ were set on purpose:
        # they stay, and config-test decides.
        for bound in ("min-valid-lifetime", "max-valid-lifetime"):
            if subnet.get(bound) is not None and subnet.get(bound) == old and \
                    subnet.get("min-valid-lifetime") == subnet.get("max-valid-lifetime"):
                subnet[bound] = seconds
        if old != seconds:
            subnet["valid-lifetime"] = seconds
            return [f"subnet {subnet.get('id')}: valid-lifetime {old} -> {seconds}"]
        return []

    def _prepare(self, ref, domain_name, lease, level, reservations):
        domain_name = dns_value(domain_name) if domain_name is not None else None
        if lease is not None:
            lease_value(lease)
        config = self.config_get()
        before = self.effective(config, ref, self.label(ref))
        new, notes, writes = self._edited(config, ref, domain_name, lease, level, reservations)
        planned = self.effective(new, ref, self.label(ref))
        diff = option15_diff(writes, domain_name) + lease_diff(before, lease)
        return domain_name, before, new, planned, notes, diff

    def plan_change(self, ref: KeaSubnetRef, *, domain_name: str | None = None, lease: timedelta | None = None,
                    level: str | None = None, reservations: bool = False) -> ScopeChange:
        """Dry run: what would change, where, and what would still hand out another value. Reads only."""
        domain_name, before, _, planned, notes, diff = self._prepare(ref, domain_name, lease, level, reservations)
        return ScopeChange(before.source, before, planned, diff, False, notes, shadowed(planned, domain_name))

    def apply_change(self, ref: KeaSubnetRef, *, domain_name: str | None = None, lease: timedelta | None = None,
                     level: str | None = None, reservations: bool = False, write: bool = True) -> ScopeChange:
        """config-get → edit → config-test → config-set → config-write → read back.

        Raises `DhcpError` (kind ``config-test``) without touching the server if Kea rejects the edit, and
        (kind ``verify``) if the read-back differs from what was planned.
        """
        domain_name, before, new, planned, notes, diff = self._prepare(ref, domain_name, lease, level, reservations)
        if not diff:
            return ScopeChange(before.source, before, before, [], False, [], shadowed(before, domain_name))
        self.command("config-test", new)
        answer = self.command("config-set", new)
        notes.append(f"config-set: {answer.get('text', '')}")
        if write:
            answer = self.command("config-write")
            notes.append(f"config-write: {answer.get('text', '')}")
        forget_cached_scopes()  # a wave in this process reads the new values, not the ones cached before
        after = self.read(ref)
        verify_read_back(self.label(ref), planned, after, domain_name, lease)
        return ScopeChange(before.source, before, after, diff, True, notes, shadowed(after, domain_name))
