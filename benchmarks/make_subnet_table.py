"""Make the frozen table of real sub-network evaluations that `benchmarks/search_efficiency.py`
and the `tabular` trainer replay (issue 4, item 6).

    nice .venv/bin/python benchmarks/make_subnet_table.py        # the shipped table: 2 CPU cores, 10-30 min
    .venv/bin/python benchmarks/make_subnet_table.py --max-examples 0 --epochs 5 --lr 2e-5 \
        --max-length 64 --eval-examples 0 --device cuda                # paper-like scale on a GPU

MiniLM-L6 is fine-tuned once as a super-network with the `full` strategy (Klein et al.,
"Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1) through the cached
super-network stage (`trainers/supernet/train.py`: a second run reuses the checkpoint), then
EVERY member of a coarse SMALL space (layers 0..6 x heads 1..12 x FFN units in steps of
`--unit-step`: 1,008 sub-networks at 128) is scored on the shared weights (§3.2.2) on one fixed
validation subsample. Columns: the configuration, `accuracy` / `loss` on the whole subsample,
`accuracy_low` / `loss_low` on a seeded random quarter of it (a cheaper fidelity for MO-ASHA), `params`,
`params_non_embedding`, and `flops` (analytic, one sequence of 128 tokens, as the
weight_sharing trainer reports). A sidecar json says how the table was made.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from search_spaces.pruning import SmallSpace
from trainers.data import load_model_dir
from trainers.efficiency import ForwardShape, encoder_flops, hardware_label
from trainers.encode import Encoded
from trainers.supernet.cache import TRAIN_INFO, SupernetConfig, checkpoint_key, key_fields, load_supernet
from trainers.supernet.checks import pick_device
from trainers.supernet.model import SuperNetwork
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.train import ensure_supernet
from trainers.supernet.families import space_for

DEFAULT_OUT = Path(__file__).parent / "data" / "subnet_table_minilm_movie_reviews.csv"
#: the sequence the FLOPs are counted at (the weight_sharing trainer's default latency_seq_len).
FLOPS_SEQ_LEN = 128


def depth_scores(supernet: SuperNetwork, split: Encoded, batch_size: int, low: torch.Tensor) -> list[dict[str, float]]:
    """Per depth n = 0..L, the scores of the active sub-network cut after its first n layers.

    A SMALL member with n layers is the first n layers of the same (heads, units) network with
    the rest removed, and a removed layer passes its input through: its logits are the head
    applied to the hidden state after layer n. So one pass of the L-layer network scores all
    L + 1 depths. `accuracy` / `loss` cover the whole split, `accuracy_low` / `loss_low` the rows
    in `low`. Examples go by length, each batch cut to its longest sentence (the columns past it
    are padding); per-example results do not depend on the order.
    """
    assert split.labels is not None
    lengths = split.attention_mask.sum(1)  # (N,)
    order = torch.argsort(lengths, stable=True)
    depths = supernet.shape.num_layers + 1
    loss, correct = torch.zeros(depths, len(split)), torch.zeros(depths, len(split))
    for start in range(0, len(split), batch_size):
        rows = order[start:start + batch_size]
        width = int(lengths[rows].max())
        ids, mask, labels = split.input_ids[rows, :width], split.attention_mask[rows, :width], split.labels[rows]
        states = supernet.encode(ids, mask).hidden_states  # L + 1 tensors (B, width, hidden)
        for depth, hidden in enumerate(states):
            logits = supernet.head(hidden)  # (B, C)
            loss[depth, rows] = F.cross_entropy(logits, labels, reduction="none")
            correct[depth, rows] = (logits.argmax(-1) == labels).float()
    return [{"accuracy": float(correct[d].mean()), "loss": float(loss[d].mean()),
             "accuracy_low": float(correct[d, low].mean()), "loss_low": float(loss[d, low].mean())}
            for d in range(depths)]


def low_fidelity_rows(n: int, seed: int) -> torch.Tensor:
    """A seeded random quarter of the rows: a named data set's validation split lists its examples
    grouped by label (movie reviews: 98 % positive in the first quarter, 2 % in the third), so its
    first quarter would be nearly one class."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: max(1, n // 4)]


def check_depth_shortcut(supernet: SuperNetwork, space: SmallSpace, split: Encoded, heads: int, units: int) -> None:
    """The shortcut equals scoring each depth's sub-network on its own (on a few examples)."""
    part = Encoded(split.input_ids[:16], split.attention_mask[:16], split.labels[:16] if split.labels is not None else None)
    supernet.set_sub_network(space.architecture({"num_layers": space.shape.num_layers, "num_heads": heads, "num_units": units}))
    shortcut = supernet.encode(part.input_ids, part.attention_mask).hidden_states
    for depth in range(space.shape.num_layers + 1):
        supernet.set_sub_network(space.architecture({"num_layers": depth, "num_heads": heads, "num_units": units}))
        direct = supernet(part.input_ids, part.attention_mask)
        assert torch.allclose(supernet.head(shortcut[depth]), direct, atol=1e-4), f"depth {depth}: shortcut != direct"


def flops(space: SmallSpace, config: dict[str, int]) -> float:
    sub, s = space.architecture(config), space.shape
    shape = ForwardShape(hidden=s.hidden_size, head_dim=s.head_size, heads_per_layer=tuple(len(h) for h in sub.heads),
                         ffn_per_layer=tuple(len(u) for u in sub.units), seq_len=FLOPS_SEQ_LEN, num_labels=s.num_labels)
    return float(encoder_flops(shape).total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--task", default="movie-reviews")
    parser.add_argument("--unit-step", type=int, default=128, help="FFN grid of the SMALL space")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-examples", type=int, default=640, help="training examples (0: all)")
    parser.add_argument("--max-length", type=int, default=20, help="tokens per sentence (training and validation)")
    parser.add_argument("--eval-examples", type=int, default=192, help="validation examples (0: all)")
    parser.add_argument("--eval-batch-size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = SupernetConfig(model=args.model, task=args.task, strategy="full", epochs=args.epochs, lr=args.lr,
                            batch_size=args.batch_size, max_examples=args.max_examples or None,
                            max_length=args.max_length, device=args.device)
    split, num_labels = classification_split(
        SplitSpec(args.task, args.model, "validation", args.eval_examples or None, args.max_length, args.seed))
    model_config = json.loads((load_model_dir(args.model) / "config.json").read_text())
    space = space_for(SmallSpace, model_config, num_labels, unit_step=args.unit_step)
    directory = ensure_supernet(config, space, args.seed)
    device = pick_device(args.device)
    supernet = load_supernet(directory, device)

    layers, heads_dim, units_dim = space.dims
    print(f"table: {len(layers.values) * len(heads_dim.values) * len(units_dim.values)} sub-networks on {len(split)} "
          f"validation examples ({max(1, len(split) // 4)} for accuracy_low) on {hardware_label(device)}", flush=True)
    rows, started, low = [], time.monotonic(), low_fidelity_rows(len(split), args.seed)
    grid = list(itertools.product(heads_dim.values, units_dim.values))
    with torch.inference_mode():
        check_depth_shortcut(supernet, space, split, heads_dim.values[0], units_dim.values[-1])
        for i, (heads, units) in enumerate(grid):
            supernet.set_sub_network(space.architecture({"num_layers": layers.high, "num_heads": heads, "num_units": units}))
            for depth, scores in zip(layers.values, depth_scores(supernet, split, args.eval_batch_size, low)):
                arch = {"num_layers": depth, "num_heads": heads, "num_units": units}
                rows.append({**arch, **scores, **space.metrics(arch), "flops": flops(space, arch)})
            if (i + 1) % 12 == 0 or i + 1 == len(grid):
                print(f"table: {i + 1}/{len(grid)} (heads, units) in {time.monotonic() - started:.0f}s", flush=True)
    supernet.reset_super_network()
    names = [d.name for d in space.dims]
    rows.sort(key=lambda r: tuple(r[k] for k in names))
    eval_seconds = time.monotonic() - started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False, float_format="%.6g")
    trained = json.loads((directory / TRAIN_INFO).read_text())
    sidecar = {
        "what": "every sub-network of a coarse SMALL space scored on the shared weights of one super-network",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": len(table),
        "space": {"name": space.name, "options": space.options()},
        "supernet_key": checkpoint_key(config, space, args.seed),
        "supernet": key_fields(config, space, args.seed),
        "supernet_training": {k: trained.get(k) for k in ("steps", "seconds", "hardware")}
        | {"final_loss": trained["trace"][-1] if trained.get("trace") else None},
        "validation": {"task": args.task, "examples": len(split), "low_fidelity_examples": max(1, len(split) // 4),
                       "max_length": args.max_length, "seed": args.seed},
        "evaluation": {"seconds": round(eval_seconds, 1), "hardware": hardware_label(device)},
        "columns": {"accuracy": "validation accuracy (whole subsample)", "loss": "mean cross-entropy (whole subsample)",
                    "accuracy_low": "accuracy on a seeded random quarter of the subsample", "loss_low": "loss on that quarter",
                    "params": "parameters of the extracted model", "params_non_embedding": "without the embeddings",
                    "flops": f"analytic forward FLOPs of one sequence of {FLOPS_SEQ_LEN} tokens"},
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    best = table.loc[table["accuracy"].idxmax()]
    print(f"table: wrote {args.out} ({len(table)} rows, {eval_seconds:.0f}s); best accuracy {best['accuracy']:.4f} "
          f"at {({k: int(best[k]) for k in names})}; accuracy range {table['accuracy'].min():.3f}..{table['accuracy'].max():.3f}")


if __name__ == "__main__":
    main()
