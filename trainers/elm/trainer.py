"""The `elm_subnet` trainer: score one ELM architecture on the shared weights of a trained super-network.

ELM §III-A and Algorithm 2 step 3: after the super-network is trained (`lmnas run` does it before the
trials, `trainers/elm/stage.py`), candidates of the evolutionary search are evaluated on its weights
without training. The checkpoint (option `checkpoint`, filled in by the stage) is loaded once per
worker process, with its teacher. Metrics:

- after a task fine-tune (the checkpoint has a head), on the task's validation split: `accuracy`,
  `loss` (cross-entropy) and `agreement` (mean cosine similarity, per real token, of the candidate's
  last block through its adapter with the teacher's last layer; 1 is perfect);
- without one, on held-out text of `corpus`: `distill_loss` (the attention + block-output
  distillation loss of option `loss`; lower is closer to the teacher) and `agreement`;
- `params`, `params_non_embedding` (analytic, equal to the extracted model's), and with
  `latency_repeats` > 0 the extracted model's `latency_ms`, `latency_p90_ms`, `latency_cv`, `hardware`;
- `precision`, the option the candidate is scored (and timed) in: fp32, or autocast to bf16 / fp16.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from search_spaces.elm import ElmArch, ElmSpace
from trainers.data import load_model_dir
from trainers.distill.teacher import Teacher
from trainers.efficiency import measure_latency, token_inputs
from trainers.elm.checkpoint import Checkpoint, cached_supernet
from trainers.elm.distill import path_losses
from trainers.elm.hooks import METRICS, calibrate, finish, prepare  # noqa: F401  the stages around the trials, and what train reports
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.pretrain import corpus_blocks
from trainers.elm.stage import pick_device
from trainers.elm.task import ElmClassifier, accuracy, task_data
from trainers.encode import Encoded
from trainers.options import build_options
from trainers.precision import autocast, check_device
from trainers.contract import Metrics, Report, TrainerError, TrialContext

OPTIONS = ElmSubnetOptions


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(ElmSubnetOptions, ctx.options)
    if not opts.checkpoint:
        raise TrainerError("option 'checkpoint' is required: the folder of a trained ELM super-network "
                           "(`lmnas run` fills it in after training one)")
    if not isinstance(ctx.space, ElmSpace):
        raise TrainerError(f"the elm_subnet trainer needs the 'elm' search space, got {ctx.space.name!r}")
    arch = ctx.space.architecture(ctx.arch)  # a configuration outside the space fails before loading
    device = pick_device(opts)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainerError("option 'device' is 'cuda' but this worker has no CUDA device")
    check_device(opts.precision, device)
    ckpt = cached_supernet(opts.checkpoint, device)
    ckpt.supernet.check(arch)  # the space may be wider than this super-network
    if ckpt.head is not None and ckpt.task is not None:
        split, target = cached_split(ckpt.teacher, ckpt.task["task"], ckpt.task["max_length"], opts.eval_examples,
                                     ctx.seed, str(device))
        with autocast(opts.precision, device):
            scores = score_on_task(ckpt, arch, split, target, opts.batch_size)
    else:
        _, blocks = cached_blocks(ckpt.teacher, opts.corpus, opts.seq_len, opts.eval_blocks, str(device))
        with autocast(opts.precision, device):
            scores = evaluate(ckpt, cached_teacher(ckpt.teacher, str(device)), arch, blocks, opts.loss, opts.batch_size)
    metrics: dict[str, float | str] = {"step": 1.0, **ctx.space.metrics(ctx.arch), **scores, "precision": opts.precision}
    if opts.latency_repeats:
        model = ckpt.supernet.extract_sub_network(arch)
        latency = measure_latency(model, opts.latency_options(), token_inputs(arch.shape.vocab_size))
        metrics |= latency.report()
    report(metrics)
    return metrics


@torch.no_grad()
def score_on_task(ckpt: Checkpoint, arch: ElmArch, split: Encoded, target: torch.Tensor,
                  batch_size: int) -> dict[str, float]:
    """Accuracy, cross-entropy and last-layer agreement (with the teacher's (N, S, D) `target`) of `arch`
    on the shared weights and head."""
    assert ckpt.head is not None
    device = target.device
    classifier = ElmClassifier(ckpt.supernet, ckpt.head.out_features, ckpt.head)
    acc, loss = accuracy(lambda i, m: classifier.run(i, m, arch)[0], split, device, batch_size)
    agreement, tokens = 0.0, 0
    for start in range(0, len(split), batch_size):
        ids = split.input_ids[start:start + batch_size].to(device)
        mask = split.attention_mask[start:start + batch_size].to(device)
        mine = ckpt.adapters[arch.shape.num_layers - 1](ckpt.supernet(ids, mask, arch=arch).last_hidden_state)
        cosine = F.cosine_similarity(mine, target[start:start + batch_size], dim=-1)  # (B, S)
        agreement += float((cosine * mask).sum())
        tokens += int(mask.sum())
    return {"accuracy": acc, "loss": loss, "agreement": agreement / tokens}


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


@lru_cache(maxsize=2)
def cached_split(teacher: str, task: str, max_length: int, eval_examples: int | None, seed: int,
                 device: str) -> tuple[Encoded, torch.Tensor]:
    """The task's validation split and the teacher's (N, S, D) last layer on it, once per worker process
    (every candidate is compared with the same teacher states)."""
    model = cached_teacher(teacher, device)
    split = task_data(task, model.tokenizer, max_length, 2, eval_examples, seed).validation
    states = [model(split.input_ids[i:i + 64].to(model.device), split.attention_mask[i:i + 64].to(model.device))
              .hidden_states[-1] for i in range(0, len(split), 64)]
    return split, torch.cat(states)


@lru_cache(maxsize=4)
def cached_blocks(teacher: str, corpus: str, seq_len: int, eval_blocks: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return corpus_blocks(cached_teacher(teacher, device), corpus, seq_len, 1, eval_blocks, seed=0)
