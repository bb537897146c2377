"""The study page: drawn from the results, numbers exact, every string escaped, written atomically."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.report import write_report
from orchestrator.results import summarise
from orchestrator.study_page import REPORT_HTML, render_page
from orchestrator.svg import nice_ticks
from tests.unit.study_results import FINISHED, HOSTILE_CONFIG, HOSTILE_ERROR, HOSTILE_ID, OBJS, parse, study_directory


def page_of(tmp_path: Path, live: bool = True) -> tuple[str, pd.DataFrame]:
    study, store = study_directory(tmp_path)
    trials = store.trials_frame()
    return render_page(study.name, OBJS, trials, summarise(trials, OBJS), live=live), trials


def test_one_circle_per_finished_trial_front_marked(tmp_path: Path) -> None:
    page, trials = page_of(tmp_path)
    circles = [a for t, a in parse(page).tags if t == "circle"]
    assert len(circles) == len(FINISHED)
    front = summarise(trials, OBJS).front
    assert {a["data-trial"] for a in circles if a["class"] == "front"} == set(front["trial_id"]) == {"t0", "t1", "t4"}
    trace = [a for t, a in parse(page).tags if t == "polyline"]
    assert len(trace) == 1 and trace[0]["data-count"] == str(len(FINISHED))
    assert len(trace[0]["points"].split()) == len(FINISHED)
    assert any(t == "path" and a.get("class") == "staircase" for t, a in parse(page).tags)


def test_numbers_in_the_page_equal_the_results(tmp_path: Path) -> None:
    page, trials = page_of(tmp_path)
    tags = parse(page).tags
    summary = summarise(trials, OBJS)
    hv = next(a for t, a in tags if a.get("id") == "hypervolume")
    assert float(hv["data-value"]) == summary.hypervolume
    assert next(a for t, a in tags if a.get("id") == "count-completed")["data-value"] == "4"
    assert next(a for t, a in tags if a.get("id") == "count-running")["data-value"] == "1"
    cells = [float(a["data-value"]) for t, a in tags if t == "td" and a.get("data-col") == "acc"]
    # the front table comes first, then one row per trial in the results' order
    n = len(summary.front)
    assert cells[:n] == list(summary.front["acc"])
    assert cells[n:] == [v for v in trials["acc"] if not math.isnan(v)]
    params = [float(a["data-value"]) for t, a in tags if t == "td" and a.get("data-col") == "params"]
    assert params[n:] == [v for v in trials["params"] if not math.isnan(v)]


def test_every_string_from_results_is_escaped(tmp_path: Path) -> None:
    page, _ = page_of(tmp_path)
    # no element, attribute or script the results tried to inject
    tags = parse(page).tags
    assert not any(t in ("script", "img", "b", "i") for t, _ in tags)
    assert not any(k.startswith("on") for _, a in tags for k in a)
    assert "<script>" not in page and "<img" not in page
    text = "".join(parse(page).text)
    assert HOSTILE_ERROR in text and HOSTILE_CONFIG in text and HOSTILE_ID in text and "CPU <i>x</i>" in text
    # the hostile id stays intact as an attribute value too
    assert any(a.get("data-trial") == HOSTILE_ID for t, a in tags if t == "tr")


def test_live_page_refreshes_final_page_does_not(tmp_path: Path) -> None:
    live, _ = page_of(tmp_path, live=True)
    final = render_page("x", OBJS, pd.DataFrame(columns=["trial_id", "status"]),
                        summarise(pd.DataFrame(columns=["trial_id", "status"]), OBJS), live=False)
    assert re.search(r'<meta http-equiv="refresh" content="5">', live)
    assert "http-equiv=\"refresh\"" not in final and 'id="state">final' in final
    assert "<circle" not in final and 'id="hypervolume">n/a' in final
    for page in (live, final):  # self-contained: nothing is fetched, no script may run
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
        assert "default-src 'none'" in page


def test_lmnas_report_writes_the_same_page_offline_and_png(tmp_path: Path) -> None:
    study, store = study_directory(tmp_path)
    png, html_path = write_report(study.directory)
    assert html_path == study.directory / REPORT_HTML and png.read_bytes()[:4] == b"\x89PNG"
    page = html_path.read_text()
    assert page.count("<circle") == len(FINISHED) and 'id="state">final' in page


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-3.2, 17.9), (0.0012, 0.0013), (5.0, 5.0), (1e6, 3e7)])
def test_ticks_are_round_and_cover_the_range(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks == sorted(ticks) and 1 <= len(ticks) <= 11
    assert all(low - 1e-12 <= t <= high + 1e-12 * max(1, abs(high)) for t in ticks)
    if high > low:
        steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) <= 1 or max(steps) - min(steps) < 1e-9 * max(steps)
