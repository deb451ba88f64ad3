"""Checkpoints: plain dicts of tensors and JSON-able values, loaded with `weights_only=True`.

    {"format": "wmfm-checkpoint/1", "kind": "encoders" | "model",
     "model_config": {...}, "configs": {...training configs...}, "meta": {...},
     "state_dict": {...WMFM or E2E weights...},
     "heads": {modality: {"input", "kind", ...constructor arguments, "state_dict"}}}    # kind "model" only

`model.pt` (kind "model") is what the export step and the xApp take: the pretrained
encoders plus the fused and csi-only heads.
"""

from __future__ import annotations

from pathlib import Path

import torch

from wmfm.config import ConfigError, from_dict, to_dict

from .heads import build_heads
from .hparams import ModelConfig
from .wmfm import WMFM

FORMAT = "wmfm-checkpoint/1"


def _cpu(state: dict) -> dict:
    return {k: v.detach().cpu() for k, v in state.items()}


def save(path: str | Path, kind: str, model: torch.nn.Module, model_cfg: ModelConfig, configs: dict | None = None,
         heads: dict[str, torch.nn.Module] | None = None, meta: dict | None = None,
         head_input: str = "feature") -> Path:
    """Write a checkpoint atomically; `head_input` says which encoder output the heads take
    ("feature": WMFM.features_*, "embedding": WMFM.encode_*)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, "kind": kind, "model_config": to_dict(model_cfg), "configs": configs or {},
            "meta": meta or {}, "heads": {},
            "state_dict": _cpu(model if isinstance(model, dict) else model.state_dict())}
    for name, h in (heads or {}).items():
        ckpt["heads"][name] = {"input": head_input} | h.spec() | {"state_dict": _cpu(h.state_dict())}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def read(path: str | Path, kinds: tuple[str, ...] = ("encoders", "model")) -> dict:
    """The raw checkpoint dict after format checks (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear user error
        raise ConfigError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if got != FORMAT:
        raise ConfigError(f"{path}: format: expected {FORMAT!r}, got {got!r}")
    if ckpt.get("kind") not in kinds:
        raise ConfigError(f"{path}: kind: expected one of {list(kinds)}, got {ckpt.get('kind')!r}")
    return ckpt


def load_wmfm(path: str | Path) -> tuple[WMFM, dict[str, torch.nn.Module], dict]:
    """(WMFM in eval mode, {modality: Heads or FusedHeads}, checkpoint dict) from an encoders or model checkpoint."""
    ckpt = read(path, ("encoders", "model"))
    cfg = from_dict(ModelConfig, ckpt["model_config"], "model_config")
    model = WMFM(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ConfigError(f"{path}: state_dict: does not match this version's model ({first}); "
                          "pretrain it again with this version") from None
    heads = {}
    for name, h in ckpt["heads"].items():
        try:
            heads[name] = build_heads(h)
            heads[name].load_state_dict(h["state_dict"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"{path}: heads.{name}: does not match this version's heads ({exc})") from None
        heads[name].eval()
    return model.eval(), heads, ckpt


def load_graphs(path: str | Path) -> dict[str, torch.nn.Module]:
    """{graph: torch module in eval mode} of a deployable model.pt: the four graphs `wmfm export`
    writes as ONNX (model/graphs.py), for the xApp's torch backend."""
    from .graphs import graph_modules
    model, heads, _ = load_wmfm(path)
    return {g: m.eval() for g, (m, _) in graph_modules(model, heads).items()}
