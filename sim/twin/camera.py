"""Pinhole camera and a painter's-algorithm renderer of the street scene.

Camera frame (OpenCV): x right, y down, z forward. Pixel (u, v) = (cx + f x/z, cy + f y/z)
with square pixels and f from the horizontal field of view. Polygons are clipped to the
view frustum in camera space (Sutherland-Hodgman) before projection, so geometry behind
the camera never wraps around.

The camera is static, so road, lane marks and buildings are drawn once into a background;
each scene copies it and draws the vehicles far-to-near (nearer over farther), then applies
the scene's lighting gain and sensor noise. Buildings never occlude vehicles here: the
camera stands on the kerb, between the road and the facades behind it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .params import CameraConfig, TwinConfig
from .world import Vehicles, World


class Camera:
    NEAR = 0.2   # [m]

    def __init__(self, cfg: CameraConfig):
        self.position = np.asarray(cfg.position_m, dtype=float)
        yaw, pitch, roll = np.radians([cfg.yaw_deg, cfg.pitch_deg, cfg.roll_deg])
        fwd = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
        right0 = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down0 = np.cross(fwd, right0)
        right = np.cos(roll) * right0 + np.sin(roll) * down0
        down = -np.sin(roll) * right0 + np.cos(roll) * down0
        self.R = np.stack([right, down, fwd])        # world -> camera rotation (rows)
        self.width, self.height = cfg.resolution
        self.f = (self.width / 2) / np.tan(np.radians(cfg.fov_deg) / 2)
        self.cx, self.cy = self.width / 2, self.height / 2
        m = 0.1 * max(self.width, self.height)       # frustum margin [px]: clipped edges stay off-image
        w, h, f = self.width, self.height, self.f
        # Inside when a.x + b.y + c.z + d >= 0 (camera coordinates).
        self.planes = np.array([
            [0, 0, 1, -self.NEAR],
            [f, 0, self.cx + m, 0],
            [-f, 0, w + m - self.cx, 0],
            [0, f, self.cy + m, 0],
            [0, -f, h + m - self.cy, 0],
        ], dtype=float)

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """World points [..., 3] -> camera coordinates [..., 3]."""
        return (pts - self.position) @ self.R.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [N, 3] -> pixel coordinates [N, 2] (u right, v down) and depth z [N]."""
        c = self.to_camera(pts)
        z = c[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.cx + self.f * c[..., 0] / z, self.cy + self.f * c[..., 1] / z], axis=-1)
        return uv, z

    def clip(self, poly_cam: np.ndarray) -> np.ndarray:
        """Clip a convex polygon [k, 3] (camera coordinates) to the frustum."""
        for a in self.planes:
            if len(poly_cam) == 0:
                break
            s = poly_cam @ a[:3] + a[3]
            if (s >= 0).all():
                continue
            out = []
            n = len(poly_cam)
            for i in range(n):
                p, q = poly_cam[i], poly_cam[(i + 1) % n]
                sp, sq = s[i], s[(i + 1) % n]
                if sp >= 0:
                    out.append(p)
                if (sp >= 0) != (sq >= 0):
                    out.append(p + (q - p) * (sp / (sp - sq)))
            poly_cam = np.array(out).reshape(-1, 3)
        return poly_cam

    def polygon_pixels(self, poly_world: np.ndarray) -> list[tuple[float, float]] | None:
        """World polygon [k, 3] -> list of pixel vertices, or None when outside the view."""
        c = self.clip(self.to_camera(poly_world))
        if len(c) < 3:
            return None
        u = self.cx + self.f * c[:, 0] / c[:, 2]
        v = self.cy + self.f * c[:, 1] / c[:, 2]
        return list(zip(u.tolist(), v.tolist()))


def box_faces(box: np.ndarray, eye: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Faces of an axis-aligned box [6] that face the point ``eye``: (corners [4, 3], normal [3])."""
    x0, y0, z0, x1, y1, z1 = box
    faces = []
    if eye[0] < x0:
        faces.append((np.array([[x0, y0, z0], [x0, y1, z0], [x0, y1, z1], [x0, y0, z1]]), np.array([-1.0, 0, 0])))
    if eye[0] > x1:
        faces.append((np.array([[x1, y0, z0], [x1, y1, z0], [x1, y1, z1], [x1, y0, z1]]), np.array([1.0, 0, 0])))
    if eye[1] < y0:
        faces.append((np.array([[x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]]), np.array([0, -1.0, 0])))
    if eye[1] > y1:
        faces.append((np.array([[x0, y1, z0], [x1, y1, z0], [x1, y1, z1], [x0, y1, z1]]), np.array([0, 1.0, 0])))
    if eye[2] > z1:
        faces.append((np.array([[x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]]), np.array([0, 0, 1.0])))
    return faces


# Points of a vehicle box: 8 corners, then 4 window-band quads (one per side face).
# Corner k has x from bit 0, y from bit 1, z from bit 2 (0: min, 1: max).
_FACE_CORNERS = (
    (0, 2, 6, 4),   # x = xmin, normal -x
    (1, 3, 7, 5),   # x = xmax, normal +x
    (0, 1, 5, 4),   # y = ymin, normal -y
    (2, 3, 7, 6),   # y = ymax, normal +y
    (4, 5, 7, 6),   # z = zmax (roof)
)
_FACE_NORMALS = tuple(np.array(n, dtype=float) for n in
                      ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, 1)))
_WINDOW_CORNERS = tuple(tuple(range(8 + 4 * f, 12 + 4 * f)) for f in range(4))


def _vehicle_points(boxes: np.ndarray) -> np.ndarray:
    """[V, 6] boxes -> [V, 24, 3]: corners, then the window band of each side face (from 55 % to
    90 % of the height, inset 8 % from the face's vertical edges, 1 cm proud of the face)."""
    k = np.arange(8)
    lo, hi = boxes[:, None, :3], boxes[:, None, 3:]
    bits = np.stack([k & 1, (k >> 1) & 1, (k >> 2) & 1], axis=1)[None].astype(bool)
    corners = np.where(bits, hi, lo)                              # [V, 8, 3]
    out = [corners]
    height = boxes[:, 5:6]
    for f in range(4):
        quad = corners[:, list(_FACE_CORNERS[f])].copy()          # bottom a, bottom b, top b, top a
        quad[:, :2, 2] = 0.55 * height
        quad[:, 2:, 2] = 0.90 * height
        along = quad[:, 1] - quad[:, 0]
        quad[:, [0, 3]] += 0.08 * along[:, None]
        quad[:, [1, 2]] -= 0.08 * along[:, None]
        quad += 0.01 * _FACE_NORMALS[f]
        out.append(quad)
    return np.concatenate(out, axis=1)


def _quad_x(x0: float, x1: float, y0: float, y1: float, z: float = 0.0) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


class Renderer:
    """Renders the camera frame of one scene as uint8 [H, W, 3]."""

    SUN = np.array([0.45, -0.55, 0.70]) / np.linalg.norm([0.45, -0.55, 0.70])
    AMBIENT, DIFFUSE = 0.55, 0.45
    WINDOW = (40, 48, 60)

    def __init__(self, cfg: TwinConfig, world: World, rng: np.random.Generator):
        self.cfg, self.world = cfg, world
        self.cam = Camera(cfg.camera)
        self._shades: dict = {}
        self.background = self._draw_background()
        h, w = self.cam.height, self.cam.width
        std = cfg.camera.noise_std
        # A bank of noise frames drawn once (drawing fresh Gaussian noise per frame costs more
        # than the whole render); each scene picks one.
        self.noise = (rng.normal(0, std, (8, h, w, 3)).round().astype(np.int16) if std > 0 else None)

    def _shade(self, color, normal: np.ndarray) -> tuple[int, int, int]:
        key = (tuple(color), tuple(normal))
        out = self._shades.get(key)
        if out is None:
            k = self.AMBIENT + self.DIFFUSE * max(0.0, float(normal @ self.SUN))
            out = self._shades[key] = tuple(min(255, int(c * k)) for c in color)
        return out

    def _fill(self, draw: ImageDraw.ImageDraw, poly_world: np.ndarray, color) -> None:
        px = self.cam.polygon_pixels(poly_world)
        if px is not None:
            draw.polygon(px, fill=tuple(int(c) for c in color))

    def _draw_background(self) -> Image.Image:
        road = self.cfg.road
        cam = self.cam
        w, h = cam.width, cam.height
        sky = np.linspace([150, 185, 225], [205, 220, 235], h).astype(np.uint8)
        img = Image.fromarray(np.repeat(sky[:, None, :], w, axis=1))
        draw = ImageDraw.Draw(img)
        big = 5000.0
        self._fill(draw, _quad_x(-big, big, -big, big), (118, 120, 110))                 # ground
        hl, hw, fy = road.length_m / 2, road.half_width_m, road.facade_y_m
        for side in (-1, 1):                                                             # sidewalks
            self._fill(draw, _quad_x(-hl, hl, min(side * hw, side * fy), max(side * hw, side * fy), 0.0),
                       (165, 163, 158))
        self._fill(draw, _quad_x(-hl, hl, -hw, hw), (68, 70, 74))                        # asphalt
        for yc in (-0.12, 0.12):                                                         # centre line
            self._fill(draw, _quad_x(-hl, hl, yc - 0.06, yc + 0.06), (215, 180, 40))
        for side in (-1, 1):                                                             # edge lines
            yc = side * (hw - 0.25)
            self._fill(draw, _quad_x(-hl, hl, yc - 0.08, yc + 0.08), (225, 225, 225))
        for i in range(1, road.lanes_per_direction):                                     # lane dashes
            for side in (-1, 1):
                yc = side * i * road.lane_width_m
                for x in np.arange(-hl, hl, 9.0):
                    self._fill(draw, _quad_x(x, x + 3.0, yc - 0.07, yc + 0.07), (225, 225, 225))
        # buildings, far to near, with a window grid on the road-facing facade
        centres = (self.world.buildings[:, :3] + self.world.buildings[:, 3:]) / 2
        order = np.argsort(-np.linalg.norm(centres - cam.position, axis=1))
        for b in order:
            box = self.world.buildings[b]
            color = self.world.building_colors[b].tolist()
            for corners, normal in box_faces(box, cam.position):
                self._fill(draw, corners, self._shade(color, normal))
                if normal[1] != 0:     # facade: windows every 3 m x 3.5 m
                    y = box[4] if normal[1] > 0 else box[1]
                    y += normal[1] * 0.02
                    for z in np.arange(1.2, box[5] - 1.5, 3.5):
                        for x in np.arange(box[0] + 1.0, box[3] - 1.5, 3.0):
                            win = np.array([[x, y, z], [x + 1.5, y, z], [x + 1.5, y, z + 1.6], [x, y, z + 1.6]])
                            self._fill(draw, win, self._shade(self.WINDOW, normal))
        return img

    def render(self, veh: Vehicles, rng: np.random.Generator) -> np.ndarray:
        """The camera frame with the given vehicles, lighting and noise drawn from ``rng``."""
        img = self.background.copy()
        if len(veh):
            self._draw_vehicles(ImageDraw.Draw(img), veh)
        # per-scene lighting: global gain and a slight colour temperature change
        j = self.cfg.camera.lighting_jitter
        gain = 1.0 + rng.uniform(-j, j)
        tint = 1.0 + rng.uniform(-0.03, 0.03, 3)
        lut = np.concatenate([np.clip(np.arange(256) * gain * t, 0, 255) for t in tint]).astype(np.uint8)
        out = np.asarray(img.point(lut.tolist()))
        if self.noise is not None:
            out = np.clip(out + self.noise[rng.integers(len(self.noise))], 0, 255).astype(np.uint8)
        return out

    def _draw_vehicles(self, draw: ImageDraw.ImageDraw, veh: Vehicles) -> None:
        """Every vehicle as a shaded box with a window band on its sides, far to near.

        All corners are projected in one product; a vehicle is drawn from these directly unless
        one of its points is behind the near plane, then its faces go through the clipper.
        """
        cam = self.cam
        boxes = veh.boxes
        pts = _vehicle_points(boxes)                               # [V, 24, 3]
        c = cam.to_camera(pts)
        z = c[..., 2]
        ok = z > cam.NEAR
        zs = np.where(ok, z, 1.0)
        u = cam.cx + cam.f * c[..., 0] / zs
        v = cam.cy + cam.f * c[..., 1] / zs
        in_front = ok.any(axis=1)
        on_screen = ((np.where(ok, u, -1e9).max(axis=1) >= 0) & (np.where(ok, u, 1e9).min(axis=1) <= cam.width)
                     & (np.where(ok, v, -1e9).max(axis=1) >= 0) & (np.where(ok, v, 1e9).min(axis=1) <= cam.height))
        draw_rows = np.flatnonzero(in_front & (on_screen | ~ok.all(axis=1)))
        eye = cam.position
        facing = np.stack([eye[0] < boxes[:, 0], eye[0] > boxes[:, 3], eye[1] < boxes[:, 1],
                           eye[1] > boxes[:, 4], eye[2] > boxes[:, 5]], axis=1)      # [V, 5]
        depth = z.mean(axis=1)
        for i in draw_rows[np.argsort(-depth[draw_rows])]:
            color = veh.color[i].tolist()
            exact = ok[i].all()
            uv = list(zip(u[i].tolist(), v[i].tolist())) if exact else None
            for f in np.flatnonzero(facing[i]):
                quads = [(_FACE_CORNERS[f], self._shade(color, _FACE_NORMALS[f]))]
                if f < 4:                                          # side faces: window band
                    quads.append((_WINDOW_CORNERS[f], self._shade(self.WINDOW, _FACE_NORMALS[f])))
                for idx, fill in quads:
                    if exact:
                        draw.polygon([uv[k] for k in idx], fill=fill)
                    else:
                        self._fill(draw, pts[i, idx], fill)
