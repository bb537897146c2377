"""Options of the BoTorch multi-objective searcher (`botorch_mobo`), validated on construction.

Kept apart from `botorch_mobo.py` so a study can be checked without importing torch or BoTorch.
"""
from __future__ import annotations

from dataclasses import dataclass

#: the GP kernels `botorch_mobo` can fit to a measured output (see `gp.py`).
KERNELS = ("rbf", "matern", "auto")


@dataclass(frozen=True)
class BotorchMoboOptions:
    #: suggestions of the initial design (a Latin hypercube over the dimensions' values) before the model
    #: takes over; None = min(2 * d, 10), d the dimensions with more than one value. With input warping
    #: the model makes better use of a suggestion than the design does: see `gp.py` for 2 * d against
    #: 2 * (d + 1), the default before.
    num_initial: int | None = None
    #: random configurations scored by the acquisition for each suggestion.
    num_candidates: int = 512
    #: mutations of each Pareto-optimal configuration scored beside them (local refinement).
    mutations_per_front_point: int = 32
    #: quasi-Monte-Carlo samples of the posterior in the acquisition.
    mc_samples: int = 32
    #: torch intra-op threads while fitting and scoring; 0 leaves torch's setting alone.
    torch_threads: int = 1
    #: model the metrics the space computes (parameters, FLOPs) with GPs too, as if measured (an ablation).
    model_known: bool = False
    #: the measured outputs' GP kernel: "rbf" (BoTorch's default: RBF, log-normal length-scale priors
    #: scaled with the dimension), "matern" (Matern-5/2 with Gamma priors, BoTorch's default before
    #: 0.12) or "auto" (both fitted, the one whose data explain it better kept: see `gp.py`).
    kernel: str = "rbf"
    #: pass each input through a fitted Kumaraswamy CDF before the kernel (`gp.input_warping`): fits
    #: accuracy that is flat over most of a dimension and steep at one end, as depth on a super-network.
    input_warping: bool = True

    def __post_init__(self) -> None:
        lows = {"num_candidates": 1, "mutations_per_front_point": 0, "mc_samples": 1, "torch_threads": 0}
        for field, low in lows.items():
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"botorch_mobo option '{field}' must be an integer >= {low}, got {value!r}")
        for field in ("model_known", "input_warping"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"botorch_mobo option '{field}' must be true or false, got {getattr(self, field)!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"botorch_mobo option 'kernel' must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.num_initial is not None and (
            not isinstance(self.num_initial, int) or isinstance(self.num_initial, bool) or self.num_initial < 1
        ):
            raise ValueError(f"botorch_mobo option 'num_initial' must be an integer >= 1 or null, got {self.num_initial!r}")
