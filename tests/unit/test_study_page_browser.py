"""The study page in a real browser (headless Chromium from Debian's `chromium` package): it draws
one point per finished trial, shows the numbers of the results files, and runs nothing injected."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from orchestrator.report import write_report
from orchestrator.results import FINISHED_STATUSES, SUMMARY_FILE, TRIALS_FILE
from tests.unit.study_results import parse, study_directory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

#: no network, no background services, a throw-away profile: the browser touches nothing else.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A study directory with its page, the DOM Chromium built from it, and a screenshot."""
    root = tmp_path_factory.mktemp("page")
    study, _ = study_directory(root, running=False)
    _, page = write_report(study.directory)
    dom = chromium(root / "profile", "--dump-dom", page.as_uri()).stdout
    shot = root / "shot.png"
    chromium(root / "profile", f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    return study.directory, dom, shot


def test_browser_draws_one_circle_per_finished_trial(rendered: tuple[Path, str, Path]) -> None:
    directory, dom, _ = rendered
    trials = pd.read_parquet(directory / TRIALS_FILE)
    finished = trials[trials["status"].isin(FINISHED_STATUSES)]
    circles = [a for t, a in parse(dom).tags if t == "circle"]
    assert len(circles) == len(finished) > 0
    assert {a["data-trial"] for a in circles} == set(finished["trial_id"])


def test_numbers_in_the_browser_match_the_results_files(rendered: tuple[Path, str, Path]) -> None:
    directory, dom, _ = rendered
    tags = parse(dom).tags
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    assert float(next(a for _, a in tags if a.get("id") == "hypervolume")["data-value"]) == summary["hypervolume"]
    assert int(next(a for _, a in tags if a.get("id") == "front-size")["data-value"]) == summary["front_size"]
    trials = pd.read_parquet(directory / TRIALS_FILE)
    rows = [a["data-trial"] for t, a in tags if t == "tr" and "data-trial" in a]
    assert rows[-len(trials):] == list(trials["trial_id"])  # the trial table, after the front table
    params = [float(a["data-value"]) for t, a in tags if t == "td" and a.get("data-col") == "params"]
    assert params[-trials["params"].notna().sum():] == list(trials["params"].dropna())


def test_nothing_injected_runs(rendered: tuple[Path, str, Path]) -> None:
    _, dom, _ = rendered
    tags = parse(dom).tags
    assert "pwned" not in next(t for t in parse(dom).text if t.endswith(" - lmnas"))
    assert not any(t in ("script", "img") for t, _ in tags)
    assert not any(k.startswith("on") for _, a in tags for k in a)


def test_screenshot_shows_the_plots(rendered: tuple[Path, str, Path]) -> None:
    _, _, shot = rendered
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # not blank: text, axes and points in many anti-aliased shades
    counts = {rgb: n for n, rgb in colours}
    assert counts.get((0xD1, 0x49, 0x5B), 0) > 100  # the front's points and step line
    assert counts.get((0x2E, 0x86, 0xAB), 0) > 50  # the hypervolume trace
