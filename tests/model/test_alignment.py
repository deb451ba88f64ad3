"""Object-centric alignment: the mil loss against a direct reference, CSI self-supervision terms,
the association metric on a hand-made scene, and a mil-pretrained model pointing each CSI at
its own vehicle."""

import math

import numpy as np
import pytest
import torch
from model_helpers import SMALL, crowded_set
from wmfm.model.association import association, pointer
from wmfm.model.encoders import token_cells
from wmfm.model.hparams import PretrainConfig
from wmfm.model.loss import masked_map_loss, mil_loss, near_frames, patch_mask
from wmfm.model.train import FrameBatches, embed, pretrain
from wmfm.sim.pixels import box_rects


def _unit(*shape, seed):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def _reference(z, tok, frame, near, scale, beta):
    """The mil loss written out sample by sample."""
    cos = np.einsum("be,fte->bft", z, tok)
    s = scale * np.log(np.exp(beta * cos).sum(2)) / beta                 # [B, F]
    b_n, f_n = s.shape
    c2f = f2c = 0.0
    for b in range(b_n):
        fb = frame[b]
        allowed = [f for f in range(f_n) if f == fb or not near[fb, f]]
        c2f += -s[b, fb] + math.log(sum(math.exp(s[b, f]) for f in allowed))
        negatives = [j for j in range(b_n) if not near[frame[j], fb]]     # never a UE of its own frame
        f2c += -s[b, fb] + math.log(math.exp(s[b, fb]) + sum(math.exp(s[j, fb]) for j in negatives))
    frame_term = (c2f / b_n + f2c / b_n) / 2
    regions = []
    for b in range(b_n):
        a = np.exp(beta * cos[b, frame[b]])
        r = (a[:, None] * tok[frame[b]]).sum(0) / a.sum()
        regions.append(r / np.linalg.norm(r))
    rows, cols = [], []
    for b in range(b_n):
        mates = [k for k in range(b_n) if frame[k] == frame[b]]
        if len(mates) < 2:
            continue
        rows.append(-scale * regions[b] @ z[b] + math.log(sum(math.exp(scale * regions[b] @ z[k]) for k in mates)))
        cols.append(-scale * z[b] @ regions[b] + math.log(sum(math.exp(scale * z[b] @ regions[k]) for k in mates)))
    return frame_term, (np.mean(rows) + np.mean(cols)) / 2


def test_mil_loss_equals_a_direct_reference_with_same_frame_and_near_duplicate_masking():
    z, tok = _unit(9, 6, seed=0), _unit(5, 4, 6, seed=1)
    frame = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 4])
    near = near_frames(torch.tensor([10, 11, 20, 30, 31]), within=1)    # frames 0~1 and 3~4 are near-duplicates
    scale, beta = 7.0, 5.0
    loss, parts = mil_loss(z, tok, frame, near, torch.tensor(scale, dtype=torch.float64), beta, region_weight=0.5)
    ref_frame, ref_region = _reference(z.numpy(), tok.numpy(), frame.numpy(), near.numpy(), scale, beta)
    assert parts["frame"] == pytest.approx(ref_frame, rel=1e-9)
    assert parts["region"] == pytest.approx(ref_region, rel=1e-9)
    assert float(loss) == pytest.approx(ref_frame + 0.5 * ref_region, rel=1e-9)
    # with nothing near, frames 0 and 1 become each other's negatives: a different value
    _, loose = mil_loss(z, tok, frame, torch.eye(5, dtype=torch.bool), torch.tensor(scale, dtype=torch.float64), beta)
    assert loose["frame"] != pytest.approx(parts["frame"], rel=1e-6)


def test_patch_mask_and_masked_map_loss():
    g = torch.Generator().manual_seed(0)
    keep = patch_mask(3, (32, 64), (4, 8), 0.4, g, "cpu")
    assert keep.shape == (3, 1, 32, 64)
    assert float(1 - keep.mean()) == pytest.approx(round(0.4 * 64) / 64)
    blocks = keep[0, 0].view(8, 4, 8, 8).permute(0, 2, 1, 3).reshape(64, 32)
    assert bool(((blocks == 0).all(1) | (blocks == 1).all(1)).all())     # whole patches
    target = torch.randn(3, 32, 64)
    t = (target - target.mean((1, 2), keepdim=True)) / target.std((1, 2), keepdim=True)
    assert float(masked_map_loss(t, target, keep)) == pytest.approx(0.0, abs=1e-6)
    wrong = t.clone()
    wrong[keep[:, 0] == 1] += 5.0                                        # errors on kept cells do not count
    assert float(masked_map_loss(wrong, target, keep)) == pytest.approx(0.0, abs=1e-6)


def test_csi_views_drop_whole_subcarriers_and_antennas():
    from wmfm.model.data import csi_view
    from wmfm.model.hparams import AugmentConfig
    csi = torch.randn(64, 2, 32, 64) * 1e-6
    v = csi_view(csi, AugmentConfig(snr_db=(300.0, 300.0), random_phase=False, dropout=0.25),
                 torch.Generator().manual_seed(0))
    zero = (v == 0)
    cols, rows = zero.all(dim=(1, 2)), zero.all(dim=(1, 3))                 # [B, K] subcarriers, [B, A] antennas
    assert 0.15 < float(cols.float().mean()) < 0.35 and 0.15 < float(rows.float().mean()) < 0.35
    kept = ~zero
    assert torch.allclose(v[kept], csi[kept], rtol=1e-4)                   # at 300 dB SNR the rest is the input


def test_association_metric_on_a_hand_made_scene():
    # a camera 5 m up looking along +x, level; two cars 20 m ahead, B 8 m to the right; C behind the camera
    props = {"location": [0.0, 0.0, 5.0], "rotation": [0.0, 0.0, 0.0], "FoV": 90.0, "resolution": [640, 480]}
    boxes = np.array([[[18.0, -1.0, 0.0], [22.0, 1.0, 1.5]],
                      [[18.0, -9.0, 0.0], [22.0, -7.0, 1.5]],
                      [[-10.0, -1.0, 0.0], [-6.0, 1.0, 1.5]]])
    rects, visible = box_rects(props, boxes, (64, 64))
    assert visible.tolist() == [True, True, False]
    # pinhole by hand: f = 320 px; A's near face x = 18 m spans u = 320 +- 320/18, v = 240 + 320 * (5 - z) / x
    f = 320.0
    assert rects[0, 0] == pytest.approx((320 - f / 18) / 10) and rects[0, 2] == pytest.approx((320 + f / 18) / 10)
    assert rects[0, 3] == pytest.approx((240 + f * 5 / 18) * 64 / 480)
    assert rects[1, 0] > rects[0, 2]                                      # B is right of A
    cells = token_cells((8, 8), (64, 64)).numpy()
    cell_of = lambda u, v: int(v // 8) * 8 + int(u // 8)  # noqa: E731
    centre = lambda r: ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2)  # noqa: E731
    pick = np.array([cell_of(*centre(rects[0])), cell_of(*centre(rects[0])), 0])  # A right, B picks A's cell
    res = association(pick, np.zeros(3, int), rects, visible, cells)
    assert res["visible"] == 2 and res["crowded"] == 2
    assert res["hit_rate"] == 0.5 and res["association_accuracy"] == 0.5
    covered = [(math.ceil(r[2] / 8) - math.floor(r[0] / 8)) * (math.ceil(r[3] / 8) - math.floor(r[1] / 8))
               for r in rects[:2]]
    assert res["chance_hit_rate"] == pytest.approx(np.mean(covered) / 64)
    # every cell names exactly one of the two cars: the two chance shares add to one
    assert res["chance_association"] == pytest.approx(0.5)
    alone = association(pick[:1], np.zeros(1, int), rects[:1], visible[:1], cells)
    assert alone["association_accuracy"] == 1.0 and alone["crowded"] == 0 and alone["chance_association"] == 1.0


@pytest.mark.timeout(300)
def test_mil_pretraining_points_each_csi_at_its_own_vehicle():
    data = crowded_set(500, 3, seed=0)
    cfg = PretrainConfig(frames_per_batch=32, lr=3e-3, warmup_steps=10, max_epochs=30, patience=30, mask_weight=0.0)
    model, res = pretrain(data, SMALL, cfg, progress=False)
    assert res["objective"] == "mil" and res["batch_unit"] == "frames"
    emb = embed(model, data, kind="embedding")
    test = data.index("test")
    pick = pointer(emb.csi_embedding[test], emb.tokens, emb.frame[test]).numpy()
    cells = token_cells(emb.grid, SMALL.image_size).numpy()
    rects = data.meta["boxes"][test.numpy()]
    res = association(pick, data.frame[test].numpy(), rects, np.ones(len(test), bool), cells)
    assert res["crowded"] == len(test)
    assert res["association_accuracy"] > 0.8, res                        # chance: 1/3 of the cells per vehicle
    assert res["hit_rate"] > 4 * res["chance_hit_rate"], res
    assert len(FrameBatches(data, data.index("train"))) == 350
