"""Efficiency measures: parameter counts, analytic FLOPs checked against torch's counter, latency."""
from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification, BertModel

from trainers.efficiency import (
    ForwardShape,
    LatencyOptions,
    count_flops,
    count_params,
    device_for_worker,
    encoder_flops,
    hardware_label,
    measure_latency,
    token_inputs,
)
from trainers.efficiency.hardware import cpu_model_name
from trainers.efficiency.host_lock import LOCK_DIR_ENV
from trainers.efficiency.latency import summarise


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measurements here take the host lock in a directory of their own, so a study running on the
    same machine neither waits for them nor is disturbed (the lock itself: test_measure_lock.py)."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(hidden: int = 32, heads: int = 4, ffn: int = 48, layers: int = 2, **kw: object) -> BertConfig:
    return BertConfig(
        vocab_size=100,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        **kw,
    )


def resize_layers(model: nn.Module, heads: tuple[int, ...], ffn: tuple[int, ...], head_dim: int) -> None:
    """Give each encoder layer its own head count and FFN width (fresh random weights)."""
    bert = model.bert if hasattr(model, "bert") else model
    d = bert.config.hidden_size
    for layer, h, f in zip(bert.encoder.layer, heads, ffn):
        inner = h * head_dim
        attn = layer.attention
        attn.self.query, attn.self.key, attn.self.value = (nn.Linear(d, inner) for _ in range(3))
        attn.output.dense = nn.Linear(inner, d)
        layer.intermediate.dense = nn.Linear(d, f)
        layer.output.dense = nn.Linear(f, d)


# ---- parameters -------------------------------------------------------------------------------


class TiedModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 3)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight


def test_params_hand_count_linear_and_embedding() -> None:
    model = nn.Sequential(nn.Embedding(7, 5), nn.Linear(5, 3), nn.LayerNorm(3))
    count = count_params(model)
    assert (count.total, count.embedding, count.non_embedding) == (35 + 18 + 6, 35, 24)
    model[1].weight.requires_grad_(False)
    count = count_params(model)
    assert (count.trainable, count.trainable_embedding, count.trainable_non_embedding) == (35 + 3 + 6, 35, 9)
    model[0].weight.requires_grad_(False)
    assert count_params(model).trainable_embedding == 0


def test_params_tied_weights_count_once_as_embedding() -> None:
    count = count_params(TiedModel())
    assert (count.total, count.embedding, count.non_embedding) == (40 + 15, 40, 15)


def test_params_tiny_bert_matches_hand_count() -> None:
    v, p, t, d, i, layers, labels = 100, 64, 2, 32, 48, 2, 3
    model = BertForSequenceClassification(tiny_config(num_labels=labels))
    embedding = (v + p + t) * d
    per_layer = 4 * (d * d + d) + 2 * d + (d * i + i) + (i * d + d) + 2 * d
    non_embedding = 2 * d + layers * per_layer + (d * d + d) + (d * labels + labels)
    count = count_params(model)
    assert count.embedding == embedding
    assert count.non_embedding == non_embedding
    assert count.as_metrics() == {"params": float(embedding + non_embedding), "params_non_embedding": float(non_embedding)}


# ---- FLOPs --------------------------------------------------------------------------------------

SHAPES = [
    # (hidden, config heads, heads per layer, ffn per layer, seq, batch, labels, pooler, attention)
    (32, 4, (4, 4), (48, 48), 16, 2, 3, True, "sdpa"),
    (48, 4, (3, 1), (20, 64), 24, 1, 2, True, "eager"),
    (32, 4, (2, 4, 1), (16, 8, 40), 8, 3, 0, True, "sdpa"),
    (32, 2, (1, 2), (32, 0), 12, 2, 0, False, "eager"),
]


def build(hidden: int, cfg_heads: int, heads: tuple[int, ...], ffn: tuple[int, ...], labels: int, pooler: bool, attn: str) -> nn.Module:
    config = tiny_config(hidden, cfg_heads, max(ffn), len(heads), num_labels=max(labels, 2), attn_implementation=attn)
    model = BertForSequenceClassification(config) if labels else BertModel(config, add_pooling_layer=pooler)
    resize_layers(model, heads, ffn, hidden // cfg_heads)
    return model


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # the layer with 0 FFN units
@pytest.mark.parametrize("hidden,cfg_heads,heads,ffn,seq,batch,labels,pooler,attn", SHAPES)
def test_encoder_flops_equal_torch_counter(
    hidden: int, cfg_heads: int, heads: tuple[int, ...], ffn: tuple[int, ...], seq: int, batch: int,
    labels: int, pooler: bool, attn: str,
) -> None:
    torch.manual_seed(0)
    model = build(hidden, cfg_heads, heads, ffn, labels, pooler, attn)
    shape = ForwardShape(hidden, hidden // cfg_heads, heads, ffn, seq_len=seq, batch=batch, num_labels=labels, pooler=pooler)
    inputs = token_inputs(100)(batch, seq, torch.device("cpu"))
    expected = encoder_flops(shape)
    assert count_flops(model, inputs) == expected.total
    if attn == "eager":
        # eager attention runs plain matmuls, so torch's own counter checks each part on its own.
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model.eval()(**inputs)
        by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
        assert by_op.get("aten.addmm", 0) == expected.linear
        assert by_op.get("aten.bmm", 0) == expected.attention_matmul


def test_encoder_flops_hand_values_and_from_config() -> None:
    config = tiny_config(num_labels=3)
    shape = ForwardShape.from_config(config, seq_len=10, batch=2)
    assert shape == ForwardShape(32, 8, (4, 4), (48, 48), seq_len=10, batch=2, num_labels=3)
    f = encoder_flops(shape)
    assert f.attention_proj == 2 * 4 * 2 * 20 * 32 * 32
    assert f.attention_matmul == 2 * 2 * (2 * 2 * 4 * 10 * 10 * 8)
    assert f.ffn == 2 * 2 * (2 * 20 * 32 * 48)
    assert (f.pooler, f.classifier) == (2 * 2 * 32 * 32, 2 * 2 * 32 * 3)
    zero_heads = encoder_flops(ForwardShape(32, 8, (0,), (0,), seq_len=10, num_labels=0, pooler=False))
    assert zero_heads.total == 0


def test_count_flops_restores_training_mode() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.5)).train()
    assert count_flops(model, torch.zeros(4, 6)) == 2 * 4 * 6 * 5
    assert model.training


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(heads_per_layer=(2,), ffn_per_layer=(4, 4)), "heads_per_layer and ffn_per_layer"),
        (dict(heads_per_layer=(-1,), ffn_per_layer=(4,)), "heads_per_layer"),
        (dict(heads_per_layer=(1,), ffn_per_layer=(-4,)), "ffn_per_layer"),
        (dict(heads_per_layer=(1,), ffn_per_layer=(4,), seq_len=0), "seq_len"),
        (dict(heads_per_layer=(1,), ffn_per_layer=(4,), num_labels=-1), "num_labels"),
    ],
)
def test_encoder_shape_rejects_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        ForwardShape(hidden=8, head_dim=4, **kwargs)


# ---- latency ------------------------------------------------------------------------------------


class Probe(nn.Module):
    """Records each forward's thread count, mode and inference mode; can sleep or fail."""

    def __init__(self, sleep_s: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.sleep_s, self.fail = sleep_s, fail
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((torch.get_num_threads(), self.training, torch.is_inference_mode_enabled()))
        if self.fail:
            raise RuntimeError("forward failed")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return self.lin(x)


def vectors(width: int):  # type: ignore[no-untyped-def]
    return lambda batch, seq, device: torch.randn(batch, seq, width, device=device)


def test_latency_counts_warmups_and_repeats_and_restores_state() -> None:
    torch.set_num_threads(2)
    model = Probe().train()
    lat = measure_latency(model, LatencyOptions(batch=2, seq_len=5, warmup=4, repeats=7, threads=1, min_sample_ms=0),
                          vectors(4))
    assert len(model.calls) == 4 + 7
    assert set(model.calls) == {(1, False, True)}
    assert torch.get_num_threads() == 2 and model.training and gc.isenabled()
    assert lat.n == 7 and (lat.batch, lat.seq_len, lat.threads) == (2, 5, 1)
    assert 0 < lat.median_ms <= lat.p90_ms and lat.mean_ms > 0 and lat.cv >= 0
    assert lat.device == "cpu" and lat.hardware == hardware_label("cpu") != ""
    assert lat.exclusive and lat.lock_wait_s >= 0  # the host lock is the default
    # The report's schema is unchanged: the lock's fields stay on the result.
    assert set(lat.as_metrics()) == {"latency_ms", "latency_p90_ms", "latency_cv"}


def test_latency_restores_state_when_forward_fails() -> None:
    torch.set_num_threads(2)
    model = Probe(fail=True).train()
    with pytest.raises(RuntimeError, match="forward failed"):
        measure_latency(model, LatencyOptions(threads=1), vectors(4))
    assert torch.get_num_threads() == 2 and model.training and gc.isenabled()


def test_latency_budget_stops_repeats_early() -> None:
    model = Probe(sleep_s=0.002)
    start = time.perf_counter()
    lat = measure_latency(model, LatencyOptions(warmup=1, repeats=100_000, budget_s=0.1), vectors(4))
    assert 3 <= lat.n < 1000 and time.perf_counter() - start < 5
    slow = measure_latency(Probe(sleep_s=0.01), LatencyOptions(warmup=0, repeats=50, budget_s=0.001), vectors(4))
    assert slow.n == 3


def test_one_thread_on_cpu_is_timed_by_its_own_cpu_clock() -> None:
    """Time the thread spends off the core (here asleep; on a shared machine, preempted by another
    trial's training) is not latency on the thread clock, and is on the wall clock."""
    opts = LatencyOptions(warmup=0, repeats=3, threads=1, exclusive=False)
    thread = measure_latency(Probe(sleep_s=0.02), opts, vectors(4))
    assert thread.clock == "thread" and thread.median_ms < 5
    assert thread.report()["latency_clock"] == "thread" and thread.report()["hardware"] == thread.hardware
    wall = measure_latency(Probe(sleep_s=0.02), dataclasses.replace(opts, clock="wall"), vectors(4))
    assert wall.clock == "wall" and wall.median_ms >= 20
    # Two threads: the calling thread's clock would miss the other's work, so the wall clock times it.
    assert measure_latency(Probe(sleep_s=0.02), dataclasses.replace(opts, threads=2), vectors(4)).clock == "wall"


def test_fast_forwards_are_timed_in_runs_of_a_few_milliseconds() -> None:
    """A forward of microseconds is timed in runs sized by the last warm-up; each sample is the mean."""
    model = Probe()
    lat = measure_latency(model, LatencyOptions(warmup=2, repeats=5, min_sample_ms=2.0, exclusive=False), vectors(4))
    assert lat.forwards_per_sample > 5 and len(model.calls) == 2 + 5 * lat.forwards_per_sample
    assert lat.median_ms < 2.0  # per forward, not per run
    slow = measure_latency(Probe(sleep_s=0.003), LatencyOptions(warmup=1, repeats=2, clock="wall", exclusive=False),
                           vectors(4))
    assert slow.forwards_per_sample == 1 and slow.median_ms >= 3


def test_bigger_model_measures_slower() -> None:
    width = 384
    big = nn.Sequential(*(nn.Linear(width, width) for _ in range(6)))  # ~227 MFLOPs at seq 128
    small = nn.Linear(8, 8)  # ~16 kFLOPs at seq 128
    opts = LatencyOptions(warmup=1, repeats=9)
    t_big = measure_latency(big, opts, vectors(width)).median_ms
    t_small = measure_latency(small, opts, vectors(8)).median_ms
    assert t_big > 10 * t_small


def test_latency_default_inputs_from_hf_config() -> None:
    model = BertForSequenceClassification(tiny_config())
    lat = measure_latency(model, LatencyOptions(seq_len=16, warmup=1, repeats=3))
    assert lat.n == 3 and lat.median_ms > 0
    with pytest.raises(ValueError, match="make_inputs"):
        measure_latency(nn.Linear(4, 4))


def test_summarise_known_values() -> None:
    median, mean, p90, cv = summarise([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (median, mean) == (3.0, 4.0)
    assert p90 == pytest.approx(7.6)
    assert cv == pytest.approx(12.5**0.5 / 4)
    assert summarise([2.0]) == (2.0, 2.0, 2.0, 0.0)


@pytest.mark.parametrize(
    "kwargs,field",
    [(dict(batch=0), "batch"), (dict(repeats=0), "repeats"), (dict(warmup=-1), "warmup"),
     (dict(threads=0), "threads"), (dict(budget_s=0.0), "budget_s"), (dict(min_repeats=0), "min_repeats"),
     (dict(lock_timeout_s=-1.0), "lock_timeout_s"), (dict(clock="cpu"), "clock"),
     (dict(min_sample_ms=-1.0), "min_sample_ms")],
)
def test_latency_options_reject_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        LatencyOptions(**kwargs)


def test_token_inputs_are_deterministic_and_shaped() -> None:
    a = token_inputs(50)(3, 7, torch.device("cpu"))
    b = token_inputs(50)(3, 7, torch.device("cpu"))
    assert a["input_ids"].shape == (3, 7) and torch.equal(a["input_ids"], b["input_ids"])
    assert int(a["input_ids"].max()) < 50 and bool(a["attention_mask"].all())


# ---- hardware -----------------------------------------------------------------------------------


def test_cpu_model_name_reads_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz\nflags\t: sse\n")
    assert cpu_model_name(x86) == "Example CPU @ 2.00GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nModel\t: Example Board Rev 1.4\n")
    assert cpu_model_name(arm) == "Example Board Rev 1.4"
    assert cpu_model_name(tmp_path / "missing") != ""


def test_device_for_worker_prefers_cuda() -> None:
    assert device_for_worker().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_latency_on_cuda_labels_the_gpu() -> None:
    model = nn.Linear(64, 64).to(device_for_worker())
    lat = measure_latency(model, LatencyOptions(warmup=2, repeats=5), vectors(64))
    assert lat.device.startswith("cuda") and lat.hardware == torch.cuda.get_device_name()
