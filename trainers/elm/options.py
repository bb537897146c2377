"""Options of an ELM study (the `elm_subnet` trainer's OPTIONS): the super-network stage before the
trials (pre-training on a corpus, fine-tuning on a task), how a candidate is scored, and the retraining
of the found model after them. The network's sizes and the parameter cap belong to the `elm` space."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from search_spaces.elm import ElmSpace
from trainers.elm.distill import LossKind, check_loss_kind
from trainers.elm.finetune import TuneConfig
from trainers.elm.pretrain import PretrainOptions
from trainers.options import DistillCorpusOptions, LatencyMeasureOptions
from trainers.progress import check_save_every_s

#: the shipped data sets with two classes (trainers/data_named.py): validation can refuse a class loss
#: that cannot train their head. Another task's class count is known once its data is read, and
#: `tune_on_task` checks it then.
TWO_CLASS_TASKS = frozenset({"movie-reviews", "sms-spam"})


@dataclass(frozen=True)
class ElmSubnetOptions(DistillCorpusOptions, LatencyMeasureOptions):
    """The teacher, its corpus (Algorithm 2 step 1) and latency measurement are inherited."""

    #: a trained super-network folder; empty: `lmnas run` trains one before the trials (cached by config).
    checkpoint: str = ""
    #: the distillation losses of every stage: relational (Eq. 4-5) or classic (Eq. 1-3).
    loss: LossKind = "pearson"
    # ---- Algorithm 2 step 1: pre-train the super-network on the corpus, growing FFNs by PCA
    eval_blocks: int = 32
    pretrain_epochs: int = 3
    pretrain_steps: int = 50
    pretrain_batch: int = 16
    pretrain_lr: float = 1e-3
    grow: bool = True
    #: "step": FFNs start at ffn_step and grow by PCA score; "input": fixed at each block's input width.
    ffn_init: Literal["step", "input"] = "step"
    growth_top_k: int | None = None
    growth_max_units: int | None = None
    growth_budget: float | None = None
    growth_variance: float = 0.99
    # ---- Algorithm 2 step 2: fine-tune it on a labelled task (null task: skip; candidates are then
    # scored by distillation loss on the corpus instead of task accuracy)
    task: str | None = "movie-reviews"
    max_length: int = 64
    train_examples: int | None = 2000
    eval_examples: int | None = 500
    probe_steps: int = 300
    finetune_steps: int = 200
    finetune_batch: int = 16
    finetune_lr: float = 4e-4
    layer_weight: float = 1.0
    #: weight of the cross-entropy with the gold labels next to the distillation losses.
    label_weight: float = 0.0
    #: weight of DIST's intra-class term next to Eq. 4 (loss "pearson"): per class, 1 - rho of the
    #: teacher's and the student's probabilities across the batch. Eq. 4 alone has no gradient on two
    #: classes, so 0 here and in label_weight is refused for a two-class task.
    intra_class_weight: float = 1.0
    # ---- scoring a candidate on the shared weights (the latency fields are inherited)
    batch_size: int = 64
    #: 0: no latency is measured (the parameter cap, not latency, bounds an ELM search).
    latency_repeats: int = 0
    latency_optional: ClassVar[bool] = True
    # ---- after the trials: head search, retraining and evaluation of the found model
    head_eta: float = 0.9
    final_distill_steps: int = 200
    final_finetune_steps: int = 200
    final_lr: float = 4e-4
    eval_tasks: tuple[str, ...] = ("movie-reviews", "sms-spam")
    onnx: bool = True
    #: where trained super-networks and teacher heads are kept (null: $LMNAS_HOME/elm); not part of the key.
    cache_dir: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: seconds of training between saves of the super-network stage's and the retraining's state
    #: (beside their output, as `<name>.progress/`), so a stage whose node or driver died continues
    #: from there; null: no saves. Not part of the super-network's key.
    save_every_s: float | None = 60.0

    def __post_init__(self) -> None:
        check_loss_kind(self.loss)
        check_save_every_s(self.save_every_s)
        DistillCorpusOptions.__post_init__(self)
        LatencyMeasureOptions.__post_init__(self)
        for name in ("eval_blocks", "pretrain_epochs", "pretrain_steps", "pretrain_batch",
                     "max_length", "probe_steps", "finetune_steps", "finetune_batch", "batch_size",
                     "final_distill_steps", "final_finetune_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("train_examples", "eval_examples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"option {name!r} must be >= 2 or null (all), got {value}")
        if not 0.0 < self.head_eta <= 1.0:
            raise ValueError(f"option 'head_eta' must be in (0, 1], got {self.head_eta}")
        if isinstance(self.eval_tasks, str) or not all(isinstance(t, str) for t in self.eval_tasks):
            raise ValueError(f"option 'eval_tasks' must be a list of task names, got {self.eval_tasks!r}")
        tune = self.finetune_config()
        self.final_configs()
        for task in dict.fromkeys([self.task, *self.eval_tasks]):
            why = tune.head_untrainable(2) if task in TWO_CLASS_TASKS else None
            if why is not None:
                raise ValueError(f"task {task!r} has two classes: {why}")

    def pretrain_options(self, space: ElmSpace) -> dict[str, Any]:
        """`trainers/elm/pretrain.py` options for a super-network of `space`'s shape that draws, in SPOS
        training and the task fine-tune, the widths and head counts the space searches (its option
        `elastic`); a space of blocks only (the paper's) adds no key, so its cache key is unchanged."""
        s = space.shape
        options = dict(teacher=self.teacher, corpus=self.corpus, seq_len=self.seq_len, corpus_blocks=self.corpus_blocks,
                       eval_blocks=self.eval_blocks, num_layers=s.num_layers, hidden_size=s.hidden_size,
                       num_heads=s.num_heads, inner_size=s.inner_size, ffn_step=space.ffn_step,
                       epochs=self.pretrain_epochs, steps_per_epoch=self.pretrain_steps, batch_size=self.pretrain_batch,
                       lr=self.pretrain_lr, loss=self.loss, grow=self.grow, ffn_init=self.ffn_init,
                       growth_top_k=self.growth_top_k,
                       growth_max_units=self.growth_max_units, growth_budget=self.growth_budget,
                       growth_variance=self.growth_variance, device=self.device)
        if self.precision != "fp32":  # an fp32 stage keeps the cache key it had before the option
            options["precision"] = self.precision
        if space.elastic:
            options["elastic"] = list(space.elastic)
        if "heads" in space.elastic:
            options["head_counts"] = list(space.head_counts)
        PretrainOptions(**options)  # type: ignore[arg-type]  # validates
        return options

    def finetune_config(self) -> TuneConfig:
        return TuneConfig(steps=self.finetune_steps, batch_size=self.finetune_batch, lr=self.finetune_lr,
                          loss=self.loss, layer_weight=self.layer_weight, label_weight=self.label_weight,
                          intra_class_weight=self.intra_class_weight, precision=self.precision)

    def final_configs(self) -> tuple[TuneConfig, TuneConfig]:
        """(corpus distillation, task fine-tune) of the found model."""
        distill = TuneConfig(steps=self.final_distill_steps, batch_size=self.pretrain_batch, lr=self.final_lr,
                             loss=self.loss, precision=self.precision)
        tune = TuneConfig(steps=self.final_finetune_steps, batch_size=self.finetune_batch, lr=self.final_lr,
                          loss=self.loss, layer_weight=self.layer_weight, label_weight=self.label_weight,
                          intra_class_weight=self.intra_class_weight, precision=self.precision)
        return distill, tune
