"""Flash Distillation stage by stage: held-out agreement after every stage of the smallest and the
largest student, for the previous optimisation settings and the current defaults.

    nice .venv/bin/python benchmarks/flash_stages.py [--variants before,after] [--preset cpu]

`before` is the schedule Flash Distillation had first: pre-training distillation's L_HD on the
masked input, the masked-token loss unscaled and training the word embeddings through the tied
decoder; `after` is FlashConfig's defaults (L_HD on the clean text, cross-entropy / log(vocab),
decoder reading the embeddings without training them). Further variants change one thing each.
All variants read the teacher's outputs from one shared table, so only the first pays for the
teacher.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from search_spaces.autodistill import AutoDistillSpace
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.student import Student
from trainers.autodistill.trainer import FlashDistillOptions, corpus_blocks, teacher_cache_file
from trainers.distill.flash import FlashConfig, flash_distill
from trainers.distill.teacher import shared_teacher
from trainers.distill.teacher_cache import TeacherTargets

BEFORE = dict(lr=3e-3, stage_warmup=0.0, stage_decay=False, pretrain_lr=3e-3, mlm_normalise=False,
              decoder_trains_embeddings=True, hidden_input="masked")
VARIANTS: dict[str, dict[str, object]] = {
    "before": BEFORE,
    "after": {},
    # one change at a time, from `before`
    "stage_schedule": {**BEFORE, "stage_warmup": 0.2, "stage_decay": True},
    "stage_lr": {**BEFORE, "lr": 1e-3},
    "pretrain_lr": {**BEFORE, "pretrain_lr": 5e-4},
    "mlm_normalise": {**BEFORE, "mlm_normalise": True},
    "frozen_decoder": {**BEFORE, "decoder_trains_embeddings": False},
    "clean_hidden": {**BEFORE, "hidden_input": "clean"},
    "after+stage_warmup": {"stage_warmup": 0.2},
}


def run(space: AutoDistillSpace, config_name: str, which: str, opts: FlashDistillOptions, targets: TeacherTargets,
        blocks: tuple[torch.Tensor, torch.Tensor]) -> tuple[list[dict[str, float]], float]:
    config = replace(opts.flash_config(), **VARIANTS[which])  # type: ignore[arg-type]
    arch = space.architecture(getattr(space, config_name)())
    torch.manual_seed(0)
    student = Student(arch)
    init_embeddings_from_teacher(student, targets.teacher.embedding_tables())
    seen: list[dict[str, float]] = []
    start = time.perf_counter()
    flash_distill(student, targets.teacher, *blocks, config, seen.append, seed=0, targets=targets)
    return seen, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--students", default="smallest,largest")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    opts = FlashDistillOptions()
    space = AutoDistillSpace(preset=args.preset)
    teacher = shared_teacher(opts.teacher, "cpu")
    blocks = corpus_blocks(opts, teacher, 0)
    targets = TeacherTargets(teacher, teacher_cache_file(opts, space.architecture(space.smallest()), 0))
    print(f"settings: {FlashConfig.__name__} defaults except the variant's; {opts.steps_per_block} steps per block, "
          f"{opts.pretrain_steps} pre-training steps, batch {opts.batch_size}, {opts.eval_blocks} held-out blocks")
    rows = []
    for student in args.students.split(","):
        for which in args.variants.split(","):
            seen, seconds = run(space, student, which, opts, targets, blocks)
            targets.save()
            stages = [r for r in seen if r["stage"] <= space.values["num_blocks"][0]]
            final = seen[-1]
            rows.append((student, which, [r["agreement"] for r in stages], [r["feature_loss"] for r in stages],
                         final["agreement"], final["mlm_accuracy"], seconds))
            print(f"{student:8s} {which:18s} stage agreement {' '.join(f'{a:6.3f}' for a in rows[-1][2])}  "
                  f"feature loss {' '.join(f'{f:6.3f}' for f in rows[-1][3])}  -> after pre-training "
                  f"{final['agreement']:6.3f}  mlm acc {final['mlm_accuracy']:.3f}  ({seconds:.0f} s)", flush=True)
    print("\nchange of held-out agreement in pre-training distillation (final minus last progressive stage), "
          "and the final agreement against `before` (a difference: agreement can be negative):")
    base = {r[0]: r[4] for r in rows if r[1] == "before"}
    for student, which, stage_agreement, _, final, _, _ in rows:
        versus = f"{final - base[student]:+.3f} vs before" if student in base else ""
        print(f"  {student:8s} {which:18s} {final - stage_agreement[-1]:+.3f}   final {final:.3f}  {versus}")

if __name__ == "__main__":
    main()
