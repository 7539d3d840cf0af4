"""Commands the migration runs on hosts, and parsers for what they print. No I/O here.

Every command is built from an argv list whose data-derived parts (suffixes, names, URLs, interface
names) are validated first, then quoted for the target's shell. The parsers are written against the
real tools' output (ipconfig, resolv.conf, rpc-go, the site's host-interface tool), because the
migration's verdicts are only as good as what it reads back.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from enum import StrEnum

from tasks.suffix_rules import InvalidValue


class OsFlavor(StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"


# --------------------------------------------------------------------------------------------------
# Quoting
# --------------------------------------------------------------------------------------------------

#: Characters a data-derived argument may hold on any target: no shell syntax, no whitespace, no quotes.
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/=@+,-]+$")
#: cmd.exe has no reliable quoting, so Windows tokens are restricted to characters cmd never interprets
#: (no & | < > ^ % ! ( ) " ' ; whitespace). The backslash is allowed for paths.
_WINDOWS_TOKEN = re.compile(r"^[A-Za-z0-9._:/\\=@+,-]+$")


def safe_token(value: str, what: str = "argument") -> str:
    """Return ``value`` if it holds no shell metacharacter or whitespace; raise InvalidValue otherwise.

    Used for data that reaches a remote command line, on top of the value's own validation, so a
    validator bug cannot become a shell injection.
    """
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{what} must be non-empty text")
    if not _SAFE_TOKEN.match(value):
        raise InvalidValue(f"{what} {value[:60]!r} holds characters not allowed on a remote command line")
    return value


def quote_posix(argv: Sequence[str]) -> str:
    """Quote an argv list for a POSIX shell (what OpenSSH's sshd hands the command to on Linux)."""
    argv = _check_argv(argv)
    for arg in argv:
        if "\x00" in arg:
            raise InvalidValue("a command argument holds a NUL byte")
    return shlex.join(argv)


def quote_windows(argv: Sequence[str]) -> str:
    """Join an argv list for cmd.exe (Win32-OpenSSH's default shell) without quoting.

    cmd.exe's quoting rules differ per program and `%`/`!` expand even inside quotes, so instead of
    quoting we allow only tokens made of characters cmd passes through untouched.
    """
    argv = _check_argv(argv)
    for arg in argv:
        if not _WINDOWS_TOKEN.match(arg):
            raise InvalidValue(f"Windows command token {arg[:60]!r} holds characters outside the allowed set")
    return " ".join(argv)


def quote_argv(argv: Sequence[str], flavor: OsFlavor | str = OsFlavor.LINUX) -> str:
    """Quote ``argv`` for the target's shell."""
    flavor = OsFlavor(flavor)
    return quote_windows(argv) if flavor is OsFlavor.WINDOWS else quote_posix(argv)


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, (str, bytes)) or not argv:
        raise InvalidValue("a command must be a non-empty list of arguments")
    out = []
    for arg in argv:
        if not isinstance(arg, str):
            raise InvalidValue(f"command arguments must be text, got {type(arg).__name__}")
        out.append(arg)
    return out
