"""The student template, its teacher-initialised embeddings and its heads."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_spaces.autodistill import StudentArch
from search_spaces.base import InvalidArchitectureError
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.autodistill.embedding_init import init_embeddings_from_teacher, resample_features
from trainers.autodistill.student import MaskedTokenHead, Student, StudentClassifier
from trainers.distill.teacher import Teacher

ARCH = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=4, intermediate_size=20, num_ffn=2,
                   num_blocks=3, vocab_size=40, max_positions=16)


def setup_module() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return Teacher.load(make_tiny_teacher(tmp_path_factory.mktemp("teacher")))


def test_forward_returns_per_block_states_and_attention_probabilities() -> None:
    torch.manual_seed(0)
    student = Student(ARCH)
    ids = torch.randint(0, 40, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    out = student(ids, mask)
    assert len(out.hidden_states) == len(out.attentions) == 3
    assert out.last_hidden_state.shape == (2, 7, 24)
    assert out.attentions[0].shape == (2, 4, 7, 7)
    assert torch.allclose(out.attentions[1].sum(-1), torch.ones(2, 4, 7))
    assert out.attentions[2][1, :, :, 4:].abs().max() == 0  # padded keys get no attention
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    partial = student(ids, mask, num_blocks=2)
    assert len(partial.hidden_states) == 2 and torch.allclose(partial.hidden_states[1], out.hidden_states[1])
    with pytest.raises(ValueError, match="num_blocks must be in 1..3"):
        student(ids, mask, num_blocks=4)


def test_padding_does_not_change_real_tokens() -> None:
    torch.manual_seed(0)
    student = Student(ARCH).eval()
    ids = torch.randint(5, 40, (1, 6))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    other = ids.clone()
    other[0, 4:] = 0
    a, b = student(ids, mask).last_hidden_state, student(other, mask).last_hidden_state
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    classifier = StudentClassifier(student, num_labels=3).eval()
    assert torch.allclose(classifier(ids, mask), classifier(other, mask), atol=1e-6)
    assert classifier(ids, mask).shape == (1, 3)


def test_masked_token_head_is_tied_to_the_word_embeddings() -> None:
    student = Student(ARCH)
    head = MaskedTokenHead(ARCH)
    logits = head(student(torch.randint(0, 40, (2, 5))).last_hidden_state, student.embeddings.word.weight)
    assert logits.shape == (2, 5, 40)
    logits.sum().backward()
    assert student.embeddings.word.weight.grad is not None
    assert sum(p.numel() for p in head.parameters()) == 24 * 24 + 24 + 2 * 24 + 40  # no own decoder matrix


def test_resample_down_averages_groups_and_up_interpolates() -> None:
    rows = torch.tensor([[0.0, 2.0, 4.0, 6.0], [1.0, 1.0, 3.0, 3.0]])
    assert torch.allclose(resample_features(rows, 2), torch.tensor([[1.0, 5.0], [1.0, 3.0]]))
    up = resample_features(torch.tensor([[0.0, 1.0]]), 3)
    assert torch.allclose(up, torch.tensor([[0.0, 0.5, 1.0]]))
    wide = resample_features(rows, 7)
    assert wide.shape == (2, 7)
    assert torch.equal(wide[:, 0], rows[:, 0]) and torch.equal(wide[:, -1], rows[:, -1])
    assert torch.allclose(wide[0], torch.linspace(0.0, 6.0, 7))  # a linear row stays linear
    assert torch.equal(resample_features(rows, 4), rows)


def test_same_width_student_copies_the_teacher_embeddings(teacher: Teacher) -> None:
    tables = teacher.embedding_tables()
    arch = StudentArch(hidden_size=teacher.hidden_size, bottleneck_size=16, num_heads=2, intermediate_size=16,
                       num_ffn=1, num_blocks=1, vocab_size=teacher.vocab_size, max_positions=32)
    student = Student(arch)
    init_embeddings_from_teacher(student, tables)
    emb = student.embeddings
    assert torch.equal(emb.word.weight, tables.word)
    assert torch.equal(emb.position.weight, tables.position[:32])
    assert torch.equal(emb.token_type.weight, tables.token_type)
    assert torch.equal(emb.norm.weight, tables.norm_weight)


@pytest.mark.parametrize("width", [16, 48])
def test_narrower_and_wider_students_get_resampled_embeddings(teacher: Teacher, width: int) -> None:
    tables = teacher.embedding_tables()
    arch = StudentArch(hidden_size=width, bottleneck_size=16, num_heads=2, intermediate_size=16, num_ffn=1,
                       num_blocks=1, vocab_size=teacher.vocab_size, max_positions=32)
    student = Student(arch)
    init_embeddings_from_teacher(student, tables)
    assert student.embeddings.word.weight.shape == (teacher.vocab_size, width)
    assert torch.allclose(student.embeddings.word.weight, resample_features(tables.word, width))
    if width < teacher.hidden_size:  # 32 -> 16: each feature is the mean of a pair
        assert torch.allclose(student.embeddings.word.weight[:, 0], tables.word[:, :2].mean(1))


def test_a_student_that_does_not_fit_the_teacher_is_refused(teacher: Teacher) -> None:
    with pytest.raises(InvalidArchitectureError, match="vocab_size=40 must equal the teacher's vocabulary"):
        init_embeddings_from_teacher(Student(ARCH), teacher.embedding_tables())
    arch = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=2, intermediate_size=16, num_ffn=1,
                       num_blocks=1, vocab_size=teacher.vocab_size, max_positions=128)
    with pytest.raises(InvalidArchitectureError, match="max_positions=128 exceeds"):
        init_embeddings_from_teacher(Student(arch), teacher.embedding_tables())


def test_truncated_teacher_runs_equal_the_full_run(teacher: Teacher, tmp_path: Path) -> None:
    ids = torch.randint(5, teacher.vocab_size, (2, 6))
    mask = torch.ones_like(ids)
    full = teacher(ids, mask)
    first = teacher(ids, mask, num_layers=1)
    again = teacher(ids, mask)
    assert len(full.hidden_states) == teacher.num_layers + 1 and len(full.attentions) == teacher.num_layers
    assert len(first.attentions) == 1 and torch.equal(first.attentions[0], full.attentions[0])
    assert torch.equal(first.hidden_states[1], full.hidden_states[1])
    assert len(again.attentions) == teacher.num_layers  # truncation leaves the model whole
