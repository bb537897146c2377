"""The Gaussian process `botorch_mobo` fits to one measured output, and the choice of its kernel.

BoTorch's default since 0.12 is an RBF kernel with log-normal length-scale priors scaled with the
dimension (Hvarfner et al. 2024, "Vanilla Bayesian optimization performs great in high
dimensions"); before, it was a Matern-5/2 kernel with Gamma priors. Either can read its inputs
through a fitted input warping (`input_warping`, on by default in `botorch_mobo`).

On the frozen sub-network tables of benchmarks/search_vs_peers.py (20 seeds, median regret at 20 / 30
trials, against Optuna's GP sampler's 0.342 / 0.162 on movie reviews and 0.134 / 0.084 on TREC-6):
  - RBF without warping, 8 random trials first: 0.219 / 0.101 (p 0.11 / 0.08) and 0.094 / 0.057
    (p 0.02 / 0.01): movie reviews, where only the full depth works, is not significant;
  - Matern without warping (an earlier exploration): significant on movie reviews, not on TREC-6;
  - "auto" without warping (both kernels fitted, the one with the higher log marginal likelihood of
    the observations kept, priors left out so two priors do not decide it): the RBF figures within
    the spread at 1.4x the suggestion time;
  - RBF with warping, 8 random trials: 0.174 / 0.045 (p 0.002 / 0.0003) and 0.099 / 0.049 (p 0.06 /
    0.0004);
  - RBF with warping, 6 random trials: 0.191 / 0.059 (p 0.04 / 0.001) and 0.083 / 0.043 (p 0.001 /
    0.0002);
  - the same with the warped fit stopped at 100 iterations (the default): 0.176 / 0.062 (p 0.03 /
    0.001) and 0.076 / 0.039 (p 0.001 / 0.0002).
`--runs botorch_mobo_stationary` (no warping), `botorch_mobo_matern` and `botorch_mobo_auto` rerun them.
"""
from __future__ import annotations

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Warp
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import (
    get_gaussian_likelihood_with_gamma_prior,
    get_matern_kernel_with_gamma_prior,
)
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

#: the warping's Kumaraswamy concentrations: log-normal around 1 (no warping), BoTorch's tutorial prior.
WARP_PRIOR_SCALE = 0.75 ** 0.5
#: L-BFGS iterations of a warped fit. Left to converge (scipy's default: 15,000) it took 5-9 s on 40
#: random sub-networks of the movie-review table, 0.4-0.7 s at 100 iterations (log marginal likelihood
#: 1.55 against 1.74 at convergence); an unwarped fit converges in about 0.2 s.
WARPED_FIT_MAXITER = 100


def fit_gp(X: torch.Tensor, Y: torch.Tensor, kernel: str = "rbf", warp: bool = False) -> SingleTaskGP:
    """A GP of `Y` (n x 1) on `X` (n x d, the unit cube), fitted from its priors; with `warp`, each
    input first goes through a learned Kumaraswamy CDF (see `input_warping`)."""
    if kernel == "auto":
        fitted = [fit_gp(X, Y, "rbf", warp), fit_gp(X, Y, "matern", warp)]
        return max(fitted, key=log_marginal_likelihood)
    warping = input_warping(X.shape[-1]) if warp else None
    if kernel == "matern":
        gp = SingleTaskGP(X, Y, covar_module=get_matern_kernel_with_gamma_prior(X.shape[-1]),
                          likelihood=get_gaussian_likelihood_with_gamma_prior(), outcome_transform=Standardize(m=1),
                          input_transform=warping)
    elif kernel == "rbf":
        gp = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1), input_transform=warping)
    else:
        raise ValueError(f"kernel must be rbf, matern or auto, got {kernel!r}")
    options = {"optimizer_kwargs": {"options": {"maxiter": WARPED_FIT_MAXITER}}} if warp else {}
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp), **options)
    return gp


def input_warping(d: int) -> Warp:
    """Input warping (Snoek et al. 2014, "Input warping for Bayesian optimization of non-stationary
    functions"): a Kumaraswamy CDF per dimension, its two concentrations fitted with the kernel.

    A sub-network's accuracy is rarely stationary in its architecture: on a super-network trained at
    full depth only the full depth works (movie reviews: 0.406, a constant answer, at 0-5 layers of 6,
    0.43-0.81 at 6), so the function is flat over most of the depth axis and steep at its end. One
    length-scale per dimension cannot fit both, and a stationary GP keeps proposing cheap shallow
    networks whose accuracy it cannot rule out; the warping stretches the steep end and squeezes the
    flat part."""
    return Warp(d=d, indices=list(range(d)), concentration1_prior=LogNormalPrior(0.0, WARP_PRIOR_SCALE),
                concentration0_prior=LogNormalPrior(0.0, WARP_PRIOR_SCALE))


def log_marginal_likelihood(gp: SingleTaskGP) -> float:
    """log p(y | X, fitted hyperparameters) of the GP's (standardised) training data, without priors."""
    was_training = gp.training
    gp.train()  # in train mode the model at its training inputs is the prior: its evidence is the likelihood
    try:
        with torch.no_grad():
            X, = gp.train_inputs
            return float(gp.likelihood(gp(X)).log_prob(gp.train_targets))
    finally:
        gp.train(was_training)
