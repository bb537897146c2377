"""The found ELM architecture after the search (Algorithm 2 step 4 and Appendix A): CKA head-number
search, retraining as a standalone model, evaluation on the shipped tasks, export.

1. Head search (Algorithm 1, `trainers/elm/cka_heads.py`) on the super-network path, on the search
   task's validation sentences (real tokens only).
2. The path with the found head counts is extracted (`extract_sub_network`) and distilled again on
   the pre-training corpus (layer losses) — the paper pre-trains the found model before fine-tuning.
3. For each evaluation task, a copy is fine-tuned by distillation from the teacher and its linear
   probe (as in the super-network's fine-tune, the path now fixed) and scored on the test split,
   next to the teacher's probe on the same sentences.
4. The model tuned on the first task is exported (`trainers/elm/export.py`).

`retrained_score` runs steps 1-3 on any candidate, on the super-network's own task only, and scores
it as its trial was scored on the shared weights: what `lmnas calibrate` compares the proxy with.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import torch

from search_spaces.elm import ElmArch, count_params
from trainers.data import load_model_dir
from trainers.distill.teacher import Teacher
from trainers.efficiency import measure_latency, token_inputs
from trainers.elm.checkpoint import Checkpoint, load_checkpoint
from trainers.elm.cka_heads import search_heads
from trainers.elm.distill import Adapters
from trainers.elm.export import export_elm
from trainers.elm.finetune import distill_on_corpus, tune_on_task
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.pretrain import corpus_blocks
from trainers.elm.stage import cache_root, pick_device
from trainers.elm.supernet import ElmModel
from trainers.elm.task import ElmClassifier, TaskData, TaskTeacher, accuracy, task_data, teacher_head
from trainers.encode import Encoded
from trainers.report import TrainerError

Log = Callable[[str], None]
#: validation sentences the head search measures CKA on.
CKA_ROWS = 64


def describe(arch: ElmArch) -> str:
    return " ".join(f"{c.kind}/{c.ffn}/{c.heads}h" for c in arch.layers)


def retrain(opts: ElmSubnetOptions, ckpt: Checkpoint, teacher: Teacher, arch: ElmArch, cka_rows: Encoded, seed: int,
            log: Log, head_search: bool = True) -> tuple[ElmArch, ElmModel, Adapters]:
    """Steps 1-2: (the architecture after head search on `cka_rows`, its model extracted and distilled
    on the corpus, the adapters distilled with it)."""
    device = teacher.device
    found = arch
    if head_search:
        found = search_heads(ckpt.supernet, arch, cka_rows.input_ids[:CKA_ROWS].to(device),
                             cka_rows.attention_mask[:CKA_ROWS].to(device), opts.head_eta)
    log(f"elm: searched architecture {describe(arch)}")
    log(f"elm: after head search     {describe(found)}")
    model = ckpt.supernet.extract_sub_network(found)
    adapters = copy.deepcopy(ckpt.adapters)
    distill, _ = opts.final_configs()
    blocks, _ = corpus_blocks(teacher, opts.corpus, opts.seq_len, opts.corpus_blocks, opts.eval_blocks, seed + 1)
    distill_on_corpus(model, adapters, teacher, blocks, distill, seed, log)
    return found, model, adapters


def tuned_copy(opts: ElmSubnetOptions, ckpt: Checkpoint, teacher: Teacher, model: ElmModel, adapters: Adapters,
               data: TaskData, seed: int, log: Log) -> tuple[ElmClassifier, TaskTeacher]:
    """Step 3: a copy of `model` fine-tuned on `data` (the super-network's head is the start on its
    own task), in eval mode, and the teacher with its probe for that task."""
    task_teacher = TaskTeacher(teacher, teacher_head(teacher, opts.teacher, data, cache_root(opts) / "teacher_heads",
                                                     seed, opts.probe_steps))
    own_head = ckpt.head is not None and ckpt.task is not None and ckpt.task["task"] == data.name
    classifier = ElmClassifier(copy.deepcopy(model), data.num_labels, copy.deepcopy(ckpt.head) if own_head else None)
    _, tune = opts.final_configs()
    tune_on_task(classifier, copy.deepcopy(adapters), task_teacher, data.train, tune, lambda g: None, seed, log,
                 what=f"fine-tune on {data.name}")
    return classifier.eval(), task_teacher


def retrain_and_evaluate(opts: ElmSubnetOptions, checkpoint: str, arch: ElmArch, out_dir: str | None, seed: int,
                         log: Log, head_search: bool = True) -> list[dict[str, Any]]:
    """Steps 1-4 above; one row per evaluation task (the found model's and the teacher's accuracy).
    `out_dir` None: no export. `head_search` False keeps the architecture's head counts (ablation)."""
    device = pick_device(opts)
    torch.manual_seed(seed)
    ckpt = load_checkpoint(checkpoint, device)
    teacher = Teacher.load(load_model_dir(ckpt.teacher), device)
    tasks = list(opts.eval_tasks) or [opts.task or "movie-reviews"]
    search_task = (ckpt.task or {}).get("task", tasks[0])
    data = {t: task_data(t, teacher.tokenizer, opts.max_length, opts.train_examples, opts.eval_examples, seed)
            for t in dict.fromkeys([search_task, *tasks])}
    found, model, adapters = retrain(opts, ckpt, teacher, arch, data[search_task].validation, seed, log, head_search)
    sizes = count_params(found)
    latency = {}
    if opts.latency_repeats:
        measured = measure_latency(model.eval(), opts.latency_options(), token_inputs(found.shape.vocab_size))
        latency = {k: v for k, v in measured.report().items() if k in ("latency_ms", "hardware", "latency_clock")}
    results: list[dict[str, Any]] = []
    for i, name in enumerate(tasks):
        d = data[name]
        classifier, task_teacher = tuned_copy(opts, ckpt, teacher, model, adapters, d, seed, log)
        acc, _ = accuracy(classifier, d.test, device, opts.batch_size)
        teacher_acc, _ = accuracy(lambda ids, mask: task_teacher(ids, mask)[1], d.test, device, opts.batch_size)
        log(f"elm: {name}: test accuracy {acc:.4f} (teacher probe {teacher_acc:.4f})")
        results.append({"task": name, "accuracy": acc, "teacher_accuracy": teacher_acc, "test_examples": len(d.test),
                        **sizes, "architecture": describe(found), **latency})
        if i == 0 and out_dir is not None:
            path = export_elm(classifier.cpu(), Path(out_dir), d.label_names, teacher.tokenizer, onnx=opts.onnx)
            log(f"elm: exported the model tuned on {name} to {path}")
    return results


def retrained_score(opts: ElmSubnetOptions, checkpoint: str, arch: ElmArch, seed: int, log: Log,
                    head_search: bool = True) -> dict[str, float]:
    """Accuracy and cross-entropy on the super-network's task's validation split (the split and sizes
    its trials were scored on) of `arch` after steps 1-3 on that task."""
    device = pick_device(opts)
    torch.manual_seed(seed)
    ckpt = load_checkpoint(checkpoint, device)
    if ckpt.task is None:
        raise TrainerError("a candidate is retrained and scored on the super-network's task, and this one was not "
                           "fine-tuned on one: set the trainer option 'task'")
    teacher = Teacher.load(load_model_dir(ckpt.teacher), device)
    data = task_data(ckpt.task["task"], teacher.tokenizer, ckpt.task["max_length"], opts.train_examples,
                     opts.eval_examples, seed)
    _, model, adapters = retrain(opts, ckpt, teacher, arch, data.validation, seed, log, head_search)
    classifier, _ = tuned_copy(opts, ckpt, teacher, model, adapters, data, seed, log)
    acc, loss = accuracy(classifier, data.validation, device, opts.batch_size)
    log(f"elm: retrained {describe(arch)}: validation accuracy {acc:.4f} on {data.name}")
    return {"accuracy": acc, "loss": loss}
