"""The xApp as a child process (`python -m wmfm.xapp`), for `wmfm bench xapp` and `wmfm demo`.

Started on loopback with free ports; ready when it logs its "ready" line, which carries the
bound endpoints and the HTTP port. Stopped with SIGTERM (the xApp drains and exits 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = ["indications.endpoint=tcp://127.0.0.1:*", "frames.endpoint=tcp://127.0.0.1:*", "http.port=0",
            "http.host=127.0.0.1"]


def free_port() -> int:
    """A TCP port free on loopback now, for an endpoint others connect to before it is bound.
    Taken below the ephemeral range: a client retrying a connection to a port in that range
    can be given that very port as its own and connect to itself (TCP simultaneous open)."""
    import random
    import socket
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in random.sample(range(10000, max(low, 10001)), min(200, max(low - 10000, 1))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in 10000..{low - 1}")


class XAppProcess:
    def __init__(self, artifact: str | Path, redis_url: str, overrides: list[str], log_file: Path,
                 start_timeout_s: float = 120.0):
        args = [sys.executable, "-m", "wmfm.xapp", "--artifact", str(artifact), "--redis", redis_url]
        for o in [*LOOPBACK, *overrides]:
            args += ["--set", o]
        self.log = open(log_file, "w")
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=self.log, text=True)
        self.lines: list[str] = []
        self.ready: dict | None = None
        found = threading.Event()

        def pump():                                     # keep its log flowing; spot the "ready" line
            for line in self.proc.stderr:
                self.log.write(line)
                self.lines.append(line)
                if not found.is_set() and line.startswith("{") and json.loads(line).get("msg") == "ready":
                    self.ready = json.loads(line)["mdc"]
                    found.set()
        threading.Thread(target=pump, daemon=True).start()
        t_end = time.monotonic() + start_timeout_s
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > t_end:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise RuntimeError(f"the xApp did not start: {''.join(self.lines)[-800:]}")

    @property
    def endpoints(self) -> dict:
        return self.ready["endpoints"]

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ready['http_port']}/ric/v1/metrics"

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then the exit status (killed after timeout_s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.flush()
        return code

    def __enter__(self) -> XAppProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.close()
