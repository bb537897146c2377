"""Reading a study directory back: the console summary, a PNG and a self-contained HTML page."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from orchestrator.calibration import load_calibration
from orchestrator.objectives import Objectives
from orchestrator.results import FINISHED_STATUSES, Summary, load_trials, metric_column, summarise
from orchestrator.study import Study, load_saved_study
from orchestrator.study_page import REPORT_HTML, write_page

REPORT_PNG = "report.png"


def load_summary(directory: Path) -> Summary:
    study = load_saved_study(directory)
    return summarise(load_trials(directory), study.objectives, study.constraints)


def print_summary(summary: Summary, directory: Path) -> None:
    c = summary.counts
    print(f"study: {directory}")
    print(f"trials: {c['completed']} completed, {c['stopped']} stopped early, {c['running']} running, "
          f"{c['failed']} failed, {c['interrupted']} interrupted")
    print(f"hypervolume: {summary.hypervolume_text()}")
    print(f"Pareto front ({len(summary.front)} trials):")
    if len(summary.front):
        with pd.option_context("display.max_columns", 20, "display.width", 160):
            print(summary.front.to_string(index=False, float_format=lambda x: f"{x:.6g}"))


def render_png(summary: Summary, trials: pd.DataFrame, objectives: Objectives) -> bytes:
    """Pareto scatter of the first two objectives and the hypervolume trace, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = objectives.metrics
    x, y = metric_column(names[0]), metric_column(names[-1] if len(names) > 1 else names[0])
    done = trials[trials["status"].isin(FINISHED_STATUSES)] if len(trials) else trials
    if len(done) and x in done.columns and y in done.columns:
        ax1.scatter(done[x], done[y], s=14, c="#9aa5b1", label="trials")
    if len(summary.front):
        f = summary.front.sort_values(x)
        ax1.step(f[x], f[y], where="post", color="#d1495b", lw=1)
        ax1.scatter(f[x], f[y], s=28, c="#d1495b", label="Pareto front", zorder=3)
    ax1.set_xlabel(f"{names[0]} ({objectives.items[0].mode})")
    ax1.set_ylabel(f"{names[-1]} ({objectives.items[-1].mode})")
    ax1.set_title("Pareto front")
    ax1.legend(loc="best")
    ax2.plot(range(1, len(summary.hypervolume_trace) + 1), summary.hypervolume_trace, color="#2e86ab")
    ax2.set_xlabel("finished trials")
    ax2.set_ylabel("hypervolume")
    ax2.set_title("Hypervolume")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(directory: Path, out: Path | None = None, study: Study | None = None,
                 trials: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write report.png and the study page (report.html, as the live page but final) into `out`
    (default: the study directory). A run that has just ended passes its `study` and `trials` (the
    ones it holds); otherwise both are read from the directory."""
    directory = Path(directory)
    out = directory if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = load_saved_study(directory) if study is None else study
    trials = load_trials(directory) if trials is None else trials
    summary = summarise(trials, study.objectives, study.constraints)
    png = render_png(summary, trials, study.objectives)
    png_path, html_path = out / REPORT_PNG, out / REPORT_HTML
    from orchestrator.results import atomic_write_bytes

    atomic_write_bytes(png_path, png)
    write_page(out, study.name, study.objectives, trials, summary, live=False, calibration=load_calibration(directory))
    return png_path, html_path
