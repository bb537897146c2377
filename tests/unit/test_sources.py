"""A study naming a local model or data source that cannot work fails at `lmnas validate`, in one line."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.cli import main

STUDY = {
    "name": "sources", "search_space": {"name": "small"},
    "trainer": {"kind": "weight_sharing", "options": {}},
    "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "params"}],
}


def validate(tmp_path: Path, options: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`lmnas validate` in this process (an interpreter per case costs seconds): exit code and stderr."""
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "trainer": {"kind": "weight_sharing", "options": options}}))
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def cases(tmp_path: Path) -> list[tuple[dict, str]]:
    pd.DataFrame({"text": ["a", "b"], "score": [1, 0]}).to_csv(tmp_path / "no_label.csv", index=False)
    pd.DataFrame({"sentence": ["a"], "label": [1]}).to_parquet(tmp_path / "no_text.parquet")
    (tmp_path / "empty_model").mkdir()
    (tmp_path / "folder").mkdir()
    pd.DataFrame({"text": ["a"], "label": [1]}).to_json(tmp_path / "folder" / "train.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": ["a"]}).to_csv(tmp_path / "folder" / "validation.csv", index=False)
    return [
        ({"task": str(tmp_path / "no_label.csv")}, "option 'task': '%s' has no 'label' column (it has text, score)"
         % (tmp_path / "no_label.csv")),
        ({"task": str(tmp_path / "no_text.parquet")}, "has no 'text' column (it has sentence, label)"),
        ({"task": str(tmp_path / "missing.csv")}, "option 'task': no file or folder at"),
        ({"task": str(tmp_path / "folder")}, "validation.csv' has no 'label' column"),
        ({"model": str(tmp_path / "empty_model")}, "option 'model': '%s' is neither a model asset" % (tmp_path / "empty_model")),
        ({"model": "./no-such-model"}, "option 'model': './no-such-model' is neither a model asset"),
    ]


def test_bad_local_sources_fail_validation_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for options, expected in cases(tmp_path):
        code, err = validate(tmp_path, options, capsys)
        assert code == 2, (options, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "trainer.options: " in lines[0] and expected in lines[0], (options, lines)


def test_good_local_sources_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"text": ["a", "b"], "label": [1, 0]}).to_csv(tmp_path / "good.csv", index=False)
    code, err = validate(tmp_path, {"task": str(tmp_path / "good.csv")}, capsys)
    assert code == 0, err
