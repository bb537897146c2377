"""Make the frozen table of learning curves that `benchmarks/search_efficiency.py --curves` replays
(issue 11, item 4): standard NAS with epochs as the fidelity.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/make_curve_table.py     # 48 x 4 epochs, one core
    .venv/bin/python benchmarks/make_curve_table.py --n 2 --epochs 2 --max-examples 64 \
        --eval-examples 64 --out /tmp/curves.csv                                  # a smoke run, < 1 min

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 / §4.1.2 apply
MO-ASHA to *standard* NAS: every sub-network is cut out of the pre-trained model and fine-tuned on
its own for E epochs, and validation accuracy after each epoch is the fidelity a trial can be stopped
at. This runs the project's `standard_nas` trainer (the same extraction, fine-tuning loop and
per-epoch report) on `--n` members of a coarse SMALL space of MiniLM-L6 (`--unit-step`, as
`make_subnet_table.py`), spread over it by farthest-point sampling in the space's unit cube (seeded;
members that are one network, such as 0 layers with any heads, count once).

Output: one csv row per finished (sub-network, epoch), appended as each epoch ends: the
configuration, `epoch`, `accuracy`, `loss`, `train_loss`, `params`, `params_non_embedding`, `flops`
(one sequence of 128 tokens, as `make_subnet_table.py`) and `seconds` (wall time of the epoch and
its evaluation; a sub-network's first epoch also holds its extraction). A rerun with the same
settings continues where the last one stopped (a sub-network cut off mid-way is trained again and
only its missing epochs are written). A sidecar json records the settings, the sub-networks and the
total run time.

Size (the defaults: 640 training sentences of 32 tokens, 250 validation sentences, batch 16, one
thread): with 960 training sentences one epoch of the full network took 78 s and one of (3 layers,
6 heads, 768 units) 31 s on one core of the 2-core development machine while the other core was
busy (cost ~ 16 s + 62 s x the share of the full network's non-embedding parameters); the 48
spread members hold 0.33 of it on average, so at 640 sentences an epoch averages about 25 s and the
48 x 4 epochs take about 80 min on one core (estimated, not yet run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.make_subnet_table import FLOPS_SEQ_LEN, flops  # noqa: E402
from search_spaces.pruning import SmallSpace  # noqa: E402
from trainers import standard_nas  # noqa: E402
from trainers.contract import TrialContext  # noqa: E402
from trainers.data import load_model_dir  # noqa: E402
from trainers.supernet.splits import SplitSpec, classification_split  # noqa: E402
from trainers.supernet.families import space_for

DEFAULT_OUT = Path(__file__).parent / "data" / "curve_table_minilm_movie_reviews.csv"
#: what each row records besides the configuration.
METRICS = ("epoch", "accuracy", "loss", "train_loss", "params", "params_non_embedding", "flops", "seconds")
#: the sidecar's keys that must match for a rerun to continue a table.
SETTINGS = ("model", "task", "n", "epochs", "lr", "head_lr", "batch_size", "max_examples", "max_length",
            "eval_examples", "pooling", "unit_step", "seed")


def spread_members(space: SmallSpace, n: int, seed: int) -> list[dict[str, int]]:
    """`n` distinct networks of the (enumerable) space, each the farthest in the unit cube from
    those already picked, starting from a seeded random one: the table covers the space's corners
    and middle alike, so a searcher's suggestion always has a table member near it."""
    grid: dict[str, dict[str, int]] = {}
    for values in np.array(np.meshgrid(*[d.values for d in space.dims], indexing="ij")).reshape(len(space.dims), -1).T:
        config = {d.name: int(v) for d, v in zip(space.dims, values)}
        grid.setdefault(space.network_key(config), config)
    members = list(grid.values())
    if not 1 <= n <= len(members):
        raise SystemExit(f"--n must be between 1 and the space's {len(members)} distinct networks, got {n}")
    units = np.array([space.to_unit(c) for c in members])  # (members, dims)
    picked = [int(np.random.default_rng(seed).integers(len(members)))]
    distance = np.linalg.norm(units - units[picked[0]], axis=1)
    while len(picked) < n:
        picked.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(units - units[picked[-1]], axis=1))
    return [members[i] for i in picked]


def done_epochs(out: Path, names: list[str]) -> dict[tuple[int, ...], int]:
    """Per configuration, the epochs the csv already holds."""
    if not out.exists():
        return {}
    frame = pd.read_csv(out)
    return {tuple(int(v) for v in key): int(group["epoch"].max()) for key, group in frame.groupby(names)}


def check_settings(sidecar: Path, settings: dict[str, Any]) -> None:
    if not sidecar.exists():
        return
    old = json.loads(sidecar.read_text()).get("settings", {})
    changed = {k: (old.get(k), settings[k]) for k in SETTINGS if old.get(k) != settings[k]}
    if changed:
        raise SystemExit(f"{sidecar.with_suffix('.csv')} was made with other settings {changed} (was, now); "
                         f"pass the same options to continue it, or another --out")


def append_row(out: Path, row: dict[str, Any]) -> None:
    pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False, float_format="%.6g")


def write_sidecar(sidecar: Path, settings: dict[str, Any], space: SmallSpace, members: list[dict[str, int]],
                  run_seconds: float, argv: list[str] | None) -> float:
    """How the table was made, rewritten as it grows (so an interrupted run is continued with the
    same settings, and the run time adds up over reruns)."""
    out = sidecar.with_suffix(".csv")
    table = pd.read_csv(out) if out.exists() else pd.DataFrame({"seconds": []})
    sidecar.write_text(json.dumps({
        "what": "learning curves of SMALL sub-networks fine-tuned standalone from the pre-trained model (standard NAS)",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *(sys.argv if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "rows": len(table), "members": members,
        "space": {"name": space.name, "options": space.options()},
        "run_seconds": round(run_seconds, 1), "train_seconds": round(float(table["seconds"].sum()), 1),
        "columns": {"epoch": "epochs fine-tuned so far (1..E)", "accuracy": "validation accuracy after the epoch",
                    "loss": "validation cross-entropy", "train_loss": "mean training loss of the epoch",
                    "params": "parameters of the extracted model", "params_non_embedding": "without the embeddings",
                    "flops": f"analytic forward FLOPs of one sequence of {FLOPS_SEQ_LEN} tokens",
                    "seconds": "wall seconds of the epoch and its evaluation (the first also extracts the model)"},
    }, indent=1) + "\n")
    return round(run_seconds, 1)


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"model": args.model, "task": args.task, "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr,
            "batch_size": args.batch_size, "max_examples": args.max_examples or None, "max_length": args.max_length,
            "eval_examples": args.eval_examples or None, "pooling": args.pooling, "device": args.device,
            # latency is not a column here; one timed forward is the trainer's least.
            "latency_repeats": 1, "latency_seq_len": args.max_length}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--task", default="movie-reviews")
    parser.add_argument("--n", type=int, default=48, help="sub-networks")
    parser.add_argument("--epochs", type=int, default=4, help="E: epochs of each sub-network (the maximum fidelity)")
    parser.add_argument("--unit-step", type=int, default=128, help="FFN grid of the SMALL space")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-examples", type=int, default=640, help="training examples (0: all)")
    parser.add_argument("--max-length", type=int, default=32, help="tokens per sentence (training and validation)")
    parser.add_argument("--eval-examples", type=int, default=250, help="validation examples (0: all)")
    parser.add_argument("--pooling", default="mean", choices=("cls", "mean"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    _, num_labels = classification_split(SplitSpec(args.task, args.model, "validation", 1, args.max_length, args.seed))
    model_config = json.loads((load_model_dir(args.model) / "config.json").read_text())
    space = space_for(SmallSpace, model_config, num_labels, unit_step=args.unit_step)
    members = spread_members(space, args.n, args.seed)
    names = [d.name for d in space.dims]
    settings = {k: getattr(args, k) for k in SETTINGS}
    sidecar = args.out.with_suffix(".json")
    check_settings(sidecar, settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = done_epochs(args.out, names)
    previous = json.loads(sidecar.read_text()).get("run_seconds", 0.0) if sidecar.exists() else 0.0
    write_sidecar(sidecar, settings, space, members, previous, argv)
    options = trainer_options(args)
    print(f"curves: {len(members)} sub-networks x {args.epochs} epochs on {args.task} "
          f"({sum(min(done.get(tuple(c[k] for k in names), 0), args.epochs) for c in members)} epochs already in {args.out})", flush=True)
    for i, config in enumerate(members):
        key = tuple(config[k] for k in names)
        if done.get(key, 0) >= args.epochs:
            continue
        last = time.monotonic()

        def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
            nonlocal last
            now, epoch = time.monotonic(), int(metrics["epoch"])
            if epoch > done.get(key, 0):
                row = {**config, **{m: metrics[m] for m in METRICS[:4]}, "params": int(metrics["params"]),
                       "params_non_embedding": int(metrics["params_non_embedding"]), "flops": flops(space, config),
                       "seconds": round(now - last, 2)}
                append_row(args.out, row)
            last = now

        standard_nas.train(TrialContext(f"c{i}", config, space, options, seed=args.seed), report)
        write_sidecar(sidecar, settings, space, members, previous + time.monotonic() - started, argv)
        rows = pd.read_csv(args.out)
        mine = rows[(rows[names] == pd.Series(config)).all(axis=1)]
        print(f"curves: {i + 1}/{len(members)} {config}: accuracy by epoch "
              f"{' '.join(f'{a:.3f}' for a in mine['accuracy'])}, {mine['seconds'].sum():.0f}s "
              f"(run {time.monotonic() - started:.0f}s)", flush=True)
    run_seconds = write_sidecar(sidecar, settings, space, members, previous + time.monotonic() - started, argv)
    print(f"curves: wrote {args.out} ({len(pd.read_csv(args.out))} rows); this run {time.monotonic() - started:.0f}s, "
          f"all runs {run_seconds:.0f}s", flush=True)
    return args.out


if __name__ == "__main__":
    main()
