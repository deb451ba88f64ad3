"""How large a UE's vehicle appears in the model's input image.

The vehicle's 3-D box (the cache's box.npy) is projected with the scenario camera's pinhole
model (the twin's `Camera`, built from the sensor properties the cache keeps in
meta["source"]["camera_properties"]); the bounding rectangle of its 8 corners, clipped to the
frame, is scaled to the input size by a squash resize, as the cache resizes its frames.
`wmfm dataset stats` reports it over the coverage zone, so that the input size is chosen on
how many pixels a UE covers.
"""

from __future__ import annotations

import numpy as np

from .twin.camera import Camera
from .twin.params import CameraConfig

CAMERA_KEYS = ("location", "rotation", "FoV", "resolution")   # sensor properties a projection needs
INPUT_SIZES = ((64, 64), (128, 128), (224, 224))        # (H, W) compared besides the cache's own
DISTANCE_BINS_M = (0.0, 20.0, 40.0, 60.0, np.inf)        # distance UE antenna -> BS


def camera(props: dict) -> Camera:
    """The pinhole camera of a sensor's properties {location [m], rotation [roll, pitch, yaw]
    [deg], FoV [deg, horizontal], resolution [W, H] [px]}."""
    roll, pitch, yaw = (float(v) for v in props["rotation"])
    return Camera(CameraConfig(position_m=tuple(float(v) for v in props["location"]), roll_deg=roll,
                               pitch_deg=pitch, yaw_deg=yaw, fov_deg=float(props["FoV"]),
                               resolution=tuple(int(v) for v in props["resolution"])))


def box_rects(camera_props: dict, boxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Where each box lands in the model's input image.

    camera_props: the sensor's properties (see `camera`); boxes: [N, 2, 3] min/max corners [m]
    (NaN: unknown); input_size: (H, W) of the model's input. Returns rects [N, 4] float64
    (u0, v0, u1, v1) in input pixels: the projected bounding rectangle of the 8 corners clipped
    to the frame and scaled to the input by the squash resize the cache applies (0 when not
    visible), and visible [N] bool. A box with a corner behind the camera's near plane counts as
    not visible (its projection is unbounded).
    """
    cam = camera(camera_props)
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 2, 3)
    k = np.arange(8)
    bits = np.stack([k & 1, (k >> 1) & 1, (k >> 2) & 1], axis=1).astype(bool)      # [8, 3]
    corners = np.where(bits[None], boxes[:, None, 1], boxes[:, None, 0])          # [N, 8, 3]
    c = cam.to_camera(corners)
    z = c[..., 2]
    in_front = (z > cam.NEAR).all(axis=1)                     # False for an unknown (NaN) box
    zs = np.where(in_front[:, None], z, 1.0)
    u = np.clip(cam.cx + cam.f * c[..., 0] / zs, 0, cam.width)
    v = np.clip(cam.cy + cam.f * c[..., 1] / zs, 0, cam.height)
    rects = np.stack([u.min(axis=1), v.min(axis=1), u.max(axis=1), v.max(axis=1)], axis=1)
    visible = in_front & (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])
    scale = np.array([input_size[1] / cam.width, input_size[0] / cam.height] * 2)
    return np.where(visible[:, None], rects * scale, 0.0), visible


def box_pixels(camera_props: dict, boxes: np.ndarray, input_size: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible width and height of each box in input pixels (see `box_rects`): w [N], h [N]
    float64 (0 when not visible) and visible [N] bool."""
    rects, visible = box_rects(camera_props, boxes, input_size)
    return rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1], visible


def cache_rects(cache, input_size: tuple[int, int]) -> dict | None:
    """The UE boxes of a `wmfm dataset build` cache in ``input_size`` pixels: {"rects" [N, 4],
    "visible" [N]} (for evaluation only: the association accuracy); None when the cache has no
    boxes or its camera sensor no projection properties."""
    from wmfm.cache import load
    c = load(cache, mmap=True)
    props = c["meta"].get("source", {}).get("camera_properties") or {}
    if c.get("box") is None or any(k not in props for k in CAMERA_KEYS):
        return None
    rects, visible = box_rects(props, np.asarray(c["box"]), input_size)
    return {"rects": rects, "visible": visible}


def _spread(x: np.ndarray) -> dict:
    if not len(x):
        return {"median": None, "p10": None, "p90": None}
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return {"median": round(float(p50), 2), "p10": round(float(p10), 2), "p90": round(float(p90), 2)}


def _median(x: np.ndarray) -> float | None:
    return round(float(np.median(x)), 2) if len(x) else None


def _bin_names() -> list[str]:
    e = DISTANCE_BINS_M
    return [f"{a:g}-{b:g}" if np.isfinite(b) else f"{a:g}+" for a, b in zip(e[:-1], e[1:])]


def ue_pixel_stats(meta: dict, box: np.ndarray | None, position: np.ndarray) -> dict:
    """Pixels a UE's vehicle covers at the cache's input size and at INPUT_SIZES: spread of the
    visible width, height and area [input px], share of visible boxes, medians per distance
    bin. ``box`` [N, 2, 3] (None: the cache has none), ``position`` [N, 3] UE antennas [m].
    Without boxes or camera properties: {"unavailable": why}."""
    props = meta.get("source", {}).get("camera_properties") or {}
    missing = [k for k in CAMERA_KEYS if k not in props]
    if box is None or not np.isfinite(box).all(axis=(1, 2)).any():
        return {"unavailable": "the cache has no UE boxes (box.npy missing, or the scenario has no trajectory "
                               "file): rebuild it with `wmfm dataset build` from a scenario with moving objects"}
    if missing:
        return {"unavailable": f"the scenario's camera sensor gives no {', '.join(missing)} in "
                               "param/scenario.yaml: the boxes cannot be projected"}
    known = np.isfinite(box).all(axis=(1, 2))
    box, position = box[known], position[known]
    cache_size = tuple(meta["image_size"])
    sizes = [cache_size] + [s for s in INPUT_SIZES if s != cache_size]
    bs = meta["source"].get("bs_pose", {}).get("position_m")
    if bs is not None:
        dist = np.linalg.norm(position - np.asarray(bs, float), axis=1)
        which = np.digitize(dist, DISTANCE_BINS_M[1:-1])
        bins = [which == b for b in range(len(DISTANCE_BINS_M) - 1)]
    out = {"camera_resolution": [int(v) for v in props["resolution"]], "boxes": int(len(box)),
           "unknown_boxes": int((~known).sum()), "cache_input_size": f"{cache_size[0]}x{cache_size[1]}",
           "method": "8 box corners through the camera's pinhole model, bounding rectangle clipped to the "
                     "frame, squash-resized to the input (H x W); a corner behind the camera: not visible"}
    per_size = {}
    for hw in sizes:
        w, h, visible = box_pixels(props, box, hw)
        entry = {"width_px": _spread(w[visible]), "height_px": _spread(h[visible]),
                 "area_px": _spread((w * h)[visible])}
        if bs is not None:
            entry["by_distance_m"] = {
                name: {"median_width_px": _median(w[m & visible]), "median_height_px": _median(h[m & visible]),
                       "median_area_px": _median((w * h)[m & visible])}
                for name, m in zip(_bin_names(), bins)}
        per_size[f"{hw[0]}x{hw[1]}"] = entry
    out["visible_share"] = round(float(visible.mean()), 4)
    if bs is not None:
        out["by_distance_m"] = {name: {"boxes": int(m.sum()),
                                       "visible_share": round(float(visible[m].mean()), 4) if m.any() else None}
                                for name, m in zip(_bin_names(), bins)}
    else:
        out["by_distance_m"] = "the cache's meta has no source.bs_pose: no distance bins"
    out["input_sizes"] = per_size
    return out
