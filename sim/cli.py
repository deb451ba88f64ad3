"""`wmfm twin ...`, `wmfm dataset ...`, `wmfm replay` and `wmfm bench ...` sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wmfm.args import (
    float_range,
    frame_size,
    int_range,
    non_negative_float,
    positive_float,
    positive_int,
    probability,
    seed,
)


def register(sub: argparse._SubParsersAction) -> None:
    twin = sub.add_parser("twin", help="street-scene digital twin in the DeepVerse6G format")
    tsub = twin.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = tsub.add_parser("generate", help="write a synthetic DeepVerse6G scenario")
    g.add_argument("--out", type=Path, required=True, help="dataset folder (the scenario goes in OUT/NAME)")
    g.add_argument("--name", default="wmfm_twin", help="scenario name (folder)")
    g.add_argument("--scenes", type=positive_int, default=1000, help="scenes (camera frames) to simulate")
    g.add_argument("--seed", type=seed, default=0, help="seed of the traffic and the noise (and of the building "
                                                        "layout of the default street)")
    g.add_argument("--world", type=seed, help="draw world W (street, buildings, BS and camera pose, traffic mix) "
                                              "on top of the defaults or --config (default: the default street)")
    g.add_argument("--bs", type=int_range(1, 8), default=1,
                   help="BSs down the street, each with its camera and zone (DeepVerse6G's O1 has 4); every UE has "
                        "a channel from every BS (`dataset build --bs K` reads BS K)")
    g.add_argument("--ues", choices=("all", "fixed"), help="every vehicle in the coverage zone is a UE (all, up "
                                                           "to traffic.max_ues) or traffic.ues_per_scene connected "
                                                           "vehicles (fixed); default: from the config")
    g.add_argument("--camera-size", type=frame_size, metavar="WxH",
                   help="camera frames of this size (a street camera: 1280x720 or 1920x1080; the cache keeps the "
                        "model's input size); default: from the config (camera.resolution)")
    g.add_argument("--config", type=Path, help="twin.yaml overriding the defaults (`wmfm twin config` prints them)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing scenario")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_twin_generate)
    s = tsub.add_parser("show", help="top-down map of one scene beside its camera frame")
    s.add_argument("--scenario", type=Path, required=True, help="scenario folder")
    s.add_argument("--scene", type=int_range(0), default=0, help="scene index (0-based)")
    s.add_argument("--bs", type=positive_int, default=1, help="BS id (1-based)")
    s.add_argument("--out", type=Path, required=True, help="PNG file")
    s.set_defaults(func=_twin_show)
    c = tsub.add_parser("config", help="print the default twin config (YAML) to start a --config from")
    c.set_defaults(func=_twin_config)

    ds = sub.add_parser("dataset", help="DeepVerse6G scenario -> training cache")
    dsub = ds.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = dsub.add_parser("build", help="read a scenario through deepverse into a cache of .npy files")
    b.add_argument("--scenario", type=Path, required=True, help="scenario folder (real or twin)")
    b.add_argument("--out", type=Path, required=True, help="cache folder")
    b.add_argument("--bs", type=positive_int, default=1, help="BS id (1-based); one BS per cache")
    b.add_argument("--camera", default=None, help="camera sensor id or index (default: the first)")
    b.add_argument("--image-size", type=int_range(8, 4096), nargs=2, default=(128, 128), metavar=("H", "W"),
                   help="image size stored in the cache")
    b.add_argument("--config", type=Path, help="deepverse loader config (default: SCENARIO/param/config.yaml)")
    b.add_argument("--scene-period", type=positive_float,
                   help="seconds between scenes (default: from the twin, else 0.1)")
    b.add_argument("--guard", type=non_negative_float, default=3.0, help="seconds left out around split boundaries")
    b.add_argument("--seed", type=seed, default=0, help="seed of the block-to-split assignment")
    b.add_argument("--allow-one-class", action="store_true",
                   help="write the cache even when a split lacks LoS or NLoS samples (no training possible)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_dataset_build)
    st = dsub.add_parser("stats", help="summary and PNG of a cache")
    st.add_argument("cache", type=Path, help="cache folder")
    st.add_argument("--out", type=Path, help="PNG (default: CACHE/stats.png)")
    st.set_defaults(func=_dataset_stats)

    _register_corpus(sub)
    _register_replay(sub)
    _register_bench(sub)


def _register_corpus(sub) -> None:
    c = sub.add_parser("corpus", help="many twin worlds -> one unlabelled pretraining corpus")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = csub.add_parser("build", help="draw worlds, generate them, cache them; labels kept apart from what "
                                      "pretraining reads (resumes an interrupted build)")
    b.add_argument("--out", type=Path, required=True, help="corpus folder")
    b.add_argument("--worlds", type=positive_int, required=True, help="worlds in the corpus")
    b.add_argument("--scenes-per-world", type=int_range(200), default=1000, help="camera frames per world")
    b.add_argument("--first-world", type=seed, default=1, help="world ids from this one on (`twin generate --world`)")
    b.add_argument("--exclude", type=seed, nargs="*", default=[1000],
                   help="world ids never in the corpus (the experiments' unseen world is 1000)")
    b.add_argument("--seed", type=seed, default=0, help="traffic seed of world w: SEED + w")
    b.add_argument("--scene-period", type=positive_float, default=0.5, help="seconds between frames")
    b.add_argument("--image-size", type=int_range(8, 4096), nargs=2, default=(64, 64), metavar=("H", "W"),
                   help="stored frame size")
    b.add_argument("--max-ues", type=int_range(1, 64), default=20, help="UEs per frame at most")
    b.add_argument("--keep-scenarios", action="store_true", help="keep the DeepVerse6G scenarios in OUT/scenarios")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_corpus_build)
    s = csub.add_parser("show", help="what a corpus holds")
    s.add_argument("corpus", type=Path, help="corpus folder")
    s.set_defaults(func=_corpus_show)


def _corpus_build(args) -> int:
    from wmfm.cache import CorpusSpec
    from wmfm.config import from_dict

    from . import corpus
    spec = from_dict(CorpusSpec, {"worlds": args.worlds, "scenes_per_world": args.scenes_per_world,
                                  "first_world": args.first_world, "exclude": list(args.exclude), "seed": args.seed,
                                  "scene_period_s": args.scene_period, "image_size": list(args.image_size),
                                  "max_ues": args.max_ues}, "corpus")
    meta = corpus.build(args.out, spec, progress=not args.quiet, keep_scenarios=args.keep_scenarios)
    print(f"corpus        {args.out}")
    print(corpus.describe(meta))
    return 0


def _corpus_show(args) -> int:
    from wmfm.cache import corpus_meta

    from . import corpus
    print(corpus.describe(corpus_meta(args.corpus)))
    return 0


def _register_replay(sub) -> None:
    r = sub.add_parser("replay", help="play a DeepVerse6G scenario into a running xApp (RAN + cameras) and "
                                      "score its insights live")
    r.add_argument("--scenario", type=Path, required=True, help="scenario folder (twin or real DeepVerse6G)")
    r.add_argument("--indications", default="tcp://127.0.0.1:5560",
                   help="the xApp's indication endpoint; several instances: a comma-separated list (see --route)")
    r.add_argument("--frames", default="tcp://127.0.0.1:5561",
                   help="the xApp's frame endpoint; several instances: a comma-separated list (each gets every frame)")
    r.add_argument("--metrics", help="the xApp's metrics URL (http://host:8080/ric/v1/metrics; several: "
                                     "comma-separated): adds what it counted and its stage latency breakdown, and "
                                     "tells the replay where the xApp writes (its /ric/v1/config)")
    r.add_argument("--redis", help="the Redis the xApp writes to (default: the one its --metrics config names, "
                                   "else redis://127.0.0.1:6379/0)")
    r.add_argument("--namespace", help="the xApp's SDL namespace (default: from its config, else wmfm)")
    r.add_argument("--split", default="test", choices=("all", "train", "val", "test"),
                   help="scenes of this split (time blocks as `wmfm dataset build` cuts them)")
    r.add_argument("--cache", type=Path, help="the model's training cache: take its split (else the defaults)")
    r.add_argument("--bs", type=positive_int, default=1, help="BS id (1-based)")
    r.add_argument("--camera", default=None, help="camera sensor id or index (default: the first)")
    r.add_argument("--loader-config", type=Path, help="deepverse loader config (default: SCENARIO/param/config.yaml)")
    r.add_argument("--scene-period", type=positive_float,
                   help="seconds between scenes (default: from the twin, else 0.1)")
    pace = r.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=positive_float, default=1.0, help="real time x SPEED")
    pace.add_argument("--max-rate", action="store_true", help="as fast as the xApp takes them")
    r.add_argument("--loop", action="store_true", help="repeat the scenes (soak; needs --duration or --count)")
    r.add_argument("--duration", type=positive_float, help="stop sending after this many seconds")
    r.add_argument("--count", type=positive_int, help="stop after this many UE reports")
    r.add_argument("--bundle", action="store_true", help="one indication per scene and cell with all its UEs "
                                                         "(default: one per UE)")
    r.add_argument("--snr-db", type=float_range(-50, 100), help="CSI estimation noise at this SNR [dB] "
                                                                "(default: none)")
    r.add_argument("--jitter-ms", type=non_negative_float, default=0.0,
                   help="network delay per message, uniform in [0, J] ms")
    r.add_argument("--drop", type=probability, default=0.0, help="probability an indication is lost")
    r.add_argument("--reorder", type=probability, default=0.0, help="probability an indication is overtaken by "
                                                                    "the next")
    r.add_argument("--camera-lag-ms", type=non_negative_float, default=0.0, help="frames sent this long after capture")
    r.add_argument("--outage", action="append", default=[], metavar="START:END",
                   help="camera outage window, seconds of replay time (repeatable)")
    r.add_argument("--clock-offset-ms", type=float_range(-3_600_000, 3_600_000), default=0.0,
                   help="camera clock minus RAN clock")
    r.add_argument("--seed", type=seed, default=0, help="seed of the noise, drops, reordering and jitter")
    r.add_argument("--cell", default="00101:1",
                   help="<plmn>:<nr_cell_id> the indications come from; several: comma-separated (UE id mod n picks "
                        "one; one E2 subscription per cell)")
    r.add_argument("--encoding", default="auto", choices=("auto", "protobuf", "e2ap"),
                   help="indications as the RICIndication protobuf envelope, or as E2AP RICindication PDUs (APER, "
                        "E2SM-WMFM-CSI); auto: the xApp's indications.encoding (from --metrics), else protobuf")
    r.add_argument("--route", default="round_robin", choices=("round_robin", "cell"),
                   help="several indication endpoints: spread round-robin, or cell i -> endpoint i")
    r.add_argument("--bind", action="store_true",
                   help="bind the endpoints (a PUSH for indications, a PUB for frames) and let the xApps connect "
                        "(indications.mode=connect; frames.mode=connect, frames.pattern=sub)")
    r.add_argument("--peers", type=positive_int, default=1, help="with --bind: wait for this many xApps")
    r.add_argument("--connect-timeout", type=positive_float, default=10.0,
                   help="seconds the xApp(s) have to answer (connecting) or connect (--bind)")
    r.add_argument("--settle", type=non_negative_float, default=3.0, help="seconds to wait for the last insights")
    r.add_argument("--out", type=Path, help="folder for replay.json, insights.csv and the PNGs")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.set_defaults(func=_replay)


def _load_arguments(p, fps: float) -> None:
    """The synthetic load's shape (sim/loadgen.py), shared by `bench xapp` and `bench soak`."""
    p.add_argument("--ues-per-frame", type=int_range(1, 1024), default=8, help="UEs per camera (per indication)")
    p.add_argument("--cameras", type=int_range(1, 64), default=2, help="cameras, one cell each")
    p.add_argument("--fps", type=float_range(0, 240, lo_open=True), default=fps, help="frames per second per camera")
    p.add_argument("--camera-size", type=frame_size, default=(1280, 720), metavar="WxH",
                   help="camera frame size (JPEG, quality 85)")


def _register_bench(sub) -> None:
    from wmfm.xapp.inference import BACKENDS
    bench = sub.add_parser("bench", help="benchmarks, each against its baseline in the same run")
    bsub = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    t = bsub.add_parser("twin", help="twin scenes and UE samples per second on one core, stage breakdown, "
                                    "cache build time")
    t.add_argument("--scenes", type=positive_int, default=2000, help="scenes to generate")
    t.add_argument("--seed", type=seed, default=0, help="twin seed")
    t.add_argument("--cache", action="store_true", help="also time `wmfm dataset build` on the scenario")
    t.add_argument("--out", type=Path, help="JSON report")
    t.set_defaults(func=_bench_twin)

    m = bsub.add_parser("model", help="batch-1 latency and batch-8/32 throughput of each backend vs torch eager")
    m.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder")
    m.add_argument("--out", type=Path, help="JSON report (a PNG chart is written next to it)")
    m.add_argument("--backends", nargs="+", choices=sorted(BACKENDS),
                   help="backends to time besides torch eager (default: onnxruntime and tensorrt where available; "
                        "`torch` adds torch eager on CUDA)")
    m.add_argument("--calls", type=int_range(1, 10_000_000), default=1000,
                   help="timed batch-1 calls per backend and component")
    m.add_argument("--rounds", type=int_range(1, 1000), default=3, help="interleaved rounds the calls are split into")
    m.add_argument("--threads", type=positive_int, help="CPU threads for onnxruntime and torch (default: their own)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_bench_model)

    d = bsub.add_parser("decode", help="camera JPEG -> model input per resolution: OpenCV reduced decode (what the "
                                       "cache and the xApp run) vs OpenCV full, Pillow draft and Pillow full")
    d.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder (model input size, "
                                                                "reference pictures)")
    d.add_argument("--sizes", type=frame_size, nargs="+", default=[(320, 240), (1280, 720), (1920, 1080)],
                   metavar="WxH", help="camera frame sizes")
    d.add_argument("--calls", type=int_range(1, 1_000_000), default=200, help="timed frames per method and size")
    d.add_argument("--rounds", type=int_range(1, 1000), default=3, help="interleaved rounds the calls are split into")
    d.add_argument("--out", type=Path, help="JSON report (a PNG chart is written next to it)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_bench_decode)

    b = bsub.add_parser("xapp", help="the xApp under load (ZeroMQ in, Redis out) vs a naive baseline")
    b.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder")
    b.add_argument("--rate", type=float_range(0, 1_000_000, lo_open=True), default=100.0,
                   help="UE reports per second in total")
    b.add_argument("--max-rate", action="store_true",
                   help="play the --rate load (its mix of frames and reports) as fast as the xApp takes it")
    b.add_argument("--duration", type=float_range(0, 600, lo_open=True), default=10.0,
                   help="seconds of load per variant")
    _load_arguments(b, fps=30.0)
    b.add_argument("--also", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="one more variant in the same run: the xApp with these controls changed (repeatable)")
    b.add_argument("--count", type=positive_int, help="stop after this many UE reports")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="xApp control override")
    b.add_argument("--no-baseline", action="store_true", help="skip the naive baseline run")
    b.add_argument("--indications", help="a running xApp's indication endpoint (then also --frames, --redis; "
                                          "its cameras must be cam0.. on cells 00101:1..)")
    b.add_argument("--frames", help="a running xApp's frame endpoint")
    b.add_argument("--redis", help="the Redis that xApp writes to")
    b.add_argument("--out", type=Path, help="JSON report (a latency PNG is written next to it)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_bench_xapp)

    q = bsub.add_parser("queue", help="the memory one receive socket can hold per setting: filled by senders, "
                                      "nobody reading, against the bound its controls give")
    q.add_argument("--senders", type=int_range(1, 64), nargs="+", default=[1, 2], help="sender counts to try")
    q.add_argument("--cap", type=int_range(1, 100_000), default=120, help="messages per sender at most")
    q.add_argument("--out", type=Path, help="JSON report (a PNG chart is written next to it)")
    q.set_defaults(func=_bench_queue)

    k = bsub.add_parser("soak", help="the xApp under a steady load for a long time: memory and latency sampled "
                                     "every interval (flat memory? steady p99?)")
    k.add_argument("--artifact", type=Path, required=True, help="`wmfm export` output folder")
    k.add_argument("--rate", type=float_range(0, 1_000_000, lo_open=True), default=1000.0,
                   help="UE reports per second in total")
    k.add_argument("--duration", type=float_range(10, 7 * 86400), default=3600.0, help="seconds of load")
    k.add_argument("--interval", type=float_range(1, 3600), default=60.0, help="seconds between samples")
    k.add_argument("--warmup", type=float_range(0, 86400), default=300.0,
                   help="seconds left out of the memory slope (at most half the duration)")
    _load_arguments(k, fps=10.0)
    k.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="xApp control override")
    k.add_argument("--out", type=Path, help="JSON report (a PNG of memory and p99 over time is written next to it)")
    k.add_argument("--quiet", action="store_true", help="no progress bar")
    k.set_defaults(func=_bench_soak)


def _twin_generate(args) -> int:
    import dataclasses as dc

    import numpy as np

    from wmfm.config import load_file

    from .twin import worlds
    from .twin.generate import generate
    from .twin.params import TwinConfig

    cfg = load_file(TwinConfig, args.config, "twin") if args.config else TwinConfig()
    if args.ues:
        cfg = dc.replace(cfg, traffic=dc.replace(cfg.traffic, ue_policy=args.ues))
    if args.camera_size:
        cfg = dc.replace(cfg, camera=dc.replace(cfg.camera, resolution=args.camera_size))
    if args.world is not None:
        cfg = worlds.draw(args.world, cfg, n_bs=args.bs)
    elif args.bs > 1:
        cfg = worlds.add_sites(cfg, args.bs, np.random.default_rng([args.bs, 0x517E]))
    s = generate(args.out, args.name, args.scenes, args.seed, cfg, overwrite=args.overwrite,
                 progress=not args.quiet)
    print(f"scenario      {s['path']}  ({'world ' + str(cfg.world) if cfg.world is not None else 'default street'})")
    print(f"scenes        {s['scenes']}  UEs {s['ues']} ({s['mean_ues_per_scene']} per scene, policy "
          f"{s['ue_policy']})  vehicles on the road (mean) {s['mean_vehicles_on_road']}")
    print(f"class balance LoS {s['los']} ({1 - s['nlos_share']:.1%})  NLoS {s['nlos']} ({s['nlos_share']:.1%})"
          + (f"  (BS 1; NLoS by BS {s['nlos_share_by_bs']})" if s.get("nlos_share_by_bs") else ""))
    print(f"paths per UE  {s['mean_paths_per_ue']}  by kind {s['paths_by_kind']}")
    print(f"speed         {s['scenes_per_s']} scenes/s, {s['ues_per_s']} UE samples/s ({s['seconds']} s)")
    return 0


def _twin_show(args) -> int:
    from .show import show_scene

    print(show_scene(args.scenario, args.scene, args.out, bs=args.bs))
    return 0


def _twin_config(args) -> int:
    import yaml

    from wmfm.config import to_dict

    from .twin.params import TwinConfig

    print(yaml.safe_dump(to_dict(TwinConfig()), sort_keys=False, default_flow_style=None), end="")
    return 0


def _dataset_build(args) -> int:
    from .dataset import build

    meta = build(args.scenario, args.out, bs=args.bs, camera=args.camera, image_size=tuple(args.image_size),
                 config=args.config, scene_period_s=args.scene_period, guard_s=args.guard,
                 overwrite=args.overwrite, seed=args.seed, progress=not args.quiet,
                 allow_one_class=args.allow_one_class)
    print(f"cache   {args.out}  ({meta['samples']} samples, {meta['dropped_no_path']} UEs without paths dropped, "
          f"{meta['build_seconds']} s)")
    print(f"csi     {meta['arrays']['csi']['shape']} float32   images {meta['arrays']['images']['shape']} uint8")
    print(f"classes {json.dumps(meta['counts'])}")
    print(f"split   {json.dumps(meta['split']['samples'])}")
    for line in meta.get("warnings", []):
        print(f"{args.prog}: warning: {line}", file=sys.stderr)
    return 0


def _dataset_stats(args) -> int:
    from .show import dataset_stats

    summary, png = dataset_stats(args.cache, args.out)
    print(json.dumps(summary, indent=2))
    print(f"picture {png}")
    return 0


def _outages(specs: list[str]) -> tuple[tuple[float, float], ...]:
    from wmfm.config import ConfigError
    out = []
    for spec in specs:
        try:
            a, b = (float(v) for v in spec.split(":"))
        except ValueError:
            raise ConfigError(f"--outage: expected START:END in seconds, got {spec!r}") from None
        out.append((a, b))
    return tuple(out)


def _replay(args) -> int:
    from . import recording, replay, report
    from .player import ReplayConfig

    cfg = ReplayConfig(speed=args.speed, max_rate=args.max_rate, loop=args.loop, duration_s=args.duration,
                       count=args.count, bundle=args.bundle, snr_db=args.snr_db, jitter_ms=args.jitter_ms,
                       drop=args.drop, reorder=args.reorder, camera_lag_ms=args.camera_lag_ms,
                       outages=_outages(args.outage), clock_offset_ms=args.clock_offset_ms, seed=args.seed,
                       cells=tuple(c.strip() for c in args.cell.split(",")), route=args.route, bind=args.bind,
                       peers=args.peers, connect_timeout_s=args.connect_timeout, settle_s=args.settle,
                       encoding=replay.find_encoding(args.metrics) if args.encoding == "auto" else args.encoding)
    cfg.validate()
    redis_url, namespace = (args.redis, None) if args.redis else replay.find_redis(args.metrics)
    namespace = args.namespace or namespace or "wmfm"
    rec = recording.load(args.scenario, args.split, args.cache, args.bs, args.camera, args.loader_config,
                         args.scene_period, max_reports=None if args.loop else args.count, progress=not args.quiet)
    print(f"replay  {rec.n_reports} UE reports in {len(rec.scenes)} scenes of {args.scenario} ({rec.split}), "
          f"camera {', '.join(rec.cameras)}, {'max rate' if cfg.max_rate else f'{cfg.speed:g}x real time'}, "
          f"indications as {cfg.encoding}; "
          f"insights read from {redis_url} (namespace {namespace})")
    summary = replay.replay(rec, args.indications, args.frames, redis_url, cfg, metrics_url=args.metrics,
                            namespace=namespace, out=args.out, progress=not args.quiet)
    print(report.text(summary))
    if args.out:
        print(f"wrote   {args.out / 'replay.json'}, {args.out / 'insights.csv'} and "
              f"{', '.join(Path(p).name for p in summary.get('plots', []))}")
    if summary["interrupted"]:
        raise KeyboardInterrupt
    why = replay.failure(summary, redis_url)
    if why is not None:
        print(f"{args.prog}: error: {why}", file=sys.stderr)
        return 1
    return 0


def _bench_twin(args) -> int:
    from .bench.twin import main
    return main(args)


def _bench_model(args) -> int:
    from .bench.model import main
    return main(args)


def _bench_decode(args) -> int:
    from .bench.decode import main
    return main(args)


def _bench_xapp(args) -> int:
    from .bench.xapp import main
    return main(args)


def _bench_queue(args) -> int:
    from .bench.queue import main
    return main(args)


def _bench_soak(args) -> int:
    from .bench.soak import main
    return main(args)
