"""Why per-message costs at 100 messages/s are higher than the model benchmark says: the same
CSI indication decode, timed back to back and after 1 ms / 10 ms of idling (sleeping or
spin-polling a ZeroMQ socket). On a shared VM the working set is evicted while idle.

    .venv/bin/python scripts/cold_cache.py
"""

import time

import numpy as np
import zmq
from wmfm.xapp import codec

csi = np.random.default_rng(0).standard_normal((2, 32, 64)).astype(np.float32)
lim = codec.Limits(32, 64, (64, 64), None, None, 4 << 20)
buf = codec.encode_indication("gnb", 1, time.time_ns(), [(1, csi)])
ctx = zmq.Context()
sock = ctx.socket(zmq.PULL)
sock.bind("inproc://idle")
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)


def idle(gap: float, spin: bool) -> None:
    if not spin:
        time.sleep(gap)
        return
    end = time.perf_counter() + gap
    while time.perf_counter() < end:
        poller.poll(0)


print(f"{'idle before each decode':<34}{'p50 us':>9}{'p99 us':>9}")
for gap, spin in ((0.0, False), (0.001, False), (0.01, False), (0.01, True)):
    t = []
    for _ in range(300):
        if gap:
            idle(gap, spin)
        t0 = time.perf_counter()
        codec.decode_indication(buf, lim, time.time_ns())
        t.append((time.perf_counter() - t0) * 1e6)
    what = "none (back to back)" if not gap else f"{gap * 1e3:g} ms {'spin-polling' if spin else 'sleeping'}"
    print(f"{what:<34}{np.percentile(t, 50):>9.1f}{np.percentile(t, 99):>9.1f}")
ctx.destroy(linger=0)
