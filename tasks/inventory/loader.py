"""Reading an inventory: YAML with `include:`s, schema problems with their lines ("did you mean ...?"),
the salvage that lets cross-checks run beside schema errors, and `load_inventory`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from tasks.inventory.checks import Lost, semantic_problems
from tasks.inventory.schema import Inventory
from tasks.inventory.yaml_source import InputError, Problem, SourceMap, load_yaml_with_lines
from tasks.rules.suffix import suffix_from_certificate_cn

_MERGED_LISTS = ("hosts", "waves", "dhcp_scopes")


def _load_tree(path: Path, seen: tuple[Path, ...]) -> tuple[dict, SourceMap]:
    """Read a file and its `include:`s; lists of hosts, waves and scopes are concatenated."""
    data, smap = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise InputError([smap.problem((), "an inventory is a mapping of keys (name, provisioning, hosts, ...)")])
    includes = data.pop("include", None)
    if includes is None:
        return data, smap
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise InputError([smap.problem(("include",), "a file name or a list of file names")])
    problems = []
    for i, inc in enumerate(includes):
        if not isinstance(inc, str) or not inc.strip():
            problems.append(smap.problem(("include", i), "a relative file name"))
            continue
        child = path.parent / inc
        if child.resolve() in seen:
            problems.append(smap.problem(("include", i), f"include cycle through {inc}"))
            continue
        try:
            sub, submap = _load_tree(child, seen + (child.resolve(),))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for key, value in sub.items():
            if key in _MERGED_LISTS and isinstance(value, list):
                base = data.setdefault(key, [])
                if not isinstance(base, list):
                    problems.append(smap.problem((key,), "must be a list"))
                    continue
                offset = len(base)
                base.extend(value)
                smap.graft(submap, (key,), (key,))  # the list node itself
                for j in range(len(value)):
                    smap.graft(submap, (key, j), (key, offset + j))
            elif key in data:
                problems.append(submap.problem((key,), f"also set in {path.name}; only hosts, waves and dhcp_scopes merge"))
            else:
                data[key] = value
                smap.graft(submap, (key,), (key,))
    if problems:
        raise InputError(problems)
    return data, smap


def _clean_loc(loc) -> tuple:
    """pydantic appends union member names ('function-after[...]', 'int'...) to locations: keep real paths."""
    return tuple(part for part in loc
                 if isinstance(part, int) or (isinstance(part, str) and "[" not in part and part not in (
                     "str", "int", "float", "bool", "list", "dict", "datetime", "IPv4Network", "IPv6Network")))


def _model_in(annotation) -> type[BaseModel] | None:
    """The model class inside a field's annotation (Optional[X], list[X], X), if any."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(loc: tuple) -> list[str]:
    """The keys the model accepts at the mapping holding loc's last part (for "did you mean ...?")."""
    model: type[BaseModel] | None = Inventory
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
        if model is None:
            return []
    return list(model.model_fields) if model else []


def _unknown_key_message(loc: tuple) -> str:
    import difflib

    key = loc[-1] if loc else ""
    near = difflib.get_close_matches(str(key), _keys_at(loc), n=1, cutoff=0.6) if isinstance(key, str) else []
    return f"unknown key; did you mean {near[0]}?" if near else "unknown key"


def _pydantic_problems(exc: ValidationError, smap: SourceMap) -> list[Problem]:
    out = []
    for err in exc.errors():
        clean = _clean_loc(err["loc"])
        msg = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        if err["type"] == "extra_forbidden":
            msg = _unknown_key_message(clean)
        elif err["type"] == "missing":
            msg = "required key is missing"
        out.append(smap.problem(clean, msg))
    return out


_PLACEHOLDERS = {"name": "inventory", "provisioning": {"certificate_suffix": "invalid.example"}}  # never used: see _salvage


def _salvage(data: dict, exc: ValidationError) -> tuple[Inventory, Lost] | None:
    """The part of an inventory with schema errors that is still whole, so its cross-checks (duplicates,
    selectors, scopes) are reported in the same pass: unknown keys removed, bad hosts/waves/scopes set
    aside, unusable top-level settings left at their defaults. Only for finding more problems: the
    result is never returned to a caller as an inventory. None when nothing sensible is left to check."""
    import copy

    work = copy.deepcopy(data)
    lists = {k: list(range(len(work[k]))) if isinstance(work.get(k), list) else [] for k in _MERGED_LISTS}
    lost = Lost(kept={})
    for _ in range(5):  # each round removes what the last validation named; a few rounds suffice
        drop: dict[str, set[int]] = {k: set() for k in _MERGED_LISTS}
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            if not loc:
                return None
            top = loc[0]
            if top in _MERGED_LISTS and len(loc) > 1 and isinstance(loc[1], int):
                if err["type"] == "extra_forbidden" and _delete_at(work, loc):
                    continue
                drop[top].add(loc[1])
            elif err["type"] == "extra_forbidden" and _delete_at(work, loc):
                continue
            elif top == "hosts":
                return None  # no usable host list: nothing to cross-check
            elif top in _PLACEHOLDERS:
                work[top] = copy.deepcopy(_PLACEHOLDERS[top])
            else:
                work.pop(top, None)
                lost.all_scopes |= top == "dhcp_scopes"
                lost.settings |= top in ("credentials", "defaults")
                if top in lists:
                    lists[top] = []
        for key, bad in drop.items():
            if not bad:
                continue
            items = work[key]
            for i in bad:
                raw = items[i] if isinstance(items[i], dict) else {}
                if key == "hosts":
                    lost.host_names.add(str(raw.get("name", "")).strip().lower())
                    lost.host_tags.update(str(t) for t in raw.get("tags") or [] if isinstance(raw.get("tags"), list))
                elif key == "dhcp_scopes":
                    lost.scope_names.add(str(raw.get("name", "")).strip())
            work[key] = [it for i, it in enumerate(items) if i not in bad]
            lists[key] = [orig for i, orig in enumerate(lists[key]) if i not in bad]
        if not work.get("hosts"):
            return None
        try:
            inv = Inventory.model_validate(work)
        except ValidationError as again:
            exc = again
            continue
        lost.kept = lists
        return inv, lost
    return None


def _delete_at(data, loc: tuple) -> bool:
    """Remove the key at loc (an unknown key); False if the path is not there as written."""
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def _read_certificate_suffix(inv: Inventory) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    path = inv.resolve(inv.provisioning.certificate)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise ValueError(f"{path}: certificate subject has no CN")
    return suffix_from_certificate_cn(cns[0].value)


def load_inventory(path: str | Path) -> Inventory:
    """Load, validate and cross-check an inventory; raises InputError listing every problem with its line.

    Schema and cross-check problems come in one pass: with schema errors, the rest of the inventory is
    still cross-checked (see _salvage), so a lead fixes everything in one edit, not one kind per run."""
    path = Path(path)
    data, smap = _load_tree(path, (path.resolve(),))
    lost: Lost | None = None
    try:
        inv = Inventory.model_validate(data)
        schema: list[Problem] = []
    except ValidationError as exc:
        schema = _pydantic_problems(exc, smap)
        salvaged = _salvage(data, exc)
        if salvaged is None:
            raise InputError(schema) from None
        inv, lost = salvaged
    inv._path = path.resolve()
    errors = list(schema)
    if inv.provisioning.certificate:
        try:
            inv._cert_suffix = _read_certificate_suffix(inv)
        except (OSError, ValueError) as exc:
            errors.append(smap.problem(("provisioning", "certificate"), str(exc)))
    cross, warnings = semantic_problems(inv, lost.remap(smap) if lost else smap, lost)
    errors += cross
    if errors:
        raise InputError(sorted(errors, key=lambda p: (p.file != str(path), p.file, p.line)))
    inv._warnings = warnings
    return inv
