"""SMALL / LAYER / MEDIUM / LARGE: encoding, typed architectures, sampling and exact parameter counts."""
from __future__ import annotations

import numpy as np
import pytest
from transformers import BertConfig, BertForSequenceClassification

from search_spaces.base import InvalidArchitectureError, SearchSpace
from search_spaces.pruning import LargeSpace, LayerSpace, MediumSpace, PruningSpace, SmallSpace
from search_spaces.sub_network import EncoderShape, IllegalSubNetworkError, SubNetwork, count_params
from trainers.supernet.families import space_for

TINY = dict(num_layers=2, num_heads=4, intermediate_size=64, hidden_size=32, vocab_size=120, max_position=40, type_vocab=2, num_labels=3)
SPACES: list[type[PruningSpace]] = [SmallSpace, LayerSpace, MediumSpace, LargeSpace]


def hf_params(layers: int, units: int) -> int:
    """Parameters of a materialised BertForSequenceClassification of the TINY sizes."""
    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=units, max_position_embeddings=40, num_labels=3)
    return sum(p.numel() for p in BertForSequenceClassification(cfg).parameters())


def test_minilm_defaults_count_minilm_l6_exactly() -> None:
    # all-MiniLM-L6-v2 (BertModel with pooler) has 22,713,216 parameters; a 2-label head adds 770.
    space = SmallSpace()
    assert space.metrics(space.largest()) == {"params": 22_713_986, "params_non_embedding": 10_796_162}


@pytest.mark.parametrize("layers,units", [(2, 64), (1, 64), (2, 17), (0, 64)])
def test_small_params_match_a_materialised_bert(layers: int, units: int) -> None:
    space = SmallSpace(**TINY)
    assert space.metrics({"num_layers": layers, "num_heads": 4, "num_units": units})["params"] == hf_params(layers, units)


def test_non_embedding_params_leave_out_exactly_the_embedding_tables() -> None:
    space = MediumSpace(**TINY)
    m = space.metrics(space.largest())
    assert m["params"] - m["params_non_embedding"] == (120 + 40 + 2) * 32


def test_skipped_blocks_cost_nothing() -> None:
    shape = EncoderShape(**TINY)
    none = count_params(shape, SubNetwork.first([0, 0], [0, 0]))
    attn_only = count_params(shape, SubNetwork.first([1, 0], [0, 0]))
    # one head: Q, K, V (8 x 32 + 8 each), output (32 x 8 + 32), LayerNorm (2 x 32).
    assert attn_only["params"] - none["params"] == 3 * (8 * 32 + 8) + 32 * 8 + 32 + 64


def test_architectures_keep_the_first_heads_and_units() -> None:
    small = SmallSpace(**TINY).architecture({"num_layers": 1, "num_heads": 2, "num_units": 3})
    assert small == SubNetwork(((0, 1), ()), ((0, 1, 2), ()))
    assert small.layer_mask == (True, False)
    medium = MediumSpace(**TINY).architecture({"heads_0": 0, "heads_1": 4, "units_0": 5, "units_1": 0})
    assert medium.num_heads == (0, 4) and medium.num_units == (5, 0)
    layer = LayerSpace(**TINY).architecture({"layer_0": 0, "layer_1": 1})
    assert layer.num_heads == (0, 4) and layer.num_units == (0, 64) and layer.layer_mask == (False, True)


def test_large_selects_arbitrary_heads_and_units() -> None:
    space = LargeSpace(**TINY)
    config = dict.fromkeys((d.name for d in space.dims), 0) | {"head_0_1": 1, "head_0_3": 1, "unit_1_5": 1, "unit_1_63": 1}
    assert space.architecture(config) == SubNetwork(((1, 3), ()), ((), (5, 63)))


def test_layer_sampling_is_uniform_over_the_number_of_layers() -> None:
    space = LayerSpace(**{**TINY, "num_layers": 4})
    rng = np.random.default_rng(0)
    kept = np.bincount([sum(space.sample(rng).values()) for _ in range(1000)], minlength=5)
    # Independent bits would give 1/16 : 4/16 : 6/16 : 4/16 : 1/16; uniform gives 1/5 each.
    assert np.all(np.abs(kept / 1000 - 0.2) < 0.05), kept


def test_large_sampling_is_uniform_over_params_unlike_independent_bits() -> None:
    space = LargeSpace(**TINY)
    rng = np.random.default_rng(0)
    low, high = (space.metrics(c)["params_non_embedding"] for c in (space.smallest(), space.largest()))

    def quartiles(sample: object) -> np.ndarray:
        p = np.array([space.metrics(sample(rng))["params_non_embedding"] for _ in range(400)])  # type: ignore[operator]
        return np.histogram((p - low) / (high - low), bins=4, range=(0, 1))[0] / len(p)

    assert np.all(np.abs(quartiles(space.sample) - 0.25) < 0.07)
    independent = quartiles(lambda r: SearchSpace.sample(space, r))
    assert independent[1] + independent[2] > 0.95  # the mid-size bias the paper describes


def test_large_neighbours_are_all_single_flips_made_on_demand() -> None:
    space = LargeSpace(**TINY)
    config = space.sample(np.random.default_rng(3))
    flips = space.neighbours(config)
    assert len(flips) == len(space.dims)
    for i in (0, 7, len(flips) - 1):
        diff = [k for k in config if flips[i][k] != config[k]]
        assert diff == [space.dims[i].name] and space.is_valid(flips[i])
    assert flips[2:4] == [flips[2], flips[3]]
    assert sum(1 for _ in flips) == len(flips)


@pytest.mark.parametrize("cls", SPACES)
def test_from_hf_config_matches_the_explicit_sizes(cls: type[PruningSpace]) -> None:
    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=40, num_labels=3)
    assert space_for(cls, cfg) == cls(**TINY)
    assert space_for(cls, cfg.to_dict(), num_labels=5).shape.num_labels == 5


def test_bad_sizes_name_the_field() -> None:
    with pytest.raises(ValueError, match="hidden_size .*multiple of num_heads"):
        SmallSpace(hidden_size=100, num_heads=12)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        MediumSpace(num_layers=0)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"num_layers": 3, "num_heads": 1, "num_units": 1}, "num_layers=3 is outside integers 0..2"),
        ({"num_layers": 1, "num_heads": 0, "num_units": 1}, "num_heads=0 is outside integers 1..4"),
        ({"num_layers": 1, "num_heads": 1}, r"missing \['num_units'\]"),
        ({"num_layers": 1.0, "num_heads": 1, "num_units": 1}, "num_layers=1.0"),
    ],
)
def test_invalid_small_configs_are_refused(config: dict, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=message):
        SmallSpace(**TINY).architecture(config)


def test_sub_networks_are_validated() -> None:
    with pytest.raises(IllegalSubNetworkError, match="ascending"):
        SubNetwork(((1, 0),), ((),))
    with pytest.raises(IllegalSubNetworkError, match="same number of layers"):
        SubNetwork(((),), ((), ()))
    shape = EncoderShape(**TINY)
    with pytest.raises(IllegalSubNetworkError, match="keeps head 4; the encoder has heads 0..3"):
        SubNetwork.first([5, 0], [0, 0]).fits(shape)
    with pytest.raises(IllegalSubNetworkError, match="3 layers; the encoder has 2"):
        SubNetwork.first([1, 1, 1], [1, 1, 1]).fits(shape)
    assert issubclass(IllegalSubNetworkError, InvalidArchitectureError)


def test_sandwich_extremes_are_the_empty_and_the_full_network() -> None:
    shape = EncoderShape(**TINY)
    for cls in SPACES:
        space = cls(**TINY)
        assert space.architecture(space.largest()) == SubNetwork.full(shape), cls.name
        assert not any(space.architecture(space.smallest()).layer_mask), cls.name


def test_configurations_of_one_network_share_a_key() -> None:
    small = SmallSpace()
    empty = {small.network_key({"num_layers": 0, "num_heads": h, "num_units": u}) for h, u in ((1, 1), (12, 1536), (5, 7))}
    assert len(empty) == 1
    assert small.network_key({"num_layers": 2, "num_heads": 3, "num_units": 64}) != \
        small.network_key({"num_layers": 2, "num_heads": 4, "num_units": 64})
    medium = MediumSpace(num_layers=2, num_heads=2, intermediate_size=4, hidden_size=8)
    base = {"heads_0": 2, "heads_1": 0, "units_0": 4, "units_1": 0}
    assert medium.network_key(base) == medium.network_key(dict(reversed(list(base.items()))))
    assert medium.network_key(base) != medium.network_key({**base, "units_1": 1})
