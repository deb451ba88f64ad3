"""The xApp's HTTP surface (RIC conventions), served from a daemon thread:

    GET /ric/v1/health/alive   200 while the process runs
    GET /ric/v1/health/ready   200 only when the model is loaded and warmed, the sockets are
                               bound and Redis answers; 503 with the reasons otherwise
    GET /ric/v1/config         the effective configuration and the model/backend in use (JSON)
    GET /ric/v1/metrics        Prometheus text format
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from wmfm.config import ConfigError


class StatusServer:
    def __init__(self, host: str, port: int, app):
        self.app = app
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                code, ctype, body = outer.route(self.path.split("?")[0])
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):              # no access log on stderr
                pass

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:                      # in use, no such address, a host that does not resolve
            raise ConfigError(f"controls.http: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.httpd.daemon_threads = True
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
        return 404, "application/json", b'{"error": "not found"}'

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
