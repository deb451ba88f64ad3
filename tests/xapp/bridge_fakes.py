"""Stand-ins for what an O-RAN SC RIC gives the E2 bridge and cannot run here: RMR (an in-memory
endpoint with the bridge's Rmr methods) and the platform's REST services (a real HTTP server
answering as submgr, e2mgr and appmgr do, recording every request)."""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wmfm.xapp.bridge.rmr import Message
from wmfm.xapp.e2ap import OID


class FakeRmr:
    """What the E2 termination and the A1 mediator would send (`inbox`), what the bridge sent and
    answered (`sent`, `replies`: (the message answered, the answer))."""

    def __init__(self, port: int):
        self.port, self.inbox, self.sent, self.replies = port, queue.Queue(), [], []
        self.last, self.closed = None, False

    def receive(self, timeout_ms: int):
        try:
            self.last = self.inbox.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            return None
        return self.last

    def send(self, mtype: int, payload: bytes, sub_id: int = -1) -> bool:
        self.sent.append(Message(mtype, sub_id, payload))
        return True

    def reply(self, mtype: int, payload: bytes, sub_id: int = -1) -> bool:
        self.replies.append((self.last, Message(mtype, sub_id, payload)))
        return True

    def close(self) -> None:
        self.closed = True


NODES = [{"inventoryName": "gnb_001", "connectionStatus": "CONNECTED"},
         {"inventoryName": "gnb_002", "connectionStatus": "DISCONNECTED"},
         {"inventoryName": "gnb_kpm", "connectionStatus": "CONNECTED"}]
KPM = "1.3.6.1.4.1.53148.1.2.2.2"           # E2SM-KPM v2: a RAN function the bridge does not subscribe to
FUNCTIONS = {"gnb_001": {"gnb": {"ranFunctions": [{"ranFunctionId": 1, "ranFunctionOid": KPM},
                                                  {"ranFunctionId": 3, "ranFunctionOid": OID}]}},
             "gnb_kpm": {"gnb": {"ranFunctions": [{"ranFunctionId": 2, "ranFunctionOid": KPM}]}}}


class FakeRic:
    """submgr (/ric/v1/subscriptions: the first `busy` POSTs answered 503, as for an E2 node not
    connected yet), e2mgr (/v1/nodeb/...), appmgr (/ric/v1/register, /deregister) on one port."""

    def __init__(self, busy: int = 1):
        self.requests: list[tuple[str, str, object]] = []
        self.busy = busy
        self.delay_s = 0.0                       # every answer this late (a platform service in trouble)
        self.made = 0                            # subscriptions made: ids sub-1, sub-2, ...
        self.nodes = [dict(n) for n in NODES]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                outer.requests.append((self.command, self.path, body))
                time.sleep(outer.delay_s)
                code, doc = outer.answer(self.command, self.path)
                raw = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _do  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str):
        if (method, path) == ("GET", "/v1/nodeb/states"):
            return 200, self.nodes
        if method == "GET" and path.startswith("/v1/nodeb/"):
            node = path.rsplit("/", 1)[1]
            return (200, FUNCTIONS[node]) if node in FUNCTIONS else (404, {"errorMessage": "not found"})
        if (method, path) == ("POST", "/ric/v1/subscriptions"):
            if self.busy > 0:
                self.busy -= 1
                return 503, {"error": "E2 node not connected"}
            self.made += 1
            return 201, {"SubscriptionId": f"sub-{self.made}", "SubscriptionInstances": None}
        if method == "DELETE" and path.startswith("/ric/v1/subscriptions/"):
            return 204, None
        if (method, path) == ("POST", "/ric/v1/register"):
            return 201, None
        if (method, path) == ("POST", "/ric/v1/deregister"):
            return 204, None
        return 404, {"error": "not found"}

    def calls(self, method: str, path: str) -> list:
        return [body for m, p, body in self.requests if (m, p) == (method, path)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
