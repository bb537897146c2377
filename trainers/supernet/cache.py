"""Trained super-networks on disk, keyed by the hash of everything that decides them.

A checkpoint directory `<cache_dir>/<key>/` holds `config.json` (the `compact_bert` config),
`model.safetensors` and `train.json` (the training config, the space, the loss trace). It is
written to a hidden folder and renamed into place when complete, so a crash never leaves a
half-written checkpoint and a second run, or a resumed study, finds it and does not retrain.
On a multi-node cluster `cache_dir` must be a directory every node sees (e.g. NFS).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from search_spaces.pruning import PruningSpace
from trainers.assets import ASSETS
from trainers.home import lmnas_home
from trainers.data import looks_local
from trainers.progress import check_save_every_s
from trainers.strategies import STRATEGIES, make_strategy, strategy_options
from trainers.supernet.model import SuperNetwork
from trainers.supernet.options import FinetuneOptions
from trainers.supernet.standalone import CONFIG_NAME, WEIGHTS_NAME, CompactBertConfig, save

TRAIN_INFO = "train.json"
#: bumped when the checkpoint format or the training loop changes what a key means
#: (2: head_lr, warmup, pooling; 3: the sandwich rule's smallest and random sub-networks keep an
#: attention head whatever the pooling; 4: each family's dropout placed as Hugging Face places it).
FORMAT = 4


@dataclass(frozen=True)
class SupernetConfig(FinetuneOptions):
    """How the super-network is fine-tuned (structural-pruning-via-nas.txt §3.2.1, Appendix A)."""

    strategy: str = "full"
    #: random sub-networks per step (sandwich, full) and the distillation temperature (inplace_kd, full).
    num_random: int = 2
    temperature: float = 10.0
    #: what the classifier's pooler reads: "cls" (BERT's [CLS] token; exports as a standard
    #: BertForSequenceClassification) or "mean" (the mean over real tokens, as sentence-transformers
    #: models were trained: their [CLS] state below the last layer carries almost nothing, so
    #: shallow sub-networks could only guess one class; exports in the compact format).
    pooling: Literal["cls", "mean"] = "cls"
    #: where checkpoints live (null: $LMNAS_HOME/supernets); not part of the key.
    cache_dir: str | None = None
    #: print a progress line every this many steps (and at the last).
    log_every: int = 10
    #: seconds of training between saves of the stage's state (next to the checkpoint, as
    #: `<key>.progress/`), so a stage whose node or driver died continues from there; null: no saves.
    save_every_s: float | None = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.strategy not in STRATEGIES:
            raise ValueError(f"option 'strategy' must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.log_every < 1:
            raise ValueError(f"option 'log_every' must be >= 1, got {self.log_every}")
        check_save_every_s(self.save_every_s)
        self.make_strategy()  # validates the strategy's options

    @classmethod
    def of(cls, options: Any) -> SupernetConfig:
        """The super-network part of a larger options object (e.g. a trainer's)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    def make_strategy(self) -> Any:
        return make_strategy(self.strategy, **strategy_options(self.strategy, asdict(self)))

    def root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else lmnas_home() / "supernets"


def source_name(source: str) -> str:
    """A data or model source as it goes into the key: asset names as they are, local paths absolute."""
    if source in ASSETS or not (looks_local(source) or Path(source).expanduser().exists()):
        return source
    return str(Path(source).expanduser().resolve())


def key_fields(config: SupernetConfig, space: PruningSpace, seed: int) -> dict[str, Any]:
    """Everything that decides the trained weights (not where they are stored or on which device)."""
    return {
        "format": FORMAT,
        "model": source_name(config.model),
        "task": source_name(config.task),
        "strategy": config.strategy,
        "strategy_options": strategy_options(config.strategy, asdict(config)),
        **{k: getattr(config, k) for k in ("epochs", "lr", "head_lr", "warmup", "batch_size", "weight_decay", "max_examples",
                                      "max_length", "pooling")},
        "space": {"name": space.name, "options": space.options()},
        "seed": seed,
        # 16-bit training gives other weights; fp32 adds no key, so checkpoints from before the option keep theirs
        **({"precision": config.precision} if config.precision != "fp32" else {}),
    }


def checkpoint_key(config: SupernetConfig, space: PruningSpace, seed: int) -> str:
    text = json.dumps(key_fields(config, space, seed), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def checkpoint_dir(config: SupernetConfig, space: PruningSpace, seed: int) -> Path:
    """Where the super-network of this config, space and seed is (or will be) stored."""
    return config.root() / checkpoint_key(config, space, seed)


def is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_INFO))


def write_checkpoint(supernet: SuperNetwork, directory: Path, info: dict[str, Any]) -> Path:
    """Save `supernet` (full size, on CPU) and `info` into `directory`, atomically."""
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    supernet.reset_super_network()
    save(supernet, tmp)
    (tmp / TRAIN_INFO).write_text(json.dumps(info, indent=1) + "\n")
    return publish(tmp, directory, is_complete)


def publish(tmp: Path, directory: Path, complete: Callable[[Path], bool]) -> Path:
    """Rename the finished folder `tmp` to `directory`, so readers never see a half-written one."""
    try:
        tmp.rename(directory)
    except OSError:
        # Another process finished the same checkpoint first: theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
        if not complete(directory):
            raise
    return directory


def load_supernet(directory: str | Path, device: torch.device | str = "cpu") -> SuperNetwork:
    """The trained super-network stored in `directory`, full size, in eval mode on `device`."""
    from safetensors.torch import load_file

    path = Path(directory)
    config = CompactBertConfig.from_json(json.loads((path / CONFIG_NAME).read_text()))
    with torch.device("meta"):
        model = SuperNetwork(config)
    model.load_state_dict(load_file(str(path / WEIGHTS_NAME), device=str(device)), strict=True, assign=True)
    # Selections (index tensors) live on the weights' device: make them after the move.
    model.reset_super_network()
    return model.eval()
