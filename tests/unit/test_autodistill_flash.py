"""Flash Distillation on a tiny random BERT teacher, and the flash_distill trainer end to end."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from orchestrator.registry import trainers
from search_spaces.autodistill import AutoDistillSpace, StudentArch
from search_spaces.base import InvalidArchitectureError
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher
from trainers.autodistill.embedding_init import init_embeddings_from_teacher, resample_features
from trainers.autodistill.student import Student
from trainers.distill.flash import FlashConfig, flash_distill
from trainers.distill.masking import IGNORE, mask_tokens
from trainers.distill.teacher import Teacher
from trainers.distill.losses import relative_feature_mse
from trainers.distill.transfer import fit_adapter, make_adapter, teacher_layer
from trainers.contract import TrialContext, collect_reports


def setup_module() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def teacher(teacher_dir: Path) -> Teacher:
    return Teacher.load(teacher_dir)


def blocks(teacher: Teacher, seq_len: int = 12) -> torch.Tensor:
    """(N, seq_len) [CLS] ... [SEP] blocks of the sentences' tokens."""
    tokens = [t for s in SENTENCES for t in teacher.tokenizer(s, add_special_tokens=False)["input_ids"]]
    body = seq_len - 2
    rows = [[teacher.tokenizer.cls_token_id] + tokens[i:i + body] + [teacher.tokenizer.sep_token_id]
            for i in range(0, len(tokens) - body + 1, body)]
    return torch.tensor(rows)


def test_teacher_layers_are_spread_evenly() -> None:
    assert [teacher_layer(k, 3, 2) for k in (1, 2, 3)] == [1, 2, 2]
    assert [teacher_layer(k, 2, 6) for k in (1, 2)] == [3, 6]
    assert [teacher_layer(k, 4, 4) for k in range(1, 5)] == [1, 2, 3, 4]


@pytest.mark.parametrize("student_width", [16, 48])
def test_adapters_start_as_the_feature_resize(student_width: int) -> None:
    adapter = make_adapter(student_width, 32)
    x = torch.randn(3, 5, student_width)
    assert torch.allclose(adapter(x), resample_features(x.view(-1, student_width), 32).view(3, 5, 32), atol=1e-6)
    assert isinstance(make_adapter(32, 32), torch.nn.Identity)


def test_fit_adapter_recovers_a_linear_map() -> None:
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 30, 8, generator=gen)
    weight, bias = torch.randn(12, 8, generator=gen), torch.randn(12, generator=gen)
    teacher = student @ weight.T + bias  # (2, 30, 12)
    adapter = make_adapter(8, 12)
    assert relative_feature_mse(teacher, adapter(student)).item() > 0.1
    fit_adapter(adapter, student, teacher, ridge=1e-9)
    assert relative_feature_mse(teacher, adapter(student)).item() < 1e-6


def test_mask_tokens_follows_bert(teacher: Teacher) -> None:
    ids = blocks(teacher).repeat(40, 1)  # a few thousand tokens
    corrupted, labels = mask_tokens(ids, teacher.tokenizer, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != IGNORE
    specials = torch.isin(ids, torch.tensor(teacher.tokenizer.all_special_ids))
    assert not (chosen & specials).any()
    assert chosen.any(dim=1).all()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    rate = chosen.sum() / (~specials).sum()
    assert 0.12 < rate < 0.18
    masked = (corrupted[chosen] == teacher.tokenizer.mask_token_id).float().mean()
    assert 0.72 < masked < 0.88
    # a rate so small that a row would pick nothing still predicts one token per row
    _, few = mask_tokens(ids[:5], teacher.tokenizer, 1e-6, torch.Generator().manual_seed(0))
    assert ((few != IGNORE).sum(dim=1) == 1).all()


def test_progressive_stages_freeze_earlier_blocks_and_report(teacher: Teacher) -> None:
    torch.manual_seed(0)
    arch = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=2, intermediate_size=24, num_ffn=2,
                       num_blocks=3, vocab_size=teacher.vocab_size, max_positions=32)
    student = Student(arch)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    snapshots: list[dict[str, torch.Tensor]] = []
    reports: list[dict[str, float]] = []

    def report(metrics: dict[str, float]) -> None:
        reports.append(dict(metrics))
        snapshots.append({k: v.clone() for k, v in student.state_dict().items()})

    data = blocks(teacher)
    config = FlashConfig(steps_per_block=3, pretrain_steps=4, warmup_steps=1, batch_size=4, report_every=2)
    result = flash_distill(student, teacher, data, data[:3], config, report, seed=0)

    assert [r["stage"] for r in reports] == [1, 2, 3, 4, 4]
    assert [r["step"] for r in reports] == [3, 6, 9, 11, 13]
    assert result.global_step == 13 and result.metrics == reports[-1]
    for r in reports:
        assert all(math.isfinite(v) for v in r.values()), r
        assert r["agreement"] <= 1.0
    assert {"attention_kl", "feature_loss"} <= set(reports[0])
    # The least-squares adapter start already explains part of the teacher's first layer.
    assert reports[0]["agreement"] > 0.0
    assert {"mlm_loss", "hidden_loss", "mlm_accuracy", "mlm_heldout_loss"} <= set(reports[-1])
    assert reports[-1]["mlm_heldout_loss"] > 0.0

    def changed(prefix: str, a: int, b: int) -> bool:
        return any(not torch.equal(snapshots[a][k], snapshots[b][k]) for k in snapshots[a] if k.startswith(prefix))

    # Stage 2 changes block 2 only; stage 3 block 3 only; embeddings and block 1 stay as stage 1 left them.
    assert changed("blocks.1.", 0, 1) and not changed("blocks.0.", 0, 1) and not changed("embeddings.", 0, 1)
    assert changed("blocks.2.", 1, 2) and not changed("blocks.0.", 1, 2) and not changed("blocks.1.", 1, 2)
    # Pre-training distillation trains everything.
    assert changed("blocks.0.", 2, 3) and changed("embeddings.", 2, 3)
    assert all(p.requires_grad for p in student.parameters())


def test_flash_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="'steps_per_block' must be >= 1"):
        FlashConfig(steps_per_block=0)
    with pytest.raises(ValueError, match="'alpha' must be in"):
        FlashConfig(alpha=1.5)


def write_text_data(folder: Path, labelled: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, split in enumerate(("train", "validation", "test")):
        if labelled:
            rows = [f"{s},{int('the' in s.split()[:1])}" for s in SENTENCES * 2]
            (folder / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
        else:
            (folder / f"{split}.txt").write_text("\n".join(SENTENCES[i:] + SENTENCES[:i]) * 3 + "\n")
    return folder


def test_trainer_end_to_end(teacher_dir: Path, tmp_path: Path) -> None:
    train = trainers.load("flash_distill").train
    vocab = Teacher.load(teacher_dir).vocab_size
    space = AutoDistillSpace(hidden_size=[24], bottleneck_size=[16], num_heads=[2], intermediate_size=[24],
                             num_ffn=[1], num_blocks=2, vocab_size=vocab, max_positions=64)
    options = dict(
        teacher=str(teacher_dir), corpus=str(write_text_data(tmp_path / "lm", labelled=False)),
        task=str(write_text_data(tmp_path / "task", labelled=True)), seq_len=12, corpus_blocks=20, eval_blocks=4,
        steps_per_block=2, pretrain_steps=2, warmup_steps=1, batch_size=4, task_max_length=12,
        finetune_steps=2, finetune_batch_size=4, latency_seq_len=12, latency_repeats=2, device="cpu",
        save_student=True, teacher_cache_dir=str(tmp_path / "teacher_outputs"),
    )
    ctx = TrialContext("t0", space.smallest(), space, options, seed=0, trial_dir=tmp_path / "trial")
    seen, report = collect_reports()
    metrics = train(ctx, report)
    assert [r["stage"] for r in seen] == [1, 2, 3, 4]
    assert all(r["params"] == space.metrics(ctx.arch)["params"] and r["latency_ms"] > 0 for r in seen)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["mlm_accuracy"] <= 1.0
    assert metrics["step"] == 2 * 2 + 2 + 2 and metrics == seen[-1]
    assert (tmp_path / "trial" / "student.safetensors").is_file()
    # The trial left the teacher's outputs for the next trials of this batch plan.
    assert len(list((tmp_path / "teacher_outputs").glob("*.safetensors"))) == 1


def test_trainer_refuses_an_unbuildable_student_before_loading_anything(tmp_path: Path) -> None:
    space = AutoDistillSpace(bottleneck_size=[30, 32], num_heads=[4])
    arch = {"hidden_size": 96, "bottleneck_size": 30, "num_heads": 4, "intermediate_size": 64, "num_ffn": 1}
    # The teacher path does not exist: reaching it would raise a different error.
    ctx = TrialContext("t1", arch, space, {"teacher": str(tmp_path / "missing")})
    with pytest.raises(InvalidArchitectureError, match="must divide bottleneck_size=30"):
        trainers.load("flash_distill").train(ctx, lambda m: None)


@pytest.mark.parametrize("decoder_trains", [False, True])
def test_pretraining_leaves_unread_embedding_rows_alone(teacher: Teacher, decoder_trains: bool) -> None:
    """The tied decoder reads every row of the word table; with Adam each row it trains moves by about
    lr per step, so by default the masked-token loss does not train the table through it."""
    torch.manual_seed(0)
    arch = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=2, intermediate_size=24, num_ffn=1,
                       num_blocks=1, vocab_size=teacher.vocab_size, max_positions=32)
    student = Student(arch)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    data = blocks(teacher)
    config = FlashConfig(steps_per_block=1, pretrain_steps=6, warmup_steps=0, batch_size=4, lr=1e-2,
                         pretrain_lr=1e-2, weight_decay=0.0, decoder_trains_embeddings=decoder_trains)
    before: dict[str, torch.Tensor] = {}

    def report(metrics: dict[str, float]) -> None:
        if metrics["stage"] == 1:
            before["word"] = student.embeddings.word.weight.detach().clone()

    flash_distill(student, teacher, data, data[:2], config, report, seed=0)
    # [PAD] never occurs in the packed text (nor, with this seed, as a random replacement).
    pad = teacher.tokenizer.pad_token_id
    moved = (student.embeddings.word.weight.detach()[pad] - before["word"][pad]).abs().max().item()
    if decoder_trains:
        assert moved > 1e-2
    else:
        assert moved == 0.0


def test_a_rerun_continues_after_the_last_saved_stage(teacher: Teacher, tmp_path: Path) -> None:
    """Each progressive stage is saved and reported as a checkpoint; a run stopped after stage 2 and
    started again from it runs only stages 3 and 4, on the weights and batches stage 2 left."""
    arch = StudentArch(hidden_size=24, bottleneck_size=16, num_heads=2, intermediate_size=24, num_ffn=2,
                       num_blocks=3, vocab_size=teacher.vocab_size, max_positions=32)
    data = blocks(teacher)
    config = FlashConfig(steps_per_block=2, pretrain_steps=2, warmup_steps=1, batch_size=4)

    def student() -> Student:
        torch.manual_seed(0)
        s = Student(arch)
        init_embeddings_from_teacher(s, teacher.embedding_tables())
        return s

    class Lost(Exception):
        """The node dies right after stage 2's checkpoint is reported."""

    checkpoints: list[tuple[float, Path]] = []

    def first_run(metrics: dict[str, float], checkpoint: Path | None = None) -> None:
        if checkpoint is not None:
            checkpoints.append((metrics["stage"], checkpoint))
            if metrics["stage"] == 2:
                raise Lost

    state = tmp_path / "state"
    with pytest.raises(Lost):
        flash_distill(student(), teacher, data, data[:3], config, first_run, seed=0, state_dir=state)
    assert [stage for stage, _ in checkpoints] == [1, 2] and all(p == state for _, p in checkpoints)

    stages: list[float] = []
    resumed = flash_distill(student(), teacher, data, data[:3], config,
                            lambda m, checkpoint=None: stages.append(m["stage"]), seed=0, restore_dir=state)
    assert stages == [3, 4] and resumed.global_step == 3 * 2 + 2
    whole = flash_distill(student(), teacher, data, data[:3], config, lambda m, checkpoint=None: None, seed=0)
    assert resumed.global_step == whole.global_step
    # Stage 3 starts from the weights and the batch stream stage 2 left: the run ends where an
    # uninterrupted one does.
    assert resumed.metrics == whole.metrics
