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
