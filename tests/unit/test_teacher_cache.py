"""The teacher-output table: content-addressed lookups, file round trip, and Flash Distillation from it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_spaces.autodistill import StudentArch
from tests.unit.test_autodistill_flash import blocks
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.student import Student
from trainers.distill import teacher_cache
from trainers.distill.flash import FlashConfig, flash_distill
from trainers.distill.teacher import Teacher
from trainers.distill.teacher_cache import TeacherTargets, cache_key


def setup_module() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return Teacher.load(make_tiny_teacher(tmp_path_factory.mktemp("teacher")))


def forget_loaded() -> None:
    """As a fresh worker process would start: nothing read yet."""
    teacher_cache._LOADED.clear()


def test_lookups_are_by_content_and_survive_the_file(teacher: Teacher, tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    ids = blocks(teacher)[:3]
    live_hidden, live_attention = TeacherTargets(teacher).layer(ids, 2)
    first = TeacherTargets(teacher, path)
    first.layer(ids, 2)
    first.layer(ids, 1, attention=False)
    assert (first.hits, first.misses) == (0, 2)
    assert first.save() == path and path.is_file()
    assert first.save() is None  # nothing new: no rewrite

    forget_loaded()
    second = TeacherTargets(teacher, path)
    hidden, attention = second.layer(ids, 2)
    second.layer(ids, 1, attention=False)
    assert (second.hits, second.misses) == (2, 0)
    assert hidden.dtype == torch.float32 and attention is not None
    # float16 storage: equal to the live teacher up to its rounding
    assert torch.allclose(hidden, live_hidden, rtol=2e-3, atol=2e-3)
    assert torch.allclose(attention, live_attention, atol=1e-3)
    # other inputs, or the same inputs at another layer, are never served from the table
    second.layer(blocks(teacher)[1:4], 2)
    second.layer(ids, 2 - 1)  # layer 1 is stored without its attention map
    assert second.misses == 2


def test_a_damaged_file_is_rebuilt_not_trusted(teacher: Teacher, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not a safetensors file")
    forget_loaded()
    targets = TeacherTargets(teacher, path)
    targets.layer(blocks(teacher)[:2], 1)
    assert targets.misses == 1
    targets.save()
    forget_loaded()
    again = TeacherTargets(teacher, path)
    again.layer(blocks(teacher)[:2], 1)
    assert again.hits == 1


def test_cache_key_changes_with_the_plan() -> None:
    base = {"teacher": "minilm-l6", "seed": 0, "steps_per_block": 20}
    assert cache_key(base) == cache_key(dict(reversed(base.items())))
    assert cache_key(base) != cache_key({**base, "seed": 1})
    assert cache_key(base) != cache_key({**base, "steps_per_block": 21})


def distil(teacher: Teacher, targets: TeacherTargets | None) -> dict[str, float]:
    torch.manual_seed(0)
    arch = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=2, intermediate_size=24, num_ffn=1,
                       num_blocks=2, vocab_size=teacher.vocab_size, max_positions=32)
    student = Student(arch)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    data = blocks(teacher)
    config = FlashConfig(steps_per_block=3, pretrain_steps=3, warmup_steps=1, batch_size=4)
    return flash_distill(student, teacher, data, data[:3], config, lambda m: None, seed=0, targets=targets).metrics


def test_flash_distillation_from_the_table_needs_no_teacher_and_matches_live(teacher: Teacher, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.safetensors"
    live = distil(teacher, None)
    recording = TeacherTargets(teacher, path)
    recorded = distil(teacher, recording)
    recording.save()
    assert recording.misses > 0

    forget_loaded()
    replay = TeacherTargets(teacher, path)

    def no_teacher(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher ran although its outputs are in the table")

    monkeypatch.setattr(Teacher, "__call__", no_teacher)
    replayed = distil(teacher, replay)
    assert replay.misses == 0 and replay.hits == recording.hits + recording.misses
    assert replayed == recorded
    for key in ("agreement", "mlm_accuracy", "loss"):
        assert replayed[key] == pytest.approx(live[key], abs=2e-2), key
