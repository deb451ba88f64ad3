"""A synthetic load as a Recording, for `wmfm bench xapp`: played by the same player, read back by
the same scorer as a scenario replay.

Load model: C cameras, camera c watching its own cell (00101:c+1) with U UEs. Each camera sends
JPEG frames (1280x720 at quality 85 by default, ~80 KB each, as a 720p street camera) at `fps`,
its first frame offset by 1/(fps C) from the previous camera's. Each cell sends one RIC
indication with the CSI of its U UEs every U C / rate seconds (`rate` UE reports per second in
total), staggered the same way. The CSI and the pictures are the artifact's held-out reference
inputs (reference.npz); the pictures are upscaled to the camera size with sensor noise (a
camera's JPEG is as large as its noise and detail make it; a smooth upscale would compress, and
decode, several times faster) and JPEG-encoded once; every event references them (no copies),
so a long load costs little memory. There is no truth: the replay reports loss and latency.
"""

from __future__ import annotations

import math

import numpy as np

from .recording import Recording, Scene

FRAME_SIZE = (1280, 720)
QUALITY = 85
NOISE = 3.0                     # sensor noise, std in 8-bit levels


def reference_inputs(artifact, frame_size: tuple[int, int], quality: int = QUALITY,
                     frames: int = 8) -> tuple[list, list[bytes]]:
    """Held-out CSI [2, A, K] float32 and `frames` JPEG frames of `frame_size` = (W, H) from the artifact."""
    from PIL import Image
    from wmfm.xapp.codec import encode_image
    ref = artifact.reference()
    if ref is None:
        raise FileNotFoundError(f"{artifact.root}: reference.npz missing (re-export the artifact)")
    csi = [np.ascontiguousarray(c, np.float32) for c in ref["csi"]]
    rng = np.random.default_rng(0)
    jpegs = []
    for img in ref["image"][:frames]:
        rgb = Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8))
        big = np.asarray(rgb.resize(frame_size, Image.BICUBIC), np.float32)
        noisy = np.clip(big + rng.normal(0, NOISE, big.shape), 0, 255).astype(np.uint8)
        jpegs.append(encode_image(noisy, "jpeg", quality=quality))
    return csi, jpegs


def recording(artifact, cameras: int, ues_per_frame: int, rate: float, fps: float, duration_s: float,
              frame_size: tuple[int, int] = FRAME_SIZE) -> Recording:
    """`duration_s` of the load; the player plays it at real time (or at max rate, keeping the
    order of frames and reports; loop it with a duration bound)."""
    csi, jpegs = reference_inputs(artifact, frame_size)
    tick = cameras * ues_per_frame / rate                       # seconds between one cell's indications
    events: list[tuple[float, int, int, int]] = []              # (time, kind 0 frame / 1 CSI, camera, number)
    for c in range(cameras):
        n_frames = math.ceil(duration_s * fps)
        events += [(c / (fps * cameras) + k / fps, 0, c, k) for k in range(n_frames)]
        n_ind = math.ceil(duration_s / tick)
        events += [(0.05 + c * tick / cameras + k * tick, 1, c, k) for k in range(n_ind)]
    scenes = []
    w, h = frame_size
    for i, (t, kind, c, k) in enumerate(sorted(events)):
        if t >= duration_s:
            continue
        cam, cell = f"cam{c}", f"00101:{c + 1}"
        if kind == 0:
            scenes.append(Scene(i, t, cam, jpegs[(k + c) % len(jpegs)], "jpeg", (w, h), np.zeros(0, np.int64), [],
                                cell=cell))
        else:
            base = (k * ues_per_frame + c * 7) % len(csi)
            ues = np.array([c * 1000 + u for u in range(ues_per_frame)], np.int64)
            scenes.append(Scene(i, t, cam, None, "jpeg", (w, h), ues,
                                [csi[(base + u) % len(csi)] for u in range(ues_per_frame)], cell=cell))
    return Recording(f"synthetic: {cameras} camera(s) x {ues_per_frame} UEs, {rate:g} UE reports/s, {fps:g} fps "
                     f"{w}x{h}", period_s=min(tick, 1 / fps), split="synthetic", scenes=scenes)

