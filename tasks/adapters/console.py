"""Bytes a Windows console program wrote to a pipe, as text. No I/O here.

Win32-OpenSSH runs a non-interactive command as ``cmd.exe /c <command>``, so what a console program such
as ``ipconfig`` prints arrives in the console's code page: the system's OEM code page unless something set
another (PowerShell/Win32-OpenSSH#1768, maintainer's answer; cpython PR #5608 and ftao/python-ifcfg#17 for
piped ``ipconfig``). The OEM code page follows the system locale: 437 (en-US), 850 (de, fr, es, it, pt-BR,
nl), 852 (pl), 866 (ru), 932 (ja), 936 (zh-CN), 949 (ko) (Microsoft "Code Page Identifiers"). The reader is
told none of this, so the code page is recognised from the bytes among those candidates.
"""

from __future__ import annotations

#: the OEM code pages of the display languages Windows ships most, in the order a tie is settled
#: (cp850 first: it decodes the Western-European letters the way cp437 does for ä ü é, see decode_console)
OEM_CODE_PAGES = ("cp850", "cp852", "cp866", "cp949", "cp932", "cp936")


def _best_oem(raw: bytes) -> str | None:
    """The candidate code page whose text reads most like language (charset-normalizer's chaos measure,
    lowest wins; a tie goes to the earlier candidate). None when none decodes the bytes."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a dependency of the project
        return None
    results = list(from_bytes(raw, cp_isolation=list(OEM_CODE_PAGES)))
    if not results:
        return None
    rank = {name: i for i, name in enumerate(OEM_CODE_PAGES)}
    aliases = {"gbk": "cp936", "gb2312": "cp936", "euc_kr": "cp949", "shift_jis": "cp932"}

    def key(match) -> tuple[float, int]:
        name = aliases.get(match.encoding, match.encoding)
        return (round(match.chaos, 3), rank.get(name, len(rank)))

    return min(results, key=key).encoding


def decode_console(data: bytes) -> str:
    """Console output as text: a UTF-16 BOM honoured, a UTF-8 BOM dropped, UTF-8 when it is valid UTF-8
    (PowerShell told to write UTF-8, or a console switched to 65001), else the OEM code page recognised
    from the bytes (``OEM_CODE_PAGES``), cp850 when nothing fits better."""
    raw = bytes(data)
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    code_page = _best_oem(raw) or "cp850"
    return raw.decode(code_page, errors="replace")


def clean_text(text: str) -> str:
    """One text form for every reader: no BOM, LF only, NBSP (French dot leaders) as a space."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
