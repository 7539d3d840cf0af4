"""rpc-go's command line: the commands (`rpc amtinfo`, `rpc activate`) and readers of what it prints.
No I/O here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tasks.adapters.commands import (
    DEFAULT_TOOLS,
    HostTools,
    OsFlavor,
    quote_argv,
    suffix_arg,
    validate_profile,
    validate_server_url,
)
from tasks.adapters.rpc_amtinfo import AmtInfo, parse_amtinfo, parse_amtinfo_json, parse_amtinfo_text  # noqa: F401
from tasks.rules.suffix import normalize_dns_name

# --------------------------------------------------------------------------------------------------
# rpc-go (what `rpc amtinfo` prints is read in tasks.adapters.rpc_amtinfo)
# --------------------------------------------------------------------------------------------------


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def amtinfo_command(flavor: OsFlavor | str, tools: HostTools = DEFAULT_TOOLS, *, as_json: bool = True) -> str:
    argv = tools.privileged([*tools.rpc, "amtinfo", *(["--json"] if as_json else [])], flavor)
    return quote_argv(argv, flavor)


AMT_PASSWORD_ENV = "AMT_PASSWORD"  # rpc-go 2.x -password default and 3.x --password env (research/rpc.md 2.2)


def activate_command(server_url: str, profile: str, suffix: str | None = None, *,
                     flavor: OsFlavor | str = OsFlavor.LINUX, tools: HostTools = DEFAULT_TOOLS,
                     keep_password_env: bool = False) -> str:
    """``rpc activate -u wss://SERVER/activate --profile NAME [-d SUFFIX] --json``.

    Forms both majors accept: 2.x parses flags with Go's flag package (``-x`` and ``--x`` alike), 3.x
    (Kong) needs ``--`` for long flags and keeps ``-u``/``-d`` as short ones (research/rpc.md 2.1).
    ``-d`` overrides the suffix rpc-go reports to the server; AMT itself still checks the suffix it
    holds, so passing it does not fix a mismatch on its own. The AMT password never goes here: it
    travels in the ``AMT_PASSWORD`` environment variable (see `tasks.adapters.rpc`).
    """
    argv = [*tools.rpc, "activate", "-u", validate_server_url(server_url), "--profile", validate_profile(profile)]
    if suffix is not None and normalize_dns_name(suffix):
        argv += ["-d", suffix_arg(suffix)]
    argv.append("--json")
    full = tools.privileged(argv, flavor)
    if keep_password_env and OsFlavor(flavor) is OsFlavor.LINUX and tools.linux_privilege \
            and tools.linux_privilege[0].rsplit("/", 1)[-1] == "sudo":
        # sudo resets the environment: ask it to keep AMT_PASSWORD (sudoers must allow it, e.g.
        # `Defaults env_keep += "AMT_PASSWORD"`); the value itself is never on this line
        n = len(tools.linux_privilege)
        full = [*full[:n], f"--preserve-env={AMT_PASSWORD_ENV}", *full[n:]]
    return quote_argv(full, flavor)


#: rpc-go's exit codes, verbatim names from pkg/utils/constants.go (identical in v2.52.4 and v3 HEAD
#: except 115; research/rpc.md section 2.6), with what each means for this migration. The second
#: field is the ProvisionOutcome error code it implies when no clearer message was logged:
#: ``tool_error`` = rpc-go could not run as needed (AMT not reached), ``config_error`` = our command
#: line, profile or server setting is wrong, ``internal_error`` = AMT/RPS refused it (the classifier
#: then reads the suffixes), ``auth_failed``, ``server_error`` (transient).
RPC_EXIT_CODES: dict[int, tuple[str, str]] = {
    1: ("IncorrectPermissions: rpc lacks administrator/root rights", "tool_error"),
    2: ("HECIDriverNotDetected: the MEI/HECI driver is not present or not accessible", "tool_error"),
    3: ("AmtNotDetected", "tool_error"),
    4: ("AmtNotReady", "tool_error"),
    5: ("HelpRequested: rpc printed its usage", "config_error"),
    10: ("GenericFailure", "internal_error"),
    20: ("MissingOrIncorrectURL", "config_error"),
    21: ("MissingOrIncorrectProfile", "config_error"),
    22: ("ServerCerificateVerificationFailed: RPS's TLS certificate was not trusted", "config_error"),
    23: ("MissingOrIncorrectPassword: AMT's current admin password was not given (AMT_PASSWORD)", "auth_failed"),
    24: ("MissingDNSSuffix: -d was given without a value", "config_error"),
    25: ("MissingHostname", "config_error"),
    26: ("MissingProxyAddressAndPort", "config_error"),
    28: ("IncorrectCommandLineParameters", "config_error"),
    33: ("InvalidParameterCombination", "config_error"),
    36: ("InvalidUserInput", "config_error"),
    37: ("InvalidUUID", "config_error"),
    70: ("RPSAuthenticationFailed", "config_error"),
    71: ("AMTConnectionFailed: LMS/LME did not answer", "tool_error"),
    100: ("AMTAuthenticationFailed", "auth_failed"),
    101: ("WSMANMessageError", "internal_error"),
    102: ("ActivationFailed", "internal_error"),
    # 103-108: a configuration step that runs once AMT is activated failed (3.x's profile flows: e.g. 107
    # with EBUSY on AMT 20, rpc-go issue #1438, "the device is successfully provisioned in ACM mode despite
    # this error"): AMT may well be activated, so only the read-back can say what happened
    103: ("NetworkConfigurationFailed (after activation)", "internal_error"),
    104: ("CIRAConfigurationFailed (after activation)", "internal_error"),
    105: ("TLSConfigurationFailed (after activation)", "internal_error"),
    106: ("WiFiConfigurationFailed (after activation)", "internal_error"),
    107: ("AMTFeaturesConfigurationFailed (after activation)", "internal_error"),
    108: ("Ieee8021xConfigurationFailed (after activation)", "internal_error"),
    111: ("UnableToActivate (2.x local activation: the device is already activated)", "internal_error"),
    128: ("ActivationFailed: provisioning certificate does not match", "internal_error"),
    136: ("DuplicateKey", "internal_error"),
    138: ("UnsupportedAMTVersion / leaf cert hash too long (code used twice)", "internal_error"),
    139: ("LMSConnectionFailed", "tool_error"),
}


def exit_meaning(code: int) -> tuple[str, str]:
    """(name, implied error code) of an rpc-go exit status; 1000+ are AMT PT status codes."""
    if code in RPC_EXIT_CODES:
        return RPC_EXIT_CODES[code]
    if code in (127, 9009):  # sh: command not found; cmd.exe: not recognized (checked before 1000+)
        return ("127/9009: the shell found no rpc (not installed or not on PATH)", "tool_error")
    if code >= 1000:
        return (f"AMT PT status {code - 1000} (AmtPtStatusCodeBase + {code - 1000})", "internal_error")
    if code == -1:
        return ("no exit status: the SSH session ended before rpc finished", "unverified")
    return (f"exit {code} (not an rpc-go code)", "internal_error")


# --------------------------------------------------------------------------------------------------
# rpc-go's log: logrus on stderr, text (`time=... level=error msg="..."`) or JSON lines with --json
# (research/rpc.md 2.3). Both streams are read line by line: rpc-go 2.x prints nothing on stdout for
# `activate`, 3.x --json prints a summary object there.
# --------------------------------------------------------------------------------------------------

_LOGRUS = re.compile(r'(?:^|\s)level=(?P<level>\w+)\s+msg=(?:"(?P<q>(?:[^"\\]|\\.)*)"|(?P<bare>\S+))')
#: logrus TextFormatter on a terminal: the level cut to four letters, then ``[seconds since start]`` or, with
#: FullTimestamp, ``[2021-12-01T10:00:05Z]``, then the message padded to 44 columns (logrus text_formatter.go
#: printColored); the level is wrapped in colour codes unless colours are off (rpc-go issue #27's paste)
_LOGRUS_SHORT = re.compile(r"^(?P<lvl>TRAC|DEBU|INFO|WARN|ERRO|FATA|PANI)\[[^\]\s]*\]\s*(?P<msg>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SHORT_LEVELS = {"TRAC": "trace", "DEBU": "debug", "INFO": "info", "WARN": "warning", "ERRO": "error",
                 "FATA": "fatal", "PANI": "panic"}
ERROR_LEVELS = ("error", "fatal", "panic")


@dataclass(frozen=True)
class LogLine:
    level: str  # trace|debug|info|warning|error|fatal|panic, or "" for a line that is not a log entry
    msg: str
    stream: str  # stdout | stderr


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_log_line(line: str, stream: str = "stderr") -> LogLine | None:
    """One logrus line in any of its forms (JSON, text, 2021's short form); None for a blank line."""
    text = _ANSI.sub("", line).strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return LogLine("", text, stream)
        if isinstance(data, dict) and "level" in data and "msg" in data:
            return LogLine(_text(data["level"]).lower(), _text(data["msg"]), stream)
        return LogLine("", text, stream)
    m = _LOGRUS.search(text)
    if m:
        msg = _unescape(m["q"]) if m["q"] is not None else m["bare"]
        return LogLine(m["level"].lower(), msg, stream)
    m = _LOGRUS_SHORT.match(text)
    if m:
        return LogLine(_SHORT_LEVELS[m["lvl"]], m["msg"].strip(), stream)
    return LogLine("", text, stream)


def parse_log(text: str, stream: str = "stderr") -> list[LogLine]:
    out = []
    for line in (text or "").replace("\r", "").splitlines():
        entry = parse_log_line(line, stream)
        if entry is not None:
            out.append(entry)
    return out


def parse_logrus(stderr: str) -> list[tuple[str, str]]:
    """Log entries of ``stderr`` as (level, message); lines that are not log entries are left out."""
    return [(e.level, e.msg) for e in parse_log(stderr) if e.level]


# --------------------------------------------------------------------------------------------------
# What RPS and rpc-go say, and what it means (rps v2.40.0 src/Validator.ts, stateMachines/activation.ts;
# rpc-go internal/rps/rps.go; research/rpc.md 2.4, 2.5, 4.1)
# --------------------------------------------------------------------------------------------------

#: (pattern, hint, transient). Order matters: the first match wins. The hint is the error code the
#: provisioning step hands the classifier; it explains a verdict, it never makes one (tasks.adapters.rpc).
_MESSAGE_HINTS: tuple[tuple[re.Pattern, str, bool], ...] = (
    (re.compile(r"missing dns suffix", re.I), "suffix_blank", False),
    (re.compile(r"does not match list of available amt domain suffixes", re.I), "suffix_mismatch", False),
    # AMT 19+: a suffix RPS has no domain for surfaces as this instead of the message above (rps issue
    # #2590: "Failed to extract domain certificate.Failed to extract domain certificate.ACM activation failed")
    (re.compile(r"failed to extract domain certificate", re.I), "suffix_mismatch", False),
    # RPS's own firmware gate (Validator.ts verifyAMTVersion: AMT < 7 "cannot be remotely configured"; 7.0-11.6
    # below build 3000 "Please check with your OEM for a firmware update"; older RPS: "Only version 10.0.47 with
    # build greater than 3000 can be remotely configured"): no suffix can fix it
    (re.compile(r"cannot be remotely configured|can be remotely configured|"
                r"check with your oem for a firmware update", re.I), "unsupported_version", False),
    (re.compile(r"password does not match stored version|incorrect password|"
                r"missingorincorrectpassword|amtauthenticationfailed", re.I), "auth_failed", False),
    (re.compile(r"does not match list of available amt profiles|belongs to another tenant|"
                r"already has a record in mps|missing password\.|protocol version not supported|"
                # RPS activation.ts COMPARE_DEVICE_HASHES: the provisioning certificate's root is not among AMT's
                # trusted root hashes: a certificate (or MEBx hash) matter, no suffix fixes it
                r"hash does not exists? in list of trusted root certificates|"
                r"rpsauthenticationfailed", re.I), "config_error", False),
    (re.compile(r"failed to (?:activate in|upgrade to) (admin|client) control mode|"
                r"invalid domain certificate|acm activation failed|tls acm setup failed|"
                r"it is in unknown mode", re.I), "internal_error", False),
    (re.compile(r"failed to get amt (profile|domain certificate) from database|failed to save device information|"
                r"error connecting to rps|rps connection closed|connection closed unexpectedly|connection refused|"
                r"no such host|i/o timeout|network is unreachable|no route to host|connection reset|bad handshake|"
                r"dial tcp|unexpected eof|\b50[234]\b|service unavailable|unable to connect", re.I),
     "server_error", True),
    (re.compile(r"x509:|tls: |certificate signed by unknown authority", re.I), "config_error", False),
)

#: AMT was activated before this attempt, said in so many words: rpc-go 2.x local activation "Device is
#: already activated" (internal/local/activate.go, exit 111), 3.x "device is already activated (control
#: mode: N)" (internal/commands/activate/local.go), RPS "Device <uuid> already enabled in admin control
#: mode." (Validator.ts verifyCurrentModeForActivation: a client-mode profile for an ACM device). Read on
#: error-level and plain lines only: RPS's info-level "Device already activated" progress and its status
#: "already enabled in admin mode." belong to a takeover that went on.
_ALREADY = re.compile(r"\balready (?:activated|enabled in (?:admin|client) control mode)", re.I)

_SUFFIX_IN_MESSAGE = re.compile(r"Specified AMT domain suffix:\s*(?P<s>\S*?)\s+does not match", re.I)
_EXIT_LINE = re.compile(r"^Error \d+: \w+$")
_RPS_WRAP = re.compile(r"^(?:RPS activation failed:\s*)?rps returned error:\s*", re.I)
#: RPS's success status (the control mode it reached, said first: "Admin control mode.", "Activated to admin
#: control mode.", "already enabled in admin mode.") and rpc-go's own ("Device activated successfully via RPS",
#: 3.x remote.go; "Device activated in Admin Control Mode", rpc-go's local and 3.x ACM paths, also what rpc-go's
#: e2e tests expect of a remote activation). The mode is the whole status, not a word inside a failure
#: sentence ("Failed to activate in admin control mode.") or a progress line.
_SUCCESS = re.compile(r"^(?:Status:\s*)?(?:device\s+)?(?:(?:activated|upgraded)\s+(?:in|to)\s+|"
                      r"already enabled in\s+)?(?:admin|client)(?: control)? mode\.?$|"
                      r"^(?:Status:\s*)?device activated successfully via rps\.?$", re.I)
_COMPONENT_OK = re.compile(r"^\s*Activation:\s+(Activated|Upgraded|Admin control|Client control|already)", re.I)
_NOT_FOUND = re.compile(r"command not found|is not recognized as an internal or external command|"
                        r"no such file or directory|the term '.*' is not recognized", re.I)
_PROMPT = re.compile(r"(please enter )?amt password:", re.I)
_ACCESS = re.compile(r"failed to execute due to access issues|ensure that intel me is present", re.I)

EVIDENCE_CAP = 2000


def cap(text: str, limit: int = EVIDENCE_CAP) -> str:
    """Raw text kept as evidence, cut to ``limit`` characters with a note of how much was left out."""
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass(frozen=True)
class ActivationReport:
    """What one ``rpc activate`` run says: evidence and a hint, never the verdict on its own.

    rpc-go 2.x exits 0 when RPS answers with an error (it logs the message and returns), so the exit
    status alone proves nothing; the caller confirms with ``rpc amtinfo`` and the MPS record.
    """

    exit_status: int
    exit_name: str
    claims_success: bool  # rpc-go logged RPS's success status (or 3.x's JSON summary said success)
    server_error: str  # the RPS/rpc-go error message, unwrapped; "" when none was logged
    hint: str | None  # suffix_blank | suffix_mismatch | auth_failed | config_error | internal_error |
    #                   server_error | tool_error | unsupported_version | unverified; None when nothing went wrong
    transient: bool
    reported_suffix: str  # the suffix RPS says rpc-go reported (a mismatch message names it)
    success_status: str
    problems: tuple[str, ...]  # garbage, truncation, prompts: why the output can't be trusted as is
    evidence: str  # short human summary
    raw: str  # both streams, capped

    @property
    def rejected(self) -> bool:
        return bool(self.server_error) or self.exit_status != 0


def _status_text(msg: str) -> str:
    """rpc-go before 2.x's StatusMessage decoding logged RPS's answer as it came, a JSON object
    (``ERRO[0011] {"Status":"Device ... activation failed. ..."}``, rpc-go issue #27): its Status is the message."""
    if msg.startswith("{") and msg.endswith("}"):
        try:
            data = json.loads(msg)
        except json.JSONDecodeError:
            return msg
        if isinstance(data, dict) and isinstance(data.get("Status"), str) and data["Status"].strip():
            return data["Status"].strip()
    return msg


def _is_success(msg: str) -> bool:
    return bool(_SUCCESS.match(msg) or _COMPONENT_OK.match(msg))


def _json_status(stdout: str) -> dict:
    """The last JSON object printed on stdout (tools that answer one status object, e.g. amt-hi)."""
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


def _json_summary(stdout: str) -> dict:
    """rpc-go 3.x ``activate --json`` prints one summary object on stdout (remote.go outputResult)."""
    text = stdout.strip()
    if not text.startswith("{"):
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) and "status" in data and "level" not in data else {}


def _server_error(errors: list[str], summary: dict) -> str:
    """The RPS/rpc-go error message: the innermost of 3.x's wrappers, never rpc-go's closing exit line."""
    server_error = ""
    # rpc-go's last line restates its exit code ("Error 107: AMTFeaturesConfigurationFailed", cmd/rpc/main.go
    # handleErrorAndExit): the message is the line before it, when there is one
    said = [m for m in errors if not _EXIT_LINE.match(m)] or errors
    for msg in reversed(said):  # the RPS message is the innermost one: unwrap 3.x's wrappers
        inner = _RPS_WRAP.sub("", msg).strip()
        if inner:
            server_error = inner if not server_error or len(inner) < len(server_error) else server_error
    if errors and not server_error:
        server_error = errors[-1]
    if _text(summary.get("status")).lower() == "failed" and not server_error:
        server_error = _text(summary.get("message")) or "rpc reported status failed"
    return server_error


def _message_hint(server_error: str, errors: list[str], others: list[str], failed_exit: bool, code_hint: str,
                  password_sent: bool, problems: list[str]) -> tuple[str | None, bool]:
    """(hint, transient) from the messages, the exit code's meaning and a password prompt."""
    hint, transient = None, False
    text = " ".join([server_error, *errors])
    for pattern, h, tr in _MESSAGE_HINTS:
        if text and pattern.search(text):
            hint, transient = h, tr
            break
    if hint is None and (server_error or failed_exit):
        hint = code_hint
    if any(_PROMPT.search(o) for o in others):
        if password_sent:
            problems.append("rpc prompted for the AMT password: AMT_PASSWORD did not reach it")
            hint = hint if hint not in (None, "internal_error") else "auth_failed"
        else:
            problems.append("rpc prompted for AMT's password, which it asks only of an activated AMT")
            hint = hint if hint not in (None, "internal_error", "auth_failed") else "already_activated"
    if _ALREADY.search(" ".join([*errors, *others])):
        hint, transient = "already_activated", False
    return hint, transient


def read_activation(exit_status: int, stdout: str, stderr: str, *, password_sent: bool = False) -> ActivationReport:
    """Read ``rpc activate``'s exit status and both streams (2.x and 3.x, text or JSON logs).

    ``password_sent``: AMT's current password was handed to rpc (AMT_PASSWORD). rpc-go asks for the password
    only when AMT reports it is activated (2.x internal/rps/message.go: ``CurrentMode != 0``; 3.x
    activate.go, issue #1346), so a prompt when none was sent means "already activated", not a wrong
    password; a prompt when one was sent means it did not reach rpc (sudo's env_reset, say)."""
    entries = [LogLine(e.level, _status_text(e.msg), e.stream)
               for e in parse_log(stdout, "stdout") + parse_log(stderr, "stderr")]
    summary = _json_summary(stdout)
    if summary:
        entries = [e for e in entries if e.stream != "stdout"]
    said_ok = [i for i, e in enumerate(entries) if e.level == "info" and _is_success(e.msg)]
    # RPS's success status is its last word on the activation: an error logged before it was recovered from
    # (rpc-go 3.x logs "device or resource busy" when LMS is busy, then falls back to the MEI and goes on,
    # rpc-go issue #1065); errors after it (a configuration step that failed once AMT was activated) stand
    last_ok = said_ok[-1] if said_ok else -1
    errors = [e.msg for i, e in enumerate(entries) if e.level in ERROR_LEVELS and i > last_ok]
    recovered = [e.msg for i, e in enumerate(entries) if e.level in ERROR_LEVELS and i < last_ok]
    others = [e.msg for e in entries if not e.level]
    problems: list[str] = []
    if recovered:
        problems.append(f"{len(recovered)} error line(s) before rpc's success status, recovered from: "
                        + "; ".join(recovered)[:300])
    server_error = _server_error(errors, summary)
    success = [entries[i].msg for i in said_ok]
    claims = bool(success) or _text(summary.get("status")).lower() == "success"
    name, code_hint = exit_meaning(exit_status)
    everything = "\n".join([stdout or "", stderr or ""])

    hint: str | None = None
    transient = False
    if _NOT_FOUND.search(everything) and not entries_have_rpc(entries):
        hint = "tool_error"
        problems.append("rpc is not installed or not on PATH (the shell could not find it)")
    elif _ACCESS.search(everything):
        hint = "tool_error"
        problems.append("rpc could not open the MEI: not elevated, or no MEI driver")
    else:
        hint, transient = _message_hint(server_error, errors, others, exit_status != 0, code_hint, password_sent,
                                        problems)
    garbage = [o for o in others if not _PROMPT.search(o)]
    if garbage:
        truncated = [o for o in garbage if o.startswith("{")]
        if truncated:
            problems.append(f"{len(truncated)} log line(s) cut short (not valid JSON): output truncated?")
        if len(garbage) > len(truncated):
            problems.append(f"{len(garbage) - len(truncated)} line(s) that are not rpc-go log entries")
    if exit_status == -1:
        problems.append("no exit status: the session ended before rpc finished")
        hint = hint or "unverified"
    if hint is None and not claims:
        hint = "unverified"
        problems.append("rpc exited 0 without an error and without a success status")

    m = _SUFFIX_IN_MESSAGE.search(server_error)
    parts = [f"exit {exit_status} ({name})" if exit_status else "exit 0"]
    if server_error:
        parts.append(f"error: {server_error}")
    if success:
        parts.append(f"status: {success[-1]}")
    elif claims:
        parts.append(f"status: {_text(summary.get('message'))}")
    parts += problems
    raw = "\n".join(x for x in (f"[stdout]\n{stdout}" if stdout else "", f"[stderr]\n{stderr}" if stderr else "") if x)
    return ActivationReport(
        exit_status=exit_status, exit_name=name, claims_success=claims and hint is None,
        server_error=server_error, hint=hint, transient=transient,
        reported_suffix=(m["s"].rstrip(".").lower() if m else ""),
        success_status=success[-1] if success else _text(summary.get("message")),
        problems=tuple(problems), evidence=cap("; ".join(parts), 1000), raw=cap(raw))


def entries_have_rpc(entries: list[LogLine]) -> bool:
    """Did rpc itself log anything? A "no such file" logged by rpc is not a missing rpc."""
    return any(e.level for e in entries)
