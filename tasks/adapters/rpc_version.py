"""What ``rpc version`` prints, in each form rpc-go has printed it, read by structure. No I/O here.

- 2.x text: three lines, ``RPC``, ``Version 2.15.0``, ``Protocol 4.0.0`` (rpc-go issue #227 shows them);
- 3.x text (internal/commands/version.go): ``renderInfoHeader("RPC")`` (the title, a line of ``─``), then
  ``renderInfoRow`` rows (two spaces, the label padded to 30 columns, the value): Version, Protocol, Commit,
  Built, Go, Platform;
- ``--json`` (3.x; 2.x ``-json``): one object, ``app``, ``version``, ``protocol`` (3.x adds ``commit``,
  ``date``, ``go``, ``platform``), indented by ``json.MarshalIndent``.

A build without a release version says ``Development Build`` (utils.ProjectVersion's default): its major is
unknown, never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tasks.rules.suffix import InvalidValue

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_ROW = re.compile(r"^\s*(?P<label>Version|Protocol)(?:\s*:\s*|\s+)(?P<value>\S.*?)\s*$", re.I)
_SEMVER = re.compile(r"^v?(?P<major>\d+)\.\d+(?:\.\d+)?(?:[-+][\w.\-+]*)?$")


@dataclass(frozen=True)
class RpcVersion:
    version: str  # as printed, without a leading "v"
    protocol: str = ""
    form: str = ""  # json | text

    @property
    def major(self) -> int | None:
        m = _SEMVER.match(self.version)
        return int(m["major"]) if m else None


def parse_rpc_version(stdout: str) -> RpcVersion:
    text = _ANSI.sub("", stdout or "").replace("\r", "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"could not read rpc version: not JSON ({exc.msg})") from None
        if isinstance(data, dict) and str(data.get("version") or "").strip():
            return RpcVersion(str(data["version"]).strip().lstrip("v"), str(data.get("protocol") or ""), "json")
        raise InvalidValue("could not read rpc version: its JSON has no version")
    rows = {m["label"].lower(): m["value"] for m in (_ROW.match(x) for x in text.splitlines()) if m}
    if "version" in rows:
        return RpcVersion(rows["version"].lstrip("v"), rows.get("protocol", ""), "text")
    raise InvalidValue(f"could not read rpc version: no Version row in {text[:80]!r}")
