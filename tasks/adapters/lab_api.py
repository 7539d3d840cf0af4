"""The lab's provisioning-server API (`provisioning.server: lab`): a stand-in server with a plain REST API."""

from __future__ import annotations

import httpx

from tasks.adapters.provisioner import ProvisionOutcome
from tasks.inventory.model import Host


class LabProvisioner:
    """The lab's provisioning-server API (stand-in for the console the fleet migrates to)."""

    name = "lab"

    def __init__(self, url: str, profile: str, *, timeout: float = 60.0, max_connections: int = 100):
        self.url = url.rstrip("/")
        self.profile = profile
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.url, timeout=timeout, limits=limits)

    def provision(self, host: Host) -> ProvisionOutcome:
        try:
            resp = self._client.post("/api/v1/provision", json={"host": host.name, "profile": self.profile})
        except httpx.TransportError as exc:  # refused, reset, timed out: no answer about the host at all
            return ProvisionOutcome(False, "server_unreachable",
                                    f"provisioning server {self.url} unreachable: {type(exc).__name__}", transient=True)
        if resp.status_code in (502, 504):
            # a gateway answering for a server it could not reach (RFC 9110 15.6.3/15.6.5): the server itself is
            # away, as when it refuses connections; a 500/503 is the server's own answer about this request
            return ProvisionOutcome(False, "server_unreachable",
                                    f"provisioning server {self.url}: its gateway answered {resp.status_code}",
                                    transient=True, evidence={"http_status": resp.status_code})
        if resp.status_code >= 500:
            return ProvisionOutcome(False, "server_error", f"provisioning server answered {resp.status_code}",
                                    transient=True, evidence={"http_status": resp.status_code})
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200:
            return ProvisionOutcome(False, "server_error",
                                    f"provisioning server answered {resp.status_code}: {str(body.get('message', ''))[:200]}",
                                    evidence={"http_status": resp.status_code})
        ok = body.get("result") == "success"
        return ProvisionOutcome(ok, None if ok else (body.get("error_code") or "internal_error"),
                                str(body.get("message", ""))[:500],
                                evidence={"attempt": body.get("attempt"), "after_success": body.get("after_success")})

    def is_provisioned(self, host: Host) -> bool | None:
        try:
            resp = self._client.get("/api/v1/attempts", params={"host": host.name})
        except httpx.TransportError:
            return None
        if resp.status_code != 200:
            return None
        return any(a.get("result") == "success" for a in resp.json())

    def close(self) -> None:
        self._client.close()
