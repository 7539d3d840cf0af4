"""rpc-go's command line: the commands (`rpc amtinfo`, `rpc activate`) and readers of what it prints.
No I/O here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tasks.adapters.commands import (
    DEFAULT_TOOLS,
    HostTools,
    OsFlavor,
    lenient_suffix,
    quote_argv,
    suffix_arg,
    validate_profile,
    validate_server_url,
)
from tasks.rules.host_state import Cause
from tasks.rules.suffix import InvalidValue, normalize_dns_name

# --------------------------------------------------------------------------------------------------
# rpc-go
# --------------------------------------------------------------------------------------------------

_CONTROL_MODES = {0: "pre-provisioning state", 1: "activated in client control mode",
                  2: "activated in admin control mode"}
_PROVISIONING_STATES = {0: "pre-provisioning", 1: "in-provisioning", 2: "post-provisioning"}


@dataclass(frozen=True)
class AmtInfo:
    """What ``rpc amtinfo`` reports. ``dns_suffix`` is the trusted (PKI) suffix only, never option 15:
    rpc-go does not show the DHCP suffix, so a blank here does not mean AMT holds no suffix."""

    version: str = ""
    build_number: str = ""
    sku: str = ""
    uuid: str = ""
    control_mode: str = ""
    provisioning_state: str = ""
    dns_suffix: str = ""
    dns_suffix_os: str = ""
    hostname_os: str = ""
    wired_adapter: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def pre_provisioning(self) -> bool | None:
        """True before activation, False once activated, None when the output did not say."""
        mode, state = self.control_mode.lower(), self.provisioning_state.lower()
        if mode:
            return mode.startswith("pre-provisioning")
        if state:
            return state.startswith("pre")
        return None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _build_amtinfo(values: dict, wired: dict) -> AmtInfo:
    problems: list[str] = []
    mode = values.get("controlMode")
    state = values.get("provisioningState")
    if isinstance(mode, int) and not isinstance(mode, bool):
        mode = _CONTROL_MODES.get(mode, str(mode))
    if isinstance(state, int) and not isinstance(state, bool):
        state = _PROVISIONING_STATES.get(state, str(state))
    return AmtInfo(
        version=_text(values.get("amt")),
        build_number=_text(values.get("buildNumber")),
        sku=_text(values.get("sku")),
        uuid=_text(values.get("uuid")),
        control_mode=_text(mode),
        provisioning_state=_text(state),
        dns_suffix=lenient_suffix(values.get("dnsSuffix"), "AMT DNS suffix", problems),
        dns_suffix_os=lenient_suffix(values.get("dnsSuffixOS"), "OS DNS suffix", problems),
        hostname_os=_text(values.get("hostnameOS")),
        wired_adapter=dict(wired),
        problems=tuple(problems),
    )


def parse_amtinfo_json(text: str) -> AmtInfo:
    """``rpc amtinfo --json``; every key is optional (older AMT leaves some out)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"rpc amtinfo output is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise InvalidValue("rpc amtinfo JSON is not an object")
    wired = data.get("wiredAdapter")
    return _build_amtinfo(data, wired if isinstance(wired, dict) else {})


_TEXT_ROWS = {"version": "amt", "build number": "buildNumber", "sku": "sku", "uuid": "uuid",
              "control mode": "controlMode", "provisioning state": "provisioningState",
              "dns suffix": "dnsSuffix", "dns suffix (os)": "dnsSuffixOS", "hostname (os)": "hostnameOS"}


def parse_amtinfo_text(text: str) -> AmtInfo:
    """``rpc amtinfo`` text form: ``Label<tabs or spaces>: value`` rows, then ``---Wired Adapter---``."""
    values: dict[str, str] = {}
    wired: dict[str, str] = {}
    section = "main"
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        if line.startswith("---") and line.endswith("---"):
            section = "wired" if "wired" in line.lower() else "other"
            continue
        label, sep, value = line.partition(":")
        if not sep:
            continue
        label, value = label.strip(), value.strip()
        if section == "main" and label.lower() in _TEXT_ROWS:
            values[_TEXT_ROWS[label.lower()]] = value
        elif section == "wired":
            wired[label] = value
    return _build_amtinfo(values, wired)


def parse_amtinfo(stdout: str) -> AmtInfo:
    """Either form of ``rpc amtinfo``."""
    return parse_amtinfo_json(stdout) if stdout.lstrip().startswith("{") else parse_amtinfo_text(stdout)


def amtinfo_command(flavor: OsFlavor | str, tools: HostTools = DEFAULT_TOOLS, *, as_json: bool = True) -> str:
    argv = tools.privileged([*tools.rpc, "amtinfo", *(["--json"] if as_json else [])], flavor)
    return quote_argv(argv, flavor)


def activate_command(server_url: str, profile: str, suffix: str | None = None, *,
                     flavor: OsFlavor | str = OsFlavor.LINUX, tools: HostTools = DEFAULT_TOOLS) -> str:
    """``rpc activate -u wss://SERVER/activate -profile NAME [-d SUFFIX] --json``.

    ``-d`` overrides the suffix rpc-go reports to the server; AMT itself still checks the suffix it
    holds, so passing it does not fix a mismatch on its own.
    """
    argv = [*tools.rpc, "activate", "-u", validate_server_url(server_url), "-profile", validate_profile(profile)]
    if suffix is not None and normalize_dns_name(suffix):
        argv += ["-d", suffix_arg(suffix)]
    argv.append("--json")
    return quote_argv(tools.privileged(argv, flavor), flavor)


#: rpc-go exit codes we know (internal/utils constants), with the cause each implies on its own.
RPC_EXIT_CODES: dict[int, tuple[str, Cause]] = {
    1: ("rpc lacks administrator/root rights", Cause.UNKNOWN),
    2: ("HECI (MEI) driver not detected", Cause.UNKNOWN),
    3: ("AMT not detected", Cause.UNKNOWN),
    4: ("AMT not ready", Cause.UNKNOWN),
    10: ("generic failure", Cause.UNKNOWN),
    20: ("missing or incorrect URL", Cause.UNKNOWN),
    21: ("missing or incorrect profile", Cause.SERVER_ERROR),
    22: ("server certificate verification failed", Cause.SERVER_ERROR),
    24: ("missing DNS suffix", Cause.SUFFIX_BLANK),
    28: ("incorrect command line parameters", Cause.UNKNOWN),
    70: ("provisioning server authentication failed", Cause.SERVER_ERROR),
    71: ("connection to AMT (LMS) failed", Cause.UNKNOWN),
    100: ("AMT authentication failed", Cause.AUTH_FAILED),
    101: ("WS-MAN message error", Cause.UNKNOWN),
    102: ("activation failed", Cause.UNKNOWN),
    128: ("certificate root hash not trusted by AMT", Cause.UNKNOWN),
}

_MESSAGE_RULES: tuple[tuple[re.Pattern, Cause, str], ...] = (
    (re.compile(r"missing dns suffix", re.I), Cause.SUFFIX_BLANK, "suffix_blank"),
    (re.compile(r"does not match list of available amt domain suffixes", re.I), Cause.SUFFIX_MISMATCH,
     "suffix_mismatch"),
    (re.compile(r"connection refused|no such host|i/o timeout|network is unreachable|no route to host|"
                r"connection reset|bad handshake|dial tcp|unexpected eof|tls:|x509:|"
                r"\b50[234]\b|service unavailable|unable to connect", re.I),
     Cause.SERVER_ERROR, "server_unreachable"),
)

_LOGRUS = re.compile(r'level=(?P<level>\w+)\s+msg="(?P<msg>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ActivationOutcome:
    ok: bool
    exit_status: int
    cause: Cause | None  # None when ok
    reason: str  # short code: ok, suffix_blank, suffix_mismatch, server_unreachable, exit_<n>, ...
    message: str  # rpc-go's own message (JSON "message" or the last error log line)
    evidence: str  # what the verdict rests on, for the report


def parse_logrus(stderr: str) -> list[tuple[str, str]]:
    """``time="..." level=error msg="..."`` lines as (level, message)."""
    out = []
    for m in _LOGRUS.finditer(stderr):
        out.append((m["level"].lower(), re.sub(r"\\(.)", r"\1", m["msg"])))
    return out


def _json_status(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
    try:
        data = json.loads(stdout)
        return data if isinstance(data, dict) else {}
    except json.JSONDecodeError:
        return {}


def map_activation(exit_status: int, stdout: str, stderr: str) -> ActivationOutcome:
    """Turn ``rpc activate --json``'s exit status and output into a verdict with a cause.

    Exit 10 (and 102) only say "failed": the server's message is what tells a suffix mismatch from a
    blank suffix or an unreachable server, so messages are classified before falling back to the
    exit-code table.
    """
    data = _json_status(stdout)
    message = _text(data.get("message"))
    logs = parse_logrus(stderr)
    errors = [msg for level, msg in logs if level in ("error", "fatal", "panic")]
    if not message and errors:
        message = errors[-1]
    status = _text(data.get("status")).lower()
    evidence_parts = [f"exit {exit_status}"]
    if status:
        evidence_parts.append(f"status {status}")
    if message:
        evidence_parts.append(f"message: {message}")
    evidence_parts += [f"log: {m}" for m in errors if m != message]
    evidence = "; ".join(evidence_parts)[:1000]

    if exit_status == 0 and status != "failed":
        return ActivationOutcome(True, 0, None, "ok", message, evidence)
    if exit_status == 0:
        return ActivationOutcome(False, 0, Cause.UNKNOWN, "failed_with_exit_0", message, evidence)

    described, code_cause = RPC_EXIT_CODES.get(exit_status, (f"exit {exit_status}", Cause.UNKNOWN))
    if exit_status in (24, 128):
        reason = "suffix_blank" if exit_status == 24 else "certificate_hash_not_trusted"
        return ActivationOutcome(False, exit_status, code_cause, reason, message or described, evidence)
    text = " ".join([message, *errors])
    for pattern, cause, reason in _MESSAGE_RULES:
        if pattern.search(text):
            return ActivationOutcome(False, exit_status, cause, reason, message or described, evidence)
    return ActivationOutcome(False, exit_status, code_cause, f"exit_{exit_status}", message or described, evidence)
