"""The AutoDistill student design space (AutoDistill, Zhang et al. 2022, §3.2, Table 1, Fig. 2).

Five dimensions describe one building block (hidden size, bottleneck size, attention heads,
intermediate size, stacked FFN count); the student stacks `num_blocks` copies of it, as the paper
stacks 24. The paper's Table 1 prints hidden size 246, an obvious misprint in a list of powers and
multiples of 128 (128, 246, 384, 512); the `paper` preset uses 256. The `cpu` preset keeps the same
shape of space at widths a 2-core machine can distil in minutes, and 6 blocks so that the
latency at the paper's sequence length of 128 grows with the block's width (batch 1, one thread:
about 2-9 ms, rising with forward FLOPs; `benchmarks/flash_fidelity.py` prints the rank correlation).

`StudentArch` is the buildable description shared with the student template
(`trainers/autodistill/student.py`); `count_params` counts exactly the parameters that template
creates, so the analytic `params` metric equals the built student's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from search_spaces.base import InvalidArchitectureError, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, Dim

Preset = Literal["paper", "cpu"]

#: per-dimension value lists of each preset, and its number of blocks.
PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "paper": {
        "hidden_size": (128, 256, 384, 512),
        "bottleneck_size": (64, 96, 128, 160),
        "num_heads": (1, 2, 4, 8),
        "intermediate_size": (384, 512, 640),
        "num_ffn": (2, 4, 6),
        "num_blocks": (24,),
    },
    "cpu": {
        "hidden_size": (96, 128, 192, 256),
        "bottleneck_size": (32, 48, 64, 96),
        "num_heads": (1, 2, 4, 8),
        "intermediate_size": (64, 128, 192),
        "num_ffn": (1, 2, 3),
        "num_blocks": (6,),
    },
}

BLOCK_KEYS = ("hidden_size", "bottleneck_size", "num_heads", "intermediate_size", "num_ffn")


@dataclass(frozen=True)
class StudentArch:
    """A buildable student: the block shape, the depth and the embedding table sizes."""

    hidden_size: int
    bottleneck_size: int
    num_heads: int
    intermediate_size: int
    num_ffn: int
    num_blocks: int
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2

    def __post_init__(self) -> None:
        for name in ("hidden_size", "bottleneck_size", "num_heads", "intermediate_size", "num_blocks",
                     "vocab_size", "max_positions", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArchitectureError(f"autodistill: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.num_ffn, int) or isinstance(self.num_ffn, bool) or self.num_ffn < 1:
            raise InvalidArchitectureError(
                f"autodistill: num_ffn must be an integer >= 1 (a block needs at least one FFN), got {self.num_ffn!r}"
            )
        if self.bottleneck_size % self.num_heads:
            raise InvalidArchitectureError(
                f"autodistill: num_heads={self.num_heads} must divide bottleneck_size={self.bottleneck_size} "
                "(attention runs on the bottleneck)"
            )

    @property
    def head_size(self) -> int:
        return self.bottleneck_size // self.num_heads


def count_params(arch: StudentArch) -> dict[str, int]:
    """Parameters of the student encoder (embeddings + blocks; task heads are separate modules)."""
    h, b, m = arch.hidden_size, arch.bottleneck_size, arch.intermediate_size
    linear = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731  (weight + bias)
    norm = lambda n: 2 * n  # noqa: E731  (LayerNorm weight + bias)
    ffn = linear(b, m) + linear(m, b) + norm(b)
    block = (
        linear(h, b) + norm(b)  # bottleneck in
        + 4 * linear(b, b) + norm(b)  # q, k, v, output projection; post-attention norm
        + arch.num_ffn * ffn
        + linear(b, h) + norm(h)  # bottleneck out, residual norm on the hidden size
    )
    # Non-embedding means everything but the embedding tables, the embedding LayerNorm included
    # (the project-wide definition, trainers/efficiency/params.py).
    tables = (arch.vocab_size + arch.max_positions + arch.type_vocab_size) * h
    non_embedding = norm(h) + arch.num_blocks * block
    return {"params": tables + non_embedding, "params_non_embedding": non_embedding}


class AutoDistillSpace(SearchSpace):
    """Table 1's five block dimensions (plus `num_blocks` when more than one depth is given).

    Any value list may be overridden; a combination that cannot be built (heads not dividing the
    bottleneck) is refused by `check` and never sampled.
    """

    name = "autodistill"

    def __init__(
        self,
        preset: Preset = "cpu",
        hidden_size: Sequence[int] | None = None,
        bottleneck_size: Sequence[int] | None = None,
        num_heads: Sequence[int] | None = None,
        intermediate_size: Sequence[int] | None = None,
        num_ffn: Sequence[int] | None = None,
        num_blocks: int | Sequence[int] | None = None,
        vocab_size: int = 30522,
        max_positions: int = 512,
        type_vocab_size: int = 2,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        given = {
            "hidden_size": hidden_size, "bottleneck_size": bottleneck_size, "num_heads": num_heads,
            "intermediate_size": intermediate_size, "num_ffn": num_ffn,
            "num_blocks": [num_blocks] if isinstance(num_blocks, int) else num_blocks,
        }
        self.preset = preset
        self.values: dict[str, tuple[int, ...]] = {}
        for key, default in PRESETS[preset].items():
            chosen = given[key]
            values = tuple(sorted(chosen)) if chosen is not None else default
            if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
                raise ValueError(f"{key} must be a non-empty list of positive integers, got {chosen!r}")
            self.values[key] = values
        for key, value in (("vocab_size", vocab_size), ("max_positions", max_positions),
                           ("type_vocab_size", type_vocab_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        self.vocab_size = vocab_size
        self.max_positions = max_positions
        self.type_vocab_size = type_vocab_size
        keys = BLOCK_KEYS + (("num_blocks",) if len(self.values["num_blocks"]) > 1 else ())
        self._dims: tuple[Dim, ...] = tuple(ChoiceDim(k, self.values[k], ordered=True) for k in keys)
        if not self._buildable_pairs():
            raise ValueError("no num_heads value divides any bottleneck_size value: no student is buildable")

    @property
    def dims(self) -> tuple[Dim, ...]:
        return self._dims

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"preset": self.preset}
        for key, values in self.values.items():
            if values != PRESETS[self.preset][key]:
                opts[key] = values[0] if key == "num_blocks" and len(values) == 1 else list(values)
        for key in ("vocab_size", "max_positions", "type_vocab_size"):
            opts[key] = getattr(self, key)
        return opts

    def architecture(self, config: Mapping[str, Any]) -> StudentArch:
        """The buildable student of a configuration (raises InvalidArchitectureError)."""
        unknown = sorted(set(config) - {d.name for d in self.dims})
        missing = [d.name for d in self.dims if d.name not in config]
        if missing or unknown:
            raise InvalidArchitectureError(
                f"autodistill: configuration keys must be {[d.name for d in self.dims]}; missing {missing}, unknown {unknown}"
            )
        blocks = config.get("num_blocks", self.values["num_blocks"][0])
        return StudentArch(
            **{k: to_python(config[k]) for k in BLOCK_KEYS},
            num_blocks=to_python(blocks),
            vocab_size=self.vocab_size,
            max_positions=self.max_positions,
            type_vocab_size=self.type_vocab_size,
        )

    def check(self, config: Mapping[str, Any]) -> None:
        # Buildability first, so a student that cannot exist gets the specific reason, not a range error.
        self.architecture(config)
        super().check(config)

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in count_params(self.architecture(config)).items()}

    def smallest(self) -> dict[str, Any]:
        return self._extreme_config(min)

    def largest(self) -> dict[str, Any]:
        return self._extreme_config(max)

    def _extreme_config(self, pick: Any) -> dict[str, Any]:
        # Head count does not change the size; take the extreme bottleneck that some head count divides.
        bottleneck, heads = pick(self._buildable_pairs())
        config = {d.name: pick(d.choices) for d in self.dims}  # type: ignore[union-attr]
        config.update(bottleneck_size=bottleneck, num_heads=heads)
        self.check(config)
        return config

    def _buildable_pairs(self) -> list[tuple[int, int]]:
        """(bottleneck_size, num_heads) pairs where the heads divide the bottleneck."""
        return [(b, h) for b in self.values["bottleneck_size"] for h in self.values["num_heads"] if b % h == 0]
