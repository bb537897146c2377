"""Which device a worker measures on, and a label naming that hardware.

Latency is only comparable between trials measured on the same hardware; on a heterogeneous Ray
cluster every measurement therefore carries the name of the CPU model or accelerator it ran on
(autodistill.txt, §3.4: performance is measured on the target hardware, not estimated).
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

# Keys naming the processor in /proc/cpuinfo: x86 uses "model name"; some ARM kernels only give
# "Model" or "Hardware".
_CPUINFO_KEYS = ("model name", "Model", "Hardware")


def device_for_worker() -> torch.device:
    """The device this process should run on: its (first visible) CUDA GPU when it has one, else CPU.

    Ray sets `CUDA_VISIBLE_DEVICES` to the GPUs assigned to a worker, so the current CUDA device is
    the worker's own.
    """
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model from /proc/cpuinfo, else what `platform` knows, else 'unknown cpu'."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for key in _CPUINFO_KEYS:
        for line in lines:
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown cpu"


def hardware_label(device: torch.device | str) -> str:
    """A human-readable name of the hardware behind `device`, e.g. 'NVIDIA H100 80GB HBM3'."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return cpu_model_name()
    return f"{device.type} ({platform.machine()})"
