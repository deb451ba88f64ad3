"""DDP on CPU (gloo, 2 processes) computes the same loss and gradients as one process on the same
global batch: global_clip (samples split across ranks) and mil (frames split across ranks, shards
of different lengths gathered)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from model_helpers import SMALL, aligned_set
from wmfm.model.hparams import AugmentConfig, PretrainConfig
from wmfm.model.train import FrameBatches, contrastive_step_loss, mil_step_loss, pretrain
from wmfm.model.wmfm import WMFM

QUIET = AugmentConfig(snr_db=(300.0, 300.0), random_phase=False, brightness=0.0, contrast=0.0, pixel_noise=0.0)
PRE = PretrainConfig(objective="global_clip", batch_size=32, max_epochs=2, patience=2, warmup_steps=2, augment=QUIET)
MIL = PretrainConfig(frames_per_batch=8, mask_weight=0.0, near_frames=1, augment=QUIET)


def _data():
    d = aligned_set(96, 7)
    d.frame = torch.arange(96) % 40        # frames shared by samples that sit on different ranks
    return d


def _step(model_or_ddp, model):
    data = _data()
    loss = contrastive_step_loss(model_or_ddp, data, torch.arange(16), PretrainConfig(batch_size=16), None)
    loss.backward()
    out = {"loss": loss.detach(), "grads": {n: p.grad.clone() for n, p in model.named_parameters()
                                            if p.grad is not None}}
    model.zero_grad(set_to_none=True)
    ks = torch.tensor([0, 3, 5, 7, 11, 12, 20, 33])           # frames of 2 or 3 UEs: the shards differ in length
    loss, _ = mil_step_loss(model_or_ddp, data, FrameBatches(data, torch.arange(96)), ks, MIL, None, augment=False)
    loss.backward()
    return out | {"mil_loss": loss.detach(), "mil_grads": {n: p.grad.clone() for n, p in model.named_parameters()
                                                           if p.grad is not None}}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = WMFM(SMALL)
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)   # as pretrain() wraps it
    step = _step(ddp, model)
    _, res = pretrain(_data(), SMALL, PRE, progress=False)
    torch.save(step | {"val": [h["val_loss"] for h in res["history"]], "world": res["world_size"]},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_ddp_two_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    model = WMFM(SMALL)
    ref = _step(model, model)
    _, res = pretrain(_data(), SMALL, PRE, progress=False)
    ref_val = [h["val_loss"] for h in res["history"]]
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["world"] == 2
        assert float(got["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-5)
        for name, g in ref["grads"].items():      # DDP-averaged gradient == single-process gradient
            assert torch.allclose(got["grads"][name], g, rtol=1e-4, atol=1e-6), name
        assert float(got["mil_loss"]) == pytest.approx(float(ref["mil_loss"]), rel=1e-5)
        assert set(got["mil_grads"]) == set(ref["mil_grads"])
        assert "image_encoder.token_proj.0.weight" in ref["mil_grads"]
        for name, g in ref["mil_grads"].items():
            assert torch.allclose(got["mil_grads"][name], g, rtol=1e-4, atol=1e-6), name
        assert got["val"] == pytest.approx(ref_val, rel=1e-4)   # whole epochs of training agree
