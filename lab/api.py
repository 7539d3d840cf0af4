"""HTTP API of the new provisioning server (the console the fleet migrates to) plus the lab's admin view.

The provisioning endpoints say no more than a real server would: a failure reaching the device gets
one generic message whatever the cause. The admin endpoints are the lab's omniscient view (true
failure reason, both AMT suffixes, the window) and its controls (MEBx, faults, clock).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import select
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from lab.amt_rules import InvalidName, seconds
from lab.model import LOOPBACK, DeviceUnreachable, Fleet, LabError, ServerBusy, UnknownDevice, _iso

log = logging.getLogger("lab.api")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "amt-lab-provisioning/1.0"
    server: "_ApiHTTPServer"

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if self.headers.get_content_type() == "application/x-www-form-urlencoded":  # curl --data-urlencode
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    def _sleep(self, dev, op: str) -> None:
        delay = self.server.fleet.latency_for(dev, op)
        if delay:
            self.server.stop_event.wait(delay)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    # -------------------------------------------------------------- Intel DMT: MPS and RPS REST
    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _dmt(self, method: str, parts: list[str], query: str, body: dict) -> None:
        """MPS and RPS behind Kong's paths (cloud-deployment/kong.yaml): shapes from their source,
        research/rpc.md 4.3-5.2. The lab's admin user/password come from the fleet file's ``dmt:``."""
        fleet = self.server.fleet
        cfg = fleet.extra.get("dmt") or {}
        if method == "POST" and parts == ["mps", "login", "api", "v1", "authorize"]:  # src/routes/auth/login.ts
            user, password = body.get("username"), body.get("password")
            errors = [{"msg": m, "param": p, "location": "body"} for p, m, v in
                      (("username", "User name is required", user), ("password", "Password is required", password))
                      if not v]
            if errors:
                return self._json(400, {"errors": errors})
            if str(user).lower() != str(cfg.get("user", "admin")).lower() or password != cfg.get("password", "lab-Pa55w0rd"):
                return self._json(401, {"message": "Incorrect Username and/or Password!"})
            token = secrets.token_hex(24)
            self.server.dmt_tokens.add(token)
            return self._json(200, {"token": token})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.server.dmt_tokens:
            return self._json(401, {"message": "Unauthorized"})  # Kong's jwt plugin
        if method == "GET" and len(parts) == 5 and parts[:4] == ["mps", "api", "v1", "devices"]:
            guid = parts[4].lower()
            if not _UUID.match(guid):
                return self._json(400, {"errors": [{"msg": "guid must be a UUID", "param": "guid"}]})
            with fleet._lock:
                rec = fleet.mps_devices.get(guid)
            return self._json(200, rec) if rec is not None else self._empty(404)  # 404 with an empty body
        if method == "GET" and parts == ["rps", "api", "v1", "admin", "domains"]:  # routes/admin/domains/all.ts
            q = parse_qs(query)
            top = int(q.get("$top", ["25"])[-1])
            skip = int(q.get("$skip", ["0"])[-1])
            domains = fleet.rps_domains()
            page = domains[skip:skip + top]
            if q.get("$count", ["false"])[-1] == "true":
                return self._json(200, {"data": page, "totalCount": len(domains)})
            return self._json(200, page)
        # Kong's own answer when no route matches (Kong issue #10483: "404 - no Route matched with those values")
        return self._json(404, {"message": "no Route matched with those values"})

    def _route(self, method: str) -> None:
        fleet = self.server.fleet
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            body = self._body() if method == "POST" else {}
        except (ValueError, json.JSONDecodeError) as exc:
            return self._json(400, {"error": "bad_request", "message": f"invalid JSON body: {exc}"})
        try:
            if method == "POST" and parts == ["api", "v1", "provision"]:
                return self._provision(body)
            if method == "GET" and parts == ["api", "v1", "attempts"]:
                q = parse_qs(url.query)
                names = q.get("host") or list(fleet.devices)
                out = []
                with fleet._lock:
                    fleet.tick()
                    for n in names:
                        dev = fleet.device(n)
                        out += [dict(fleet.public_attempt(a), host=dev.name) for a in dev.attempts]
                return self._json(200, out)
            if parts[:1] in (["mps"], ["rps"]):
                return self._dmt(method, parts, url.query, body)
            if method == "GET" and parts == ["healthz"]:
                return self._json(200, {"status": "ok", "devices": len(fleet.devices)})
            if parts[:1] == ["admin"]:
                return self._admin(method, parts[1:], body)
            return self._json(404, {"error": "not_found", "message": f"no route {method} {url.path}"})
        except UnknownDevice as exc:
            return self._json(404, {"error": "unknown_host", "message": str(exc)})
        except (InvalidName, ValueError, LabError) as exc:
            return self._json(400, {"error": "bad_request", "message": str(exc)})

    def _provision(self, body: dict) -> None:
        fleet = self.server.fleet
        key = body.get("host") or body.get("address")
        if not key or not isinstance(key, str):
            return self._json(400, {"error": "bad_request", "message": "give \"host\" (device name) or \"address\""})
        profile = str(body.get("profile") or "default")
        dev = fleet.device(key)
        self._sleep(dev, "provision")
        try:
            rec = fleet.provision(dev.name, profile=profile, source="server")
        except ServerBusy as exc:
            return self._json(503, {"error": "service_unavailable", "message": str(exc), "host": dev.name})
        except DeviceUnreachable:
            return self._json(200, {"host": dev.name, "attempt": None, "result": "failed",
                                    "error_code": "device_unreachable",
                                    "message": f"Device {dev.name} is unreachable: no response from the AMT device."})
        return self._json(200, {"host": dev.name, "attempt": rec["attempt"], "result": rec["result"],
                                "error_code": rec["error_code"], "message": rec["message"],
                                "after_success": rec["after_success"]})

    def _admin(self, method: str, parts: list[str], body: dict) -> None:
        fleet = self.server.fleet
        if method == "POST" and parts == ["exec"]:
            return self._exec(body)
        if method == "GET" and parts == ["devices"]:
            self._sleep(None, "admin")
            return self._json(200, fleet.admin_list())
        if len(parts) >= 2 and parts[0] == "devices":
            dev = fleet.device(parts[1])
            self._sleep(dev, "admin")
            if method == "GET" and len(parts) == 2:
                return self._json(200, fleet.admin_view(dev.name))
            if method == "POST" and parts[2:] == ["mebx"]:
                if "trusted_suffix" not in body:
                    raise ValueError('give {"trusted_suffix": "..."}')
                fleet.mebx_set_trusted_suffix(dev.name, body["trusted_suffix"])
                return self._json(200, fleet.admin_view(dev.name))
            if method == "POST" and parts[2:] == ["faults"]:
                faults = body.get("faults")
                if not isinstance(faults, list):
                    raise ValueError('give {"faults": [...]}')
                fleet.set_faults(dev.name, faults)
                return self._json(200, fleet.admin_view(dev.name))
            if method == "POST" and parts[2:] == ["renew"]:
                return self._json(200, fleet.dhcp_renew(dev.name, source="admin"))
        if method == "POST" and parts == ["rpc"]:  # which rpc-go major the clients run (fleet or one device)
            version = int(body.get("version", 2))
            if version not in (2, 3):
                raise ValueError("rpc version is 2 or 3")
            with fleet._lock:
                if body.get("device"):
                    fleet.rpc_major_of[fleet.device(str(body["device"])).name] = version
                else:
                    fleet.rpc_major = version
            return self._json(200, {"version": version, "device": body.get("device")})
        if method == "DELETE" and len(parts) == 3 and parts[:2] == ["mps", "devices"]:
            with fleet._lock:
                fleet.mps_devices.pop(parts[2].lower(), None)
            return self._json(200, {"deleted": parts[2]})
        if parts == ["clock"]:
            clock = fleet.clock
            if method == "POST":
                if not getattr(clock, "manual", False):
                    return self._json(409, {"error": "conflict", "message": "the lab runs on a real clock"})
                clock.advance(seconds(body.get("advance", 0)))
            ran = fleet.tick()
            return self._json(200, {"now": _iso(clock.now()), "manual": bool(getattr(clock, "manual", False)),
                                    "events_run": ran})
        return self._json(404, {"error": "not_found", "message": f"no admin route {method} /admin/{'/'.join(parts)}"})

    # -------------------------------------------------------------- OpenSSH bridge (lab/openssh.py)
    def _exec(self, body: dict) -> None:
        """Run one command on the device dialled, exactly as the lab's own SSH server would.

        ``format=sh`` (query or body) answers a POSIX sh snippet that replays stdout, stderr and the
        exit status, for the ForceCommand script in front of a real sshd; ``format=raw`` answers
        ``"<exit> <stdout bytes> <stderr bytes>\n"`` then both streams, for the compiled bridge; else JSON.
        """
        url = urlsplit(self.path)
        fmt = body.get("format") or parse_qs(url.query).get("format", [""])[-1]
        fmt = fmt if fmt in ("sh", "raw") else "json"
        address, command, user = body.get("address"), body.get("command", ""), body.get("user") or ""
        if not isinstance(address, str) or not isinstance(command, str) or not isinstance(user, str):
            return self._exec_reply(fmt, 400, None, 255, "", "amt-lab bridge: give address, command (text)\n",
                                    dropped=True, error="bad_request")
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            ip = None
        if ip is None or ip not in LOOPBACK:
            return self._exec_reply(fmt, 403, None, 255, "", f"amt-lab bridge: {address!r} is not a 127.0.0.0/8 "
                                    "address: refused\n", dropped=True, error="forbidden")
        fleet = self.server.fleet
        with _exec_count_lock:
            self.server.exec_count = getattr(self.server, "exec_count", 0) + 1
        dev = fleet.by_address.get(str(ip))
        if dev is None:  # the lab's own listener resets such connections
            return self._exec_reply(fmt, 404, None, 255, "", f"amt-lab bridge: no device at {ip}: connection "
                                    "reset\n", dropped=True, error="unknown_host")
        faults = dev.faults
        if faults.down:
            return self._exec_reply(fmt, 200, dev, 255, "", f"Connection to {ip} closed by remote host "
                                    "(amt-lab fault: down)\n", dropped=True, fault="down")
        if faults.ssh_auth:  # sshd already authenticated us: the nearest thing is to drop the session
            return self._exec_reply(fmt, 200, dev, 255, "", f"Permission denied (publickey) for {ip} (amt-lab "
                                    "fault: ssh_auth, modelled behind OpenSSH as a dropped session)\n",
                                    dropped=True, fault="ssh_auth")
        stop = self.server.stop_event
        if faults.hung or faults.blackhole:  # never answer: hold until the client or the lab goes away
            self._hold(stop)
            return self._exec_reply(fmt, 200, dev, 255, "", "amt-lab: lab stopped\n", dropped=True,
                                    fault="hung" if faults.hung else "blackhole")
        delay = fleet.latency_for(dev, "ssh") + faults.slow
        if delay and stop.wait(delay):
            return self._exec_reply(fmt, 200, dev, 255, "", "amt-lab: lab stopped\n", dropped=True)
        if not command.strip():
            return self._exec_reply(fmt, 200, dev, 1, "", "amt-lab: this host answers exec requests only, "
                                    "no interactive shell\n")
        from lab.shell import DeviceShell

        res = DeviceShell(fleet, dev, user, sleep=lambda s: s and stop.wait(s)).run(command)
        return self._exec_reply(fmt, 200, dev, res.status, res.stdout, res.stderr)

    def _hold(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return  # the bridge hung up
            except OSError:
                return

    def _exec_reply(self, fmt: str, http_status: int, dev, exit_status: int, stdout: str, stderr: str, *,
                    dropped: bool = False, fault: str | None = None, error: str | None = None) -> None:
        if fmt == "json":
            obj = {"device": dev.name if dev is not None else None, "exit_status": exit_status,
                   "stdout": stdout, "stderr": stderr, "dropped": dropped, "fault": fault}
            if error:
                obj["error"] = error
            return self._json(http_status, obj)
        if fmt == "raw":
            out, err = stdout.encode(), stderr.encode()
            data = f"{int(exit_status) & 0xFF} {len(out)} {len(err)}\n".encode() + out + err
            content_type = "application/octet-stream"
        else:
            data, content_type = _sh_reply(exit_status, stdout, stderr), "text/x-shellscript; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _sh_reply(exit_status: int, stdout: str, stderr: str) -> bytes:
    lines = []
    if stdout:
        lines.append(f"printf %s {_sh_quote(stdout)}")
    if stderr:
        lines.append(f"printf %s {_sh_quote(stderr)} >&2")
    lines.append(f"exit {int(exit_status) & 0xFF}")
    return ("\n".join(lines) + "\n").encode()


_exec_count_lock = threading.Lock()


def _sh_quote(text: str) -> str:
    """One POSIX sh word holding ``text`` verbatim (single quotes; ' becomes '\\'')."""
    return "'" + text.replace("'", "'\\''") + "'"


class _ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.open_connections: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    # a stopped server must not go on answering on kept-alive connections: a server (or gateway) that goes
    # away resets them, so stop() shuts down every connection it still holds
    def process_request(self, request, client_address):
        with self._open_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            conns = list(self.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ApiService:
    def __init__(self, fleet: Fleet, port: int = 0, host: str = "127.0.0.1"):
        self.fleet = fleet
        self.httpd = _ApiHTTPServer((host, port), _Handler)
        self.httpd.fleet = fleet
        self.httpd.stop_event = threading.Event()
        self.httpd.dmt_tokens = set()
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="lab-api", daemon=True)

    def start(self) -> "ApiService":
        self._thread.start()
        return self

    def stop(self) -> None:
        # listener first, then the connections it holds (a request in flight loses its answer, as when a server
        # or its gateway goes away mid-request), then wake the handlers still sleeping out their latency
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.drop_connections()
        self.httpd.stop_event.set()
        self._thread.join(timeout=5)
