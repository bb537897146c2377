"""A GPU check in one command (issue 16, item 5): the four heavy paths at paper-scale settings on a GPU,
next to the same figures on this machine's CPU, in one JSON.

    .venv/bin/python benchmarks/gpu_check.py                     # on a GPU machine: benchmarks/results/gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --tiny --out x.json # tiny settings on CPU in well under a minute
    .venv/bin/python benchmarks/gpu_check.py --allow-cpu         # the paper-scale run without a GPU (slow)

Parts, each through the project's own entry points (settings: benchmarks/gpu_check_settings.py):
  (a) supernet_training: the weight_sharing trainer's `prepare` (the super-network stage, strategy
      `full`) for a few hundred steps; examples/s = steps x batch / the stage's training seconds
      (its train.json), peak memory of this process.
  (b) weight_sharing_search: `run_study` on an embedded loopback Ray, 20 trials of the random searcher
      on that super-network's shared weights, each trial `resources: {cpu: 1, gpu: 0.25}` (four on one
      GPU); trials/min = finished trials / (last end - first start), the trials' median latency and
      latency CV, peak memory of the whole run (every process on the device, or the process tree's RSS).
  (c) flash_distillation: one flash_distill trial (`train`, as a Ray worker calls it) on the largest
      student of the `paper` preset; examples/s over the distillation between its first and last
      stage report; the trial's measured latency and CV.
  (d) elm_candidate: elm_subnet's `prepare` (ELM-Small's super-network stage, a short one) and one
      candidate trial (the largest under the cap) scored on shared weights; examples/s = validation
      examples / the trial's seconds; its latency and CV.
Every column runs in its precision (the device: bf16; the CPU baseline: fp32, the CPU default) on a
fresh cache, so nothing is reused between columns or runs. Peak memory: torch.cuda.max_memory_allocated
on CUDA and the peak RSS (sampled every 50 ms) on CPU; part (b) samples the device's used memory
(CUDA) or the RSS of this process and all its children (Ray and its workers) instead.
Where the shipped assets are not in the cache (a machine without internet), random models, text and
labels of the same shapes stand in (`sources` in the JSON says which): speed and memory depend on the
shapes, not the weights.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orchestrator  # noqa: E402,F401  first: sets Ray's loopback environment before Ray is imported
import psutil  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks import gpu_check_settings as settings  # noqa: E402
from orchestrator import registry  # noqa: E402
from orchestrator.plugins import build_space  # noqa: E402
from orchestrator.study import Study, parse_study  # noqa: E402
from trainers.contract import Prepared, StageContext, TrialContext, run_in_process  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
SCHEMA = 1
PARTS = ("supernet_training", "weight_sharing_search", "flash_distillation", "elm_candidate")
#: the figures each part reports in every column (the test checks them all).
FIGURES = {
    "supernet_training": ("examples_per_s", "steps", "seconds", "peak_memory_bytes"),
    "weight_sharing_search": ("trials_per_min", "trials", "seconds", "peak_memory_bytes", "latency_ms", "latency_cv"),
    "flash_distillation": ("examples_per_s", "steps", "seconds", "peak_memory_bytes", "latency_ms", "latency_cv"),
    "elm_candidate": ("examples_per_s", "stage_seconds", "seconds", "peak_memory_bytes", "latency_ms", "latency_cv"),
}
#: figures where more is better: the device / CPU ratio is a speed-up.
RATES = ("examples_per_s", "trials_per_min")


@dataclass(frozen=True)
class Column:
    """One column of figures: where and in which arithmetic, and how many steps and trials."""

    device: str
    precision: str
    supernet_steps: int
    trials: int
    resources: dict[str, float]
    concurrent: int
    flash_steps_per_block: int
    flash_pretrain_steps: int
    flash_batch: int
    elm_pretrain_steps: int
    elm_finetune_steps: int
    elm_eval_examples: int


def columns(tiny: bool, device: str) -> dict[str, Column]:
    """The checked device's column and the CPU baseline's (fp32, fewer steps of the same shapes)."""
    if tiny:
        check = Column(device, "bf16", 12, 4, {"cpu": 0.5}, 2, 2, 4, 4, 2, 3, 24)
        cpu = Column("cpu", "fp32", 12, 2, {"cpu": 1}, 1, 2, 4, 4, 2, 3, 24)
    else:
        gpu = {"cpu": 1, "gpu": 0.25} if device == "cuda" else {"cpu": 1}
        check = Column(device, "bf16", 300, 20, gpu, 4, 4, 100, 256, 20, 50, 1000)
        cpu = Column("cpu", "fp32", 8, 4, {"cpu": 1}, 4, 1, 2, 32, 2, 4, 200)
    return {"device": check, "cpu": cpu}


# ---- memory ----------------------------------------------------------------------------------


class PeakSampler:
    """The largest value `read()` returned while the block ran, sampled every `every_s` seconds."""

    def __init__(self, read: Callable[[], int], every_s: float = 0.05) -> None:
        self.read, self.every_s, self.peak = read, every_s, read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def tree_rss() -> int:
    """RSS of this process and all its children (the embedded Ray and its workers)."""
    total = psutil.Process().memory_info().rss
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def cuda_used() -> int:
    free, total = torch.cuda.mem_get_info()
    return total - free


@contextmanager
def peak_memory(device: str, whole_run: bool = False) -> Iterator[dict[str, Any]]:
    """Fills `peak_memory_bytes` and `peak_memory_kind` for the block."""
    out: dict[str, Any] = {}
    if device == "cuda" and not whole_run:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        yield out
        torch.cuda.synchronize()
        out.update(peak_memory_bytes=int(torch.cuda.max_memory_allocated()), peak_memory_kind="cuda_max_allocated")
        return
    if device == "cuda":
        torch.cuda.empty_cache()
        before = cuda_used()
        with PeakSampler(cuda_used) as sampler:
            yield out
        out.update(peak_memory_bytes=int(sampler.peak - before), peak_memory_kind="cuda_device_used_increase")
        return
    with PeakSampler(tree_rss if whole_run else lambda: psutil.Process().memory_info().rss) as sampler:
        yield out
    out.update(peak_memory_bytes=int(sampler.peak), peak_memory_kind="rss_process_tree" if whole_run else "rss")


# ---- the parts ------------------------------------------------------------------------------


def load(data: dict[str, Any], work: Path) -> Study:
    """The study as `lmnas run` would read it, its YAML kept in the work folder for a rerun by hand."""
    path = work / "studies" / f"{data['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    from orchestrator.study import load_study

    return load_study(path)


def prepare(study: Study, work: Path, log: Callable[[str], None]) -> Prepared:
    """The trainer's `prepare` hook, run here as `lmnas run` runs it in a Ray task."""
    space = build_space(study)
    options = dict(study.trainer.options)
    ctx = StageContext(study=study.name, seed=study.seed, options=options, space=space,
                       directory=work / "stages" / study.name, log=log, run_task=run_in_process(log))
    hook = getattr(registry.trainers.load(study.trainer.name), "prepare", None)
    return hook(ctx) if hook is not None else Prepared(space, options)


def one_trial(study: Study, ready: Prepared, arch: dict[str, Any], work: Path) -> tuple[list[tuple[float, dict]], float]:
    """One trial through the trainer's `train`, as a worker runs it: (time, metrics) per report, seconds."""
    seen: list[tuple[float, dict]] = []
    ctx = TrialContext("t0", arch, ready.space, ready.trainer_options, study.seed, work / "trials" / study.name)
    started = time.perf_counter()
    registry.trainers.load(study.trainer.name).train(ctx, lambda m, checkpoint=None: seen.append((time.perf_counter(), dict(m))))
    return seen, time.perf_counter() - started


def supernet_training(study: Study, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    with peak_memory(study.trainer.options["device"]) as memory:
        ready = prepare(study, work, log)
    info = json.loads((Path(ready.checkpoint) / "train.json").read_text())
    batch = study.trainer.options["batch_size"]
    return {"steps": info["steps"], "seconds": info["seconds"], "examples_per_s": info["steps"] * batch / info["seconds"],
            "batch_size": batch, "seq_len": study.trainer.options["max_length"], **memory}


def weight_sharing_search(study: Study) -> dict[str, Any]:
    import pandas as pd

    from orchestrator.run import run_study

    with peak_memory(study.trainer.options["device"], whole_run=True) as memory:
        started = time.perf_counter()
        outcome = run_study(study, progress=False, overwrite=True)
        seconds = time.perf_counter() - started
    done = outcome.trials[outcome.trials["status"] == "completed"]
    if len(done) < study.budget.num_trials:
        errors = "; ".join(str(e) for e in outcome.trials["error"].dropna().unique()[:3])
        raise SystemExit(f"the weight-sharing search finished {len(done)} of {study.budget.num_trials} trials: {errors}")
    span = (pd.to_datetime(done["ended_at"]).max() - pd.to_datetime(done["started_at"]).min()).total_seconds()
    return {"trials": len(done), "seconds": seconds, "trials_per_min": 60.0 * len(done) / span,
            "trials_seconds": span, "resources": study.to_dict()["resources"],
            "latency_ms": float(done["latency_ms"].median()), "latency_cv": float(done["latency_cv"].median()), **memory}


def flash_distillation(study: Study, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    opts = study.trainer.options
    with peak_memory(opts["device"]) as memory:
        ready = prepare(study, work, log)
        reports, seconds = one_trial(study, ready, ready.space.largest(), work)
    (t0, first), (t1, last) = reports[0], reports[-1]
    steps = int(last["step"] - first["step"])
    return {"steps": steps, "seconds": t1 - t0, "trial_seconds": seconds,
            "examples_per_s": steps * opts["batch_size"] / (t1 - t0), "batch_size": opts["batch_size"],
            "seq_len": opts["seq_len"], "latency_ms": float(last["latency_ms"]),
            "latency_cv": float(last["latency_cv"]), **memory}


def elm_candidate(study: Study, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    opts = study.trainer.options
    with peak_memory(opts["device"]) as memory:
        started = time.perf_counter()
        ready = prepare(study, work, log)
        stage = time.perf_counter() - started
        reports, seconds = one_trial(study, ready, ready.space.largest(), work)
    final = reports[-1][1]
    return {"stage_seconds": stage, "seconds": seconds, "eval_examples": opts["eval_examples"],
            "examples_per_s": opts["eval_examples"] / seconds, "accuracy": float(final["accuracy"]),
            "latency_ms": float(final["latency_ms"]), "latency_cv": float(final["latency_cv"]), **memory}


def run_column(column: Column, src: settings.Sources, work: Path, tiny: bool, log: Callable[[str], None]
               ) -> dict[str, dict[str, Any]]:
    """The four parts in one column's device and precision, on a cache of its own."""
    where = work / f"{column.device}-{column.precision}"
    storage, cache = where / "runs", where / "cache"
    dev, prec = column.device, column.precision
    ws = load(settings.weight_sharing_study(src, storage, cache, tiny, dev, prec, column.supernet_steps,
                                            column.trials, column.resources, column.concurrent), where)
    flash = load(settings.flash_study(src, storage, tiny, dev, prec, column.flash_steps_per_block,
                                      column.flash_pretrain_steps, column.flash_batch), where)
    elm = load(settings.elm_study(src, storage, cache, tiny, dev, prec, column.elm_pretrain_steps,
                                  column.elm_finetune_steps, column.elm_eval_examples), where)
    out: dict[str, dict[str, Any]] = {}
    for part, measure in (("supernet_training", lambda: supernet_training(ws, where, log)),
                          ("weight_sharing_search", lambda: weight_sharing_search(ws)),
                          ("flash_distillation", lambda: flash_distillation(flash, where, log)),
                          ("elm_candidate", lambda: elm_candidate(elm, where, log))):
        log(f"{part} on {dev} ({prec}) ...")
        started = time.perf_counter()
        out[part] = {"device": dev, "precision": prec, **measure(), "wall_s": time.perf_counter() - started}
        log(f"{part} on {dev} ({prec}): " + ", ".join(f"{k} {out[part][k]:.4g}" for k in FIGURES[part]))
    return out


# ---- environment and output --------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    import ray
    import transformers

    cuda = torch.cuda.is_available()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_count": torch.cuda.device_count() if cuda else 0,
            "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(), "ray": ray.__version__,
            "transformers": transformers.__version__, "commit": commit or None}


def ratios(device: dict[str, dict[str, Any]], cpu: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per part, the device's rate over the CPU's (a speed-up) and its peak memory over the CPU's."""
    return {part: {**{f"{k}_vs_cpu": device[part][k] / cpu[part][k] for k in RATES if k in device[part]},
                   "peak_memory_vs_cpu": device[part]["peak_memory_bytes"] / cpu[part]["peak_memory_bytes"]}
            for part in PARTS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and data on CPU: a smoke run in seconds")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--allow-cpu", action="store_true", help="run the paper-scale settings without a GPU")
    parser.add_argument("--no-cpu-baseline", action="store_true", help="skip the CPU column")
    parser.add_argument("--sources", choices=("auto", "shipped", "random"), default="auto",
                        help="auto: the shipped assets when cached, else random stand-ins of the same shapes")
    parser.add_argument("--out", type=Path, default=None, help=f"the JSON (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--work", type=Path, default=None, help="keep models, caches and studies here (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cpu" if args.tiny else args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device (install torch's CUDA build)", file=sys.stderr)
        return 2
    if device == "cpu" and not args.tiny and not args.allow_cpu:
        print("gpu_check: needs a CUDA GPU for the paper-scale run; use --tiny for a CPU smoke run, or --allow-cpu",
              file=sys.stderr)
        return 2
    out = args.out or (RESULTS if not args.tiny else Path(tempfile.gettempdir()) / "gpu_check_tiny.json")
    started = time.perf_counter()
    log = lambda line: print(f"gpu_check: {line}", file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = (args.work or Path(tmp)).absolute()
        src = settings.shipped_sources() if args.sources != "random" and not args.tiny else None
        if src is None and args.sources == "shipped":
            print("gpu_check: the shipped assets are not all cached; run `lmnas assets fetch --all`", file=sys.stderr)
            return 2
        if src is None:
            src = settings.random_sources(work / "sources", settings.TINY_SHAPES if args.tiny else settings.PAPER_SHAPES)
        cols = columns(args.tiny, device)
        from orchestrator.run import ray_session

        # One embedded loopback Ray for both columns' searches (run_study joins a session in progress).
        with ray_session():
            figures = {"device": run_column(cols["device"], src, work, args.tiny, log)}
            if not args.no_cpu_baseline:
                figures["cpu"] = run_column(cols["cpu"], src, work, args.tiny, log)
    result = {
        "schema": SCHEMA, "mode": "tiny" if args.tiny else "paper", "device": device,
        "command": " ".join([Path(sys.executable).name, "benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": time.perf_counter() - started,
        "environment": environment(), "sources": src.describe(),
        "columns": {name: asdict(col) for name, col in cols.items() if name in figures},
        "parts": {part: {name: figures[name][part] for name in figures} for part in PARTS},
        "ratios": ratios(figures["device"], figures["cpu"]) if "cpu" in figures else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log(f"wrote {out} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
