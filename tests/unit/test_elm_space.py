"""The ELM search space: blocks only by default (what SPOS trained), exact analytic parameters, refusals
with one line, cap-aware moves (most tests use elastic widths and heads, which exercise every rule)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from search_spaces.base import InvalidArchitectureError
from search_spaces.elm import BLOCK_KINDS, ElmArch, ElmSpace, LayerChoice, count_params
from trainers.efficiency import count_params as measure
from trainers.elm.supernet import ElmModel, ElmSuperNet

WIDTHS = [[8, 16, 24, 8, 16, 32], [24, 8, 8, 32, 8, 16]]
TINY = dict(num_layers=2, hidden_size=32, num_heads=4, inner_size=8, vocab_size=120, max_positions=40, ffn_step=8,
            ffn_widths=WIDTHS, elastic=["ffn", "heads"])


def space(**overrides: object) -> ElmSpace:
    return ElmSpace(**{**TINY, **overrides})  # type: ignore[arg-type]


def config(*layers: tuple[str, int, int]) -> dict[str, object]:
    out: dict[str, object] = {}
    for i, (kind, ffn, heads) in enumerate(layers):
        out |= {f"block_{i}": kind, f"ffn_{i}": ffn, f"heads_{i}": heads}
    return out


def all_configs(s: ElmSpace) -> list[dict[str, object]]:
    return [config(*genes) for genes in itertools.product(*(s.layer_options(i) for i in range(2)))]


def test_analytic_params_equal_the_built_and_the_extracted_model() -> None:
    s = space()
    supernet = ElmSuperNet(s.shape, WIDTHS)
    rng = np.random.default_rng(0)
    for _ in range(8):
        c = s.sample(rng)
        arch = s.architecture(c)
        expected = s.metrics(c)
        for model in (ElmModel(arch), supernet.extract_sub_network(arch)):
            counted = measure(model)
            assert (counted.total, counted.non_embedding) == (expected["params"], expected["params_non_embedding"])


def test_every_block_kind_is_counted_exactly() -> None:
    s = space()
    for kind in BLOCK_KINDS:
        arch = s.architecture(config((kind, 8, 2), (kind, 8, 1)))
        assert measure(ElmModel(arch)).total == count_params(arch)["params"]


def test_sharing_variants_are_smaller_by_one_projection() -> None:
    s = space()
    sizes = {k: s.metrics(config((k, 8, 4), ("bert", 8, 4)))["params"] for k in BLOCK_KINDS}
    h, b = 32, 8
    assert sizes["bert"] - sizes["bert_qv"] == sizes["bert"] - sizes["bert_kv"] == h * h + h
    assert sizes["mobile"] - sizes["mobile_kv"] == b * b + b
    assert sizes["mobile"] < sizes["bert"]


@pytest.mark.parametrize("bad, words", [
    (config(("transformer", 8, 4), ("bert", 8, 4)), "block_0"),
    (config(("bert", 16, 4), ("bert", 8, 4)), "ffn_0=16 exceeds the bert block's current width 8"),
    (config(("bert", 8, 4), ("mobile_kv", 24, 4)), "ffn_1=24 exceeds the mobile_kv block's current width 16"),
    (config(("bert", 12, 4), ("bert", 8, 4)), "ffn_0"),
    (config(("bert", 8, 3), ("bert", 8, 4)), "heads_0"),
])
def test_a_block_width_or_head_count_outside_the_space_is_refused_in_one_line(bad: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidArchitectureError) as err:
        space().check(bad)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_head_count_must_divide_the_chosen_blocks_attention_width() -> None:
    # hidden 24 takes 3 or 4 heads; the MobileBERT bottleneck of 6 takes 3 but not 4.
    s = ElmSpace(num_layers=1, hidden_size=24, num_heads=4, inner_size=6, vocab_size=50, max_positions=16, ffn_step=6,
                 elastic=["ffn", "heads"])
    s.check(config(("bert", 6, 4)))
    s.check(config(("mobile", 6, 3)))
    with pytest.raises(InvalidArchitectureError, match="heads_0=4 must divide the mobile block's attention width 6"):
        s.check(config(("mobile", 6, 4)))
    rng = np.random.default_rng(0)
    for _ in range(50):
        s.check(s.sample(rng))


@pytest.mark.parametrize("options, words", [
    ({"max_params": 100}, "max_params=100 is below the smallest architecture"),
    ({"ffn_widths": [[8] * 6]}, "ffn_widths must be 2 lists"),
    ({"ffn_widths": [[8] * 6, [8, 8, 8, 8, 8, 12]]}, "ffn_widths[1] mobile_kv=12 must be a positive multiple"),
    ({"head_counts": [3]}, "head_counts must be a non-empty list drawn from [1, 2, 4]"),
    ({"cap_metric": "flops"}, "cap_metric must be"),
])
def test_bad_space_options_are_refused_in_one_line(options: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError) as err:
        space(**options)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_cap_bounds_samples_mutations_and_crossovers() -> None:
    sizes = sorted(space().metrics(c)["params"] for c in all_configs(space()))
    cap = sizes[len(sizes) // 4]  # a quarter of the members fit
    s = space(max_params=cap)
    rng = np.random.default_rng(1)
    members = [s.sample(rng) for _ in range(20)]
    for a, b in zip(members, members[1:]):
        for child in (s.mutate(a, rng), s.crossover(a, b, rng)):
            s.check(child)
            assert s.metrics(child)["params"] <= cap
    over = max(all_configs(s), key=lambda c: space().metrics(c)["params"])
    with pytest.raises(InvalidArchitectureError, match="exceed max_params"):
        s.check(over)


def test_largest_under_a_cap_is_the_biggest_member_that_fits() -> None:
    sizes = [space().metrics(c)["params"] for c in all_configs(space())]
    for cap in sorted(set(sizes))[5::40]:
        s = space(max_params=cap)
        assert s.metrics(s.largest())["params"] == max(p for p in sizes if p <= cap)
        assert s.metrics(s.smallest())["params"] == min(sizes)


def test_crossover_swaps_whole_layers() -> None:
    s = space()
    a, b = config(("bert_kv", 24, 4), ("mobile", 32, 2)), config(("mobile_kv", 16, 1), ("bert", 24, 4))
    rng = np.random.default_rng(2)
    for _ in range(20):
        child = s.crossover(a, b, rng)
        for i in range(2):
            genes = {(a[f"block_{i}"], a[f"ffn_{i}"], a[f"heads_{i}"]), (b[f"block_{i}"], b[f"ffn_{i}"], b[f"heads_{i}"])}
            assert (child[f"block_{i}"], child[f"ffn_{i}"], child[f"heads_{i}"]) in genes


def test_a_cap_on_non_embedding_parameters_ignores_the_tables() -> None:
    # Tables: (120 + 40 + 2) x 32 = 5184 parameters, which a total cap of 5000 could never admit.
    s = space(max_params=5000, cap_metric="params_non_embedding")
    rng = np.random.default_rng(3)
    for _ in range(10):
        metrics = s.metrics(s.sample(rng))
        assert metrics["params_non_embedding"] <= 5000 < metrics["params"]


# ---- the paper's space: block genes only, every candidate a configuration SPOS trained ---------------
def blocks_only(**overrides: object) -> ElmSpace:
    return ElmSpace(**{**TINY, "elastic": [], **overrides})  # type: ignore[arg-type]


def trained(s: ElmSpace, candidate: dict[str, object]) -> bool:
    """Every layer at its block's grown FFN width with all heads: what SPOS trained."""
    arch = s.architecture(candidate)
    return all((c.ffn, c.heads) == (WIDTHS[i][BLOCK_KINDS.index(c.kind)], 4) for i, c in enumerate(arch.layers))


def test_by_default_every_searched_candidate_is_a_trained_configuration() -> None:
    from orchestrator.objectives import Objective, Objectives
    from orchestrator.searchers.ga import GASearcher

    every = [{"block_0": a, "block_1": b} for a in BLOCK_KINDS for b in BLOCK_KINDS]
    sizes = sorted(blocks_only().capped_size(c) for c in every)
    s = blocks_only(max_params=sizes[len(sizes) // 2])  # the cap excludes about half the block choices
    assert [d.name for d in s.dims] == ["block_0", "block_1"]
    rng = np.random.default_rng(0)
    ga = GASearcher(s, Objectives((Objective("f1"),)), seed=0, population=4, generations=3)
    candidates = [s.smallest(), s.largest()]
    for i in range(12):  # the study's searcher: random draws, then children of the fittest
        proposal = ga.suggest(f"t{i}")
        assert isinstance(proposal, dict)
        ga.on_trial_complete(f"t{i}", {"f1": -float(s.capped_size(proposal))})
        candidates.append(proposal)
    for _ in range(20):  # the space's own moves (other searchers)
        a, b = s.sample(rng), s.sample(rng)
        candidates += [a, s.mutate(a, rng), s.crossover(a, b, rng)]
    assert all(trained(s, c) and s.capped_size(c) <= s.max_params for c in candidates)
    assert len({s.capped_size(c) for c in candidates}) >= 5  # block choices alone spread the sizes
    # What a width or a head count outside training would be is refused, not scored.
    for untrained in ((LayerChoice("bert_qv", 8, 4), LayerChoice("bert", 24, 4)),  # bert_qv grew to 16
                      (LayerChoice("bert", 8, 2), LayerChoice("bert", 24, 4))):  # 2 of 4 heads
        with pytest.raises(InvalidArchitectureError, match="is not what the super-network trained"):
            blocks_only().config_of(ElmArch(s.shape, untrained))


def test_every_path_spos_trains_is_a_member_and_elastic_sampling_draws_the_elastic_genes() -> None:
    import torch

    from trainers.elm.supernet import PathSampling

    supernet = ElmSuperNet(blocks_only().shape, WIDTHS)
    generator = torch.Generator().manual_seed(0)
    paths = [supernet.sample_path(generator) for _ in range(60)]
    assert all(trained(blocks_only(), blocks_only().config_of(p)) for p in paths)
    # Drawing widths and heads: paths the elastic space holds and the blocks-only one refuses.
    elastic = [supernet.sample_path(generator, PathSampling(ffn_step=8, head_counts=(1, 2, 4))) for _ in range(60)]
    for path in elastic:
        space().config_of(path)
    assert {c.heads for p in elastic for c in p.layers} == {1, 2, 4}
    assert any(c.ffn < supernet.block(i, c.kind).ffn.units for p in elastic for i, c in enumerate(p.layers))
    untrained = [p for p in elastic if any((c.ffn, c.heads) != (WIDTHS[i][BLOCK_KINDS.index(c.kind)], 4)
                                           for i, c in enumerate(p.layers))]
    assert untrained
    with pytest.raises(InvalidArchitectureError, match="is not what the super-network trained"):
        blocks_only().config_of(untrained[0])


def test_elastic_genes_need_a_super_network_that_sampled_them(tmp_path: Path) -> None:
    from trainers.contract import TrainerError
    from trainers.elm.hooks import METRICS
    from trainers.elm.options import ElmSubnetOptions

    meta = {k: v for k, v in TINY.items() if k not in ("elastic",)}
    meta |= {"type_vocab_size": 2, "ffn_widths": WIDTHS}
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "elm.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError) as err:
        ElmSpace(checkpoint=str(tmp_path / "blocks"), elastic=["ffn"])
    assert "elastic ['ffn'] needs a super-network that sampled them" in str(err.value) and "\n" not in str(err.value)
    # The same refusal when the study validates a given checkpoint against an elastic space.
    with pytest.raises(TrainerError, match="needs a super-network that sampled them"):
        METRICS(ElmSubnetOptions(checkpoint=str(tmp_path / "blocks")), space())
    assert [d.name for d in ElmSpace(checkpoint=str(tmp_path / "blocks")).dims] == ["block_0", "block_1"]
    (tmp_path / "drawn").mkdir()
    (tmp_path / "drawn" / "elm.json").write_text(json.dumps(meta | {"elastic": ["ffn", "heads"], "head_counts": [2, 4]}))
    drawn = ElmSpace(checkpoint=str(tmp_path / "drawn"), elastic=["ffn", "heads"])
    assert drawn.head_counts == (2, 4) and len(drawn.dims) == 6
    with pytest.raises(ValueError, match=r"head_counts \[1, 2, 4\] go beyond the \[2, 4\]"):
        ElmSpace(checkpoint=str(tmp_path / "drawn"), elastic=["heads"], head_counts=[1, 2, 4])


def test_all_heads_must_fit_every_block_unless_heads_are_searched() -> None:
    with pytest.raises(ValueError, match=r"num_heads=4 must divide every attention width \[6, 24\]"):
        ElmSpace(num_layers=1, hidden_size=24, num_heads=4, inner_size=6, vocab_size=50, max_positions=16)
    with pytest.raises(ValueError, match="elastic must be a list drawn from"):
        blocks_only(elastic=["depth"])
