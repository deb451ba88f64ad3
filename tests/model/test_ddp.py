"""DDP on CPU (gloo, 2 processes) computes the same loss and gradients as one process on the same global batch."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from model_helpers import SMALL, aligned_set
from wmfm.model.hparams import AugmentConfig, PretrainConfig
from wmfm.model.train import contrastive_step_loss, pretrain
from wmfm.model.wmfm import WMFM

QUIET = AugmentConfig(snr_db=(300.0, 300.0), random_phase=False, brightness=0.0, contrast=0.0, pixel_noise=0.0)
PRE = PretrainConfig(batch_size=32, max_epochs=2, patience=2, warmup_steps=2, augment=QUIET)


def _data():
    d = aligned_set(96, 7)
    d.frame = torch.arange(96) % 40        # frames shared by samples that sit on different ranks
    return d


def _step(model_or_ddp, model):
    loss = contrastive_step_loss(model_or_ddp, _data(), torch.arange(16), PretrainConfig(batch_size=16), None)
    loss.backward()
    return {"loss": loss.detach(), "grads": {n: p.grad.clone() for n, p in model.named_parameters()}}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = WMFM(SMALL)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
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
        assert got["val"] == pytest.approx(ref_val, rel=1e-4)   # whole epochs of training agree
