"""The Redis sink's write of a batch: plain HSET (one instance) vs the server-side Lua check
(`scaling.round_robin`: several instances write the same UEs), each without and with the SDL
mirror (`redis.sdl_mirror`: a JSON string per UE, the set of UEs, a text event per batch). An
embedded redis-server on a unix socket, batches of 8 insights for 8 UEs, the four variants
interleaved round by round.

    python scripts/bench_sink.py [--rounds 2000] [--batch 8]
"""

import argparse
import time

import numpy as np
import redis
from wmfm.xapp.controls import RedisConfig
from wmfm.xapp.metrics import Metrics
from wmfm.xapp.records import Insight
from wmfm.xapp.redis_server import EmbeddedRedis
from wmfm.xapp.sink import RedisSink


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    with EmbeddedRedis() as srv:
        sinks = {name: RedisSink(redis.Redis.from_url(srv.url), RedisConfig(sdl_mirror=mirror), Metrics(),
                                 shared=shared)
                 for name, shared, mirror in (("HSET", False, False), ("Lua", True, False),
                                              ("HSET+SDL", False, True), ("Lua+SDL", True, True))}
        times = {name: [] for name in sinks}
        t_ns = time.time_ns()
        for k in range(args.rounds + 100):                 # the first 100 rounds warm up
            for name, sink in sinks.items():
                t_ns += 1000
                batch = [Insight("gnb1", ue, k % 65536, t_ns, 0.9, True, (1.0, 2.0, 1.5), "fused", "m")
                         for ue in range(args.batch)]
                t0 = time.perf_counter()
                sink.publish(batch)
                if k >= 100:
                    times[name].append(time.perf_counter() - t0)
    for name, t in times.items():
        t = np.array(t) * 1e3
        print(f"{name:<8} batch of {args.batch}: p50 {np.percentile(t, 50):.3f} ms, p99 {np.percentile(t, 99):.3f} ms, "
              f"mean {t.mean():.3f} ms")
    p50 = {name: np.percentile(t, 50) for name, t in times.items()}
    print(f"Lua / HSET (p50): {p50['Lua'] / p50['HSET']:.2f}x; with the SDL mirror: "
          f"HSET {p50['HSET+SDL'] / p50['HSET']:.2f}x, Lua {p50['Lua+SDL'] / p50['Lua']:.2f}x")


if __name__ == "__main__":
    main()
