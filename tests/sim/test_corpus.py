"""`wmfm corpus build`: worlds, shards without labels, resuming, and pretraining that cannot read labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from wmfm.model.data import load_data, load_unlabelled
from wmfm.model.hparams import CSIEncoderConfig, ImageEncoderConfig, ModelConfig, PretrainConfig
from wmfm.model.train import pretrain
from wmfm.sim import corpus

from wmfm.cache import UNLABELLED, CorpusError, CorpusSpec, load_corpus

SMALL = ModelConfig(image_size=(32, 32), embed_dim=32, csi=CSIEncoderConfig(channels=(8, 16), feature_dim=64),
                    image=ImageEncoderConfig(channels=(8, 16, 16), feature_dim=64))

SPEC = CorpusSpec(worlds=2, scenes_per_world=200, first_world=3, exclude=(4,), image_size=(32, 32))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    meta = corpus.build(out, SPEC, progress=False)
    return out, meta


def test_corpus_holds_the_worlds_and_keeps_labels_apart(built):
    out, meta = built
    assert meta["worlds"] == [3, 5] and meta["complete"], "world 4 is excluded"
    assert not (out / "scenarios").exists(), "the scenarios are deleted after caching"
    for entry in meta["shards"]:
        shard, labels = out / "shards" / entry["name"], out / "labels" / entry["name"]
        assert sorted(p.stem for p in shard.glob("*.npy")) == sorted(UNLABELLED)
        assert {"los", "position", "box", "ue"} <= {p.stem for p in labels.glob("*.npy")}
        frame, frames = np.load(shard / "frame.npy"), np.load(shard / "frames.npy")
        assert frames.shape == (entry["frames"], 32, 32, 3) and frame.max() == len(frames) - 1
        assert len(np.load(shard / "csi.npy")) == len(frame) == entry["samples"] == len(np.load(labels / "los.npy"))
        split = np.load(shard / "split.npy")
        assert set(np.unique(split)) <= {-1, 0, 1}, "a corpus has train and val blocks only (test joins train)"
        assert entry["mean_ues_per_scene"] > 1, "every vehicle in the coverage zone is a UE"
    # the worlds differ, so their data do
    a, b = (json.loads((out / "labels" / e["name"] / "meta.json").read_text()) for e in meta["shards"])
    assert a["generator"]["config"]["world"] == 3 and b["generator"]["config"]["world"] == 5
    assert a["generator"]["config"]["road"] != b["generator"]["config"]["road"]
    assert meta["samples"] == sum(e["samples"] for e in meta["shards"]) and meta["bytes"]["shards"] > 0


def test_loader_reads_no_label(built, tmp_path):
    out, meta = built
    data = load_unlabelled(out, (32, 32))
    assert data.los is None and data.position is None
    assert len(data) == meta["samples"] and len(data.frames) == meta["frames"]
    # the UEs of one frame share it across the shards' renumbering
    shard0 = out / "shards" / meta["shards"][0]["name"]
    n0 = meta["shards"][0]["samples"]
    np.testing.assert_array_equal(data.frame[:n0].numpy(), np.load(shard0 / "frame.npy"))
    assert int(data.frame[n0]) == meta["shards"][0]["frames"]
    # a label put where pretraining reads is refused
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    name = meta["shards"][1]["name"]
    shutil.copy(bad / "labels" / name / "los.npy", bad / "shards" / name / "los.npy")
    with pytest.raises(CorpusError, match="los.npy"):
        load_corpus(bad)
    with pytest.raises(CorpusError, match="not a wmfm corpus"):
        load_corpus(tmp_path)
    meta_file = bad / "corpus.json"
    meta_file.write_text(json.dumps(json.loads(meta_file.read_text()) | {"complete": False}))
    with pytest.raises(CorpusError, match="incomplete"):
        load_corpus(bad)


def test_pretraining_does_not_depend_on_labels(built, tmp_path):
    """Garbled labels on disk change nothing; a labelled cache without its labels pretrains the same."""
    out, _ = built
    cfg = PretrainConfig(batch_size=64, max_steps=6, eval_every=3, warmup_steps=2)
    garbled = tmp_path / "garbled"
    shutil.copytree(out, garbled)
    for f in (garbled / "labels").rglob("*.npy"):
        a = np.load(f)
        np.save(f, np.random.default_rng(0).permutation(a.reshape(len(a), -1)).reshape(a.shape))
    w = []
    for folder in (out, garbled):
        torch.manual_seed(0)
        model, _ = pretrain(load_unlabelled(folder, SMALL.image_size), SMALL, cfg, progress=False)
        w.append(torch.cat([p.flatten() for p in model.state_dict().values()]))
    torch.testing.assert_close(w[0], w[1], rtol=0, atol=0)


def test_a_cache_pretrains_the_same_without_its_labels(twin_cache):
    cfg = PretrainConfig(batch_size=64, max_steps=4, eval_every=2, warmup_steps=1)
    data = load_data(twin_cache, SMALL.image_size)
    a, _ = pretrain(data, SMALL, cfg, progress=False)
    b, _ = pretrain(data.unlabelled(), SMALL, cfg, progress=False)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)


def test_build_resumes_and_extends(built, tmp_path):
    out, meta = built
    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    first = meta["shards"][0]["name"]
    stamp = (copy / "shards" / first / "shard.json").stat().st_mtime_ns
    # an interrupted world: its shard never got its shard.json
    (copy / "shards" / meta["shards"][1]["name"] / "shard.json").unlink()
    again = corpus.build(copy, CorpusSpec(**{**SPEC.__dict__, "worlds": 3}), progress=False)
    assert again["worlds"] == [3, 5, 6] and again["complete"]
    assert (copy / "shards" / first / "shard.json").stat().st_mtime_ns == stamp, "a finished world is reused"
    assert again["shards"][1]["samples"] == meta["shards"][1]["samples"], "the rebuilt world is the same world"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(FileExistsError):                     # a folder that is not a corpus is left alone
        corpus.build(tmp_path / "other", SPEC, progress=False)
