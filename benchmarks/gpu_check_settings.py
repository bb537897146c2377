"""The studies benchmarks/gpu_check.py runs: their settings at paper scale (a GPU) and tiny (a CPU test),
and the models and data they read (the shipped assets, or random ones of the same shapes).

Each part is a study, as plain data, so the check drives the project's own entry points with the
settings a user would write. The paper-scale settings are the README's for GPUs: the quickstart's
full-size comment (weight sharing), `studies/autodistill-paper.yaml` (Flash Distillation) and the
ELM-Small row of the README's ELM table, with step counts cut to fit the check's 8 minutes
(throughputs are rates: they need enough steps to be steady, not a full run). The CPU columns run the
same shapes in fp32 with fewer steps, and Flash Distillation with a smaller batch (one paper-size
step of MPNet-base at batch 256 takes seconds on a CPU).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trainers.assets import AssetError, asset_path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class Sources:
    """What the studies read: a super-network model, a distillation teacher, a task and a corpus."""

    model: str
    teacher: str
    task: str
    corpus: str
    #: "shipped" (the project's assets) or "random" (random weights and text of the same shapes).
    kind: str
    vocab_size: int

    def describe(self) -> dict[str, Any]:
        """What the JSON records: asset names, or the random stand-ins' kind (their paths were temporary)."""
        if self.kind == "shipped":
            return {"kind": self.kind, "model": self.model, "teacher": self.teacher, "task": self.task,
                    "corpus": self.corpus}
        return {"kind": self.kind, "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class Shapes:
    """The sizes of the random stand-ins: the super-network's model and the distillation teacher."""

    vocab_size: int
    model: dict[str, int]
    teacher: dict[str, int]
    task_rows: int
    words_per_text: int
    corpus_lines: int


#: MiniLM-L6 (the super-network and ELM's teacher) and MPNet-base's sizes as a BERT (the Flash teacher).
PAPER_SHAPES = Shapes(30522, dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
                      dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
                      task_rows=12000, words_per_text=40, corpus_lines=4000)
TINY_SHAPES = Shapes(200, dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
                     dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
                     task_rows=240, words_per_text=12, corpus_lines=60)


def shipped_sources() -> Sources | None:
    """The shipped assets the paper-scale settings name, when all are in the cache (None otherwise)."""
    try:
        for name in ("minilm-l6", "mpnet-base", "movie-reviews", "wikitext2"):
            asset_path(name)
    except AssetError:
        return None
    return Sources("minilm-l6", "mpnet-base", "movie-reviews", "wikitext2", "shipped", 30527)


def random_sources(root: Path, shapes: Shapes, seed: int = 0) -> Sources:
    """Random BERTs with a WordPiece vocabulary of `shapes.vocab_size` words, a two-class task and a corpus
    written under `root`: what the check runs on where the assets cannot be fetched (speed and memory
    depend on the shapes, not on the weights)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    words = [f"w{i}" for i in range(shapes.vocab_size - len(SPECIALS))]
    vocab = SPECIALS + words
    rng = random.Random(seed)
    for name, sizes in (("model", shapes.model), ("teacher", shapes.teacher)):
        directory = root / name
        if (directory / "config.json").is_file():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
        BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True).save_pretrained(directory)
        config = BertConfig(vocab_size=shapes.vocab_size, max_position_embeddings=512, **sizes)
        BertModel(config).save_pretrained(directory)
    task = root / "task"
    if not (task / "test.csv").is_file():
        task.mkdir(parents=True, exist_ok=True)
        common = words[:2000]
        texts = [" ".join(rng.choices(common, k=shapes.words_per_text)) for _ in range(shapes.task_rows)]
        # Learnable from the tokens: positive when the text holds more low-numbered words.
        labels = [int(sum(int(w[1:]) < len(common) // 2 for w in t.split()) * 2 > shapes.words_per_text) for t in texts]
        frame = pd.DataFrame({"text": texts, "label": labels})
        n = len(frame)
        for part, rows in (("train", frame[: 8 * n // 10]), ("validation", frame[8 * n // 10: 9 * n // 10]),
                           ("test", frame[9 * n // 10:])):
            rows.to_csv(task / f"{part}.csv", index=False)
    corpus = root / "corpus.txt"
    if not corpus.is_file():
        corpus.write_text("\n".join(" ".join(rng.choices(words, k=200)) for _ in range(shapes.corpus_lines)) + "\n")
    return Sources(str(root / "model"), str(root / "teacher"), str(task), str(corpus), "random", shapes.vocab_size)


def base_study(name: str, storage: Path, space: dict[str, Any], kind: str, options: dict[str, Any],
               objectives: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "storage": str(storage), "seed": 0, "search_space": space,
            "trainer": {"kind": kind, "options": options}, "objectives": objectives,
            "searcher": {"name": "random"}, "scheduler": {"name": "fifo"}}


def weight_sharing_study(src: Sources, storage: Path, cache: Path, tiny: bool, device: str, precision: str,
                         steps: int, trials: int, resources: dict[str, float], concurrent: int) -> dict[str, Any]:
    """Part (a) and (b): the quickstart at the size its comment gives for a GPU (128 tokens, the whole
    validation split, latency at 128 tokens), `steps` super-network steps of 16 examples."""
    batch = 8 if tiny else 16
    space: dict[str, Any] = {"name": "small", "options": {}}
    if tiny or src.kind == "random":
        sizes = TINY_SHAPES.model if tiny else PAPER_SHAPES.model
        space["options"] = {"num_layers": sizes["num_hidden_layers"], "num_heads": sizes["num_attention_heads"],
                            "intermediate_size": sizes["intermediate_size"], "hidden_size": sizes["hidden_size"],
                            "vocab_size": src.vocab_size, "max_position": 512, "num_labels": 2}
    length = 16 if tiny else 128
    options = {"model": src.model, "task": src.task, "strategy": "full", "num_random": 2, "temperature": 10.0,
               "pooling": "mean", "epochs": 1, "lr": 2e-5 if not tiny else 1e-3, "batch_size": batch,
               "max_examples": steps * batch, "max_length": length, "eval_examples": None,
               "latency_seq_len": length, "latency_repeats": 5 if tiny else 20, "cache_dir": str(cache),
               "device": device, "precision": precision, "save_every_s": None, "log_every": 50}
    study = base_study(f"ws-{device}-{precision}", storage, space, "weight_sharing", options,
                       [{"metric": "accuracy", "mode": "max"}, {"metric": "params", "mode": "min"}])
    study["budget"] = {"num_trials": trials, "max_concurrent": concurrent}
    study["resources"] = resources
    return study


def flash_study(src: Sources, storage: Path, tiny: bool, device: str, precision: str, steps_per_block: int,
                pretrain_steps: int, batch: int) -> dict[str, Any]:
    """Part (c): studies/autodistill-paper.yaml's trial (the `paper` preset, 24 blocks, 128 tokens, batch
    256, MPNet-base teacher, no teacher-output table) with fewer steps and no fine-tuning probe."""
    if tiny:
        space = {"hidden_size": [16, 24], "bottleneck_size": [16], "num_heads": [2], "intermediate_size": [24],
                 "num_ffn": [1], "num_blocks": 2, "vocab_size": src.vocab_size, "max_positions": 64}
    else:
        space = {"preset": "paper", "vocab_size": src.vocab_size, "max_positions": 512}
    length = 12 if tiny else 128
    options = {"teacher": src.teacher, "corpus": src.corpus, "seq_len": length,
               "corpus_blocks": 40 if tiny else 20000, "eval_blocks": 4 if tiny else 256,
               "steps_per_block": steps_per_block, "pretrain_steps": pretrain_steps,
               "warmup_steps": 0 if tiny else min(500, pretrain_steps // 10), "batch_size": batch, "task": None,
               "latency_batch": 1, "latency_seq_len": length, "latency_repeats": 5 if tiny else 100,
               "device": device, "precision": precision, "teacher_cache": False, "save_every_s": None}
    return base_study(f"flash-{device}-{precision}", storage, {"name": "autodistill", "options": space},
                      "flash_distill", options, [{"metric": "mlm_accuracy", "mode": "max"},
                                                 {"metric": "latency_ms", "mode": "min"}])


def elm_study(src: Sources, storage: Path, cache: Path, tiny: bool, device: str, precision: str,
              pretrain_steps: int, finetune_steps: int, eval_examples: int) -> dict[str, Any]:
    """Part (d): the README's ELM-Small (12 layers, hidden 528, 12 heads, cap 15.7M without embeddings,
    pre-training batch 256, fine-tuning batch 32) with two pre-training epochs of `pretrain_steps` (one
    PCA growth between them), `finetune_steps` fine-tuning steps, and a candidate scored on
    `eval_examples` validation examples at 128 tokens."""
    if tiny:
        space = {"num_layers": 2, "hidden_size": 32, "num_heads": 4, "ffn_step": 8, "max_params": 60_000,
                 "cap_metric": "params_non_embedding"}
    else:
        space = {"num_layers": 12, "hidden_size": 528, "num_heads": 12, "max_params": 15.7e6,
                 "cap_metric": "params_non_embedding"}
    length = 16 if tiny else 128
    options = {"teacher": src.model, "corpus": src.corpus, "seq_len": length, "corpus_blocks": 40 if tiny else 4000,
               "eval_blocks": 8 if tiny else 32, "pretrain_epochs": 2, "pretrain_steps": pretrain_steps,
               "pretrain_batch": 4 if tiny else 256, "pretrain_lr": 1e-4, "task": src.task, "max_length": length,
               "train_examples": None, "eval_examples": eval_examples, "probe_steps": 30 if tiny else 300,
               "finetune_steps": finetune_steps, "finetune_batch": 8 if tiny else 32, "finetune_lr": 4e-4,
               "label_weight": 1.0, "batch_size": 16 if tiny else 64, "latency_repeats": 5 if tiny else 20,
               "latency_seq_len": length, "onnx": False, "cache_dir": str(cache), "device": device,
               "precision": precision, "save_every_s": None}
    if tiny:
        options["growth_top_k"] = 4
    return base_study(f"elm-{device}-{precision}", storage, {"name": "elm", "options": space}, "elm_subnet", options,
                      [{"metric": "accuracy", "mode": "max"}, {"metric": "params_non_embedding", "mode": "min"}])
