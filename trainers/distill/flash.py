"""Flash Distillation (AutoDistill, Zhang et al. 2022, §3.3): a short distillation that ranks students.

Stages, each ending with a report so an early-stopping scheduler can drop weak students:

1..K  Progressive layer-wise transfer (§3.3.3, after MobileBERT): stage k trains student block k
      (stage 1 also the embeddings) and its adapter to reproduce the mapped teacher layer's
      attention maps (Eq. 1) and output features (Eq. 2); blocks 1..k-1 are frozen and blocks after
      k are not run.
      Each stage's adapter starts as the least-squares read-out of the block (`fit_adapter`).
K+1   Pre-training distillation (§3.3.1, Eq. 3) with every student parameter trainable.

Eq. 3 combines the MLM loss, an MLM distillation loss against the teacher's MLM head and an NSP
loss. The shipped teachers (sentence-transformers MiniLM and MPNet encoders) have neither an MLM
nor an NSP head, so stage K+1 uses this substitute:
  L = alpha * L_M + (1 - alpha) * L_HD
- L_M: masked-token reconstruction (BERT masking) through a student MLM head whose decoder is the
  student's word embeddings, which come from the teacher's — the student's own MLM loss, as in Eq. 3.
  The decoder reads the embeddings without training them: it touches every row of the table, and
  with Adam every row it trains moves by about lr per step however small its gradient, which
  scrambled the input the progressive stages had fitted the blocks to;
- L_HD: MSE between the (adapted) student's last block and the teacher's last layer, relative to
  the teacher layer's mean square so it weighs like the MLM loss, both reading the clean text — in
  place of L_MD it transfers the teacher's representation of the text itself. Reading the masked
  input instead (the first schedule) taught the student the teacher's representation of masked
  text, which differs from that of clean text (MiniLM-L6's last layer puts a third of its energy
  on the 12% [MASK] positions): its held-out agreement on clean text fell below zero while its own
  loss went down (benchmarks/flash_stages.py measures both schedules);
- no NSP term: the teachers have no NSP head, and RoBERTa (Liu et al. 2019) showed it unnecessary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.autodistill.student import Student
from trainers.distill.masking import IGNORE, mask_tokens, sample_batch
from trainers.distill.evaluate import held_out_agreement, masked_token_scores
from trainers.distill.losses import relative_feature_mse
from trainers.distill.teacher import Teacher
from trainers.distill.teacher_cache import TeacherTargets
from trainers.distill.transfer import DistillHeads, fit_adapter, layer_losses, teacher_layer
from trainers.efficiency import host_busy
from trainers.contract import Report
from trainers.options import PrecisionOptions
from trainers.precision import MixedPrecision, to_device
from trainers.progress import ProgressSaves

#: a finished progressive stage's state, in the trial's checkpoint directory.
STATE_FILE = "flash_state.pt"


@dataclass(frozen=True)
class FlashConfig(PrecisionOptions):
    """Step counts and optimisation settings of one Flash Distillation, and its precision (inherited:
    the student trains and is scored under that autocast; the teacher's targets stay fp32)."""

    #: progressive transfer steps for each block (the paper: 500 per block, 12k for 24 blocks).
    steps_per_block: int = 20
    #: pre-training distillation steps (the paper: 25k; a fixed ratio to the progressive steps).
    pretrain_steps: int = 60
    #: linear warm-up steps at the start of pre-training distillation, then linear decay to 0.
    warmup_steps: int = 6
    batch_size: int = 16
    #: peak learning rate of the progressive stages.
    lr: float = 3e-3
    #: share of each progressive stage spent warming the learning rate up.
    stage_warmup: float = 0.0
    #: decay the learning rate linearly to 0 over the rest of each progressive stage.
    stage_decay: bool = False
    #: peak learning rate of pre-training distillation.
    pretrain_lr: float = 3e-3
    #: divide the masked-token cross-entropy by log(vocab), so a uniform guess scores 1 like the
    #: relative feature loss of a student that outputs zeros (unscaled, ~10 nats outweighed L_HD).
    mlm_normalise: bool = True
    #: let the masked-token loss train the word embeddings through the tied decoder too. Off: the
    #: decoder reads them without moving them; with Adam every row of the table would otherwise
    #: move by about lr per step, whatever its gradient, and scramble the student's input.
    decoder_trains_embeddings: bool = False
    #: what L_HD reads: the "clean" text (teacher and student), or the "masked" input of L_M
    #: (the first schedule; see the module docstring for why clean).
    hidden_input: Literal["clean", "masked"] = "clean"
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mask_prob: float = 0.15
    #: weight of masked-token reconstruction against hidden-state distillation (Eq. 3's alpha).
    alpha: float = 0.5
    #: report every this many pre-training steps (0: only at the end of the stage).
    report_every: int = 0
    #: held-out blocks scored at every report.
    eval_blocks: int = 16

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name, low in (("steps_per_block", 1), ("pretrain_steps", 0), ("warmup_steps", 0), ("batch_size", 1),
                          ("report_every", 0), ("eval_blocks", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"option {name!r} must be >= {low}, got {getattr(self, name)}")
        if not 0.0 <= self.stage_warmup < 1.0:
            raise ValueError(f"option 'stage_warmup' must be in [0, 1), got {self.stage_warmup}")
        for name in ("lr", "pretrain_lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"option {name!r} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"option 'weight_decay' must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"option 'mask_prob' must be in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"option 'alpha' must be in [0, 1], got {self.alpha}")


@dataclass(frozen=True)
class FlashResult:
    global_step: int
    heads: DistillHeads
    #: the metrics of the last report.
    metrics: dict[str, float]
    #: the step of the progress save this run continued from (0: it started at step 0).
    continued_from: int = 0


class FlashDistiller:
    """Runs the K + 1 stages on `train_blocks` (N, seq_len) token ids and scores on `valid_blocks`."""

    def __init__(self, student: Student, teacher: Teacher, train_blocks: Tensor, valid_blocks: Tensor,
                 config: FlashConfig, report: Report, seed: int = 0, targets: TeacherTargets | None = None,
                 state_dir: Path | None = None, restore_dir: Path | None = None,
                 saves: ProgressSaves | None = None) -> None:
        if teacher.vocab_size != student.arch.vocab_size:
            raise ValueError(f"student vocab_size={student.arch.vocab_size} must equal the teacher's {teacher.vocab_size}")
        self.student = student
        self.teacher = teacher
        #: where the teacher's outputs come from: a table of earlier answers, or the live teacher.
        self.targets = targets if targets is not None else TeacherTargets(teacher)
        self.device = teacher.device
        self.amp = MixedPrecision(config.precision, self.device)
        self.heads = DistillHeads(student.arch, teacher.hidden_size).to(self.device)
        self.student.to(self.device)
        self.train_blocks = train_blocks
        self.valid_blocks = valid_blocks[: config.eval_blocks]
        self.config = config
        self.report = report
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.global_step = 0
        self.metrics: dict[str, float] = {}
        #: where a finished stage's state is saved (and reported as the trial's checkpoint); a rerun of
        #: the trial (a lost node, a retry) gets it back as `restore_dir` and skips the stages done.
        self.state_dir = state_dir
        self.stages_done = self.restore(restore_dir) if restore_dir is not None else 0
        #: saves within the stages (a long distillation); a rerun continues from the newest one.
        self.saves = saves
        #: the loop state of that save, until the stage it was taken in has taken it back.
        self.resume = self.restore_progress() if saves is not None else None
        self.continued_from = self.global_step if self.resume is not None else 0

    def run(self) -> FlashResult:
        for block in range(self.stages_done + 1, self.student.arch.num_blocks + 1):
            self.progressive_stage(block)
        if self.config.pretrain_steps and self.stages_done <= self.student.arch.num_blocks:
            self.pretraining_stage()
        self.student.requires_grad_(True)
        if self.saves is not None:
            # The end too: a rerun after a crash in what follows (fine-tuning, export) skips the distillation.
            self.save_progress(self.student.arch.num_blocks + int(self.config.pretrain_steps > 0), None, None, {}, 0,
                               finished=True)
        return FlashResult(global_step=self.global_step, heads=self.heads, metrics=dict(self.metrics),
                           continued_from=self.continued_from)

    # ---- checkpoints ------------------------------------------------------------------------
    def save_stage(self, stage: int) -> Path | None:
        """After a progressive stage: what the next stages need (None without a `state_dir`)."""
        if self.state_dir is None:
            return None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {"stage": stage, "global_step": self.global_step, "metrics": self.metrics,
                 "student": self.student.state_dict(), "heads": self.heads.state_dict(),
                 "generator": self.generator.get_state()}
        partial = self.state_dir / f".{STATE_FILE}.tmp"
        torch.save(state, partial)
        partial.replace(self.state_dir / STATE_FILE)
        return self.state_dir

    def restore(self, directory: Path) -> int:
        """The stages a saved state already covers (its weights and batch stream loaded back)."""
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return 0
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.student.load_state_dict(state["student"])
        self.heads.load_state_dict(state["heads"])
        self.generator.set_state(state["generator"])
        self.global_step, self.metrics = int(state["global_step"]), dict(state["metrics"])
        return int(state["stage"])

    def progress_params(self) -> list[Tensor]:
        return [*self.student.parameters(), *self.heads.parameters()]

    def restore_progress(self) -> dict | None:
        """Load the newest progress save (weights, RNGs, batch stream); its loop state, or None."""
        assert self.saves is not None
        state = self.saves.restore(self.progress_params())
        if state is None:
            return None
        self.generator.set_state(state["generator"])
        self.global_step, self.metrics = state["step"], dict(state["metrics"])
        # The end-of-run save's stage is done: replaying it would report the zero loss sums of no steps.
        self.stages_done = state["stage"] if state["finished"] else state["stage"] - 1
        return state

    def save_progress(self, stage: int, optimizer: torch.optim.Optimizer | None,
                      schedule: torch.optim.lr_scheduler.LambdaLR | None, sums: dict[str, float], stage_step: int,
                      finished: bool = False) -> None:
        """A progress save after `stage_step` steps of `stage`, when one is due (or `finished`)."""
        if self.saves is None or not (finished or self.saves.due()):
            return
        loop = {"stage": stage, "stage_step": stage_step, "sums": sums, "metrics": self.metrics,
                "generator": self.generator.get_state(), "finished": finished,
                "optimizer": optimizer.state_dict() if optimizer is not None else {},
                "schedule": schedule.state_dict() if schedule is not None else {},
                "amp": self.amp.state_dict()}
        self.saves.save(self.global_step, self.progress_params(), loop)

    def resume_stage(self, stage: int, optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LambdaLR,
                     sums: dict[str, float]) -> int:
        """The steps of `stage` a progress save already covers (0 when it is not that stage's); the
        optimiser, schedule and loss sums are loaded back."""
        if self.resume is None or self.resume["stage"] != stage:
            return 0
        state, self.resume = self.resume, None
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        self.amp.load_state_dict(state.get("amp"))
        sums.update(state["sums"])
        return state["stage_step"]

    # ---- stages -----------------------------------------------------------------------------
    def progressive_stage(self, block: int) -> None:
        """Stage `block`: train only that block (and the embeddings in stage 1) and its adapter."""
        arch = self.student.arch
        layer = teacher_layer(block, arch.num_blocks, self.teacher.num_layers)
        adapter = self.heads.adapters[block - 1]
        self.student.requires_grad_(False)
        trainable = [self.student.blocks[block - 1], adapter] + ([self.student.embeddings] if block == 1 else [])
        for module in trainable:
            module.requires_grad_(True)
        optimizer = self.optimizer(trainable, self.config.lr)
        steps = self.config.steps_per_block
        warmup = math.ceil(self.config.stage_warmup * steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_then_decay(warmup, steps) if self.config.stage_decay else warmup_then_constant(warmup))
        sums = {"loss": 0.0, "attention_kl": 0.0, "feature_loss": 0.0}
        self.student.train()
        for step in range(self.resume_stage(block, optimizer, schedule, sums), self.config.steps_per_block):
            # One step is one host_busy section: a latency measurement on this host waits for it to
            # end and holds back the next one, so no trial times its forwards beside this training.
            with host_busy():
                ids = self.batch()
                mask = torch.ones_like(ids)
                target_hidden, target_attention = self.targets.layer(ids, layer)
                if step == 0:
                    with torch.no_grad():
                        start = self.student(ids, mask, num_blocks=block).hidden_states[-1]
                    fit_adapter(adapter, start, target_hidden)
                with self.amp.autocast():
                    losses = layer_losses(self.student(ids, mask, num_blocks=block), target_hidden, target_attention,
                                          block, adapter, mask)
                self.step(optimizer, losses.total, trainable)
                schedule.step()
            for key, value in (("loss", losses.total), ("attention_kl", losses.attention_kl),
                               ("feature_loss", losses.feature_loss)):
                sums[key] += value.item()
            self.save_progress(block, optimizer, schedule, sums, step + 1)
        means = {k: v / self.config.steps_per_block for k, v in sums.items()}
        with self.amp.autocast():
            agreement = held_out_agreement(self.student, self.heads, self.targets, self.valid_blocks, block,
                                           self.config.batch_size)
        self.emit(stage=block, losses=means, scores={"agreement": agreement}, save=True)

    def pretraining_stage(self) -> None:
        """Stage K + 1: the Eq. 3 substitute (see the module docstring) on every parameter."""
        cfg = self.config
        stage = self.student.arch.num_blocks + 1
        adapter = self.heads.adapters[-1]
        self.student.requires_grad_(True)
        trainable: list[nn.Module] = [self.student, adapter, self.heads.mlm]
        optimizer = self.optimizer(trainable, cfg.pretrain_lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(cfg.warmup_steps, cfg.pretrain_steps))
        every = cfg.report_every or cfg.pretrain_steps
        sums = {"loss": 0.0, "mlm_loss": 0.0, "hidden_loss": 0.0}
        done = self.resume_stage(stage, optimizer, schedule, sums)
        count = done % every  # the steps since the last report, which the restored sums hold
        for step in range(done + 1, cfg.pretrain_steps + 1):
            with host_busy():  # as in the progressive stages
                self.student.train()
                clean = self.batch()  # (B, S)
                ids, labels = mask_tokens(clean.cpu(), self.teacher.tokenizer, cfg.mask_prob, self.generator)
                ids, labels = to_device(ids, self.device), to_device(labels, self.device)
                mask = torch.ones_like(ids)
                with self.amp.autocast():
                    out = self.student(ids, mask)
                    chosen = labels != IGNORE  # (B, S)
                    decoder = self.student.embeddings.word.weight
                    if not cfg.decoder_trains_embeddings:
                        decoder = decoder.detach()
                    logits = self.heads.mlm(out.last_hidden_state[chosen], decoder)  # (M, vocab)
                    mlm_loss = F.cross_entropy(logits, labels[chosen])
                    if cfg.mlm_normalise:
                        mlm_loss = mlm_loss / math.log(self.student.arch.vocab_size)
                    hidden_ids = clean if cfg.hidden_input == "clean" else ids
                    target, _ = self.targets.layer(hidden_ids, self.teacher.num_layers, attention=False)  # (B, S, D)
                    hidden = (out.last_hidden_state if cfg.hidden_input == "masked"
                              else self.student(clean, mask).last_hidden_state)
                    hidden_loss = relative_feature_mse(target, adapter(hidden), mask)
                    loss = cfg.alpha * mlm_loss + (1.0 - cfg.alpha) * hidden_loss
                self.step(optimizer, loss, trainable)
                schedule.step()
            for key, value in (("loss", loss), ("mlm_loss", mlm_loss), ("hidden_loss", hidden_loss)):
                sums[key] += value.item()
            count += 1
            if step % every == 0 or step == cfg.pretrain_steps:
                self.emit(stage=stage, losses={k: v / count for k, v in sums.items()}, scores=self.final_scores())
                sums, count = dict.fromkeys(sums, 0.0), 0
            self.save_progress(stage, optimizer, schedule, sums, step)

    def final_scores(self) -> dict[str, float]:
        """Held-out agreement of the last block, masked-token accuracy (the paper's MLM accuracy) and loss."""
        k = self.student.arch.num_blocks
        with self.amp.autocast():
            return {
                "agreement": held_out_agreement(self.student, self.heads, self.targets, self.valid_blocks, k,
                                                self.config.batch_size),
                **masked_token_scores(self.student, self.heads, self.teacher.tokenizer, self.valid_blocks,
                                      self.config.mask_prob, self.seed, self.config.batch_size),
            }

    # ---- helpers ----------------------------------------------------------------------------
    def batch(self) -> Tensor:
        return to_device(sample_batch(self.train_blocks, self.config.batch_size, self.generator), self.device)

    def optimizer(self, modules: Iterable[nn.Module], lr: float) -> torch.optim.Optimizer:
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.config.weight_decay)

    def step(self, optimizer: torch.optim.Optimizer, loss: Tensor, modules: list[nn.Module]) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss became {float(loss)} at step {self.global_step + 1}")
        optimizer.zero_grad(set_to_none=True)
        self.amp.backward(loss)
        self.amp.step(optimizer, [p for m in modules for p in m.parameters() if p.requires_grad], self.config.grad_clip)
        self.global_step += 1

    def emit(self, stage: int, losses: dict[str, float], scores: dict[str, float], save: bool = False) -> None:
        """Report a stage's metrics; with `save`, the stage's state too, as the trial's checkpoint."""
        self.metrics = {"stage": float(stage), "step": float(self.global_step), **losses, **scores}
        checkpoint = self.save_stage(stage) if save else None
        if checkpoint is None:
            self.report(self.metrics)
        else:
            self.report(self.metrics, checkpoint=checkpoint)


def warmup_then_constant(warmup: int) -> Callable[[int], float]:
    """Learning-rate factor: linear from 1/(warmup+1) to 1 over `warmup` steps, then 1."""
    return lambda step: (step + 1) / (warmup + 1) if step < warmup else 1.0


def warmup_then_decay(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: linear from 1/(warmup+1) to 1 over `warmup` steps, then linear to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def flash_distill(student: Student, teacher: Teacher, train_blocks: Tensor, valid_blocks: Tensor,
                  config: FlashConfig, report: Report, seed: int = 0,
                  targets: TeacherTargets | None = None, state_dir: Path | None = None,
                  restore_dir: Path | None = None, saves: ProgressSaves | None = None) -> FlashResult:
    """Flash-distil `student` from `teacher` in place and return the distillation heads and last metrics.

    `targets` serves the teacher's outputs from a table of earlier answers (`teacher_cache.py`);
    without it every target comes from the live teacher. With `state_dir`, each finished progressive
    stage is saved there and reported as a checkpoint; `restore_dir` (a rerun's copy of it) continues
    after the stages it holds, with the same batches an uninterrupted run would have drawn. With
    `saves`, the state is also saved within the stages every `saves.every_s` seconds, and a rerun
    continues from the newest save to the weights an uninterrupted run ends with.
    """
    torch.manual_seed(seed)
    return FlashDistiller(student, teacher, train_blocks, valid_blocks, config, report, seed, targets,
                          state_dir, restore_dir, saves).run()
