"""The load generator of `wmfm bench xapp`: a separate process that plays cameras and a RAN.

Load model: C cameras, each watching its own cell with U UEs; each camera sends JPEG frames
(320x240 by default) at `fps`; the RAN sends, per cell, one RIC indication carrying the CSI of
its U UEs, at `rate` UE reports per second in total (rate / U indications/s), or as fast as
the xApp takes them (`rate=None`: PUSH back-pressure paces the sender). Collection and capture
times are this host's clock at sending, so the reader measures source-time-to-Redis latency.
Loopback only; bounded by `duration_s` and `max_reports`.
"""

from __future__ import annotations

import time

import numpy as np


def samples_from(artifact_dir: str, frame_size: tuple[int, int]) -> tuple[list[np.ndarray], list[bytes]]:
    """Held-out CSI [2, A, K] and JPEG camera frames (upscaled to frame_size = (W, H)) from the
    artifact's reference.npz."""
    from PIL import Image

    from wmfm.artifact import Artifact

    from .codec import encode_image
    ref = Artifact.load(artifact_dir, verify=False).reference()
    csi = [c.astype(np.float32) for c in ref["csi"]]
    frames = []
    for img in ref["image"]:
        rgb = Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8))
        frames.append(encode_image(np.asarray(rgb.resize(frame_size, Image.BILINEAR)), "jpeg", quality=85))
    return csi, frames


def generate(ind_endpoint: str, frame_endpoint: str, artifact_dir: str, cameras: int, ues_per_frame: int,
             rate: float | None, duration_s: float, fps: float = 10.0, max_reports: int = 10_000_000,
             frame_size: tuple[int, int] = (320, 240), conn=None) -> dict:
    """Send for `duration_s`; returns (and sends through `conn`) what was sent, and when."""
    import zmq

    from .codec import encode_frame, encode_indication
    csi, jpegs = samples_from(artifact_dir, frame_size)
    ctx = zmq.Context()
    ind, frm = ctx.socket(zmq.PUSH), ctx.socket(zmq.PUSH)
    for s, ep in ((ind, ind_endpoint), (frm, frame_endpoint)):
        s.setsockopt(zmq.SNDHWM, 1000 if rate is not None else 16)   # max rate: a short queue, back-pressure
        s.setsockopt(zmq.SNDTIMEO, 10_000)                 # back-pressure blocks; a dead xApp ends the run
        s.setsockopt(zmq.LINGER, 10_000)                   # what was sent gets delivered before we exit
        s.connect(ep)
    time.sleep(0.3)                                         # let both connections come up
    tick = None if rate is None else cameras * ues_per_frame / rate   # seconds between a cell's indications
    t_start = time.perf_counter()
    next_frame = [t_start + c / (fps * cameras) for c in range(cameras)]   # cameras staggered
    next_ind = [t_start + 0.05 + c * (tick or 0) / cameras for c in range(cameras)]
    sn = 0                                                  # one SN sequence per E2 subscription (all cells)
    seq = [0] * cameras
    sent = frames = 0
    first_ns = last_ns = 0
    stalled = False
    while not stalled:
        now = time.perf_counter()
        if now - t_start >= duration_s or sent + ues_per_frame > max_reports:
            break
        for c in range(cameras):                            # frames due
            if now >= next_frame[c]:
                try:
                    frm.send(encode_frame(f"cam{c}", seq[c], time.time_ns(), jpegs[(seq[c] + c) % len(jpegs)],
                                          *frame_size, "jpeg"), zmq.NOBLOCK)
                except zmq.Again:                            # frames are dropped, not queued, when behind
                    pass
                seq[c] += 1
                frames += 1
                next_frame[c] += 1.0 / fps
        for c in range(cameras):                            # indications due
            if tick is not None and now < next_ind[c]:
                continue
            base = (sn * ues_per_frame + c * 7) % len(csi)
            reports = [(c * 1000 + u, csi[(base + u) % len(csi)]) for u in range(ues_per_frame)]
            t_ns = time.time_ns()
            try:
                ind.send(encode_indication("gnb-bench", sn, t_ns, reports, nr_cell_id=c + 1))
            except zmq.Again:                                # the xApp took nothing for 10 s
                stalled = True
                break
            first_ns = first_ns or t_ns
            last_ns = t_ns
            sn += 1
            sent += ues_per_frame
            if tick is not None:
                next_ind[c] += tick
        if tick is not None:
            wake = min(min(next_frame), min(next_ind))
            delay = wake - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    ind.close()
    frm.close()
    ctx.term()
    out = {"sent": sent, "frames": frames, "first_send_ns": first_ns, "last_send_ns": last_ns,
           "send_s": (last_ns - first_ns) / 1e9, "stalled": stalled}
    if conn is not None:
        conn.send(out)
        conn.close()
    return out
