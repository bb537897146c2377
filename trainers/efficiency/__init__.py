"""Efficiency measures shared by every trainer: parameters, FLOPs and measured latency, and the
host-wide lock that keeps latency measurements of neighbouring trials apart."""
from trainers.efficiency.flops import FlopBreakdown, ForwardShape, count_flops, encoder_flops
from trainers.efficiency.hardware import device_for_worker, hardware_label
from trainers.efficiency.host_lock import Hold, exclusive_measurement, host_busy
from trainers.efficiency.inputs import token_inputs
from trainers.efficiency.latency import Latency, LatencyOptions, measure_latency
from trainers.efficiency.params import ParamCount, count_params

__all__ = [
    "FlopBreakdown",
    "ForwardShape",
    "Hold",
    "Latency",
    "LatencyOptions",
    "ParamCount",
    "count_flops",
    "count_params",
    "device_for_worker",
    "encoder_flops",
    "exclusive_measurement",
    "hardware_label",
    "host_busy",
    "measure_latency",
    "token_inputs",
]
