"""Build, distil and save an ELM super-network (ELM Algorithm 2, step 1) from one options mapping.

`pretrain(options, out_dir)` loads the teacher (default the shipped MiniLM-L6) and its tokenisation
of the corpus (default WikiText-2), builds the super-network with every FFN at `ffn_step` units and
the embeddings resized from the teacher's (`trainers/autodistill/embedding_init.py`), trains it
(`trainers/elm/train.py`) and writes a checkpoint folder the `elm` space and the `elm_subnet`
trainer read. From the command line:

    python -m trainers.elm.pretrain OUT_DIR [key=value ...]   (values are YAML: epochs=2 loss=classic)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Mapping, cast

import torch
import yaml

from search_spaces.elm import BLOCK_KINDS, ElmShape
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.data import load_data, load_model_dir
from trainers.distill.teacher import Teacher
from trainers.efficiency import device_for_worker
from trainers.elm.checkpoint import save_checkpoint
from trainers.elm.distill import Adapters, LossKind
from trainers.elm.pca_growth import GrowthConfig
from trainers.elm.supernet import ElmSuperNet, PathSampling
from trainers.elm.train import SupernetConfig, train_supernet
from trainers.encode import encode
from trainers.options import PrecisionOptions, build_options
from trainers.progress import ProgressSaves
from trainers.report import Report, TrainerError


@dataclass(frozen=True)
class PretrainOptions(PrecisionOptions):
    teacher: str = "minilm-l6"
    corpus: str = "wikitext2"
    seq_len: int = 64
    corpus_blocks: int = 2000
    eval_blocks: int = 32
    num_layers: int = 6
    hidden_size: int = 192
    num_heads: int = 12
    #: MobileBERT bottleneck and FFN starting width / growth step; null: a quarter of the hidden size.
    inner_size: int | None = None
    ffn_step: int | None = None
    epochs: int = 3
    steps_per_epoch: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    loss: LossKind = "pearson"
    grow: bool = True
    #: "step": every FFN starts at `ffn_step` units and grows by PCA score (§III-B); "input": every FFN
    #: is fixed at its block's input width (hidden size, or the bottleneck), the predefined dimensions
    #: of the ablation in Table V (no growth then).
    ffn_init: Literal["step", "input"] = "step"
    growth_top_k: int | None = None
    growth_max_units: int | None = None
    growth_budget: float | None = None
    growth_variance: float = 0.99
    #: what SPOS draws besides the blocks: "ffn" (widths in steps of ffn_step up to the grown one),
    #: "heads" (counts from `head_counts`); empty (the paper): every block at its grown width, all
    #: heads. An `elm` space searches only what its super-network drew (its option `elastic`).
    elastic: tuple[str, ...] = ()
    head_counts: tuple[int, ...] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("seq_len", "corpus_blocks", "eval_blocks", "num_layers", "hidden_size", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        if self.ffn_init not in ("step", "input"):
            raise ValueError(f"option 'ffn_init' must be 'step' or 'input', got {self.ffn_init!r}")
        if isinstance(self.elastic, str) or any(d not in ("ffn", "heads") for d in self.elastic):
            raise ValueError(f"option 'elastic' must be a list drawn from ['ffn', 'heads'], got {self.elastic!r}")
        if "heads" in self.elastic and not self.head_counts:
            raise ValueError("option 'elastic' includes 'heads': list the counts to draw in 'head_counts'")
        self.train_config()  # validates the training options

    @property
    def step(self) -> int:
        return self.ffn_step if self.ffn_step is not None else max(1, self.hidden_size // 4)

    @property
    def sampling(self) -> PathSampling:
        return PathSampling(self.step if "ffn" in self.elastic else None,
                            tuple(self.head_counts) if "heads" in self.elastic and self.head_counts else None)

    def train_config(self) -> SupernetConfig:
        growth = GrowthConfig(top_k=self.growth_top_k, step=self.step, max_units=self.growth_max_units,
                              budget=self.growth_budget, variance=self.growth_variance)
        return SupernetConfig(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, batch_size=self.batch_size,
                              lr=self.lr, weight_decay=self.weight_decay, loss=self.loss,
                              grow=self.grow and self.ffn_init == "step",
                              growth=growth, sampling=self.sampling, precision=self.precision)


def pretrain(options: Mapping[str, Any], out_dir: str | Path, report: Report = lambda m: None,
             seed: int = 0, saves: ProgressSaves | None = None) -> Path:
    """Train a super-network as `options` say and save it to `out_dir`; returns the folder. With
    `saves`, training saves its progress there and continues from the newest save."""
    opts = build_options(PretrainOptions, options)
    device = device_for_worker() if opts.device == "auto" else torch.device(opts.device)
    torch.manual_seed(seed)
    teacher = Teacher.load(load_model_dir(opts.teacher), device)
    train_blocks, valid_blocks = corpus_blocks(teacher, opts.corpus, opts.seq_len, opts.corpus_blocks,
                                               opts.eval_blocks, seed)
    max_positions = teacher.model.config.max_position_embeddings
    shape = ElmShape(opts.num_layers, opts.hidden_size, opts.num_heads,
                     opts.inner_size if opts.inner_size is not None else max(1, opts.hidden_size // 4),
                     teacher.vocab_size, max_positions, max(1, getattr(teacher.model.config, "type_vocab_size", 1)))
    if opts.ffn_init == "input":
        widths = [[shape.attention_width(kind) for kind in BLOCK_KINDS]] * shape.num_layers
    else:
        widths = [[opts.step] * len(BLOCK_KINDS)] * shape.num_layers
    supernet = ElmSuperNet(shape, widths)
    # The resizer reads only `arch`'s table sizes and `embeddings`' tables, which ElmShape and the
    # ELM embeddings name as the AutoDistill student does.
    init_embeddings_from_teacher(cast(Any, SimpleNamespace(arch=shape, embeddings=supernet.embeddings)),
                                 teacher.embedding_tables())
    adapters = Adapters(shape.num_layers, shape.hidden_size, teacher.hidden_size)
    train_supernet(supernet, adapters, teacher, train_blocks, valid_blocks, opts.train_config(), report, seed, saves)
    return save_checkpoint(out_dir, supernet, adapters, teacher=opts.teacher, loss=opts.loss, ffn_step=opts.step,
                           sampling=opts.sampling)


def corpus_blocks(teacher: Teacher, corpus: str, seq_len: int, train_blocks: int, eval_blocks: int,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) (N, seq_len) token blocks of a language-modelling corpus."""
    task = load_data(corpus, seed=seed)
    if task.kind != "language-modeling":
        raise TrainerError(f"option 'corpus' must be unlabelled text, {corpus!r} is a {task.kind} task")
    train = encode(task, teacher.tokenizer, max_length=seq_len, max_examples=train_blocks, seed=seed,
                   splits=("train",))["train"]
    valid = encode(task, teacher.tokenizer, max_length=seq_len, max_examples=eval_blocks, seed=seed,
                   splits=("validation",))["validation"]
    return train.input_ids, valid.input_ids


def main(argv: list[str]) -> int:
    if not argv or "=" in argv[0]:
        print("usage: python -m trainers.elm.pretrain OUT_DIR [key=value ...]", file=sys.stderr)
        return 2
    try:
        options = {k: yaml.safe_load(v) for k, _, v in (a.partition("=") for a in argv[1:])}
        folder = pretrain(options, argv[0], report=lambda m: print({k: round(v, 4) for k, v in m.items()}))
    except (ValueError, TrainerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"saved {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
