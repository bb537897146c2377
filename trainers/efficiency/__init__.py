"""Efficiency measures shared by every trainer: parameters, FLOPs and measured latency."""
from trainers.efficiency.flops import EncoderShape, FlopBreakdown, count_flops, encoder_flops
from trainers.efficiency.hardware import device_for_worker, hardware_label
from trainers.efficiency.inputs import token_inputs
from trainers.efficiency.latency import Latency, LatencyOptions, measure_latency
from trainers.efficiency.params import ParamCount, count_params

__all__ = [
    "EncoderShape",
    "FlopBreakdown",
    "Latency",
    "LatencyOptions",
    "ParamCount",
    "count_flops",
    "count_params",
    "device_for_worker",
    "encoder_flops",
    "hardware_label",
    "measure_latency",
    "token_inputs",
]
