"""Regular distillation of selected students: longer distillation, fine-tuning, standalone exports,
the study stage's selection and its results table."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from orchestrator.errors import ResultsError
from orchestrator.hooks import finish_stage, stage_context
from orchestrator.results import COMPLETED, STUDY_FILE, ResultsStore
from orchestrator.study import parse_study
from trainers.autodistill.hooks import REGULAR_FILE
from orchestrator.registry import trainers
from search_spaces.synthetic import SyntheticSpace
from trainers.contract import FinishedTrial, Prepared, StageContext, TrainerError, run_in_process
from search_spaces.autodistill import AutoDistillSpace, StudentArch
from tests.unit.test_autodistill_flash import write_text_data
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.autodistill.export import export_student
from trainers.autodistill.regular import RegularOptions, regular_config, regular_distill
from trainers.autodistill.student import Student, StudentClassifier
from trainers.autodistill.trainer import FlashDistillOptions
from trainers.distill.flash import FlashConfig
from trainers.distill.teacher import Teacher


def setup_module() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher"))


def tiny_options(teacher_dir: Path, root: Path, **extra: object) -> dict[str, object]:
    return dict(
        teacher=str(teacher_dir), corpus=str(write_text_data(root / "lm", labelled=False)),
        task=None, seq_len=12, corpus_blocks=20, eval_blocks=4, steps_per_block=1, pretrain_steps=1, warmup_steps=0,
        batch_size=4, task_max_length=12, finetune_batch_size=4, latency_seq_len=12, latency_repeats=1,
        device="cpu", teacher_cache=False, regular_students=2, regular_step_factor=3.0,
        regular_tasks=[str(write_text_data(root / "task", labelled=True))], regular_finetune_steps=2,
        regular_train_examples=16, **extra,
    )


def tiny_space(teacher_dir: Path) -> AutoDistillSpace:
    return AutoDistillSpace(hidden_size=[16, 24], bottleneck_size=[16], num_heads=[2], intermediate_size=[24],
                            num_ffn=[1], num_blocks=2, vocab_size=Teacher.load(teacher_dir).vocab_size,
                            max_positions=64)


def test_regular_config_scales_the_steps() -> None:
    flash = FlashConfig(steps_per_block=20, pretrain_steps=60, warmup_steps=6, report_every=10)
    longer = regular_config(flash, 10.0)
    assert (longer.steps_per_block, longer.pretrain_steps, longer.warmup_steps, longer.report_every) == (200, 600, 60, 0)
    assert longer.lr == flash.lr and longer.batch_size == flash.batch_size
    assert regular_config(FlashConfig(pretrain_steps=0), 5.0).pretrain_steps == 0


def test_regular_options_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="'regular_step_factor' must be >= 1"):
        FlashDistillOptions(regular_step_factor=0.5)
    with pytest.raises(ValueError, match="'regular_students' must be >= 0"):
        FlashDistillOptions(regular_students=-1)
    assert RegularOptions.of(FlashDistillOptions(regular_tasks=["sms-spam"])).tasks == ("sms-spam",)


def test_export_loads_without_the_project(tmp_path: Path) -> None:
    torch.manual_seed(0)
    arch = StudentArch(hidden_size=16, bottleneck_size=8, num_heads=2, intermediate_size=12, num_ffn=2, num_blocks=2,
                       vocab_size=50, max_positions=16)
    model = StudentClassifier(Student(arch), num_labels=3).eval()
    out = export_student(model, tmp_path / "export", label_names=["a", "b", "c"])
    ids = torch.randint(50, (2, 7))
    expected = model(ids, torch.ones_like(ids))
    torch.save({"ids": ids, "logits": expected}, tmp_path / "check.pt")
    # The project's packages are made unimportable: the copied modeling file must need none of them.
    script = f"""
import sys
for name in ("trainers", "search_spaces", "orchestrator", "tests"):
    sys.modules[name] = None
sys.path.insert(0, {str(out)!r})
import torch, modeling_student
model = modeling_student.load({str(out)!r})
check = torch.load({str(tmp_path / 'check.pt')!r})
logits = model(check["ids"], torch.ones_like(check["ids"]))
assert torch.allclose(logits, check["logits"], atol=1e-6), (logits, check["logits"])
print(type(model).__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "StudentClassifier"


def test_regular_distill_writes_encoder_and_task_models(teacher_dir: Path, tmp_path: Path) -> None:
    opts = FlashDistillOptions(**tiny_options(teacher_dir, tmp_path))  # type: ignore[arg-type]
    arch = tiny_space(teacher_dir).architecture(tiny_space(teacher_dir).smallest())
    lines: list[str] = []
    rows = regular_distill(arch, opts, 0, tmp_path / "out", lines.append)
    assert len(rows) == 1 and 0.0 <= rows[0]["accuracy"] <= 1.0
    # 3x the flash steps: 2 blocks x 3 + 3 pre-training steps
    assert rows[0]["distill_steps"] == 9
    assert (tmp_path / "out" / "encoder" / "model.safetensors").is_file()
    task_dir = Path(rows[0]["export"])
    assert (task_dir / "modeling_student.py").is_file() and (task_dir / "tokenizer_config.json").is_file()
    assert any("test accuracy" in line for line in lines)


def test_calibrate_scores_the_trial_after_regular_distillation(teacher_dir: Path, tmp_path: Path) -> None:
    options = tiny_options(teacher_dir, tmp_path)
    space = tiny_space(teacher_dir)
    flash = {"mlm_accuracy": 0.01, "agreement": -0.5, "latency_ms": 1.0}
    trial = FinishedTrial("t7", space.smallest(), flash)
    lines: list[str] = []
    ctx = StageContext(study="tiny", seed=0, options=options, space=space, directory=tmp_path, log=lines.append,
                       run_task=run_in_process())
    got = trainers.load("flash_distill").calibrate(ctx, trial)
    # The same student, seed and 3x schedule as the study's regular distillation, under the trial's metric names.
    rows = regular_distill(space.architecture(space.smallest()), FlashDistillOptions(**options), 0,  # type: ignore[arg-type]
                           tmp_path / "out", print)
    assert got == {"mlm_accuracy": rows[0]["mlm_accuracy"], "agreement": rows[0]["agreement"]}  # no probe: no task
    assert rows[0]["distill_steps"] == 9 and any(line.startswith("t7 stage 3 step 9") for line in lines)
    with pytest.raises(TrainerError, match="needs the 'autodistill' search space"):
        trainers.load("flash_distill").calibrate(replace(ctx, space=SyntheticSpace()), trial)


def write_study(root: Path, teacher_dir: Path) -> tuple[Path, AutoDistillSpace]:
    space = tiny_space(teacher_dir)
    study = parse_study({
        "name": "tiny-ad", "storage": str(root / "runs"),
        "search_space": {"name": "autodistill", "options": space.options()},
        "trainer": {"kind": "flash_distill", "options": tiny_options(teacher_dir, root)},
        "objectives": [{"metric": "agreement", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}],
        "budget": {"num_trials": 3},
    })
    study.directory.mkdir(parents=True)
    (study.directory / STUDY_FILE).write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
    store = ResultsStore(study.directory, study.objectives, flush_interval_s=0)
    # t0 and t1 are on the front (better agreement vs lower latency); t2 is dominated by t0.
    for tid, hidden, agreement, latency in (("t0", 24, 0.6, 2.0), ("t1", 16, 0.4, 1.0), ("t2", 16, 0.5, 3.0)):
        config = {**space.smallest(), "hidden_size": hidden}
        store.trial_started(tid, config)
        store.trial_reported(tid, {"agreement": agreement, "latency_ms": latency, "params": 1000.0 + hidden})
        store.trial_finished(tid, COMPLETED)
    store.flush()
    return study.directory, space


def test_stage_distils_front_members_and_appends_a_table(teacher_dir: Path, tmp_path: Path) -> None:
    directory, space = write_study(tmp_path, teacher_dir)
    study = parse_study(yaml.safe_load((directory / STUDY_FILE).read_text()))
    store = ResultsStore(directory, study.objectives)
    ctx = stage_context(study, space, study.trainer.options, directory, print, store, runner=run_in_process)
    # The front in its well-spread order: the best agreement first; t2 is dominated.
    assert [t.trial_id for t in ctx.front] == ["t0", "t1"] and len(ctx.trials) == 3
    chosen = stage_context(study, space, {}, directory, print, store, ["t2"], run_in_process).chosen
    assert [t.trial_id for t in chosen] == ["t2"] and chosen[0].metrics["agreement"] == 0.5
    with pytest.raises(ResultsError, match="no trial 'nope'"):
        stage_context(study, space, {}, directory, print, store, ["nope"], run_in_process)

    # The tasks run in this process here; the integration tests cover Ray itself.
    prepared = Prepared(space, study.trainer.options)
    log = tmp_path / "log.txt"
    with log.open("w") as stream:
        path = finish_stage(study, prepared, directory, store, stream, runner=run_in_process)
    assert path == directory / REGULAR_FILE
    assert "regular distillation of t0" in log.read_text() and "t0 stage 1 step" in log.read_text()
    table = pd.read_parquet(path)
    assert sorted(table["trial_id"]) == ["t0", "t1"]
    assert {"config.hidden_size", "params", "latency_ms", "flash_agreement", "agreement", "accuracy", "task",
            "export"} <= set(table.columns)
    assert (directory / "distilled" / "t0" / "encoder" / "config.json").is_file()
    # Distilling a trial again replaces its rows; others stay.
    with log.open("a") as stream:
        finish_stage(study, prepared, directory, store, stream, chosen=["t1"], runner=run_in_process)
    assert sorted(pd.read_parquet(path)["trial_id"]) == ["t0", "t1"]


def test_onnx_export_matches_the_model(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    arch = StudentArch(hidden_size=16, bottleneck_size=8, num_heads=2, intermediate_size=12, num_ffn=1, num_blocks=1,
                       vocab_size=50, max_positions=16)
    model = StudentClassifier(Student(arch), num_labels=3).eval()
    out = export_student(model, tmp_path / "export", onnx=True)
    ids = torch.randint(50, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # a padded row, and another length than the export example
    session = ort.InferenceSession(str(out / "model.onnx"))
    logits = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert torch.allclose(torch.from_numpy(logits), model(ids, mask).detach(), atol=1e-5)
