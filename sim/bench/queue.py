"""`wmfm bench queue`: the memory an xApp receive socket can hold, measured.

A child process opens the socket exactly as the xApp does (`xapp.transport.open_socket` with the
given controls; the bench itself does not import the service) and reads nothing; senders
connect over TCP loopback and push messages of 2 x `max_message_bytes` (the largest the socket
lets in: the worst case) until ZeroMQ blocks them (or `cap` messages each). The child's resident
memory growth (VmRSS) is compared with the bound the controls give, senders x (hwm + 1) x 2 x
max_message_bytes (the socket lets messages up to twice the codec's limit in, so that a merely
oversized one is counted), and with a socket bounded by message count only (`rcvhwm`, as when
`queue_bytes` does not lower it) in the same run. The kernel's TCP buffers hold a little more,
outside the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import zmq

from . import save

CHILD = r"""
import json, sys, zmq
from pathlib import Path
from wmfm.xapp.controls import SocketConfig
from wmfm.xapp.transport import open_socket
cfg = SocketConfig(**json.loads(sys.argv[1]))
ctx = zmq.Context()
sock, endpoint = open_socket(ctx, cfg, None, "frames")
print(endpoint, cfg.hwm, cfg.queue_bound, flush=True)
for _ in sys.stdin:                     # one line per question: the resident memory now
    rss = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    print(rss * 1024, flush=True)
"""

SETTINGS = {          # name -> the socket's controls (the endpoint is added)
    "built-in defaults": {"rcvhwm": 10000, "max_message_bytes": 4 << 20, "queue_bytes": 256 << 20},
    "descriptor frames": {"rcvhwm": 256, "max_message_bytes": 4 << 20, "queue_bytes": 128 << 20},
    "small": {"rcvhwm": 10000, "max_message_bytes": 1 << 20, "queue_bytes": 16 << 20},
    "rcvhwm only": {"rcvhwm": 10000, "max_message_bytes": 4 << 20, "queue_bytes": 64 << 30},   # before
}


def measure(controls: dict, senders: int, cap: int) -> dict:
    """Fill one socket from `senders` senders; its owner's memory growth and the bound."""
    size = 2 * controls["max_message_bytes"]
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(controls | {"endpoint": "tcp://127.0.0.1:*"})],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def rss() -> int:
        child.stdin.write("\n")
        child.stdin.flush()
        return int(child.stdout.readline())
    ctx = zmq.Context()
    try:
        endpoint, hwm, bound = child.stdout.readline().split()
        hwm, bound = int(hwm), senders * int(bound)
        time.sleep(0.3)
        before = rss()
        msg = os.urandom(size)
        sent = []
        for _ in range(senders):
            tx = ctx.socket(zmq.PUSH)
            tx.setsockopt(zmq.SNDHWM, 1)
            tx.setsockopt(zmq.SNDTIMEO, 1500)
            tx.setsockopt(zmq.LINGER, 0)
            tx.connect(endpoint)
            n = 0
            try:
                while n < cap:
                    tx.send(msg, copy=False)
                    n += 1
            except zmq.Again:
                pass
            sent.append(n)
        time.sleep(1.0)
        after = rss()
    finally:
        ctx.destroy(linger=0)
        child.kill()
        child.wait()
    return {"controls": controls, "hwm": hwm, "senders": senders, "sent": sent,
            "blocked": all(n < cap for n in sent), "rss_before_mib": before / 2**20,
            "growth_mib": (after - before) / 2**20, "bound_mib": bound / 2**20}


def run(senders: list[int], cap: int, log=print) -> dict:
    rows = []
    for name, controls in SETTINGS.items():
        for s in senders:
            r = measure(controls, s, cap) | {"setting": name}
            rows.append(r)
            how = "blocked" if r["blocked"] else f"stopped at {cap}"
            log(f"{name:<18} {s} sender(s): hwm {r['hwm']:>5}, sent {sum(r['sent']):>4} x "
                f"{2 * controls['max_message_bytes'] >> 20} MiB ({how}), "
                f"memory +{r['growth_mib']:.0f} MiB (bound {r['bound_mib']:.0f} MiB)")
    return {"format": "wmfm-bench-queue/1", "cap_per_sender": cap, "rows": rows}


def plot(rep: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = rep["rows"]
    fig, ax = plt.subplots(figsize=(8, 4))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["growth_mib"] for r in rows], height=0.4, label="measured growth")
    ax.barh([i - 0.2 for i in y], [min(r["bound_mib"], 4096) for r in rows], height=0.4, alpha=0.5,
            label="bound from the controls (cut at 4 GiB)")
    ax.set_yticks(list(y), [f"{r['setting']}, {r['senders']} sender(s)" for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("MiB held by one receive socket (resident memory of its process)")
    ax.set_title(f"wmfm bench queue: senders push messages of 2 x max_message_bytes, nobody reading,\n"
                 f"until ZeroMQ blocks them (at most {rep['cap_per_sender']} each)", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args) -> int:
    rep = run(args.senders, args.cap)
    if args.out:
        save(rep, args.out, plot)
    return 0
