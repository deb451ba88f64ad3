"""Writes the DeepVerse6G on-disk format (docs/deepverse6g-format.md).

<root>/<name>/
  param/scenario.yaml   modalities and sensors (camera pose in the sensor properties)
  param/config.yaml     loader parameters for `deepverse.Dataset`
  param/twin.json       the generating twin config, seed and summary (ours; ignored by deepverse)
  wireless/params.mat   carrier_freq, transmit_power, num_BS, user_grids, doppler/dual_polar flags
  wireless/scene_<s>/BS<k>_BS.mat, BS<k>_UE_0-<N>.mat   for every BS k (1-based)
  wireless/trajectory.mat
  RGB_images/<camera id>/<s>.jpg                         one camera per BS
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import scipy.io
import yaml
from PIL import Image

from wmfm.config import to_dict

from . import matv5
from .params import TwinConfig

# Fields of every moving object of a scene in trajectory.mat (all are required by deepverse).
OBJECT_FIELDS = ("id", "type", "x", "y", "z", "angle", "speed", "acceleration", "bounds", "tx_height", "slope")


def path_cell(matrices: list[np.ndarray]) -> np.ndarray:
    """1xN MATLAB cell of 1x1 structs {p: R x P_j matrix}, as scipy writes it."""
    cell = np.empty((1, len(matrices)), dtype=object)
    for j, m in enumerate(matrices):
        s = np.empty((1, 1), dtype=[("p", "O")])
        s[0, 0]["p"] = np.asarray(m, dtype=np.float64)
        cell[0, j] = s
    return cell


def mat_bytes(data: dict) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, do_compression=False, oned_as="row")
    return buf.getvalue()


def loader_config(cfg: TwinConfig, folder: Path, name: str, n_scenes: int) -> dict:
    """The `deepverse.Dataset` parameters for this twin. ``dataset_folder`` is written as the
    absolute path of the scenario's parent at generation time (deepverse resolves relative
    paths against the CWD); `wmfm dataset build` rewrites it, so a moved scenario still loads."""
    bs = cfg.bs
    sel = np.linspace(0, bs.total_subcarriers, bs.selected_subcarriers, endpoint=False).astype(int)
    return {
        "dataset_folder": str(Path(folder).resolve()),
        "scenario": name,
        "scenes": list(range(n_scenes)),
        "basestations": [1],
        "camera": True,
        "lidar": False,
        "position": True,
        "comm": {
            "enable": True,
            "bs_antenna": {"shape": [bs.n_antennas, 1], "rotation": [0.0, 0.0, float(bs.yaw_deg)],
                           "spacing": bs.spacing_wavelengths, "FoV": [float(v) for v in bs.fov_deg]},
            "ue_antenna": {"shape": [1, 1], "rotation": [0.0, 0.0, 0.0], "spacing": 0.5, "FoV": [360.0, 180.0]},
            "OFDM": {"bandwidth": bs.bandwidth_ghz, "subcarriers": bs.total_subcarriers,
                     "selected_subcarriers": sel.tolist()},
            "activate_RX_filter": 0,
            "generate_OFDM_channels": 1,
            "num_paths": cfg.propagation.max_paths,
            "enable_Doppler": 0,
        },
        "radar": {"enable": False},
    }


class ScenarioWriter:
    def __init__(self, root: Path, name: str, cfg: TwinConfig):
        self.dir = Path(root) / name
        self.name, self.cfg = name, cfg
        self.sites = [cfg.site(k) for k in range(cfg.n_bs)]
        self.image_dirs = [self.dir / "RGB_images" / site.camera.id for site in self.sites]
        for d in (self.dir / "param", self.dir / "wireless", *self.image_dirs):
            d.mkdir(parents=True, exist_ok=True)
        self.trajectory: list[list[dict]] = []
        bs = np.array([site.bs.position_m for site in self.sites], dtype=float)
        # BS k -> BS j file: every BS's location, links with no path (identical in every scene).
        self._bs_bs = mat_bytes({"channels": path_cell([np.zeros((10, 0))] * len(bs)),
                                 "rx_locs": np.concatenate([bs, np.zeros((len(bs), 2))], axis=1)})
        self._tx_locs = [b[None] for b in bs]

    def write_params(self) -> None:
        scipy.io.savemat(self.dir / "wireless" / "params.mat", {
            "carrier_freq": np.array([[self.cfg.bs.carrier_hz]]),
            "transmit_power": np.array([[0.0]]),
            "num_BS": np.array([[float(self.cfg.n_bs)]]),
            "user_grids": np.array([[1, 1, 1]], dtype=np.int64),
            "doppler_available": np.array([[1.0]]),
            "dual_polar_available": np.array([[0.0]]),
        })

    def write_scene(self, scene: int, links: list[tuple[list[np.ndarray], np.ndarray]], images: list[np.ndarray],
                    objects: dict[str, np.ndarray]) -> None:
        """One scene: per BS k, its BS -> UE paths (one matrix per UE) and rx_locs [N, 5], and its
        camera's frame [H, W, 3]; the moving objects of this instant as columns (OBJECT_FIELDS;
        UEs first, in UE order)."""
        sdir = self.dir / "wireless" / f"scene_{scene}"
        sdir.mkdir(exist_ok=True)
        for k, (path_matrices, rx_locs) in enumerate(links):
            (sdir / f"BS{k + 1}_BS.mat").write_bytes(self._bs_bs)
            (sdir / f"BS{k + 1}_UE_0-{len(path_matrices)}.mat").write_bytes(mat_bytes(
                {"channels": path_cell(path_matrices), "rx_locs": rx_locs, "tx_loc": self._tx_locs[k]}))
        for image, folder, site in zip(images, self.image_dirs, self.sites):
            cam, img = site.camera, Image.fromarray(image)
            if cam.format == "jpg":
                img.save(folder / f"{scene}.jpg", format="JPEG", quality=cam.jpeg_quality)
            else:
                img.save(folder / f"{scene}.png", format="PNG", compress_level=1)
        self.trajectory.append(objects)

    def finish(self, seed: int, summary: dict) -> None:
        cfg = self.cfg
        types = [{"id": float(t.id), "name": t.name, "length": t.length_m, "width": t.width_m,
                  "height": t.height_m} for t in cfg.traffic.vehicle_types]
        records = matv5.RecordEncoder({k: ((2, 3) if k == "bounds" else ()) for k in OBJECT_FIELDS})
        scenes = [matv5.struct_1x1({"objects": matv5.cell_of(records.encode(cols), len(cols["id"]))})
                  for cols in self.trajectory]
        matv5.write_mat(self.dir / "wireless" / "trajectory.mat",
                        [matv5.encode(types, b"object_info"), matv5.top_cell("scene", scenes)])
        scenario = {"modalities": [
            {"name": "camera", "path": "RGB_images", "sensors": [{
                "id": c.id,
                "properties": {"location": [float(v) for v in c.position_m],
                               "rotation": [float(c.roll_deg), float(c.pitch_deg), float(c.yaw_deg)],
                               "FoV": float(c.fov_deg), "resolution": [int(v) for v in c.resolution]}}
                for c in (site.camera for site in self.sites)]},
            {"name": "wireless", "path": "wireless"},
            {"name": "dynamic_objects", "path": "wireless/trajectory.mat"},
        ]}
        (self.dir / "param" / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
        (self.dir / "param" / "config.yaml").write_text(
            yaml.safe_dump(loader_config(cfg, self.dir.parent, self.name, len(self.trajectory)), sort_keys=False,
                           default_flow_style=None))
        (self.dir / "param" / "twin.json").write_text(json.dumps(
            {"generator": "wmfm twin", "seed": seed, "config": to_dict(cfg), "summary": summary}, indent=2))
