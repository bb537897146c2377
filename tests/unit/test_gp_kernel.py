"""orchestrator/searchers/gp.py: the kernels botorch_mobo fits, and the choice between them."""
from __future__ import annotations

import pytest
import torch

from orchestrator.searchers.botorch_mobo_options import BotorchMoboOptions
from orchestrator.searchers.gp import fit_gp, log_marginal_likelihood


def data(rough: bool) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.rand(24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.sin(3 * X[:, 0]) + X[:, 1]
    if rough:  # a kink and a jump: what a Matern-5/2 kernel allows and an RBF kernel does not
        y = y + (X[:, 2] > 0.5).double() + (X[:, 0] - 0.5).abs()
    return X, y.unsqueeze(-1)


@pytest.mark.parametrize("rough", [False, True])
def test_auto_keeps_the_kernel_whose_fit_explains_the_data_better(rough: bool) -> None:
    X, Y = data(rough)
    rbf, matern = fit_gp(X, Y, "rbf"), fit_gp(X, Y, "matern")
    assert type(rbf.covar_module).__name__ != type(matern.covar_module).__name__
    chosen = fit_gp(X, Y, "auto")
    assert log_marginal_likelihood(chosen) == pytest.approx(max(map(log_marginal_likelihood, (rbf, matern))))
    # The evidence is computed in train mode; the model is left in the mode it was in.
    chosen.eval()
    log_marginal_likelihood(chosen)
    assert not chosen.training


def test_a_fitted_gp_predicts_its_training_data() -> None:
    X, Y = data(False)
    for kernel in ("rbf", "matern", "auto"):
        gp = fit_gp(X, Y, kernel)
        gp.eval()
        mean = gp.posterior(X).mean
        assert torch.corrcoef(torch.stack([mean.squeeze(-1), Y.squeeze(-1)]))[0, 1] > 0.95


def test_an_unknown_kernel_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="kernel.*rbf, matern, auto"):
        BotorchMoboOptions(kernel="linear")
    with pytest.raises(ValueError, match="rbf, matern or auto"):
        fit_gp(*data(False), "linear")


def depth_like() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accuracy as on a super-network trained at full depth: a constant below the top of the depth
    axis (7 levels), rising with width at the top. Shallow networks were tried narrow only; the
    held-out points are shallow and wide."""
    g = torch.Generator().manual_seed(0)
    shallow = torch.stack([torch.randint(0, 6, (8,), generator=g).double() / 6, 0.5 * torch.rand(8, generator=g, dtype=torch.float64)], -1)
    deep = torch.stack([torch.ones(6, dtype=torch.float64), torch.rand(6, generator=g, dtype=torch.float64)], -1)
    X = torch.cat([shallow, deep])
    y = torch.where(X[:, 0] == 1.0, 0.45 + 0.35 * X[:, 1], torch.full_like(X[:, 0], 0.406))
    test = torch.stack([torch.tensor([4 / 6, 5 / 6] * 5, dtype=torch.float64), torch.linspace(0.6, 1, 10, dtype=torch.float64)], -1)
    return X, y.unsqueeze(-1), test, torch.full((10,), 0.406, dtype=torch.float64)


def test_input_warping_fits_a_function_flat_over_most_of_an_axis_and_steep_at_its_end() -> None:
    X, Y, test, truth = depth_like()
    plain, warped = fit_gp(X, Y, "rbf"), fit_gp(X, Y, "rbf", warp=True)
    assert type(warped.input_transform).__name__ == "Warp" and getattr(plain, "input_transform", None) is None
    assert log_marginal_likelihood(warped) > log_marginal_likelihood(plain)
    errors = {}
    for name, gp in (("plain", plain), ("warped", warped)):
        gp.eval()
        with torch.no_grad():
            errors[name] = float((gp.posterior(test).mean.squeeze(-1) - truth).abs().mean())
    # Shallow wide networks: the plain GP carries the full-depth rise down the depth axis.
    assert errors["warped"] < 0.5 * errors["plain"], errors


def test_warping_is_an_option_on_by_default() -> None:
    assert BotorchMoboOptions().input_warping is True
    with pytest.raises(ValueError, match="'input_warping' must be true or false"):
        BotorchMoboOptions(input_warping="yes")  # type: ignore[arg-type]
