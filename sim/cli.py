"""`wmfm twin ...` and `wmfm dataset ...` sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    twin = sub.add_parser("twin", help="street-scene digital twin in the DeepVerse6G format")
    tsub = twin.add_subparsers(dest="action", required=True)
    g = tsub.add_parser("generate", help="write a synthetic DeepVerse6G scenario")
    g.add_argument("--out", type=Path, required=True, help="dataset folder (the scenario goes in OUT/NAME)")
    g.add_argument("--name", default="wmfm_twin", help="scenario name (folder)")
    g.add_argument("--scenes", type=int, default=1000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--config", type=Path, help="twin.yaml overriding the defaults (see sim/twin/config.py)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing scenario")
    g.set_defaults(func=_twin_generate)
    s = tsub.add_parser("show", help="top-down map of one scene beside its camera frame")
    s.add_argument("--scenario", type=Path, required=True)
    s.add_argument("--scene", type=int, default=0)
    s.add_argument("--bs", type=int, default=1)
    s.add_argument("--out", type=Path, required=True, help="PNG file")
    s.set_defaults(func=_twin_show)
    c = tsub.add_parser("config", help="print the default twin config (YAML) to start a --config from")
    c.set_defaults(func=_twin_config)

    ds = sub.add_parser("dataset", help="DeepVerse6G scenario -> training cache")
    dsub = ds.add_subparsers(dest="action", required=True)
    b = dsub.add_parser("build", help="read a scenario through deepverse into a cache of .npy files")
    b.add_argument("--scenario", type=Path, required=True, help="scenario folder (real or twin)")
    b.add_argument("--out", type=Path, required=True, help="cache folder")
    b.add_argument("--bs", type=int, default=1, help="BS id (1-based); one BS per cache")
    b.add_argument("--camera", default=None, help="camera sensor id or index (default: the first)")
    b.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    b.add_argument("--config", type=Path, help="deepverse loader config (default: SCENARIO/param/config.yaml)")
    b.add_argument("--scene-period", type=float, help="seconds between scenes (default: from the twin, else 0.1)")
    b.add_argument("--guard", type=float, default=3.0, help="seconds left out around split boundaries")
    b.add_argument("--seed", type=int, default=0, help="seed of the block-to-split assignment")
    b.add_argument("--overwrite", action="store_true")
    b.set_defaults(func=_dataset_build)
    st = dsub.add_parser("stats", help="summary and PNG of a cache")
    st.add_argument("cache", type=Path)
    st.add_argument("--out", type=Path, help="PNG (default: CACHE/stats.png)")
    st.set_defaults(func=_dataset_stats)


def _twin_generate(args) -> int:
    from wmfm.config import load_file

    from .twin.config import TwinConfig
    from .twin.generate import generate

    cfg = load_file(TwinConfig, args.config, "twin") if args.config else TwinConfig()
    s = generate(args.out, args.name, args.scenes, args.seed, cfg, overwrite=args.overwrite)
    print(f"scenario      {s['path']}")
    print(f"scenes        {s['scenes']}  UEs {s['ues']}  vehicles on the road (mean) {s['mean_vehicles_on_road']}")
    print(f"class balance LoS {s['los']} ({1 - s['nlos_share']:.1%})  NLoS {s['nlos']} ({s['nlos_share']:.1%})")
    print(f"paths per UE  {s['mean_paths_per_ue']}  by kind {s['paths_by_kind']}")
    print(f"speed         {s['scenes_per_s']} scenes/s ({s['seconds']} s)")
    return 0


def _twin_show(args) -> int:
    from .show import show_scene

    print(show_scene(args.scenario, args.scene, args.out, bs=args.bs))
    return 0


def _twin_config(args) -> int:
    import yaml

    from wmfm.config import to_dict

    from .twin.config import TwinConfig

    print(yaml.safe_dump(to_dict(TwinConfig()), sort_keys=False, default_flow_style=None), end="")
    return 0


def _dataset_build(args) -> int:
    from .dataset import build

    camera = args.camera
    meta = build(args.scenario, args.out, bs=args.bs, camera=camera, image_size=tuple(args.image_size),
                 config=args.config, scene_period_s=args.scene_period, guard_s=args.guard,
                 overwrite=args.overwrite, seed=args.seed)
    print(f"cache   {args.out}  ({meta['samples']} samples, {meta['dropped_no_path']} UEs without paths dropped, "
          f"{meta['build_seconds']} s)")
    print(f"csi     {meta['arrays']['csi']['shape']} float32   images {meta['arrays']['images']['shape']} uint8")
    print(f"classes {json.dumps(meta['counts'])}")
    print(f"split   {json.dumps(meta['split']['samples'])}")
    return 0


def _dataset_stats(args) -> int:
    from .show import dataset_stats

    summary, png = dataset_stats(args.cache, args.out)
    print(json.dumps(summary, indent=2))
    print(f"picture {png}")
    return 0
