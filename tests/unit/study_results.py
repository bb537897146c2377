"""A small study's results for page, metrics and progress tests, with hostile strings in them."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import yaml

from orchestrator.objectives import Objective, Objectives
from orchestrator.results import COMPLETED, FAILED, STOPPED, STUDY_FILE, ResultsStore
from orchestrator.study import Study, parse_study

OBJS = Objectives((Objective("acc", "max", ref=0.0), Objective("params", "min", ref=100.0)))
#: strings that would run script or break out of an attribute if they were not escaped.
HOSTILE_ERROR = "ValueError: <script>document.title='pwned'</script> & \"quoted\""
HOSTILE_CONFIG = "\"><img src=x onerror=\"document.title='pwned'\">"
HOSTILE_ID = "t<b>9</b>"
#: (acc, params, status) per finished trial; t2 is dominated by t1 and t3 by t0: the front is t0, t1, t4.
FINISHED = [(0.9, 50.0, COMPLETED), (0.8, 20.0, COMPLETED), (0.7, 30.0, STOPPED), (0.85, 60.0, COMPLETED),
            (0.95, 90.0, COMPLETED)]


def study(storage: Path, name: str = "page-study") -> Study:
    return parse_study({
        "name": name, "storage": str(storage),
        "search_space": {"name": "synthetic", "options": {"num_dims": 2}},
        "trainer": {"kind": "synthetic"},
        "objectives": [{"metric": "acc", "mode": "max", "ref": 0.0}, {"metric": "params", "mode": "min", "ref": 100.0}],
        "budget": {"num_trials": 8},
    }, check_plugins=False)


def fill(store: ResultsStore, running: bool = True) -> None:
    """Five finished trials, one failed with a hostile error, one hostile id, one still running."""
    for i, (acc, params, status) in enumerate(FINISHED):
        tid = f"t{i}"
        store.trial_started(tid, {"layers": i + 1, "kind": HOSTILE_CONFIG if i == 1 else "bert"}, host="node-1")
        store.trial_reported(tid, {"acc": acc, "params": params, "hardware": "CPU <i>x</i>"})
        store.trial_finished(tid, status)
    store.trial_started("bad", {"layers": 9, "kind": "bert"})
    store.trial_finished("bad", FAILED, error=HOSTILE_ERROR)
    store.trial_started(HOSTILE_ID, {"layers": 3, "kind": "bert"})
    if not running:
        store.trial_finished(HOSTILE_ID, FAILED, error="RuntimeError: lost")


def study_directory(root: Path, running: bool = True) -> tuple[Study, ResultsStore]:
    """A study directory as the runner leaves it: study.yaml plus the results files."""
    s = study(root)
    s.directory.mkdir(parents=True)
    (s.directory / STUDY_FILE).write_text(yaml.safe_dump(s.to_dict(), sort_keys=False))
    store = ResultsStore(s.directory, s.objectives, flush_interval_s=0)
    fill(store, running=running)
    return s, store


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text (the DOM as a browser builds it)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    p = Elements()
    p.feed(page)
    return p
