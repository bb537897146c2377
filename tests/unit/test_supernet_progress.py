"""The super-network stage continues an interrupted run from its last progress save and ends with
the weights, loss trace and checkpoint an uninterrupted run of the same seed has."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from search_spaces.pruning import SmallSpace
from tests.unit.crash import run_killed
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.supernet import cache, train
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.progress import STATE, WEIGHTS, ProgressSaves, saves
from trainers.supernet.families import space_for


class Interrupted(Exception):
    """Stands for the stage's worker dying after a step."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[SupernetConfig, SmallSpace]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    model, task = make_tiny_teacher(root / "model"), save_tiny_task(root / "task")
    space = space_for(SmallSpace, json.loads((model / "config.json").read_text()), num_labels=2)
    # 24 training rows in batches of 8: 3 steps per epoch, 6 in all; a save after every step.
    config = SupernetConfig(model=str(model), task=str(task), max_length=16, batch_size=8, lr=1e-3, epochs=2,
                            num_random=1, log_every=1, device="cpu", save_every_s=1e-9)
    return config, space


def interrupt_at(step: int, lines: list[str]) -> train.Log:
    def log(line: str) -> None:
        lines.append(line)
        if f"step {step}/" in line:
            raise Interrupted(line)
    return log


@pytest.mark.parametrize("stop", [2, 4])  # mid first epoch; mid second (the shuffle's order of epoch 2)
def test_an_interrupted_stage_continues_to_the_uninterrupted_result(setup: tuple[SupernetConfig, SmallSpace],
                                                                    tmp_path: Path, stop: int) -> None:
    config, space = setup
    whole = train.ensure_supernet(replace(config, cache_dir=str(tmp_path / "whole")), space, seed=3,
                                  log=lambda line: None)
    resumed_config = replace(config, cache_dir=str(tmp_path / "resumed"))
    directory = cache.checkpoint_dir(resumed_config, space, 3)
    first: list[str] = []
    with pytest.raises(Interrupted):
        train.ensure_supernet(resumed_config, space, seed=3, log=interrupt_at(stop, first))
    assert not cache.is_complete(directory)
    assert [p.name for p in saves(train.progress_dir(directory))] == [f"step-{stop:09d}"]

    second: list[str] = []
    assert train.ensure_supernet(resumed_config, space, seed=3, log=second.append) == directory
    assert f"supernet: continuing from the save of step {stop}/6" in second
    # Only the steps after the save ran again.
    assert [line.split()[2] for line in second if line.startswith("supernet: step ")] == \
        [f"{s}/6" for s in range(stop + 1, 7)]
    assert not train.progress_dir(directory).exists()

    expected, got = load_supernet(whole).state_dict(), load_supernet(directory).state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert (json.loads((directory / cache.TRAIN_INFO).read_text())["trace"]
            == json.loads((whole / cache.TRAIN_INFO).read_text())["trace"])


def test_a_stage_killed_mid_save_continues_from_the_save_before(setup: tuple[SupernetConfig, SmallSpace],
                                                                 tmp_path: Path) -> None:
    """SIGKILL while step 4's save is half written (weights on disk, state not): the rerun ignores
    the half save, continues from step 3's and ends with the uninterrupted run's weights."""
    config, space = setup
    whole = train.ensure_supernet(replace(config, cache_dir=str(tmp_path / "whole")), space, seed=3,
                                  log=lambda line: None)
    killed = replace(config, cache_dir=str(tmp_path / "killed"))
    directory = cache.checkpoint_dir(killed, space, 3)
    run_killed("trainers.supernet.train:ensure_supernet", (killed, space, 3, print), 4, tmp_path)
    assert [p.name for p in saves(train.progress_dir(directory))] == ["step-000000003"]

    lines: list[str] = []
    assert train.ensure_supernet(killed, space, seed=3, log=lines.append) == directory
    assert "supernet: continuing from the save of step 3/6" in lines
    expected, got = load_supernet(whole).state_dict(), load_supernet(directory).state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_without_saves_a_rerun_starts_again(setup: tuple[SupernetConfig, SmallSpace], tmp_path: Path) -> None:
    config, space = setup
    unsaved = replace(config, cache_dir=str(tmp_path), save_every_s=None)
    with pytest.raises(Interrupted):
        train.ensure_supernet(unsaved, space, seed=3, log=interrupt_at(2, []))
    assert not train.progress_dir(cache.checkpoint_dir(unsaved, space, 3)).exists()
    lines: list[str] = []
    train.ensure_supernet(unsaved, space, seed=3, log=lines.append)
    assert "supernet: step 1/6" in " ".join(lines) and not any("continuing" in line for line in lines)


def test_save_every_s_must_be_positive(setup: tuple[SupernetConfig, SmallSpace]) -> None:
    with pytest.raises(ValueError, match="option 'save_every_s' must be > 0 seconds or null"):
        replace(setup[0], save_every_s=0)


def two_saves(directory: Path) -> tuple[ProgressSaves, list[torch.Tensor]]:
    """Saves of steps 1 and 2 both on disk (as when a process died between writing step 2's and removing
    step 1's); the parameters hold step 2's values."""
    progress = ProgressSaves(directory)
    params = [torch.zeros(3)]
    progress.save(1, params, {"loss": 1.0})
    shutil.copytree(directory / "step-000000001", directory / "kept")
    params[0] += 2
    progress.save(2, params, {"loss": 2.0})
    (directory / "kept").rename(directory / "step-000000001")
    return progress, params


@pytest.mark.parametrize("cut", [WEIGHTS, STATE])
def test_a_cut_short_newest_save_falls_back_to_the_one_before(tmp_path: Path, cut: str) -> None:
    progress, params = two_saves(tmp_path)
    newest = tmp_path / "step-000000002" / cut
    newest.write_bytes(newest.read_bytes()[:40])  # a node crash before the file reached the disk
    state = progress.restore(params)
    assert state is not None and state["step"] == 1 and state["loss"] == 1.0
    assert torch.equal(params[0], torch.zeros(3))
    assert [p.name for p in saves(tmp_path)] == ["step-000000001"]


def test_a_save_of_another_model_is_removed(tmp_path: Path) -> None:
    ProgressSaves(tmp_path).save(7, [torch.zeros(3)], {})
    progress = ProgressSaves(tmp_path)
    assert progress.restore([torch.zeros(4)]) is None
    progress.save(1, [torch.zeros(4)], {})
    assert [p.name for p in saves(tmp_path)] == ["step-000000001"]  # not outranked by the stale step 7


def test_a_killed_writers_temporary_folders_are_removed_at_the_next_start(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    host = socket.gethostname()
    killed = tmp_path / f".step-000000003.tmp-{host}-{int(dead.stdout)}"
    running = tmp_path / f".step-000000003.tmp-{host}-{os.getppid()}"
    elsewhere = tmp_path / ".step-000000003.tmp-other-node-1"
    abandoned = tmp_path / ".step-000000002.tmp-other-node-1"
    for folder in (killed, running, elsewhere, abandoned):
        folder.mkdir()
    os.utime(abandoned, (time.time() - 7200,) * 2)
    assert ProgressSaves(tmp_path).restore([torch.zeros(3)]) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, elsewhere.name])
