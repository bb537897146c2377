"""The super-network an ELM study searches, trained once and cached by the hash of what decides it.

ELM Algorithm 2 steps 1-2: pre-train the SPOS super-network by distillation on unlabelled text with
PCA-guided FFN growth (`trainers/elm/pretrain.py`), then fine-tune every path on a labelled task by
distillation from the teacher with a linear probe (`trainers/elm/task.py`, `trainers/elm/finetune.py`).
The result is one checkpoint folder `<cache>/supernets/<key>/` (written under a temporary name and
renamed when complete), so a rerun, a resumed study or a second study with the same settings finds it.
While it trains, both steps save their progress every `save_every_s` seconds beside that folder
(`<key>.progress/`, `trainers/progress.py`): a rerun after a lost node or a killed driver continues
from the last save and ends with the weights an uninterrupted run ends with.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from search_spaces.elm import CHECKPOINT_META, ElmSpace
from trainers.home import lmnas_home
from trainers.data import load_model_dir
from trainers.distill.teacher import Teacher
from trainers.efficiency import device_for_worker
from trainers.elm.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint
from trainers.elm.finetune import tune_on_task
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.pretrain import pretrain
from trainers.elm.task import ElmClassifier, TaskTeacher, accuracy, task_data, teacher_head
from trainers.progress import ProgressSaves, progress_dir
from trainers.supernet.cache import publish, source_name

#: bumped when the checkpoint format or a training loop changes what a key means.
FORMAT = 1
Log = Callable[[str], None]


def cache_root(opts: ElmSubnetOptions) -> Path:
    return Path(opts.cache_dir).expanduser() if opts.cache_dir else lmnas_home() / "elm"


def stage_key(opts: ElmSubnetOptions, space: ElmSpace, seed: int) -> str:
    """A hash of everything that decides the trained weights (not where they go or on which device)."""
    pre = opts.pretrain_options(space)
    pre.pop("device")
    fields: dict[str, Any] = {"format": FORMAT, "seed": seed, "pretrain": pre,
                              "teacher": source_name(opts.teacher), "corpus": source_name(opts.corpus)}
    if opts.task is not None:
        tune = dict(vars(opts.finetune_config()))
        if tune["precision"] == "fp32":  # as in the pre-training options: fp32 keeps the key it had before the option
            del tune["precision"]
        fields["finetune"] = {"task": source_name(opts.task), "max_length": opts.max_length,
                              "train_examples": opts.train_examples, "probe_steps": opts.probe_steps, **tune}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def checkpoint_dir(opts: ElmSubnetOptions, space: ElmSpace, seed: int) -> Path:
    return cache_root(opts) / "supernets" / stage_key(opts, space, seed)


def is_complete(directory: Path) -> bool:
    return (directory / CHECKPOINT_META).is_file() and (directory / WEIGHTS).is_file()


def pick_device(opts: ElmSubnetOptions) -> torch.device:
    return device_for_worker() if opts.device == "auto" else torch.device(opts.device)


def ensure_supernet(opts: ElmSubnetOptions, space: ElmSpace, seed: int, log: Log) -> Path:
    """The trained (and, with a task, fine-tuned) super-network of these settings: cached, or trained now."""
    directory = checkpoint_dir(opts, space, seed)
    if is_complete(directory):
        log(f"elm: using the cached super-network {directory}")
        return directory
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"elm: pre-training the super-network on {opts.corpus} ({opts.pretrain_epochs} epochs x "
        f"{opts.pretrain_steps} steps, {opts.loss} losses)")
    progress = progress_dir(directory)
    pretrain(opts.pretrain_options(space), tmp, seed=seed, saves=stage_saves(opts, progress / "pretrain"),
             report=lambda m: log("elm: pre-training " + " ".join(f"{k} {v:.4g}" for k, v in m.items())))
    if opts.task is not None:
        finetune_supernet(opts, tmp, seed, log, stage_saves(opts, progress / "finetune"))
    published = publish(tmp, directory, is_complete)
    shutil.rmtree(progress, ignore_errors=True)
    return published


def stage_saves(opts: ElmSubnetOptions, directory: Path) -> ProgressSaves | None:
    """Progress saves in `directory` every `opts.save_every_s` seconds (None: no saves)."""
    return None if opts.save_every_s is None else ProgressSaves(directory, opts.save_every_s)


def finetune_supernet(opts: ElmSubnetOptions, directory: Path, seed: int, log: Log,
                      saves: ProgressSaves | None = None) -> None:
    """Algorithm 2 step 2 on the checkpoint in `directory`, saved back in place with the shared head."""
    assert opts.task is not None
    device = pick_device(opts)
    ckpt = load_checkpoint(directory, device)
    teacher = Teacher.load(load_model_dir(ckpt.teacher), device)
    data = task_data(opts.task, teacher.tokenizer, opts.max_length, opts.train_examples, opts.eval_examples, seed)
    head = teacher_head(teacher, opts.teacher, data, cache_root(opts) / "teacher_heads", seed, opts.probe_steps)
    task_teacher = TaskTeacher(teacher, head)
    probe, _ = accuracy(lambda i, m: task_teacher(i, m)[1], data.validation, device, opts.batch_size)
    log(f"elm: teacher probe on {opts.task}: validation accuracy {probe:.4f}")
    classifier = ElmClassifier(ckpt.supernet, data.num_labels)
    config = opts.finetune_config()
    log(f"elm: fine-tuning every path on {opts.task} ({config.steps} steps)")
    tune_on_task(classifier, ckpt.adapters, task_teacher, data.train, config,
                 partial(ckpt.supernet.sample_path, sampling=ckpt.sampling), seed, log, saves=saves)
    classifier.eval()
    full, _ = accuracy(lambda i, m: classifier.run(i, m, ckpt.supernet.full_path("bert"))[0], data.validation,
                       device, opts.batch_size)
    log(f"elm: fine-tuned; the all-BERT path's validation accuracy {full:.4f}")
    save_checkpoint(directory, ckpt.supernet.cpu(), ckpt.adapters.cpu(), teacher=ckpt.teacher, loss=ckpt.loss,
                    ffn_step=ckpt.ffn_step, head=classifier.head.cpu(), sampling=ckpt.sampling,
                    task={"task": opts.task, "labels": list(data.label_names), "max_length": opts.max_length,
                          "teacher_accuracy": probe})
