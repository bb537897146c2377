"""How much a neighbouring process disturbs a latency measurement, and what the host lock changes.

    .venv/bin/python benchmarks/latency_interference.py --out benchmarks/results/latency_interference.txt

The measured model is the one the quickstart's trials time: a CompactBert (`trainers/supernet/
standalone.py`) of all-MiniLM-L6-v2's sizes (6 layers, hidden 384, 12 heads, 1,536 FFN units; random
weights, no download), batch 1, 32 tokens, one torch thread, `measure_latency` with 3 warm-ups and
20 timed forwards. Two spawned processes (as Ray starts trial workers), one torch thread each (as
Ray gives a 1-CPU trial), run these scenarios, each repeated `--reps` times:

  alone                 one process measures, the other idles
  train, no sections    the other trains the same network (batch 16 x 32 tokens, AdamW) nonstop;
                        the measurer holds the host lock, which a plain training loop ignores
  train, host_busy      the same, but each training step is a `host_busy()` section, so the
                        measurer's exclusive lock waits for the running step and holds back new ones
  2 measure, no lock    both measure at once (`LatencyOptions(exclusive=False)`), starts aligned
  2 measure, lock       both measure at once with the host lock (the default)

The scenarios take turns (one measurement each, `--reps` rounds), so that load from elsewhere
falls on all of them alike. For each: the coefficient of variation (`latency_cv`) and median of every measurement, and how long
the measurer waited for the lock. The numbers are noisy by nature: the two cores are shared with
whatever else runs on the machine, which the header's load average hints at.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

#: MiniLM-L6's sizes (the quickstart's super-network) and the quickstart's latency settings.
MINILM = dict(vocab_size=30522, hidden_size=384, max_position=512, type_vocab=2, num_labels=2, head_size=32,
              heads=(12,) * 6, units=(1536,) * 6)
SEQ_LEN, TRAIN_BATCH, WARMUP, REPEATS = 32, 16, 3, 20
SPAWN = mp.get_context("spawn")


def build_model() -> Any:
    import torch

    from trainers.supernet.standalone import CompactBert, CompactBertConfig

    torch.manual_seed(0)
    return CompactBert(CompactBertConfig(**MINILM))  # type: ignore[arg-type]


def worker(lock_dir: str, inbox: Queue, outbox: Queue, together: Barrier, stop: Event) -> None:
    """Takes ("measure", exclusive, aligned) and ("train", sections) commands until None."""
    os.environ["LMNAS_LOCK_DIR"] = lock_dir
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from trainers.efficiency import LatencyOptions, host_busy, measure_latency, token_inputs

    torch.set_num_threads(1)
    model = build_model()
    inputs = token_inputs(MINILM["vocab_size"])  # type: ignore[arg-type]
    outbox.put("ready")
    while (command := inbox.get()) is not None:
        if command[0] == "measure":
            _, exclusive, aligned = command
            if aligned:
                together.wait()
            lat = measure_latency(model, LatencyOptions(seq_len=SEQ_LEN, warmup=WARMUP, repeats=REPEATS,
                                                        exclusive=exclusive), inputs)
            outbox.put((lat.median_ms, lat.cv, lat.lock_wait_s))
        else:
            _, sections = command
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
            batch = inputs(TRAIN_BATCH, SEQ_LEN, torch.device("cpu"))
            labels = torch.zeros(TRAIN_BATCH, dtype=torch.long)
            model.train()
            steps, began = 0, time.perf_counter()
            while not stop.is_set():
                with host_busy() if sections else nullcontext():
                    loss = torch.nn.functional.cross_entropy(model(**batch), labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                steps += 1
                if steps == 1:
                    outbox.put("training")
            outbox.put((steps, time.perf_counter() - began))


@dataclass
class Worker:
    process: BaseProcess
    inbox: Queue
    outbox: Queue


def one_round(name: str, workers: list[Worker], stop: Event) -> tuple[list[tuple[float, float, float]], float | None]:
    """One measurement of scenario `name` (one per measuring process), and the neighbour's training
    rate (steps/s) when it trained."""
    measurer, other = workers
    if name.startswith("train"):
        stop.clear()
        other.inbox.put(("train", name.endswith("host_busy")))
        assert other.outbox.get() == "training"  # the first step is done
        # Ask a little into the second step, as a trial finishing beside a training one would: asked
        # right at a step's end, the measurer can take the host before the next step starts.
        time.sleep(0.2)
        measurer.inbox.put(("measure", True, False))
        result = measurer.outbox.get()
        stop.set()
        steps, seconds = other.outbox.get()
        return [result], steps / seconds
    if name.startswith("2 measure"):
        for w in workers:
            w.inbox.put(("measure", name.endswith(", lock"), True))
        return [w.outbox.get() for w in workers], None
    measurer.inbox.put(("measure", True, False))
    return [measurer.outbox.get()], None


def describe(row: dict[str, Any]) -> str:
    medians = [r[0] for r in row["results"]]
    cvs = [r[1] for r in row["results"]]
    waits = [r[2] for r in row["results"]]
    line = (f"{row['name']:<22} cv median {statistics.median(cvs):5.3f} max {max(cvs):5.3f}   "
            f"latency median {statistics.median(medians):6.2f} ms (min {min(medians):6.2f}, max {max(medians):6.2f})   "
            f"lock wait max {max(waits) * 1e3:5.0f} ms")
    if row["rates"]:
        line += f"   neighbour {statistics.median(row['rates']):.2f} steps/s"
    detail = "    cv per measurement: " + " ".join(f"{c:.3f}" for c in cvs)
    detail += "\n    median ms:          " + " ".join(f"{m:.2f}" for m in medians)
    detail += "\n    lock wait ms:       " + " ".join(f"{w * 1e3:.0f}" for w in waits)
    return line + "\n" + detail


SCENARIOS = ("alone", "train, no sections", "train, host_busy", "2 measure, no lock", "2 measure, lock")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=6, help="measurements per scenario and process (>= 3)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps must be >= 3")
    import tempfile

    lock_dir = tempfile.mkdtemp(prefix="lmnas-interference-")  # private: real studies are not disturbed
    together, stop = SPAWN.Barrier(2), SPAWN.Event()
    workers = []
    for _ in range(2):
        inbox, outbox = SPAWN.Queue(), SPAWN.Queue()
        process = SPAWN.Process(target=worker, args=(lock_dir, inbox, outbox, together, stop), daemon=True)
        process.start()
        workers.append(Worker(process, inbox, outbox))
    assert [w.outbox.get() for w in workers] == ["ready", "ready"]
    began = time.perf_counter()
    load = os.getloadavg()
    lines = [
        f"# .venv/bin/python benchmarks/latency_interference.py --reps {args.reps}  "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
        "# The cores are shared with other users of the machine: a single run is noisy; compare scenarios, not runs.",
        f"# CompactBert of MiniLM-L6 sizes, batch 1 x {SEQ_LEN} tokens, 1 thread, {WARMUP} warm-ups + {REPEATS} timed "
        f"forwards per measurement; {args.reps} measurements per scenario and measuring process, scenarios in turn.",
        "",
    ]
    rows: dict[str, dict[str, Any]] = {name: {"name": name, "results": [], "rates": []} for name in SCENARIOS}
    try:
        # Round robin over the scenarios, so that load from elsewhere falls on all of them alike.
        for _ in range(args.reps):
            for name in SCENARIOS:
                results, rate = one_round(name, workers, stop)
                rows[name]["results"].extend(results)
                if rate is not None:
                    rows[name]["rates"].append(rate)
        for row in rows.values():
            lines.append(describe(row))
            print(lines[-1], flush=True)
    finally:
        for w in workers:
            w.inbox.put(None)
        for w in workers:
            w.process.join(timeout=30)
    lines.append(f"\n# {time.perf_counter() - began:.0f} s")
    print(lines[-1])
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
