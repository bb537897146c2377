"""`lmnas status` and `lmnas report` only read a study: on the driver's machine, with the driver's
LMNAS_HOME, in the middle of a run, they write nothing a driver writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from cluster.storage import mirror_dir, study_location, upload_files
from orchestrator.cli import main
from orchestrator.results import load_trials, summarise
from orchestrator.study_page import REPORT_HTML, page_is_live, write_page
from tests.unit.study_results import study_directory


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def live_study(root: Path) -> Path:
    """A study directory as a running driver leaves it: results and a live page."""
    s, store = study_directory(root)
    trials = load_trials(s.directory)
    write_page(s.directory, s.name, s.objectives, trials, summarise(trials, s.objectives), live=True)
    return s.directory


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_report_of_a_running_study_is_a_snapshot_outside_it(tmp_path: Path, home: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    directory = live_study(tmp_path / "runs")
    before = snapshot(directory)
    assert page_is_live(directory)

    assert main(["report", str(directory)]) == 0
    assert snapshot(directory) == before  # the live page stays live, nothing added
    out = capsys.readouterr().out
    assert "a snapshot: the study is running" in out
    written = [Path(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("wrote ")]
    assert len(written) == 2 and all(p.is_file() and p.is_relative_to(home / "reports") for p in written)
    assert 'id="state">final' in written[1].read_text()

    # Once the driver has written its final page, the report goes into the study.
    write_page(directory, "page-study", *_final_args(directory))
    assert main(["report", str(directory)]) == 0
    assert (directory / "report.png").is_file() and not page_is_live(directory)


def _final_args(directory: Path) -> tuple:
    from orchestrator.study import load_saved_study

    s = load_saved_study(directory)
    trials = load_trials(directory)
    return s.objectives, trials, summarise(trials, s.objectives), False


def test_readers_of_a_uri_leave_the_drivers_mirror_alone(tmp_path: Path, home: Path) -> None:
    uri = (tmp_path / "bucket").as_uri()
    driver = study_location(uri, "page-study")
    assert driver.local == mirror_dir(f"{uri}/page-study")
    # The driver's mirror holds newer results than it has pushed so far.
    directory = live_study(tmp_path / "pushed")
    upload_files(sorted(p for p in directory.iterdir() if p.is_file()), driver.uri)
    live_study(driver.local.parent)
    (driver.local / "trials.parquet").write_bytes(b"newer, not pushed yet")
    before = snapshot(driver.local)

    assert main(["status", driver.uri]) == 0
    assert main(["report", driver.uri]) == 0
    assert snapshot(driver.local) == before
    remote = tmp_path / "bucket" / "page-study"
    assert page_is_live(remote) and not (remote / "report.png").exists()  # the URI's live page untouched
    assert (home / "readers").is_dir() and list((home / "readers").glob(f"*/page-study/{REPORT_HTML}"))
