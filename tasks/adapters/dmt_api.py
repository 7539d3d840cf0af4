"""The new provisioning server's REST API: Intel Device Management Toolkit's MPS and RPS.

Shapes from their source (research/rpc.md sections 4.3-5.2): a JWT from MPS ``POST /api/v1/authorize``
(``{"username", "password"}`` -> ``{"token"}``; 401 on bad credentials) serves both services behind
the Kong gateway (cloud-deployment/kong.yaml: ``/mps/login/api/v1/authorize`` unauthenticated,
``/mps/...`` and ``/rps/...`` with ``Authorization: Bearer``). MPS ``GET /api/v1/devices/{guid}``:
200 the record, 404 (empty body) unknown, 204 another tenant's. RPS ``GET /api/v1/admin/domains``:
a bare array, or ``{"data", "totalCount"}`` with ``$count=true``; ``$top`` defaults to 25, so pages
are walked. The password is held as a `Secret` and only ever sent in the authorize body.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from tasks.inventory.secrets import Secret
from tasks.rules.suffix import InvalidValue, normalize_dns_name


class DmtApiError(Exception):
    """The API could not answer (unreachable, refused our credentials, odd reply). Never holds a secret."""


@dataclass(frozen=True)
class RpsDomain:
    """One RPS domain: a provisioning certificate for one DNS suffix."""

    profile_name: str
    suffix: str
    expires: datetime | None


@dataclass(frozen=True)
class MpsDevice:
    guid: str
    hostname: str = ""
    dns_suffix: str = ""
    tenant_id: str = ""
    other_tenant: bool = False  # MPS answered 204: the record exists under another tenant


class DmtApi(Protocol):
    def device(self, guid: str) -> MpsDevice | None:
        """The MPS record of a device, None when MPS does not know it; raises DmtApiError when it can't tell."""

    def domains(self) -> list[RpsDomain]: ...

    def close(self) -> None: ...


def _expiry(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_domain(item: dict) -> RpsDomain:
    """One element of RPS's domains list (models/index.ts AMTDomain)."""
    if not isinstance(item, dict):
        raise InvalidValue("an RPS domain is a JSON object")
    return RpsDomain(str(item.get("profileName") or ""),
                     normalize_dns_name(str(item.get("domainSuffix") or ""), allow_blank=False),
                     _expiry(item.get("expirationDate")))


def _json(body: bytes):
    try:
        return json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None


def parse_device_answer(status: int, body: bytes, guid: str) -> MpsDevice | None:
    """MPS's answer to ``GET /api/v1/devices/{guid}`` (mps src/routes/devices/get.ts and its tests): 200 the
    record, 204 with no body when the device is another tenant's, 404 with NO body when MPS has no such device
    (older MPS: a JSON error naming the device). A 404 with any other body is not MPS speaking of this device
    but something in front of it: Kong's ``{"message":"no Route matched with those values"}`` (Kong issue
    #10483), an HTML "Cannot GET" page: the URL or route is wrong, and "not registered" would be a wrong answer."""
    guid = guid.lower()
    text = body.strip()
    if status == 404:
        if not text:
            return None
        data = _json(text)
        if isinstance(data, dict) and guid in json.dumps(data).lower():
            return None
        raise DmtApiError(f"GET device {guid} answered 404 from something other than MPS ({text[:80]!r}): "
                          "check provisioning.api's URL (the gateway's /mps route)")
    if status == 204:
        return MpsDevice(guid, other_tenant=True)
    if status != 200:
        raise DmtApiError(f"MPS GET device {guid} answered {status}")
    data = _json(text)
    if data is None:
        raise DmtApiError(f"MPS GET device {guid}: not JSON ({text[:60]!r})")
    if not isinstance(data, dict) or str(data.get("guid", "")).lower() != guid:
        raise DmtApiError(f"MPS GET device {guid}: the record is for another guid")
    return MpsDevice(guid, str(data.get("hostname") or ""), str(data.get("dnsSuffix") or ""),
                     str(data.get("tenantId") or ""))


class DmtClient:
    """MPS/RPS behind one gateway URL (Kong paths). Thread-safe; the token is fetched once and
    refreshed on a 401."""

    MPS_AUTHORIZE = "/mps/login/api/v1/authorize"
    MPS_DEVICE = "/mps/api/v1/devices/{guid}"
    RPS_DOMAINS = "/rps/api/v1/admin/domains"

    def __init__(self, url: str, user: str, password: Secret, *, verify_tls: bool = True, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.user = user
        self._password = password
        self._client = httpx.Client(base_url=self.url, timeout=timeout, verify=verify_tls)
        self._token: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DmtClient({self.url!r}, user={self.user!r})"

    def _authorize(self) -> str:
        try:
            resp = self._client.post(self.MPS_AUTHORIZE, json={"username": self.user,
                                                               "password": self._password.reveal()})
        except httpx.HTTPError as exc:
            raise DmtApiError(f"MPS authorize at {self.url}: {type(exc).__name__}") from None
        if resp.status_code == 401:
            raise DmtApiError(f"MPS at {self.url} refused user {self.user!r} (401): check the password reference")
        if resp.status_code != 200:
            raise DmtApiError(f"MPS authorize at {self.url} answered {resp.status_code}")
        try:
            token = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise DmtApiError("MPS authorize answered 200 without a token") from None
        if not isinstance(token, str) or not token:
            raise DmtApiError("MPS authorize answered an empty token")
        return token

    def _get(self, path: str, params: dict | None = None) -> httpx.Response:
        for attempt in (1, 2):
            with self._lock:
                if self._token is None:
                    self._token = self._authorize()
                token = self._token
            try:
                resp = self._client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                raise DmtApiError(f"GET {path}: {type(exc).__name__}") from None
            if resp.status_code == 401 and attempt == 1:
                with self._lock:
                    self._token = None  # expired (jwt_expiration): authorize again, once
                continue
            return resp
        raise DmtApiError(f"GET {path}: 401 after a fresh token")

    def device(self, guid: str) -> MpsDevice | None:
        guid = str(guid).strip().lower()
        if not guid or not all(c in "0123456789abcdef-" for c in guid):
            raise DmtApiError(f"{guid[:40]!r} is not a device GUID")
        resp = self._get(self.MPS_DEVICE.format(guid=guid))
        return parse_device_answer(resp.status_code, resp.content, guid)

    def domains(self) -> list[RpsDomain]:
        out: list[RpsDomain] = []
        skip, page = 0, 100
        while True:
            resp = self._get(self.RPS_DOMAINS, params={"$top": page, "$skip": skip, "$count": "true"})
            if resp.status_code != 200:
                raise DmtApiError(f"RPS GET domains answered {resp.status_code}")
            try:
                body = resp.json()
            except ValueError:
                raise DmtApiError("RPS GET domains: not JSON") from None
            items, total = (body, None) if isinstance(body, list) else (body.get("data"), body.get("totalCount"))
            if not isinstance(items, list):
                raise DmtApiError("RPS GET domains: neither a list nor {data, totalCount}")
            try:
                out += [parse_domain(i) for i in items]
            except InvalidValue as exc:
                raise DmtApiError(f"RPS domain with a bad suffix: {exc}") from None
            skip += len(items)
            if not items or total is None or skip >= int(total):
                return out

    def close(self) -> None:
        self._client.close()


def make_dmt_client(inv) -> DmtClient | None:
    """The inventory's provisioning.api, or None; raises SecretUnavailable when its password is missing."""
    from tasks.inventory.secrets import provisioning_api_password

    api = inv.provisioning.api
    if api is None:
        return None
    return DmtClient(api.url, api.user, provisioning_api_password(inv), verify_tls=api.verify_tls)
