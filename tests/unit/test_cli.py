"""The command line's user errors: exit 2, one line, no traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lmnas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n", "search_space: is required"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\nsearch_space: synthetic\ntrainer: synthetic\nobjectives: [{metric: f1}]\nsearcher: bo\n",
         "searcher.name: unknown searcher 'bo'"),
        ("name: [unclosed\n", "not valid YAML"),
        # What the trainer reports (its METRICS, decided by its options) and what the space computes.
        ("name: x\nsearch_space: synthetic\ntrainer: synthetic\nobjectives: [{metric: f1}, {metric: accuracy}]\n",
         "objectives: metric 'accuracy' is not reported by trainer 'synthetic'; it reports f1, f2, step"),
        ("name: x\nsearch_space: synthetic\ntrainer: synthetic\nobjectives: [{metric: f1}, {metric: f3}]\n",
         "objectives: metric 'f3' is not reported by trainer 'synthetic'"),
        ("name: x\nsearch_space: synthetic\ntrainer: synthetic\nobjectives: [{metric: f1}]\nconstraints: ['params <= 10']\n",
         "constraints: params <= 10: metric 'params' is neither reported by trainer 'synthetic' nor computed by the "
         "'synthetic' space"),
        # A trainer option's allowed values (whether the workers can run it is the trial's to say).
        ("name: x\nsearch_space: small\ntrainer: {kind: weight_sharing, options: {precision: fp8}}\n"
         "objectives: [{metric: accuracy}]\n",
         "trainer.options: option 'precision' must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
    ],
)
def test_validate_and_run_reject_bad_studies_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    for command in ("validate", "run"):
        result = lmnas(command, str(path), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr


def test_validate_accepts_the_shipped_studies() -> None:
    paths = sorted(map(str, (ROOT / "studies").glob("*.yaml")))
    result = lmnas("validate", *paths, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert [line.split(": ok")[0] for line in result.stdout.splitlines()] == paths


def test_validate_checks_every_file_and_names_the_wrong_one(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    study = "name: {}\nsearch_space: {{name: synthetic}}\ntrainer: {{kind: {}}}\nobjectives: [{{metric: f1}}, {{metric: f2}}]\n"
    good.write_text(study.format("g", "synthetic"))
    bad.write_text(study.format("b", "no_such_trainer"))
    result = lmnas("validate", str(bad), str(good), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith(f"{good}: ok")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lmnas: error: {bad}: ") and "no_such_trainer" in lines[0]


def test_status_of_a_directory_without_results(tmp_path: Path) -> None:
    result = lmnas("status", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not a study directory" in result.stderr
