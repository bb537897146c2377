"""Mixed precision and device moves, shared by every trainer: each wraps its forwards in
`MixedPrecision.autocast()`, backs its losses through `backward` and steps its optimiser with `step`.

"bf16" and "fp16" run the forward under `torch.autocast` (matrix products in 16 bits, reductions
such as softmax and layer norm kept in fp32; the weights and the optimiser stay fp32). bf16 has
fp32's exponent range, so its gradients need no scaling and it runs on CPUs too. fp16's narrow range
underflows small gradients: its losses are scaled up before the backward and the gradients scaled
back before clipping (`torch.amp.GradScaler`), and it runs on CUDA only, since CPU autocast to fp16
is slow and unscaled. Evaluation and latency run under the same autocast as training, so a trial
reports the accuracy and speed of the precision the model will be deployed in.

The device check belongs to the trial's start, not to `lmnas validate`: the driver that validates a
study may have no GPU while its workers do.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Iterable, TypeVar

import torch
from torch import nn

from trainers.contract import TrainerError
from trainers.options import check_precision

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

Moved = TypeVar("Moved", torch.Tensor, dict[str, torch.Tensor])


def check_device(precision: str, device: torch.device) -> None:
    """One line naming the option when this worker's device cannot run `precision`."""
    check_precision(precision)
    if precision == "fp16" and device.type != "cuda":
        raise TrainerError(f"option 'precision' is 'fp16' but this worker runs on {device.type}, not CUDA; "
                           "use 'bf16' (CPU or CUDA) or 'fp32'")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise TrainerError(f"option 'precision' is 'bf16' but {torch.cuda.get_device_name(device)} has no bf16 "
                           "arithmetic (it needs an Ampere or newer GPU); use 'fp16' or 'fp32'")


def autocast(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """The autocast region of `precision` on `device` (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


class MixedPrecision:
    """One training run's precision on its device: the autocast region, and for fp16 the gradient scaler."""

    def __init__(self, precision: str, device: torch.device) -> None:
        check_device(precision, device)
        self.precision = precision
        self.device = device
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast(self) -> AbstractContextManager[object]:
        return autocast(self.precision, self.device)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (scaled for fp16; `step` scales them back)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def state_dict(self) -> dict[str, Any]:
        """What a progress save keeps: fp16's loss scale and its growth count (nothing otherwise)."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue with a saved loss scale, so a resumed fp16 run steps as the uninterrupted one."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter], max_norm: float | None) -> None:
        """Clip the accumulated gradients of `params` to `max_norm` (None: no clipping) and take the
        optimiser's step; for fp16 a step whose gradients overflowed is skipped and the loss scale lowered."""
        if self.scaler is None:
            clip(params, max_norm)
            optimizer.step()
            return
        self.scaler.unscale_(optimizer)
        clip(params, max_norm)
        self.scaler.step(optimizer)
        self.scaler.update()


def clip(params: Iterable[nn.Parameter], max_norm: float | None) -> None:
    if max_norm is not None:
        nn.utils.clip_grad_norm_(list(params), max_norm)


def to_device(batch: Moved, device: torch.device) -> Moved:
    """A batch (a tensor, or a mapping of them) on `device`; to a GPU through pinned memory without
    waiting, so the copy overlaps the work already queued there."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}  # type: ignore[return-value]
    if device.type != "cuda" or batch.device.type != "cpu":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)


#: full precision, on any device (fp32 has no autocast and no scaler): the default of a loop not told otherwise.
FP32 = MixedPrecision("fp32", torch.device("cpu"))
