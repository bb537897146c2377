"""The `elm_subnet` trainer: score one ELM architecture on the shared weights of a trained super-network.

ELM §III-A: after super-network training, candidates of the evolutionary search are evaluated on the
super-network's weights without training. The checkpoint (option `checkpoint`, written by
`trainers/elm/pretrain.py`) is loaded once per worker process, with its teacher. Metrics, on
held-out text of `corpus`:

- `distill_loss`: the attention + block-output distillation loss of the candidate (the checkpoint's
  loss kind unless `loss` is given) — lower is closer to the teacher;
- `agreement`: mean cosine similarity of the candidate's last block (through its adapter) with the
  teacher's last layer, per token (1 is perfect);
- `params`, `params_non_embedding` (analytic, equal to the extracted model's), and with
  `latency_repeats` > 0 the extracted model's `latency_ms`, `latency_p90_ms`, `latency_cv`, `hardware`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

from search_spaces.elm import ElmArch, ElmSpace
from trainers.data import load_model_dir
from trainers.distill.teacher import Teacher
from trainers.efficiency import LatencyOptions, device_for_worker, measure_latency, token_inputs
from trainers.elm.checkpoint import Checkpoint, cached_supernet
from trainers.elm.distill import LossKind, path_losses
from trainers.elm.pretrain import corpus_blocks
from trainers.options import build_options
from trainers.report import Metrics, Report, TrainerError, TrialContext


@dataclass(frozen=True)
class ElmSubnetOptions:
    #: a super-network checkpoint folder (trainers/elm/pretrain.py writes one).
    checkpoint: str = ""
    #: the teacher; null: the one the checkpoint was distilled from.
    teacher: str | None = None
    corpus: str = "wikitext2"
    seq_len: int = 64
    eval_blocks: int = 32
    batch_size: int = 16
    #: null: the loss kind the checkpoint was trained with.
    loss: LossKind | None = None
    latency_repeats: int = 0
    latency_seq_len: int = 128
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ValueError("option 'checkpoint' is required: the folder of a trained ELM super-network")
        for name in ("seq_len", "eval_blocks", "batch_size", "latency_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        if self.latency_repeats < 0:
            raise ValueError(f"option 'latency_repeats' must be >= 0, got {self.latency_repeats}")


OPTIONS = ElmSubnetOptions


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(ElmSubnetOptions, ctx.options)
    if not isinstance(ctx.space, ElmSpace):
        raise TrainerError(f"the elm_subnet trainer needs the 'elm' search space, got {ctx.space.name!r}")
    arch = ctx.space.architecture(ctx.arch)  # a configuration outside the space fails before loading
    device = device_for_worker() if opts.device == "auto" else torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainerError("option 'device' is 'cuda' but this worker has no CUDA device")
    ckpt = cached_supernet(opts.checkpoint, device)
    ckpt.supernet.check(arch)  # the space may be wider than this super-network
    teacher = cached_teacher(opts.teacher or ckpt.teacher, str(device))
    _, blocks = cached_blocks(opts.teacher or ckpt.teacher, opts.corpus, opts.seq_len, opts.eval_blocks, str(device))
    metrics: dict[str, float | str] = {"step": 1.0, **ctx.space.metrics(ctx.arch),
                                       **evaluate(ckpt, teacher, arch, blocks, opts.loss or ckpt.loss, opts.batch_size)}
    if opts.latency_repeats:
        model = ckpt.supernet.extract_sub_network(arch)
        latency = measure_latency(model, LatencyOptions(seq_len=opts.latency_seq_len, repeats=opts.latency_repeats),
                                  token_inputs(arch.shape.vocab_size))
        metrics |= {**latency.as_metrics(), "hardware": latency.hardware}
    report(metrics)
    return metrics


@torch.no_grad()
def evaluate(ckpt: Checkpoint, teacher: Teacher, arch: ElmArch, blocks: torch.Tensor, loss: str,
             batch_size: int) -> dict[str, float]:
    """Held-out distillation loss and last-layer agreement of `arch` on the shared weights."""
    total_loss, agreement, rows, tokens = 0.0, 0.0, 0, 0
    for ids in blocks.split(batch_size):
        ids = ids.to(teacher.device)
        mask = torch.ones_like(ids)
        target = teacher(ids, mask)
        out = ckpt.supernet(ids, mask, arch=arch)
        total_loss += float(path_losses(loss, out, target, ckpt.adapters, mask).total) * ids.shape[0]
        mine = ckpt.adapters[arch.shape.num_layers - 1](out.last_hidden_state)  # (B, S, D)
        agreement += float(F.cosine_similarity(mine, target.hidden_states[-1], dim=-1).sum())
        rows += ids.shape[0]
        tokens += ids.numel()
    return {"distill_loss": total_loss / rows, "agreement": agreement / tokens}


@lru_cache(maxsize=2)
def cached_teacher(name: str, device: str) -> Teacher:
    return Teacher.load(load_model_dir(name), device)


@lru_cache(maxsize=4)
def cached_blocks(teacher: str, corpus: str, seq_len: int, eval_blocks: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return corpus_blocks(cached_teacher(teacher, device), corpus, seq_len, 1, eval_blocks, seed=0)
