"""The super-network's full model against the Hugging Face model it was loaded from (issue 16, item 4).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/supernet_speed.py                 # MiniLM-L6, batch 16 x 64
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/supernet_speed.py --all-families  # + every family, random weights
    .venv/bin/python benchmarks/supernet_speed.py --family roberta --threads 2

Two measurements of the same weights on the same batch (input_ids and attention_mask, as the
trainers pass them; a quarter of the rows padded to half length):
  - training step: forward, cross-entropy, backward and an AdamW step, in train mode (dropout on);
  - inference: a forward pass under no_grad in eval mode.
Ours is `SuperNetwork.from_pretrained` with every head, unit and layer active; Hugging Face's is
its `export_standard` loaded with `AutoModelForSequenceClassification` (the weights it was loaded
from; a checkpoint's own class, default attention implementation). The two alternate call by call
(and who goes first alternates too), so the load other processes put on the machine falls on
both alike; each repeat is the mean of `--steps` calls of each, after `--warmup` untimed ones. The
clock is the thread's CPU time (`time.thread_time`) with one thread, which stops while other
processes hold the core, and the wall clock with several. The report gives the median and the
spread (min-max) per repeat and the ratio of medians ours / HF; below 1.0 we are faster.

MiniLM-L6 is the shipped asset (`lmnas assets fetch minilm-l6`); the other families are random
models of MiniLM-L6's sizes built offline from their `transformers` configs (no hub).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoModelForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainers.assets import asset_path  # noqa: E402
from trainers.supernet import SuperNetwork  # noqa: E402
from trainers.supernet.export import export_standard  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "supernet_speed.txt"
LABELS = 2
#: MiniLM-L6's sizes in BERT's config keys: the random models of the other families have them.
MINILM_SIZES = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512)
#: `--tiny`: a smoke run of the script in seconds (its ratios measure Python overhead, not the model).
TINY_SIZES = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=80)
#: family -> (transformers config class, its keyword arguments besides the sizes).
FAMILY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", dict(type_vocab_size=1, pad_token_id=1)),
    "xlm-roberta": ("XLMRobertaConfig", dict(type_vocab_size=1, pad_token_id=1)),
    "distilbert": ("DistilBertConfig", dict(activation="gelu")),
    "electra": ("ElectraConfig", dict(embedding_size=128)),
    "mpnet": ("MPNetConfig", dict(pad_token_id=1)),
}
#: DistilBERT's config keys for BERT's sizes.
DISTILBERT_KEYS = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
                   "intermediate_size": "hidden_dim"}
Clock = Callable[[], float]


@dataclass
class Pair:
    """Our full super-network and Hugging Face's model with the same weights, and a batch for both."""

    name: str
    ours: SuperNetwork
    hf: nn.Module
    batch: dict[str, torch.Tensor]
    labels: torch.Tensor


def hf_twin(supernet: SuperNetwork, directory: Path) -> nn.Module:
    """Hugging Face's sequence classifier holding the super-network's weights (head included)."""
    export_standard(supernet, directory)
    return AutoModelForSequenceClassification.from_pretrained(directory)


def random_checkpoint(family: str, directory: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """A random sequence classifier of `family` with `sizes` (BERT's keys), saved offline."""
    config_class, extra = FAMILY_CONFIGS[family]
    if family == "distilbert":
        sizes = {DISTILBERT_KEYS.get(k, k): v for k, v in sizes.items()}
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(**sizes, **extra, num_labels=LABELS)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    return directory


def make_batch(vocab: int, pad: int, batch: int, seq: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Random token ids and labels; a quarter of the rows padded (with `pad`) from half length on."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(pad + 2, vocab, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[: max(1, batch // 4), seq // 2:] = 0
    labels = torch.randint(0, LABELS, (batch,), generator=gen)
    return {"input_ids": ids.masked_fill(mask == 0, pad), "attention_mask": mask}, labels


def load_pair(checkpoint: Path, name: str, workdir: Path, batch: int, seq: int) -> Pair:
    ours = SuperNetwork.from_pretrained(checkpoint, num_labels=LABELS)
    hf = hf_twin(ours, workdir / f"{name}-hf")
    inputs, labels = make_batch(ours.config.vocab_size, ours.config.pad_token_id, batch, seq)
    return Pair(name, ours, hf, inputs, labels)


def minilm_pair(workdir: Path, batch: int, seq: int) -> Pair:
    return load_pair(asset_path("minilm-l6"), "minilm-l6", workdir, batch, seq)


def family_pair(family: str, workdir: Path, batch: int, seq: int, sizes: dict[str, int] = MINILM_SIZES) -> Pair:
    checkpoint = random_checkpoint(family, workdir / f"{family}-random", sizes)
    return load_pair(checkpoint, f"{family} (random)", workdir, batch, seq)


def logits_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**batch)
    return out if isinstance(out, torch.Tensor) else out.logits


def training_step(model: nn.Module, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> Callable[[], None]:
    """One forward + cross-entropy + backward + AdamW step of `model` per call."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> None:
        F.cross_entropy(logits_of(model, batch), labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inference(model: nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    """One no_grad forward of `model` in eval mode per call."""
    def forward() -> None:
        model.eval()
        with torch.no_grad():
            logits_of(model, batch)

    return forward


def interleaved(ours: Callable[[], None], hf: Callable[[], None], repeats: int, steps: int, warmup: int,
                clock: Clock) -> tuple[list[float], list[float]]:
    """Seconds per call of each, the mean of `steps` calls per repeat. Calls alternate one by one,
    and who goes first alternates too, so a burst of load elsewhere falls on both alike."""
    for _ in range(warmup):
        ours(), hf()
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for r in range(repeats):
        spent = {"ours": 0.0, "hf": 0.0}
        for i in range(steps):
            order = (("ours", ours), ("hf", hf)) if (r + i) % 2 == 0 else (("hf", hf), ("ours", ours))
            for name, fn in order:
                began = clock()
                fn()
                spent[name] += clock() - began
        for name in times:
            times[name].append(spent[name] / steps)
    return times["ours"], times["hf"]


def summary(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1e3:8.1f} ms ({min(seconds) * 1e3:.1f}-{max(seconds) * 1e3:.1f})"


def compare(pair: Pair, repeats: int, steps: int, warmup: int, clock: Clock) -> dict[str, tuple[list[float], list[float]]]:
    """Training-step and inference seconds of ours and HF's, per repeat."""
    # The training step comes second: its optimizer would otherwise move the weights inference reads.
    infer = interleaved(inference(pair.ours, pair.batch), inference(pair.hf, pair.batch), repeats, steps, warmup, clock)
    train = interleaved(training_step(pair.ours, pair.batch, pair.labels), training_step(pair.hf, pair.batch, pair.labels),
                        repeats, steps, warmup, clock)
    return {"training step": train, "inference": infer}


def report(pair: Pair, timings: dict[str, tuple[list[float], list[float]]]) -> list[str]:
    attention = getattr(pair.hf.config, "_attn_implementation", "?")
    lines = [f"{pair.name}: ours vs {type(pair.hf).__name__} (attention: {attention})"]
    for what, (ours, hf) in timings.items():
        ratio = statistics.median(ours) / statistics.median(hf)
        lines.append(f"  {what:14s} ours {summary(ours)}   HF {summary(hf)}   ratio ours/HF {ratio:.3f}")
    return lines


def same_logits(pair: Pair) -> float:
    """Largest logit difference of the two in eval mode: the comparison is of the same model."""
    pair.ours.eval(), pair.hf.eval()
    with torch.no_grad():
        return float((logits_of(pair.ours, pair.batch) - logits_of(pair.hf, pair.batch)).abs().max())


def models_to_run(family: str | None, all_families: bool, tiny: bool) -> list[str]:
    """"minilm-l6" (the shipped checkpoint) and / or families (random models); `tiny` has no MiniLM-L6."""
    if family:
        return [family]
    shipped = [] if tiny else ["minilm-l6"]
    return shipped + (sorted(FAMILY_CONFIGS) if all_families or tiny else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILY_CONFIGS), help="a random model of this family instead of MiniLM-L6")
    parser.add_argument("--all-families", action="store_true", help="MiniLM-L6, then a random model of every family")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps", type=int, default=3, help="timed calls per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="random models of 2 layers of width 32, no MiniLM-L6 (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    clock: Clock = time.thread_time if args.threads == 1 else time.perf_counter
    header = (f"batch {args.batch} x {args.seq} tokens, {args.threads} thread(s), {args.repeats} repeats of "
              f"{args.steps} calls after {args.warmup} warm-up, clock: {'thread CPU time' if args.threads == 1 else 'wall'}; "
              f"torch {torch.__version__}, transformers {transformers.__version__}")
    lines = [header]
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sizes = TINY_SIZES if args.tiny else MINILM_SIZES
        for name in models_to_run(args.family, args.all_families, args.tiny):
            pair = (minilm_pair(workdir, args.batch, args.seq) if name == "minilm-l6"
                    else family_pair(name, workdir, args.batch, args.seq, sizes))
            gap = same_logits(pair)
            if gap > 1e-4:
                raise SystemExit(f"{pair.name}: ours and HF's logits differ by {gap:.2e}; the comparison would be of different models")
            block = report(pair, compare(pair, args.repeats, args.steps, args.warmup, clock))
            print("\n".join(block), flush=True)
            lines += block
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
