"""Trials in flight at scale: driver cost per trial, zero-cost throughput, ax_mobo with many workers (issue 12, item 6).

    nice .venv/bin/python benchmarks/scale.py                 # everything; 256 in flight needs ~26 GiB for its workers
                                                              # (~103 MB PSS each: Ray's worker and Ray Tune's imports)
    .venv/bin/python benchmarks/scale.py --quick              # a smoke run: 1-3 minutes on 2 cores
    .venv/bin/python benchmarks/scale.py --parts throughput   # one part only (store, throughput, inflight, ax)

benchmarks/results/scale.txt lists the commands its figures came from (parts run one by one on a 2-core VM).

The resources are logical: one embedded Ray whose node advertises `--cpus` CPUs (256 by default)
on whatever machine runs it, every trial asking for `cpu: 1`; the trials are synthetic-trainer
trials (ZDT1 over 4 dimensions) that sleep `step_seconds`, so the figures are the orchestration's
own cost, not the trainers'.

0. The results store alone, no Ray: the driver's CPU per trial for what our Tune callbacks do at a
   trial's start, report and end (write the study's files, check the metrics, summarise for the
   progress hook), per block of 64 trials up to `--store-trials`: whether it grows with the study.
1. Throughput: trials/s of a whole `run_study` of `--zero-cost-trials` trials that do no work, random
   searcher, at max_concurrent 1, 8 and 64 (the study's wall time, from parsing to the summary).
2. In flight: studies of 2 x C sleeping trials (`--sleep-seconds` each) at max_concurrent C = 64 and
   256: the driver's CPU seconds per trial (time.process_time() of this process around the study: the
   Tune loop, our callbacks, the results store, the searcher), Ray's own processes' CPU (GCS, raylet),
   the wall time against the ideal (two waves of sleeps), and the number of trials RUNNING over time,
   from trials.parquet's start and end times: the peak, and the mean over the study; trials/s of the
   study, and what one trial's worker holds (USS) and which heavy libraries it loaded.
3. ax_mobo with many workers: the searcher alone (no Ray, max_concurrent W), fed `--ax-observations`
   completed observations, then W = 64 / 256 workers ask at once, as the runner asks (background
   pump, one batch of `batch_size` per model fit): the wall time until every one has a configuration
   and the share the model chose; then a window of `--ax-window-seconds` in which every trial ends
   `--ax-trial-seconds` after it started and its worker asks again: suggestions handed out, the
   model's share, seconds per model suggestion and the share of worker time spent waiting. Run with
   `fill_idle_workers` off and on (`--ax-fill`): off, a searcher keeps W workers busy on trials of
   T seconds only if one suggestion takes at most T / W.

Each measurement is repeated (`--repeats`) and reported as the median and the spread (min-max).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import orchestrator  # noqa: F401  first: sets Ray's loopback environment before Ray is imported
import numpy as np
import pandas as pd

from orchestrator.results import TRIALS_FILE
from orchestrator.study import Study, parse_study


def synthetic_study(storage: Path, name: str, trials: int, seconds: float, concurrent: int,
                    searcher: str = "random", searcher_options: dict[str, Any] | None = None) -> Study:
    """A study of `trials` synthetic trials that each sleep `seconds`, `concurrent` at a time."""
    return parse_study({
        "name": name,
        "storage": str(storage),
        "search_space": {"name": "synthetic", "options": {"num_dims": 4}},
        "trainer": {"kind": "synthetic", "options": {"steps": 1, "step_seconds": seconds}},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11.0}],
        "searcher": {"name": searcher, "options": searcher_options or {}},
        "budget": {"num_trials": trials, "max_concurrent": concurrent},
        "resources": {"cpu": 1},
    })


def ray_cpu_seconds() -> float:
    """CPU seconds so far of Ray's own processes on this node (GCS, raylet), not of its workers."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if any(key in " ".join(proc.cmdline()) for key in ("gcs_server", "raylet")):
                t = proc.cpu_times()
                total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class WorkerMemory:
    """Samples, every `every_s` in a thread, the Ray worker processes of this node and their memory
    (PSS: shared pages counted once across processes); keeps the peaks, and which of the heavy
    libraries (`HEAVY`) a trial's worker has loaded, with its private memory (USS)."""

    #: libraries whose presence in a worker's memory map explains its size.
    HEAVY = ("torch", "transformers", "botorch", "scipy", "sklearn", "pandas", "arrow", "numpy")

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s, self.peak_workers, self.peak_pss_mb = every_s, 0, 0.0
        self.trial_worker_uss_mb, self.trial_worker_libs = 0.0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "WorkerMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        while not self._stop.wait(self.every_s):
            workers, pss = 0, 0.0
            for proc in psutil.Process().children(recursive=True):
                try:
                    # A worker renames itself (ray::IDLE, ray::<actor>) once started; Ray's agents are not workers.
                    cmd = " ".join(proc.cmdline())
                    if "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd):
                        workers += 1
                        info = proc.memory_full_info()
                        pss += info.pss / 2**20
                        if ".train" in cmd and not self.trial_worker_libs:
                            self.trial_worker_uss_mb, self.trial_worker_libs = info.uss / 2**20, heavy_libraries(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_workers, self.peak_pss_mb = max(self.peak_workers, workers), max(self.peak_pss_mb, pss)


def heavy_libraries(proc: Any) -> str:
    """The `WorkerMemory.HEAVY` packages whose shared objects `proc` has mapped, comma-separated."""
    paths = " ".join(m.path for m in proc.memory_maps())
    # By package folder (site-packages/<name>/), not library name: numpy ships libscipy_openblas.
    return ",".join(name for name in WorkerMemory.HEAVY if f"/{name}/" in paths or f"/py{name}/" in paths) or "none"


@dataclass
class StudyRun:
    trials: int
    wall_s: float
    driver_cpu_s: float
    ray_cpu_s: float
    peak_running: int
    mean_running: float
    peak_workers: int = 0
    peak_worker_pss_mb: float = 0.0
    trial_worker_uss_mb: float = 0.0
    trial_worker_libs: str = ""


def in_flight(frame: pd.DataFrame) -> tuple[int, float]:
    """The peak number of trials running at once, and the time-weighted mean from the first start
    to the last end (trials.parquet's start and end times, stamped by the driver's callbacks)."""
    starts = frame["started_at"].map(lambda t: t.timestamp()).to_numpy()
    ends = frame["ended_at"].map(lambda t: t.timestamp()).to_numpy()
    times = np.concatenate([starts, ends])
    # An end sorts before a start at the same instant: a reused actor's next trial is not counted twice.
    deltas = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((deltas, times))
    times, running = times[order], np.cumsum(deltas[order])
    span = times[-1] - times[0]
    mean = float(np.sum(running[:-1] * np.diff(times)) / span) if span > 0 else float(running.max())
    return int(running.max()), mean


def run_one(study: Study, memory: bool = False) -> StudyRun:
    """Run a study to its end; its wall time, the driver's CPU time and the trials in flight (and,
    with `memory`, the peak number of Ray worker processes and their memory)."""
    from orchestrator.run import run_study

    ray_before, cpu_before, began = ray_cpu_seconds(), time.process_time(), time.perf_counter()
    with WorkerMemory() if memory else contextlib.nullcontext() as sampler:
        outcome = run_study(study, progress=False)
    wall = time.perf_counter() - began
    cpu, ray_cpu = time.process_time() - cpu_before, ray_cpu_seconds() - ray_before
    n = study.budget.num_trials
    if outcome.summary.counts["completed"] != n:
        raise RuntimeError(f"{study.name}: {outcome.summary.counts['completed']} of {n} trials completed")
    peak, mean = in_flight(pd.read_parquet(outcome.directory / TRIALS_FILE))
    run = StudyRun(n, wall, cpu, ray_cpu, peak, mean)
    if sampler is not None:
        run.peak_workers, run.peak_worker_pss_mb = sampler.peak_workers, sampler.peak_pss_mb
        run.trial_worker_uss_mb, run.trial_worker_libs = sampler.trial_worker_uss_mb, sampler.trial_worker_libs
    return run


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """`median [min-max]` of repeated measurements."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def throughput(storage: Path, concurrency: Sequence[int], trials: int, repeats: int, say: Callable[[str], None]) -> None:
    say(f"\n1. zero-cost trials: {trials} per study, random searcher; trials/s of the whole run_study")
    say(f"{'max_concurrent':>15}  {'trials/s  median [min-max]':>30}  {'wall s':>22}  {'driver CPU ms/trial':>24}")
    for c in concurrency:
        runs = [run_one(synthetic_study(storage, f"fast-{c}-{r}", trials, 0.0, c)) for r in range(repeats)]
        say(f"{c:>15}  {spread([x.trials / x.wall_s for x in runs]):>30}  {spread([x.wall_s for x in runs], '{:.1f}'):>22}"
            f"  {spread([1000 * x.driver_cpu_s / x.trials for x in runs], '{:.0f}'):>24}")


def inflight(storage: Path, concurrency: Sequence[int], seconds: float, repeats: int, say: Callable[[str], None]) -> None:
    say(f"\n2. sleeping trials: 2 x C trials of {seconds:g} s at max_concurrent C (ideal wall: two waves, {2 * seconds:g} s)")
    say(f"{'C':>5}  {'driver CPU ms/trial':>22}  {'Ray CPU ms/trial':>22}  {'wall s':>22}  {'peak running':>18}"
        f"  {'mean running':>22}  {'Ray workers':>16}  {'workers PSS GiB':>20}")
    for c in concurrency:
        runs = [run_one(synthetic_study(storage, f"sleep-{c}-{r}", 2 * c, seconds, c), memory=True) for r in range(repeats)]
        say(f"{c:>5}  {spread([1000 * x.driver_cpu_s / x.trials for x in runs], '{:.0f}'):>22}"
            f"  {spread([1000 * x.ray_cpu_s / x.trials for x in runs], '{:.0f}'):>22}"
            f"  {spread([x.wall_s for x in runs], '{:.1f}'):>22}  {spread([x.peak_running for x in runs], '{:.0f}'):>18}"
            f"  {spread([x.mean_running for x in runs], '{:.1f}'):>22}"
            f"  {spread([x.peak_workers for x in runs], '{:.0f}'):>16}  {spread([x.peak_worker_pss_mb / 1024 for x in runs]):>20}")
        say(f"      trials/s {spread([x.trials / x.wall_s for x in runs])}; one trial's worker: USS {runs[-1].trial_worker_uss_mb:.0f} MB, PSS per worker at the peak "
            f"{runs[-1].peak_worker_pss_mb / max(runs[-1].peak_workers, 1):.0f} MB; heavy libraries loaded: "
            f"{runs[-1].trial_worker_libs}")


def ax_suggestions(pending: Sequence[int], observations: int, repeats: int, trial_seconds: float,
                   batch_sizes: Sequence[int], fills: Sequence[bool], window_s: float,
                   say: Callable[[str], None]) -> None:
    """Time ax_mobo's suggestions with many workers: the searcher alone, in background mode as in a
    study (max_concurrent W), polled every 5 ms as Tune's driver polls.

    Fill: W workers ask at once; what is handed out stays pending. Then a window of `window_s`: each
    trial ends `trial_seconds` after it was handed out and its worker asks again at once."""
    from orchestrator.plugins import build_searcher, build_space
    from trainers.synthetic import objectives as zdt

    warnings.filterwarnings("ignore", module="linear_operator")  # jitter added to a Cholesky: expected, noisy

    say(f"\n3. ax_mobo: W workers ask at once after {observations} completed observations (fill), then {window_s:g} s"
        f" of trials of {trial_seconds:g} s, each worker asking again when its trial ends; background pump, polled"
        f" every 5 ms; 'model' counts Ax's generation strategy, 'fill' the space-filling configurations")
    say(f"{'W':>5}  {'batch':>5}  {'fill_idle':>9}  {'fill W workers s':>20}  {'model share (fill)':>18}"
        f"  {'window: handed':>14}  {'model share':>11}  {'s per model sugg.':>17}  {'workers idle %':>14}")
    for w in pending:
        for batch in batch_sizes:
            for fill in fills:
                rows: list[tuple[float, float, int, float, float, float]] = []
                for r in range(repeats):
                    rows.append(ax_run(w, batch, fill, observations, trial_seconds, window_s, r,
                                       build_searcher, build_space, zdt))
                cols = list(zip(*rows))
                say(f"{w:>5}  {batch:>5}  {'on' if fill else 'off':>9}  {spread(cols[0], '{:.1f}'):>20}"
                    f"  {spread(cols[1], '{:.2f}'):>18}  {spread(cols[2], '{:.0f}'):>14}  {spread(cols[3], '{:.2f}'):>11}"
                    f"  {spread(cols[4], '{:.2f}'):>17}  {spread(cols[5], '{:.0f}'):>14}")


def ax_run(w: int, batch: int, fill: bool, observations: int, trial_seconds: float, window_s: float, seed: int,
           build_searcher: Any, build_space: Any, zdt: Any) -> tuple[float, float, int, float, float, float]:
    """One ax_mobo run (see `ax_suggestions`): (fill s, model share of the fill, suggestions in the
    window, model share of them, window s per model suggestion, % of worker time spent waiting)."""
    study = synthetic_study(Path(tempfile.gettempdir()), f"ax-{w}-{seed}", 10**6, 0.0, w, searcher="ax_mobo",
                            searcher_options={"batch_size": batch, "fill_idle_workers": fill})
    study = replace(study, seed=seed)
    space = build_space(study)
    searcher = build_searcher(study, space)

    def metrics(config: dict[str, Any]) -> dict[str, float]:
        f = zdt("zdt1", np.array(space.point(config)))
        return {"f1": float(f[0]), "f2": float(f[1])}

    def counts() -> dict[str, int]:
        return dict(searcher.state_dict()["suggested_by"])  # waits for the batch in progress

    try:
        for i in range(observations):
            tid = f"obs{i}"
            searcher.on_trial_complete(tid, metrics(poll(searcher, tid)))
        before = counts()
        # Fill: W workers ask at once.
        began = time.perf_counter()
        running: dict[str, tuple[float, dict[str, Any]]] = {}  # trial id -> (handed at, config)
        waiting = {f"w{i}": began for i in range(w)}  # trial id -> asking since
        while waiting:
            ask(searcher, waiting, running)
            time.sleep(0.005)
        fill_s = max(t for t, _ in running.values()) - began
        after_fill = counts()
        fill_share = (after_fill["model"] - before["model"]) / w
        # Window: every trial ends trial_seconds after it was handed out; its worker asks again.
        began, idle, n = time.perf_counter(), 0.0, 0
        for tid in running:  # the fill's trials start their clocks now
            running[tid] = (began, running[tid][1])
        while (now := time.perf_counter()) - began < window_s:
            for tid, (start, config) in list(running.items()):
                if now - start >= trial_seconds:
                    del running[tid]
                    searcher.on_trial_complete(tid, metrics(config))
                    n += 1
                    waiting[f"{tid.split('.')[0]}.{n}"] = now
            idle += ask(searcher, waiting, running)
            time.sleep(0.005)
        end = time.perf_counter()
        idle += sum(end - since for since in waiting.values())
        handed_in_window = {k: v - after_fill[k] for k, v in counts().items()}
    finally:
        searcher.close()
    total = sum(handed_in_window.values())
    model = handed_in_window["model"]
    return (fill_s, fill_share, total, model / max(total, 1), window_s / model if model else float("inf"),
            100 * idle / (w * window_s))


def ask(searcher: Any, waiting: dict[str, float], running: dict[str, tuple[float, dict[str, Any]]]) -> float:
    """Each waiting worker asks once; those served start running. The seconds the served ones waited."""
    waited = 0.0
    for tid, since in list(waiting.items()):
        config = searcher.suggest(tid)
        if isinstance(config, dict):
            now = time.perf_counter()
            del waiting[tid]
            running[tid] = (now, config)
            waited += now - since
    return waited


def store_events(trials: int, repeats: int, say: Callable[[str], None]) -> None:
    """The driver's own work per trial without Ray: what the Tune callbacks do on a trial's start, report
    and end (the results store writes the study's files, the metric check, the progress hook's summary)."""
    from orchestrator.metric_check import MetricCheck
    from orchestrator.progress import Progress
    from orchestrator.results import COMPLETED, ResultsStore
    from trainers.synthetic import objectives as zdt

    block = 64
    say(f"\n0. the results store alone (no Ray): start, report and end of {trials} ZDT1 trials, random points;"
        f" driver CPU ms per trial, per block of {block} trials")
    cpu: dict[int, list[float]] = {}
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            study = synthetic_study(Path(tmp), "store", trials, 0.0, 1)
            store = ResultsStore(study.directory, study.objectives, study.constraints)
            check = MetricCheck(store, study.objectives, Progress(study, store, stream=None))
            rng = np.random.default_rng(r)
            began = time.process_time()
            for i in range(trials):
                x = rng.random(4)
                f = zdt("zdt1", x)
                metrics = {"f1": float(f[0]), "f2": float(f[1]), "step": 1.0}
                store.trial_started(f"t{i}", {f"x{j}": float(x[j]) for j in range(4)})
                check()
                store.trial_reported(f"t{i}", metrics)
                store.trial_finished(f"t{i}", COMPLETED, metrics)
                check()
                if (i + 1) % block == 0:
                    cpu.setdefault(i + 1, []).append(1000 * (time.process_time() - began) / block)
                    began = time.process_time()
    say(f"{'trials':>10}  {'CPU ms/trial':>22}")
    for end, values in cpu.items():
        say(f"{f'{end - block + 1}-{end}':>10}  {spread(values, '{:.1f}'):>22}")


def poll(searcher: Any, trial_id: str, every_s: float = 0.005) -> dict[str, Any]:
    """The searcher's next configuration for `trial_id`, asked again until one is ready."""
    while not isinstance(config := searcher.suggest(trial_id), dict):
        time.sleep(every_s)
    return config


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--parts", default="store,throughput,inflight,ax",
                        help="which parts to run, comma-separated")
    parser.add_argument("--store-trials", type=int, default=512)
    parser.add_argument("--cpus", type=int, default=256, help="logical CPUs the embedded Ray node advertises")
    parser.add_argument("--zero-cost-trials", type=int, default=64)
    parser.add_argument("--throughput-concurrency", default="1,8,64")
    parser.add_argument("--inflight-concurrency", default="64,256")
    parser.add_argument("--sleep-seconds", type=float, default=5.0)
    parser.add_argument("--ax-pending", default="64,256")
    parser.add_argument("--ax-observations", type=int, default=20)
    parser.add_argument("--ax-batch-sizes", default="4", help="ax_mobo batch_size values to compare")
    parser.add_argument("--ax-fill", default="off,on", help="ax_mobo fill_idle_workers values to compare")
    parser.add_argument("--ax-trial-seconds", type=float, default=10.0, help="trial length in the ax window")
    parser.add_argument("--ax-window-seconds", type=float, default=60.0, help="length of the ax window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also append the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.cpus, args.zero_cost_trials, args.throughput_concurrency = 8, 8, "1,4"
        args.inflight_concurrency, args.sleep_seconds, args.ax_pending, args.ax_observations = "8", 1.0, "8", 6
        args.ax_batch_sizes, args.ax_trial_seconds, args.ax_window_seconds = "4", 2.0, 5.0
        args.repeats, args.store_trials = 1, 64
    parts = set(args.parts.split(","))
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    say(f"# load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
        f"{os.cpu_count()} cores; Ray node with {args.cpus} logical CPUs; {args.repeats} repeats, median [min-max]")
    if "store" in parts:
        store_events(args.store_trials, args.repeats, say)
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    if parts & {"throughput", "inflight"}:
        import ray

        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                storage = Path(tmp)
                run_one(synthetic_study(storage, "warm", 2, 0.0, 2))  # imports and first workers, off the clock
                if "throughput" in parts:
                    throughput(storage, ints(args.throughput_concurrency), args.zero_cost_trials, args.repeats, say)
                if "inflight" in parts:
                    inflight(storage, ints(args.inflight_concurrency), args.sleep_seconds, args.repeats, say)
        finally:
            ray.shutdown()
    if "ax" in parts:
        fills = [{"on": True, "off": False}[x] for x in args.ax_fill.split(",") if x]
        ax_suggestions(ints(args.ax_pending), args.ax_observations, args.repeats, args.ax_trial_seconds,
                       ints(args.ax_batch_sizes), fills, args.ax_window_seconds, say)
    say(f"# load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write("\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()
