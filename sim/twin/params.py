"""Twin configuration: frozen dataclasses with the defaults of `wmfm twin generate`.

Units: metres, seconds, degrees, Hz (except `bandwidth_ghz`, which is in GHz as in the
DeepVerse6G loader config). World frame: x along the road, y across it (BS side at y < 0),
z up; the road spans x in [-road.length_m / 2, +road.length_m / 2].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from wmfm.config import check


@dataclass(frozen=True)
class VehicleType:
    id: int
    name: str
    length_m: float
    width_m: float
    height_m: float
    share: float            # share of spawned vehicles (normalised over all types)
    speed_mps: float        # mean desired speed (IDM v0)
    speed_std_mps: float
    time_gap_s: float       # IDM safe time headway
    ue_weight: float        # ue_policy "fixed": relative chance of being a connected vehicle (0: never)
    reflective: bool        # large flat metal sides that produce specular reflections


# Shares and the BS height set the NLoS share: with these, 3.5 m and a 2.6 s headway the
# twin gives ~30 % NLoS (29-35 % over seeds, 5,000 scenes each).
DEFAULT_VEHICLES = (
    VehicleType(1, "car", 4.5, 1.8, 1.5, 0.50, 13.0, 1.5, 1.2, 1.0, False),
    VehicleType(2, "van", 5.8, 2.1, 2.6, 0.20, 12.0, 1.2, 1.4, 0.3, True),
    VehicleType(3, "bus", 12.0, 2.55, 3.3, 0.15, 10.5, 0.8, 1.8, 0.1, True),
    VehicleType(4, "truck", 9.5, 2.5, 4.0, 0.15, 10.0, 0.8, 1.8, 0.1, True),
)


@dataclass(frozen=True)
class RoadConfig:
    length_m: float = 200.0
    lanes_per_direction: int = 2
    lane_width_m: float = 3.5
    sidewalk_m: float = 3.0          # kerb to building facade

    def validate(self, where: str) -> None:
        check(self.length_m >= 50, f"{where}.length_m", "must be >= 50")
        check(1 <= self.lanes_per_direction <= 6, f"{where}.lanes_per_direction", "must be in 1..6")
        check(2.5 <= self.lane_width_m <= 5, f"{where}.lane_width_m", "must be in 2.5..5")
        check(self.sidewalk_m >= 1, f"{where}.sidewalk_m", "must be >= 1")

    @property
    def half_width_m(self) -> float:
        return self.lanes_per_direction * self.lane_width_m

    @property
    def facade_y_m(self) -> float:
        return self.half_width_m + self.sidewalk_m


@dataclass(frozen=True)
class BuildingConfig:
    width_m: tuple[float, float] = (12.0, 40.0)     # facade length along the road (uniform range)
    gap_m: tuple[float, float] = (0.0, 10.0)        # alleys between buildings
    height_m: tuple[float, float] = (8.0, 30.0)
    depth_m: float = 15.0

    def validate(self, where: str) -> None:
        for name in ("width_m", "gap_m", "height_m"):
            lo, hi = getattr(self, name)
            check(0 <= lo <= hi, f"{where}.{name}", "must be a range [lo, hi] with 0 <= lo <= hi")
        check(self.width_m[0] > 1, f"{where}.width_m", "buildings must be wider than 1 m")


@dataclass(frozen=True)
class TrafficConfig:
    vehicle_types: tuple[VehicleType, ...] = DEFAULT_VEHICLES
    headway_s: float = 2.6            # mean time between vehicles entering a lane
    min_headway_s: float = 1.0
    warmup_s: float = 40.0            # simulated before scene 0 so the road is populated
    # "all": every vehicle in the coverage zone is a UE (DeepVerse6G's convention: a scene's UEs
    # are its moving objects), up to max_ues, the longest-connected first; "fixed": ues_per_scene
    # connected vehicles, drawn by ue_weight, each kept while it stays in the zone.
    ue_policy: str = "all"
    max_ues: int = 20                 # "all": cap per scene (the official DeepVerse6G example uses 20)
    ues_per_scene: int = 1            # "fixed": connected vehicles tracked at once
    coverage_x_m: tuple[float, float] = (6.0, 60.0)   # UEs are served (and seen) in this x range
    ue_antenna_above_roof_m: float = 0.1

    def validate(self, where: str) -> None:
        check(len(self.vehicle_types) >= 1, f"{where}.vehicle_types", "needs at least one type")
        ids = [v.id for v in self.vehicle_types]
        check(len(set(ids)) == len(ids), f"{where}.vehicle_types", "type ids must be unique")
        check(sum(v.share for v in self.vehicle_types) > 0, f"{where}.vehicle_types", "shares sum to 0")
        check(sum(v.ue_weight for v in self.vehicle_types) > 0, f"{where}.vehicle_types",
              "at least one type needs ue_weight > 0")
        check(self.headway_s >= self.min_headway_s > 0, f"{where}.headway_s", "must be >= min_headway_s > 0")
        check(self.ue_policy in ("all", "fixed"), f"{where}.ue_policy", "must be 'all' or 'fixed'")
        check(1 <= self.max_ues <= 64, f"{where}.max_ues", "must be in 1..64")
        check(1 <= self.ues_per_scene <= 64, f"{where}.ues_per_scene", "must be in 1..64")
        check(self.coverage_x_m[0] < self.coverage_x_m[1], f"{where}.coverage_x_m", "must be [lo, hi], lo < hi")


@dataclass(frozen=True)
class BSConfig:
    position_m: tuple[float, float, float] = (0.0, -8.5, 3.5)   # array phase centre, lamp-post small cell
    n_antennas: int = 32              # uniform linear array, horizontal
    spacing_wavelengths: float = 0.5
    yaw_deg: float = 20.0             # broadside azimuth (towards the road)
    fov_deg: tuple[float, float] = (180.0, 180.0)   # sector: no radiation behind the panel
    carrier_hz: float = 28e9
    bandwidth_ghz: float = 0.1
    total_subcarriers: int = 512
    selected_subcarriers: int = 64    # evenly spaced across the band

    def validate(self, where: str) -> None:
        check(1 <= self.n_antennas <= 1024, f"{where}.n_antennas", "must be in 1..1024")
        check(self.carrier_hz > 1e8, f"{where}.carrier_hz", "must be > 1e8 Hz")
        check(0 < self.bandwidth_ghz < 10, f"{where}.bandwidth_ghz", "must be in (0, 10) GHz")
        check(1 <= self.selected_subcarriers <= self.total_subcarriers, f"{where}.selected_subcarriers",
              "must be in 1..total_subcarriers")
        check(self.position_m[2] > 0, f"{where}.position_m", "BS height must be > 0")


@dataclass(frozen=True)
class CameraConfig:
    # A traffic/ISAC camera on the BS pole, above the small cell, aimed at the coverage zone
    # (`worlds.aim_camera` gives these angles for the default street).
    id: str = "unit1_cam1"
    position_m: tuple[float, float, float] = (0.0, -8.5, 6.0)
    yaw_deg: float = 35.0
    pitch_deg: float = -24.0          # negative: looking down
    roll_deg: float = 0.0
    fov_deg: float = 90.0             # horizontal field of view
    resolution: tuple[int, int] = (320, 240)   # width, height [px]
    format: str = "jpg"               # jpg | png
    jpeg_quality: int = 90
    noise_std: float = 2.5            # sensor noise [8-bit levels]
    lighting_jitter: float = 0.12     # per-scene gain in [1 - j, 1 + j]

    def validate(self, where: str) -> None:
        check(10 <= self.fov_deg <= 150, f"{where}.fov_deg", "must be in 10..150")
        check(16 <= self.resolution[0] <= 4096 and 16 <= self.resolution[1] <= 4096,
              f"{where}.resolution", "width and height must be in 16..4096")
        check(self.format in ("jpg", "png"), f"{where}.format", "must be jpg or png")
        check(1 <= self.jpeg_quality <= 100, f"{where}.jpeg_quality", "must be in 1..100")
        check(self.id and "/" not in self.id, f"{where}.id", "must be a non-empty folder name")


@dataclass(frozen=True)
class PropagationConfig:
    los: bool = True
    diffraction: bool = True          # knife-edge over the roof of a blocking vehicle
    ground: bool = True
    walls: bool = True
    vehicles: bool = True             # specular reflections off reflective vehicle sides
    diffuse_paths: int = 4            # strongest point scatterers kept per UE
    scatterer_spacing_m: float = 12.0      # lamp posts / signs along both kerbs
    scatterer_rcs_m2: tuple[float, float] = (0.5, 5.0)
    ground_permittivity: float = 5.3  # concrete/asphalt at mmWave (ITU-R P.2040 concrete)
    ground_conductivity: float = 0.63  # S/m, ITU-R P.2040 concrete at 28 GHz
    wall_permittivity: float = 5.3
    wall_conductivity: float = 0.63
    vehicle_extra_loss_db: float = 6.0     # finite, curved metal panels vs an ideal mirror
    max_paths: int = 25

    def validate(self, where: str) -> None:
        check(0 <= self.diffuse_paths <= 20, f"{where}.diffuse_paths", "must be in 0..20")
        check(self.scatterer_spacing_m > 1, f"{where}.scatterer_spacing_m", "must be > 1")
        check(self.ground_permittivity >= 1 and self.wall_permittivity >= 1, where,
              "relative permittivities must be >= 1")
        check(1 <= self.max_paths <= 100, f"{where}.max_paths", "must be in 1..100")


@dataclass(frozen=True)
class SiteConfig:
    """A further BS of the world (BS 2, 3, ...), with its camera and the zone it serves."""
    bs: BSConfig = field(default_factory=BSConfig)
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(id="unit2_cam1"))
    coverage_x_m: tuple[float, float] = (6.0, 60.0)


@dataclass(frozen=True)
class TwinConfig:
    scene_period_s: float = 0.1
    # Seed of the building layout and the scatterers; None: drawn from the run's --seed. A drawn
    # world (`worlds.draw`) sets it, so that one world keeps its street under every traffic seed.
    layout_seed: int | None = None
    world: int | None = None          # the world id this config was drawn from (None: the default street)
    road: RoadConfig = field(default_factory=RoadConfig)
    buildings: BuildingConfig = field(default_factory=BuildingConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    bs: BSConfig = field(default_factory=BSConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    # Further BSs, each with its camera and zone (BS k + 2 is sites[k], as DeepVerse6G's O1 has
    # four): every UE of a scene has a channel from every BS (the UEs are the vehicles in any zone).
    # They share BS 1's array orientation (the loader config has one `bs_antenna` for all BSs).
    sites: tuple[SiteConfig, ...] = ()

    @property
    def n_bs(self) -> int:
        return 1 + len(self.sites)

    def site(self, k: int) -> TwinConfig:
        """BS k (0-based) as a one-BS config: its BS, camera and zone in place of the first one's."""
        if k == 0:
            return dataclasses.replace(self, sites=())
        s = self.sites[k - 1]
        return dataclasses.replace(self, bs=s.bs, camera=s.camera, sites=(),
                                   traffic=dataclasses.replace(self.traffic, coverage_x_m=s.coverage_x_m))

    def validate(self, where: str) -> None:
        check(0.001 <= self.scene_period_s <= 10, f"{where}.scene_period_s", "must be in 0.001..10 s")
        half = self.road.length_m / 2
        for k in range(self.n_bs):
            site, at = self.site(k), (where if k == 0 else f"{where}.sites[{k - 1}]")
            lo, hi = site.traffic.coverage_x_m
            zone = f"{at}.traffic.coverage_x_m" if k == 0 else f"{at}.coverage_x_m"
            check(lo < hi, zone, "must be [lo, hi], lo < hi")
            check(-half < lo and hi < half, zone, "must lie inside the road")
            check(abs(site.bs.position_m[1]) < self.road.facade_y_m, f"{at}.bs.position_m",
                  "BS must stand between the building facades")
        ids = [self.site(k).camera.id for k in range(self.n_bs)]
        check(len(set(ids)) == len(ids), f"{where}.sites", f"camera ids must be unique, got {ids}")
        check(all(s.bs.yaw_deg == self.bs.yaw_deg and s.bs.n_antennas == self.bs.n_antennas for s in self.sites),
              f"{where}.sites", "every BS needs bs.yaw_deg and bs.n_antennas of the first (the DeepVerse6G loader "
              "config has one antenna for all BSs)")
