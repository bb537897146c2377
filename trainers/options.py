"""Typed trainer options built from a study's `trainer.options` mapping, and the option groups trainers
share (a trainer's option class inherits them, so every trainer spells, defaults and checks them alike):
`PrecisionOptions` for every trainer that trains or scores a network, `LatencyMeasureOptions` for a
trainer that times its model, `DistillCorpusOptions` for one that distils from a teacher on unlabelled
text."""
from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, TypeVar

if TYPE_CHECKING:  # the orchestrator reads this module to build options; it must not load torch
    from trainers.efficiency.latency import LatencyOptions

T = TypeVar("T")

#: the arithmetic a trainer trains, evaluates and times in (`trainers/precision.py`).
PRECISIONS = ("fp32", "bf16", "fp16")
Precision = Literal["fp32", "bf16", "fp16"]


def build_options(cls: type[T], options: Mapping[str, Any]) -> T:
    """`cls(**options)` for a frozen dataclass, with one-line errors for unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for key, value in options.items():
        if not type_matches(value, hints[key]):
            raise ValueError(f"option {key!r} must be {type_name(hints[key])}, got {value!r}")
    return cls(**options)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"option 'precision' must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")


@dataclasses.dataclass(frozen=True)
class PrecisionOptions:
    """The arithmetic of training, evaluation and latency: "fp32", or autocast to "bf16" (CPU and CUDA)
    or "fp16" (CUDA only, with a gradient scaler). Whether the worker can run it is checked when a
    trial starts (`trainers/precision.py`): the driver that validates a study may have no GPU."""

    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision)


@dataclasses.dataclass(frozen=True)
class LatencyMeasureOptions(PrecisionOptions):
    """How a trial's model is timed on its worker (`trainers/efficiency/latency.py`)."""

    latency_batch: int = 1
    latency_seq_len: int = 128
    latency_repeats: int = 20
    latency_threads: int = 1
    #: "auto" (the thread's CPU clock with one thread on a CPU, else the wall clock), "wall" or "thread".
    latency_clock: str = "auto"

    #: a trainer whose latency is optional sets this, and `latency_repeats: 0` then measures none.
    latency_optional: ClassVar[bool] = False

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("latency_batch", "latency_seq_len", "latency_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        least_repeats = 0 if self.latency_optional else 1
        if self.latency_repeats < least_repeats:
            raise ValueError(f"option 'latency_repeats' must be >= {least_repeats}, got {self.latency_repeats}")
        if self.latency_clock not in ("auto", "wall", "thread"):
            raise ValueError(f"option 'latency_clock' must be one of auto, wall, thread; got {self.latency_clock!r}")

    def latency_options(self) -> LatencyOptions:
        from trainers.efficiency.latency import LatencyOptions  # torch, only where a model is timed

        return LatencyOptions(batch=self.latency_batch, seq_len=self.latency_seq_len, repeats=self.latency_repeats,
                              threads=self.latency_threads, clock=self.latency_clock,  # type: ignore[arg-type]
                              precision=self.precision)


@dataclasses.dataclass(frozen=True)
class DistillCorpusOptions:
    """The teacher a student learns from and the unlabelled text it learns on."""

    #: a model asset name (`minilm-l6`, `mpnet-base`) or a local model folder.
    teacher: str = "minilm-l6"
    #: a language-modelling data source for `trainers.data.load_data` (asset name, folder or file).
    corpus: str = "wikitext2"
    seq_len: int = 64
    #: training blocks of `seq_len` tokens read from the corpus's train split.
    corpus_blocks: int = 2000

    def __post_init__(self) -> None:
        # the floor of FinetuneOptions.max_length too: a shorter block is mostly special tokens
        if self.seq_len < 8:
            raise ValueError(f"option 'seq_len' must be >= 8, got {self.seq_len}")
        if self.corpus_blocks < 1:
            raise ValueError(f"option 'corpus_blocks' must be >= 1, got {self.corpus_blocks}")


def type_matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(type_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(type_matches(v, inner) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " or ".join(type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))
