"""Option `precision` over every trainer that trains or scores a network, at tiny sizes on CPU: bf16 runs
each one's training (super-network stage, standalone fine-tune, Flash and regular distillation, ELM's
super-network stage) and scoring, and the trial reports the precision it ran in; fp16, which needs
CUDA, fails a trial on a CPU worker at its start in one line naming the option; a value that is not a
precision fails validation listing the allowed ones."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from orchestrator import registry
from tests.contracts.trainer_cases import CASES
from trainers.contract import (FinishedTrial, Prepared, StageContext, TrainerError, TrialContext, collect_reports,
                               run_in_process)
from trainers.options import build_options

#: the trainers with a network to train or score (synthetic and tabular have none).
NETWORK_TRAINERS = ("weight_sharing", "standard_nas", "flash_distill", "elm_subnet")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("precision")


def stage_context(name: str, root: Path, precision: str, **fields: Any) -> StageContext:
    case = CASES[name](root)
    return StageContext(study="precision", seed=0, options={**case.options, "precision": precision}, space=case.space,
                        directory=root / name / precision, log=lambda line: None,
                        run_task=run_in_process(lambda line: None), **fields)


#: what `prepare` settled, per (trainer, precision): a super-network is trained once per module.
_PREPARED: dict[tuple[str, str], Prepared] = {}


def prepared(name: str, root: Path, precision: str) -> Prepared:
    if (name, precision) not in _PREPARED:
        ctx = stage_context(name, root, precision)
        prepare = getattr(registry.trainers.load(name), "prepare", None)
        _PREPARED[name, precision] = prepare(ctx) if prepare is not None else Prepared(ctx.space, ctx.options)
    return _PREPARED[name, precision]


def run_trial(name: str, root: Path, precision: str, options: dict[str, Any] | None = None
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The smallest architecture's trial with the options `prepare` settled in `precision` (and `options`)."""
    ready = prepared(name, root, precision)
    reports, report = collect_reports()
    trial = TrialContext("t0", ready.space.smallest(), ready.space, {**ready.trainer_options, **(options or {})}, 0,
                         root / name / precision / "trials" / "t0")
    final = registry.trainers.load(name).train(trial, report)
    return reports, dict(final)


@pytest.mark.parametrize("name", NETWORK_TRAINERS)
def test_bf16_trains_and_scores_in_bf16_on_cpu_and_says_so(name: str, root: Path) -> None:
    _, full = run_trial(name, root, "fp32")
    _, half = run_trial(name, root, "bf16")
    assert (full["precision"], half["precision"]) == ("fp32", "bf16")
    # Rounding to bf16 moves the loss a little: the trial ran in bf16, and still learned what fp32 did.
    assert half["loss"] != full["loss"] and math.isclose(half["loss"], full["loss"], rel_tol=0.2), (half, full)
    if prepared(name, root, "fp32").checkpoint is not None:  # a super-network trained in bf16 is another one
        assert prepared(name, root, "bf16").checkpoint != prepared(name, root, "fp32").checkpoint


def test_regular_distillation_runs_in_bf16_on_cpu(root: Path) -> None:
    """flash_distill's `finish`: the front's students distilled for longer, then fine-tuned and exported."""
    module = registry.trainers.load("flash_distill")
    rows = {}
    for precision in ("fp32", "bf16"):
        _, final = run_trial("flash_distill", root, precision)
        trial = FinishedTrial("t0", prepared("flash_distill", root, precision).space.smallest(), final)
        ctx = stage_context("flash_distill", root, precision, trials=(trial,), front=(trial,))
        out = module.finish(ctx)
        assert out is not None and Path(out).is_file()
        rows[precision] = Path(out).read_bytes()
    assert rows["bf16"] != rows["fp32"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs where CUDA is")
@pytest.mark.parametrize("name", NETWORK_TRAINERS)
def test_fp16_without_cuda_fails_the_trial_at_its_start_naming_the_option(name: str, root: Path) -> None:
    with pytest.raises(TrainerError) as failure:
        run_trial(name, root, "fp32", {"precision": "fp16"})
    message = str(failure.value)
    assert message.startswith("option 'precision' is 'fp16' but this worker runs on cpu, not CUDA") and "\n" not in message
    # The study still validates: the driver may have no GPU while its workers do.
    options = registry.trainers.load(name).OPTIONS
    assert build_options(options, {**prepared(name, root, "fp32").trainer_options, "precision": "fp16"}).precision == "fp16"


@pytest.mark.parametrize("name", NETWORK_TRAINERS)
def test_a_value_that_is_not_a_precision_is_refused_listing_the_allowed_ones(name: str) -> None:
    options = registry.trainers.load(name).OPTIONS
    assert options().precision == "fp32"
    with pytest.raises(ValueError, match=r"^option 'precision' must be one of 'fp32', 'bf16', 'fp16', got 'fp8'$"):
        build_options(options, {"precision": "fp8"})
    with pytest.raises(ValueError, match=r"^option 'precision' must be one of 'fp32', 'bf16', 'fp16', got 'half'$"):
        options(precision="half")


def test_the_loss_scale_travels_with_a_progress_save() -> None:
    """fp16's loss scale is saved and loaded back (CPU's scaler stands in for the CUDA one here), so a
    resumed run neither restarts the scale at 65536 nor skips steps to find it again."""
    import torch

    from trainers.precision import MixedPrecision

    amp = MixedPrecision("fp32", torch.device("cpu"))
    assert amp.state_dict() == {}  # fp32 and bf16 have no scale to keep
    amp.load_state_dict({"scale": 8.0})  # and ignore one
    saved = MixedPrecision("fp32", torch.device("cpu"))
    saved.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    saved.scaler.scale(torch.ones(()))  # the scale tensor exists once a loss was scaled
    resumed = MixedPrecision("fp32", torch.device("cpu"))
    resumed.scaler = torch.amp.GradScaler("cpu")
    resumed.load_state_dict(saved.state_dict())
    assert resumed.scaler.get_scale() == 1024.0


def test_a_resumed_fit_continues_with_the_saved_loss_scale(tmp_path: Path) -> None:
    """fit() saves the scaler's state with its progress: a run interrupted after step 3 and resumed
    ends with the loss scale (and weights) of an uninterrupted run. The scale doubles every step here
    (growth_interval 1), so a resume that started from a fresh scaler would end far from it."""
    import torch
    from torch.utils.data import DataLoader

    from trainers.precision import MixedPrecision
    from trainers.progress import ProgressSaves
    from trainers.supernet.fit import fit
    from trainers.supernet.options import FinetuneOptions

    class Stop(Exception):
        pass

    def run(directory: Path, stop_at: int | None) -> tuple[float, torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        amp = MixedPrecision("fp32", torch.device("cpu"))
        amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0, growth_interval=1)
        rows = [{"x": torch.full((4,), float(i))} for i in range(12)]
        loader = DataLoader(rows, batch_size=2, shuffle=False)
        steps = []

        def step(batch: dict, progress: float) -> dict[str, float]:
            if stop_at is not None and len(steps) == stop_at:
                raise Stop
            steps.append(progress)
            loss = model(batch["x"]).pow(2).mean() * 1e-3
            amp.backward(loss)
            return {"loss": float(loss)}

        saves = ProgressSaves(directory, every_s=1e-9)
        fit(list(model.parameters()), loader, FinetuneOptions(epochs=1, lr=1e-3), torch.device("cpu"), step,
            saves=saves, amp=amp)
        return amp.scaler.get_scale(), model.weight.detach().clone()

    whole_scale, whole_weight = run(tmp_path / "whole", None)
    with pytest.raises(Stop):
        run(tmp_path / "resumed", 3)
    scale, weight = run(tmp_path / "resumed", None)
    assert whole_scale == 2.0 * 2**6 and scale == whole_scale
    assert torch.equal(weight, whole_weight)
