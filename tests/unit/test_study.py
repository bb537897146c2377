"""Study files: valid ones load, malformed ones give one-line StudyErrors, never a traceback."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import StudyError
from orchestrator.study import load_study, parse_study

ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "name": "t",
    "search_space": {"name": "synthetic", "options": {"num_dims": 4}},
    "trainer": {"kind": "synthetic", "options": {"steps": 2}},
    "objectives": [{"metric": "f1", "mode": "min", "ref": 1.1}, {"metric": "f2"}],
    "constraints": ["f1 <= 0.9"],
    "searcher": {"name": "random"},
    "scheduler": "fifo",
    "budget": {"num_trials": 5, "max_concurrent": 2, "time_budget_s": 60},
    "resources": {"cpu": 0.5, "gpu": 0},
    "seed": 3,
}


def with_change(path: str, value: object) -> dict:
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


def test_valid_study_round_trips_through_its_resolved_form() -> None:
    study = parse_study(VALID)
    assert study.budget.max_concurrent == 2 and study.resources.cpu == 0.5
    assert study.objectives.metrics == ("f1", "f2")
    assert str(study.constraints[0]) == "f1 <= 0.9"
    assert parse_study(study.to_dict()) == study
    assert parse_study(yaml.safe_load(yaml.safe_dump(study.to_dict()))) == study


@pytest.mark.parametrize(
    ("path", "value", "field", "hint"),
    [
        ("colour", "red", "colour", "unknown key"),
        ("name", "", "name", "letters"),
        ("name", 5, "name", "string"),
        ("budget.num_trials", 0, "budget.num_trials", "1..1000000"),
        ("budget.num_trials", "ten", "budget.num_trials", "integer"),
        ("budget.num_trials", True, "budget.num_trials", "integer"),
        ("budget.time_budget_s", -1, "budget.time_budget_s", "> 0"),
        ("budget.parallel", 2, "budget.parallel", "unknown key"),
        ("budget.reuse_actors", "yes", "budget.reuse_actors", "true, false or null"),
        ("resources.gpu", 1.5, "resources.gpu", "fractions"),
        ("resources.cpu", -1, "resources.cpu", ">= 0"),
        ("objectives", [], "objectives", "non-empty"),
        ("objectives.0.mode", "up", "objectives[0].mode", "'min' or 'max'"),
        ("objectives.1.metric", "f1", "objectives", "once"),
        ("constraints", ["f1 < 3"], "constraints[0]", "METRIC <= NUMBER"),
        ("searcher", {"name": "sorcerer"}, "searcher.name", "random"),
        ("scheduler", {"name": "lifo"}, "scheduler.name", "fifo"),
        ("search_space.name", "huge", "search_space.name", "synthetic"),
        ("search_space.options", {"num_dims": 1}, "search_space.options", "2..64"),
        ("search_space.options", {"dims": 3}, "search_space.options.dims", "num_dims"),
        ("trainer.kind", "gym", "trainer.kind", "synthetic"),
        ("trainer.options", {"steps": "x"}, "trainer.options", "int"),
        ("trainer.options", {"problem": "zdt9"}, "trainer.options", "zdt1"),
        ("trainer.options", {"stepz": 1}, "trainer.options", "steps"),
        ("searcher", {"name": "random", "options": {"temperature": 1}}, "searcher.options.temperature", "unknown"),
        ("trainer", DELETE, "trainer", "required"),
    ],
)
def test_malformed_study_names_the_field(path: str, value: object, field: str, hint: str) -> None:
    with pytest.raises(StudyError) as info:
        parse_study(with_change(path, value))
    message = str(info.value)
    assert message.startswith(field + ":"), message
    assert hint in message
    assert "\n" not in message


def test_load_study_reports_yaml_syntax_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbudget: {num_trials: 3\n")
    with pytest.raises(StudyError, match="not valid YAML at line"):
        load_study(path)
    with pytest.raises(StudyError, match="no study file"):
        load_study(tmp_path / "missing.yaml")


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(StudyError):
        load_study(path)


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_validate(path: Path) -> None:
    load_study(path)


# ---- fuzz: no malformed study produces anything but a StudyError ------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=12)
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8
)
paths = st.sampled_from(
    ["name", "storage", "seed", "search_space", "search_space.name", "search_space.options", "trainer", "trainer.kind",
     "trainer.options", "objectives", "objectives.0", "objectives.0.metric", "objectives.0.ref", "constraints",
     "searcher", "scheduler", "budget", "budget.num_trials", "budget.max_concurrent", "resources", "resources.gpu",
     "extra"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(paths, values), min_size=1, max_size=3))
def test_fuzzed_studies_fail_with_study_errors_only(changes: list[tuple[str, object]]) -> None:
    data = copy.deepcopy(VALID)
    for path, value in changes:
        try:
            data = with_change(path, value) if _reachable(data, path) else data
        except (KeyError, IndexError, TypeError):
            continue
    try:
        parse_study(data)
    except StudyError as e:
        assert str(e) and "\n" not in str(e)


@settings(max_examples=150, deadline=None)
@given(data=values)
def test_arbitrary_documents_fail_with_study_errors_only(data: object) -> None:
    with pytest.raises(StudyError):
        parse_study(data)


def _reachable(data: dict, path: str) -> bool:
    node: object = data
    for p in path.split(".")[:-1]:
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        elif isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return False
    return isinstance(node, (dict, list))


def test_a_key_with_a_line_break_is_quoted_in_a_one_line_error(tmp_path: Path) -> None:
    # found by the fuzzer above: {'\n': None} under search_space made a two-line message
    from orchestrator.study import parse_study

    data = {"name": "s", "storage": str(tmp_path), "search_space": {"name": "synthetic", "\n": None},
            "trainer": {"kind": "synthetic"}, "objectives": [{"metric": "f1"}], "budget": {"num_trials": 1}}
    with pytest.raises(StudyError, match=r"^search_space\.'\\n': unknown key") as e:
        parse_study(data, check_plugins=False)
    assert "\n" not in str(e.value)
