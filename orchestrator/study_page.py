"""The study page: one self-contained HTML file with the Pareto scatter, the hypervolume trace and
the trial table, drawn as inline SVG (no scripts, nothing fetched).

The driver rewrites it atomically beside the results while a study runs (the page then reloads
itself every few seconds); `lmnas report` writes the same page offline. Every string that comes
from results (ids, configs, errors, hosts, labels) is escaped.
"""
from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.calibration import Calibration
from orchestrator.objectives import Objectives
from orchestrator.results import FINISHED_STATUSES, Summary, atomic_write_text, metric_column
from orchestrator.svg import Point, esc, line_chart, scatter

REPORT_HTML = "report.html"
#: the mark of a page a running driver keeps writing.
LIVE_STATE = 'class="live" id="state"'

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
.charts{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fff;border:1px solid #ddd}
.plot{fill:#fbfbfb;stroke:#999}.tick{stroke:#666}.ticklabel{font-size:11px;fill:#444}
.axislabel{font-size:12px;fill:#222}.title{font-size:14px;font-weight:600;fill:#222}
circle.trial{fill:#9aa5b1}circle.front{fill:#d1495b;stroke:#7a1f2b}
.staircase{fill:none;stroke:#d1495b;stroke-width:1.2}.trace{fill:none;stroke:#2e86ab;stroke-width:2}
table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:2px 7px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td.text{text-align:left;white-space:normal;max-width:40em;overflow-wrap:anywhere}
.live{color:#2e7d32}.final{color:#555}"""

#: bookkeeping columns shown after the objectives, in this order (when present).
_LEAD = ("trial_id", "status")
_TAIL = ("hardware", "latency_clock", "precision", "host", "duration_s", "num_reports", "attempt", "error")
_HIDDEN = ("started_at", "ended_at")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def cell(value: Any, column: str) -> str:
    """One table cell: numbers carry their full value in data-value, text is escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "<td></td>"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if _finite(value):
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        return f'<td data-col="{esc(column)}" data-value="{esc(repr(value))}">{esc(shown)}</td>'
    return f'<td class="text" data-col="{esc(column)}">{esc(value)}</td>'


def table(frame: pd.DataFrame, columns: list[str], table_id: str) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    rows = []
    for record in frame[columns].to_dict("records") if len(frame) else []:
        key = esc(record.get("trial_id", ""))
        rows.append(f'<tr data-trial="{key}">' + "".join(cell(record[c], c) for c in columns) + "</tr>")
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>"


def trial_columns(trials: pd.DataFrame, objectives: Objectives) -> list[str]:
    """trial id and status, the objectives, the other metrics, the configuration, then bookkeeping."""
    present = list(trials.columns)
    objective_cols = [metric_column(m) for m in objectives.metrics if metric_column(m) in present]
    front = [c for c in _LEAD if c in present] + objective_cols
    tail = [c for c in _TAIL if c in present]
    config = [c for c in present if c.startswith("config.")]
    others = [c for c in present if c not in front and c not in tail and c not in config and c not in _HIDDEN]
    return front + others + config + tail


def scatter_points(trials: pd.DataFrame, summary: Summary, objectives: Objectives) -> tuple[list[Point], str, str]:
    """One point per finished trial with objective values: (first objective, last objective), or
    (finish order, objective) for a single objective."""
    names = objectives.metrics
    x_col, y_col = metric_column(names[0]), metric_column(names[-1])
    if not len(trials) or y_col not in trials.columns or x_col not in trials.columns:
        return [], names[0], names[-1]
    done = trials[trials["status"].isin(FINISHED_STATUSES)]
    if "ended_at" in done.columns:
        done = done.sort_values("ended_at", kind="stable")
    front_ids = set(summary.front["trial_id"]) if len(summary.front) else set()
    points = []
    for order, r in enumerate(done.to_dict("records"), start=1):
        x = float(order) if len(names) == 1 else r.get(x_col)
        y = r.get(y_col)
        if not (_finite(x) and _finite(y)):
            continue
        tid = str(r["trial_id"])
        label = f"{tid} ({r['status']}): {names[0]}={float(r[x_col]):.6g}" + (
            f", {names[-1]}={float(y):.6g}" if len(names) > 1 else "")
        points.append(Point(float(x), float(y), label, "front" if tid in front_ids else "trial", tid))
    x_label = "finished trials" if len(names) == 1 else f"{names[0]} ({objectives.items[0].mode})"
    return points, x_label, f"{names[-1]} ({objectives.items[-1].mode})"


def calibration_section(calibration: Calibration | None) -> str:
    """Proxy value against standalone value per calibrated trial (`lmnas calibrate`), with the rank statistics."""
    if calibration is None or calibration.rows.empty or not calibration.stats:
        return ""
    metric, stats = next(iter(calibration.stats.items()))
    rows = calibration.rows
    points = [Point(float(r[f"proxy_{metric}"]), float(r[f"standalone_{metric}"]),
                    f"{r['trial_id']}: proxy {float(r[f'proxy_{metric}']):.4g}, standalone "
                    f"{float(r[f'standalone_{metric}']):.4g}", "trial", str(r["trial_id"]))
              for _, r in rows.iterrows()]
    chart = scatter(points, [], f"{metric} (proxy)", f"{metric} (trained standalone)", "Proxy calibration",
                    "calibration")
    return (f"<h2>Proxy calibration</h2>\n<p>{esc(calibration.headline)}.</p>\n<div class=\"charts\">\n{chart}\n</div>\n"
            + table(rows, list(rows.columns), "calibration-table"))


def render_page(
    title: str, objectives: Objectives, trials: pd.DataFrame, summary: Summary, live: bool = False,
    refresh_s: int = 5, now: dt.datetime | None = None, calibration: Calibration | None = None,
) -> str:
    """The whole page as text. `live` adds a self-refresh and says the study is still running."""
    now = now or dt.datetime.now(dt.timezone.utc)
    points, x_label, y_label = scatter_points(trials, summary, objectives)
    front_pts = [(p.x, p.y) for p in points if p.css == "front"] if len(objectives) > 1 else []
    pareto = scatter(points, front_pts, x_label, y_label, "Pareto front", "pareto")
    trace = line_chart(summary.hypervolume_trace, "finished trials", "hypervolume", "Hypervolume", "hypervolume-trace")
    c = summary.counts
    counts = " ".join(f'<span id="count-{esc(k)}" data-value="{int(v)}">{int(v)} {esc(k)}</span>,'
                      for k, v in c.items()).rstrip(",")
    hv = summary.hypervolume
    hv_html = (f'<span id="hypervolume" data-value="{esc(repr(hv))}">{esc(summary.hypervolume_text())}</span>'
               if hv is not None else '<span id="hypervolume">n/a</span>')
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if live else ""
    state = (f'<p {LIVE_STATE}>running: this page reloads every {int(refresh_s)} s</p>' if live
             else '<p class="final" id="state">final</p>')
    front_cols = [col for col in summary.front.columns]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{esc(title)} - lmnas</title><style>{STYLE}</style></head><body>
<h1>{esc(title)}</h1>
{state}
<p>Trials: {counts}. Front: <span id="front-size" data-value="{len(summary.front)}">{len(summary.front)}</span>.
Hypervolume: {hv_html}. Updated {esc(now.strftime("%Y-%m-%d %H:%M:%S %Z"))}.</p>
<div class="charts">
{pareto}
{trace}
</div>
<h2>Pareto front</h2>
{table(summary.front, front_cols, "front")}
<h2>All trials</h2>
{table(trials, trial_columns(trials, objectives), "trials")}
{calibration_section(calibration)}
</body></html>
"""


def page_is_live(directory: Path) -> bool:
    """Whether the study's page says a driver is running it (it writes the page live from its start
    and final at its end; a driver that was killed leaves it live until the study is resumed)."""
    path = Path(directory) / REPORT_HTML
    try:
        return LIVE_STATE in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def write_page(
    directory: Path, title: str, objectives: Objectives, trials: pd.DataFrame, summary: Summary, live: bool,
    calibration: Calibration | None = None,
) -> Path:
    """Write the page atomically as <directory>/report.html (readers never see half a page)."""
    path = Path(directory) / REPORT_HTML
    atomic_write_text(path, render_page(title, objectives, trials, summary, live=live, calibration=calibration))
    return path
