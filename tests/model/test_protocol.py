"""Pieces of the foundation-model protocol that need no training: positions across worlds, pool order."""

import numpy as np
import torch
from wmfm.model.data import Data
from wmfm.model.experiment import bs_frame_map, pool_order


def _meta(pos, yaw):
    return {"source": {"bs_pose": {"position_m": list(pos), "yaw_deg": yaw}}}


def test_positions_transfer_through_the_serving_bs_frame():
    """A UE 10 m along the broadside of BS A and 2 m to its left is, in world B, 10 m along B's
    broadside and 2 m to its left: distances to the BS and angles from the broadside are kept."""
    a, b = _meta((5.0, -8.0, 3.5), 0.0), _meta((-40.0, -12.0, 7.0), 90.0)
    to_b = bs_frame_map(a, b)
    ue_a = np.array([[15.0, -6.0, 1.6]])            # BS frame: (10, 2, -1.9)
    np.testing.assert_allclose(to_b(ue_a), [[-40.0 - 2.0, -12.0 + 10.0, 7.0 - 1.9]], atol=1e-9)
    back = bs_frame_map(b, a)
    pts = np.random.default_rng(0).normal(size=(50, 3)) * 20
    np.testing.assert_allclose(back(to_b(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(to_b(pts) - to_b(pts[:1]), axis=1),
                               np.linalg.norm(pts - pts[:1], axis=1), atol=1e-9)
    # the twin's generator record is read when the cache has no source.bs_pose
    gen = {"generator": {"config": {"bs": {"position_m": [5.0, -8.0, 3.5], "yaw_deg": 0.0}}}}
    np.testing.assert_allclose(bs_frame_map(gen, b)(ue_a), to_b(ue_a))


def test_pool_order_is_nested_chunks_of_the_train_split():
    n = 3000
    split = torch.zeros(n, dtype=torch.int8)
    split[1000:1200] = 1
    split[2000:2010] = -1
    data = Data(torch.zeros(n, 2, 2, 2), torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(n, dtype=torch.long),
                split, None, None, {})
    order = pool_order(data, seed=0, chunk=100)
    assert sorted(order.tolist()) == data.index("train").tolist(), "every train sample once, no val/guard"
    assert torch.equal(order, pool_order(data, seed=0, chunk=100))
    assert not torch.equal(order, pool_order(data, seed=1, chunk=100))
    # a prefix samples many parts of the run, in contiguous chunks
    first = order[:500]
    assert (first.diff() == 1).float().mean() > 0.9
    assert len({int(i) // 100 for i in first}) >= 5 and first.max() - first.min() > 1000
