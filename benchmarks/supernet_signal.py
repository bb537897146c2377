"""Do the quickstart super-network's sub-networks learn? Train it once, score fixed SMALL sub-networks.

    nice .venv/bin/python benchmarks/supernet_signal.py                          # the quickstart's settings
    nice .venv/bin/python benchmarks/supernet_signal.py --set lr=1e-4 temperature=1  # one knob changed
    nice .venv/bin/python benchmarks/supernet_signal.py --set strategy=standard   # the standalone reference

The super-network is fine-tuned by the trainer's own stage (`trainers.supernet.train.train_supernet`,
into a temporary folder, not the cache) with `trainer.options` of `--study` (default
studies/quickstart.yaml) and the `--set` overrides; then the same 14 SMALL sub-networks (1 to 6
layers, various heads and units, the full network last) and the 0-layer network are scored on the
validation split the quickstart's trials use (`eval_examples` sentences, the study's seed). Prints
each sub-network's accuracy, the majority-class rate, the fraction of the >= 1-layer sub-networks
above `--threshold`, the training time and the trace of the logged losses; `--out` appends a JSON line.

With `--set strategy=standard` the full network is fine-tuned alone on the same data, epochs and
learning rates: the reference for "the super-network's full network is as good as the model
fine-tuned standalone".

`--probe` trains nothing: for the pre-trained model, at every depth k (what a k-layer sub-network's
head sees), it prints how much the [CLS] state, the pooler's output on it and the mean over real
tokens vary between inputs (mean std over features / mean |value|) and the validation accuracy of a
logistic regression fitted on each (the study's training sentences).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import typing
from pathlib import Path

import numpy as np
import torch
import yaml

from search_spaces.pruning import SmallSpace
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.supernet.measure import evaluate
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.train import train_supernet
from trainers.weight_sharing import WeightSharingOptions

#: (num_layers, num_heads, num_units): spread over depth, heads and units; the full network last.
SUBNETS = [(1, 12, 1536), (1, 4, 512), (1, 1, 64), (2, 12, 1536), (2, 6, 768), (3, 3, 384), (3, 8, 1024),
           (4, 12, 256), (4, 6, 768), (5, 2, 1536), (5, 10, 1200), (6, 1, 100), (6, 6, 768), (6, 12, 1536)]


def parse_value(text: str, hint: typing.Any) -> typing.Any:
    if text in ("null", "None"):
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    for kind in (int, float):
        if kind in args:
            try:
                return kind(text)
            except ValueError:
                continue
    return text


def options(study: Path, overrides: list[str]) -> tuple[WeightSharingOptions, int]:
    data = yaml.safe_load(study.read_text())
    opts = dict(data["trainer"]["options"])
    hints = typing.get_type_hints(WeightSharingOptions)
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in hints:
            raise SystemExit(f"unknown option {key!r}; options: {sorted(hints)}")
        opts[key] = parse_value(value, hints[key])
    return WeightSharingOptions(**opts), int(data.get("seed", 0))


@torch.no_grad()
def probe(opts: WeightSharingOptions, seed: int) -> None:
    """Layer-wise linear probes of the pre-trained model's [CLS], pooler and mean-pooled states."""
    from sklearn.linear_model import LogisticRegression

    from trainers.data import load_model_dir
    from trainers.supernet.model import SuperNetwork

    model = SuperNetwork.from_pretrained(load_model_dir(opts.model), num_labels=2, seed=seed).eval()
    data = {}
    for split, n in (("train", opts.max_examples), ("validation", opts.eval_examples)):
        enc, _ = classification_split(SplitSpec(opts.task, opts.model, split, n, opts.max_length, seed))
        states = model.encode(enc.input_ids, enc.attention_mask).hidden_states  # L + 1 of (B, S, H)
        mask = enc.attention_mask[:, :, None].float()
        data[split] = (enc.labels.numpy(), [{"cls": h[:, 0], "pooler(cls)": torch.tanh(model.head.pooler(h[:, 0])),
                                             "mean": (h * mask).sum(1) / mask.sum(1)} for h in states])
    (y, train), (y_val, val) = data["train"], data["validation"]
    print(f"pre-trained {opts.model}: variation between inputs and linear-probe validation accuracy per depth")
    for k in range(len(train)):
        cells = []
        for kind in train[k]:
            x, x_val = train[k][kind].numpy(), val[k][kind].numpy()
            spread = float(x.std(0).mean() / (np.abs(x).mean() + 1e-9))
            acc = LogisticRegression(max_iter=2000).fit(x, y).score(x_val, y_val)
            cells.append(f"{kind} {spread:.3f} / {acc:.3f}")
        print(f"  depth {k}: " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=Path("studies/quickstart.yaml"))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="trainer option overrides")
    parser.add_argument("--seed", type=int, default=None, help="default: the study's")
    parser.add_argument("--threshold", type=float, default=0.60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    parser.add_argument("--probe", action="store_true", help="only the layer-wise probes of the pre-trained model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    opts, seed = options(args.study, args.set)
    seed = seed if args.seed is None else args.seed
    if args.probe:
        return probe(opts, seed)
    config = SupernetConfig.of(opts)
    space = SmallSpace()
    val, _ = classification_split(SplitSpec(opts.task, opts.model, "validation", opts.eval_examples, opts.max_length, seed))
    majority = float(max(np.bincount(val.labels.numpy())) / len(val))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        directory = train_supernet(config, space, seed, Path(tmp) / "supernet", log=lambda line: None)
        trace = json.loads((directory / "train.json").read_text())["trace"]
        supernet = load_supernet(directory)
    trained_s = time.monotonic() - started
    rows = []
    for layers, heads, units in [(0, 1, 1)] + SUBNETS:
        supernet.set_sub_network(space.architecture({"num_layers": layers, "num_heads": heads, "num_units": units}))
        rows.append({"layers": layers, "heads": heads, "units": units, **evaluate(supernet, val, opts.eval_batch_size)})
    supernet.reset_super_network()
    deep = [r for r in rows if r["layers"] >= 1]
    above = float(np.mean([r["accuracy"] > args.threshold for r in deep]))
    print(f"settings: {' '.join(args.set) or '(the study as it is)'}  seed {seed}")
    print(f"trained in {trained_s:.0f} s; validation {len(val)} sentences, majority class {majority:.3f}")
    for r in rows:
        print(f"  L{r['layers']} H{r['heads']:>2} U{r['units']:>4}  accuracy {r['accuracy']:.3f}  loss {r['loss']:.3f}")
    print(f"sub-networks with >= 1 layer above {args.threshold}: {above:.2f} ({sum(r['accuracy'] > args.threshold for r in deep)}/{len(deep)}); "
          f"median {np.median([r['accuracy'] for r in deep]):.3f}; full {rows[-1]['accuracy']:.3f}")
    roles = [k for k in trace[-1] if k not in ("step", "epoch", "loss")]
    for entry in trace[:: max(1, len(trace) // 6)] + [trace[-1]]:
        print(f"  step {entry['step']:>4} " + " ".join(f"{r} {entry[r]:.3f}" for r in roles if r in entry))
    if args.out is not None:
        record = {"set": args.set, "seed": seed, "trained_s": trained_s, "majority": majority, "above": above,
                  "full": rows[-1]["accuracy"], "rows": rows, "trace": trace,
                  "options": {k: v for k, v in dataclasses.asdict(config).items() if k != "cache_dir"}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
