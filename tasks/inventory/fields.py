"""The inventory's field types: validators for everything that can later reach a remote shell (names,
suffixes, addresses, tags, URLs), so no stage downstream has to trust text from a file."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator

from tasks.rules.durations import Rate, format_duration, parse_duration, parse_rate
from tasks.rules.suffix import AmtVersion, normalize_dns_name, normalize_host_name

REMEDIATION_METHODS = ("amt_write", "dhcp_renew", "mebx")


def _suffix(value):
    return normalize_dns_name(value)


def _required_suffix(value):
    return normalize_dns_name(value, allow_blank=False)


def _version(value):
    return str(AmtVersion.parse(value))


def _address(value):
    """An IP address or a DNS name: nothing else can be dialled, and nothing else is safe to quote."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"address must be an IP address or DNS name, got {type(value).__name__}")
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if text.replace(".", "").isdigit():
        raise ValueError(f"{text!r} is not a valid IPv4 address")
    try:
        return normalize_dns_name(text, allow_blank=False)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither an IP address nor a DNS name ({exc})") from None


def _tag(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError("tags are non-empty text")
    tag = value.strip()
    if not all(c.isalnum() or c in "-_." for c in tag):
        raise ValueError(f"tag {tag!r} may hold only letters, digits, '-', '_' and '.'")
    return tag


def _slug(value):
    if not isinstance(value, str):
        raise ValueError("expected text")
    text = value.strip()
    if not text or not all(c.isalnum() or c in "-_." for c in text) or text[0] in "-.":
        raise ValueError(f"{text!r}: use letters, digits, '-', '_' and '.' (it names runs, files and artifacts)")
    return text


def _env_name(value):
    if not isinstance(value, str) or not value or not (value[0].isalpha() or value[0] == "_") or not all(
        c.isalnum() or c == "_" for c in value
    ):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value



def _control_url(value):
    """An http(s) URL of a DHCP server's API: a dialable host, no characters a URL does not need."""
    import urllib.parse

    if not isinstance(value, str):
        raise ValueError("url must be text like http://kea1.example:8000/")
    text = value.strip()
    u = urllib.parse.urlsplit(text)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL")
    _address(u.hostname)
    try:
        u.port
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    if u.username or u.password or u.query or u.fragment or any(c in text for c in " '\"`$;&|<>\\\n"):
        raise ValueError(f"{text!r}: give scheme://host[:port][/path] only (no credentials, query or shell characters)")
    return text

DnsSuffix = Annotated[str, BeforeValidator(_suffix)]
RequiredSuffix = Annotated[str, BeforeValidator(_required_suffix)]
HostName = Annotated[str, BeforeValidator(normalize_host_name)]
Version = Annotated[str, BeforeValidator(_version)]
Address = Annotated[str, BeforeValidator(_address)]
Tag = Annotated[str, BeforeValidator(_tag)]
Slug = Annotated[str, BeforeValidator(_slug)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
# so many per period: 6/day (technician visits), 20/min (the provisioning server)
RateText = Annotated[Rate, PlainValidator(parse_rate), PlainSerializer(str)]
OsType = Literal["windows", "linux"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

