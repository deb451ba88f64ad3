"""The xApp's HTTP surface (RIC conventions), served from a daemon thread:

    GET /ric/v1/health/alive   200 while the process runs
    GET /ric/v1/health/ready   200 only when the model is loaded and warmed, the sockets are
                               bound and Redis answers; 503 with the reasons otherwise
    GET /ric/v1/config         the effective configuration and the model/backend in use (JSON)
    GET /ric/v1/metrics        Prometheus text format
    GET /ric/v1/policies       the A1 policy type's effective settings and instances (policy.py)
    GET /ric/v1/policytype     the A1 policy type (what the A1 mediator is given)
    PUT /ric/v1/policies/<id>  create or update an instance (JSON body); 400 with the reason if refused
    DELETE /ric/v1/policies/<id>
                               (who may PUT and DELETE: `policy.rest`, any / local / off; else 403)
    POST /ric/v1/subscriptions/response   the RIC subscription manager's notice of a subscription (the
                               E2 bridge subscribes with this Host and port; logged and counted)

Bounded: a connection idle or slow for `http.timeout_s` is closed, at most `http.max_connections`
are served at once (more are closed unanswered), the kernel queues `http.backlog` more. Clients
that go away, time out or send junk are counted (`wmfm_http_connections_total{result}`), never
logged with a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from wmfm.config import ConfigError

from .controls import HttpConfig
from .policy import POLICY_TYPE, PolicyError

MAX_BODY = 64 << 10                 # bytes of a PUT body (a policy instance is a few hundred)
POLICIES = "/ric/v1/policies"
SUBSCRIPTION_NOTICE = "/ric/v1/subscriptions/response"


_NOT_FOUND = (404, "application/json", b'{"error": "not found"}')


def _json(code: int, doc) -> tuple[int, str, bytes]:
    return int(code), "application/json", json.dumps(doc).encode()


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once (more are closed unanswered);
    a client that goes away or sends junk is counted, never a traceback in the log."""

    daemon_threads = True

    def __init__(self, cfg: HttpConfig, handler, counter):
        self.request_queue_size = cfg.backlog               # listen() backlog (socketserver's default: 5)
        self.counter = counter
        self.active = threading.BoundedSemaphore(cfg.max_connections)
        super().__init__((cfg.host, cfg.port), handler)

    def process_request(self, request, client_address):
        if not self.active.acquire(blocking=False):
            self.counter.labels("refused").inc()
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:                               # no thread started: give the slot back
            self.active.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.active.release()

    def handle_error(self, request, client_address):
        self.counter.labels("error").inc()                  # reset, broken pipe, timeout while answering


class StatusServer:
    def __init__(self, cfg: HttpConfig, app, notice=None):
        """app: what is served (metrics, not_ready(), describe(), policies or None); notice: called with
        the subscription manager's notices (None: not served here)."""
        self.app, self.notice_handler = app, notice
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = cfg.timeout_s                          # socket timeout: an idle or slow client is closed

            def do_GET(self):  # noqa: N802 - http.server's name
                self.answer(*outer.route(self.route_path))

            def do_PUT(self):  # noqa: N802
                body = self.body()
                if body is not None:
                    self.answer(*outer.write("PUT", self.route_path, body, self.client_address))

            def do_POST(self):  # noqa: N802
                body = self.body()
                if body is not None:
                    self.answer(*outer.notice(self.route_path, body))

            def body(self) -> bytes | None:
                """The request's body, or None when it was refused unread (no length, or too long)."""
                n = self.headers.get("Content-Length", "")
                if n.isdigit() and int(n) <= MAX_BODY:
                    return self.rfile.read(int(n))
                reason = f"a body of 0-{MAX_BODY} bytes with its Content-Length"
                if self.command == "PUT" and outer.app.policies is not None:
                    outer.app.policy_request("PUT", self.route_path.rsplit("/", 1)[-1], "refused", reason)
                self.answer(*_json(HTTPStatus.LENGTH_REQUIRED if not n.isdigit() else
                                   HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"status": "ERROR", "reason": reason}))
                self.close_connection = True
                return None

            def do_DELETE(self):  # noqa: N802
                self.answer(*outer.write("DELETE", self.route_path, b"", self.client_address))

            @property
            def route_path(self) -> str:
                """The request's path without its query."""
                return self.path.split("?")[0]

            def answer(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.server.counter.labels("served").inc()

            def log_error(self, *args):                 # a timeout, a malformed request, another method
                self.server.counter.labels("error").inc()

            def log_message(self, *args):              # no access log on stderr
                pass

        try:
            self.httpd = _Server(cfg, Handler, app.metrics.http)
        except OSError as exc:                      # in use, no such address, a host that does not resolve
            raise ConfigError(f"controls.http: cannot listen on {cfg.host}:{cfg.port} "
                              f"({exc.strerror or exc})") from None
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="wmfm-http", daemon=True)

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/ric/v1/health/alive":
            return 200, "application/json", b'{"status": "alive"}'
        if path == "/ric/v1/health/ready":
            problems = self.app.not_ready()
            body = json.dumps({"status": "ready" if not problems else "not ready", "problems": problems}).encode()
            return (200 if not problems else 503), "application/json", body
        if path == "/ric/v1/config":
            return 200, "application/json", json.dumps(self.app.describe(), indent=2).encode()
        if path == "/ric/v1/metrics":
            return 200, CONTENT_TYPE_LATEST, self.app.metrics.render()
        if self.app.policies is not None:
            if path == POLICIES:
                return _json(200, self.app.policies.describe())
            if path == "/ric/v1/policytype":
                return _json(200, POLICY_TYPE)
            if path.startswith(POLICIES + "/"):
                doc = self.app.policies.instance(urllib.parse.unquote(path[len(POLICIES) + 1:]))
                return _json(200, doc) if doc is not None else _NOT_FOUND
        return _NOT_FOUND

    def notice(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        """POST /ric/v1/subscriptions/response: the RIC's subscription manager tells how a subscription
        went (200 whatever it says, else it retries; a body that is not JSON: 400)."""
        if path != SUBSCRIPTION_NOTICE or self.notice_handler is None:
            return _NOT_FOUND
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json(400, {"error": f"not JSON: {exc}"})
        self.notice_handler(doc)
        return _json(200, {})

    def write(self, method: str, path: str, body: bytes, client=("127.0.0.1", 0)) -> tuple[int, str, bytes]:
        """PUT / DELETE /ric/v1/policies/<id>: a policy instance created, updated or deleted."""
        policies = self.app.policies
        if policies is None or not path.startswith(POLICIES + "/"):
            return _NOT_FOUND
        rest = self.app.cfg.policy.rest
        if rest == "off" or (rest == "local" and not ipaddress.ip_address(client[0]).is_loopback):
            return _json(403, {"status": "ERROR", "reason": f"policy.rest is {rest}: this client may not write "
                                                            "policies"})
        instance = urllib.parse.unquote(path[len(POLICIES) + 1:])     # A1 ids may hold `:` (quoted by clients)
        if method == "DELETE":
            found = policies.delete(instance)
            self.app.policy_request("DELETE", instance, "deleted" if found else "unknown")
            return _json(200, {"status": "DELETED"}) if found else _NOT_FOUND
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.app.policy_request("PUT", instance, "refused", f"not JSON: {exc}")
            return _json(400, {"status": "ERROR", "reason": f"not JSON: {exc}"})
        try:
            new = policies.put(instance, doc)
        except PolicyError as exc:
            self.app.policy_request("PUT", instance, "refused", str(exc))
            return _json(400, {"status": "ERROR", "reason": str(exc)})
        self.app.policy_request("CREATE" if new else "UPDATE", instance, "ok")
        return _json(201 if new else 200, {"status": "OK", "effective": policies.effective.to_json()})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
