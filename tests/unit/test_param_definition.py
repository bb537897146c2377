"""One definition of "non-embedding": a space's analytic count equals the measured count of the
extracted model (trainers/efficiency/params.py), for every pruning space."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from search_spaces.pruning import LargeSpace, LayerSpace, MediumSpace, PruningSpace, SmallSpace
from tests.unit.tiny_bert import save_tiny_bert
from trainers.efficiency import count_params
from trainers.supernet import SuperNetwork
from trainers.supernet.families import space_for


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(path)
    return path


@pytest.mark.parametrize("cls", [SmallSpace, LayerSpace, MediumSpace, LargeSpace], ids=lambda c: c.name)
def test_analytic_params_equal_measured_params(cls: type[PruningSpace], checkpoint: Path) -> None:
    supernet = SuperNetwork.from_pretrained(checkpoint)
    space = space_for(cls, json.loads((checkpoint / "config.json").read_text()))
    rng = np.random.default_rng(0)
    for config in [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(5)]:
        measured = count_params(supernet.extract_sub_network(space.architecture(config))).as_metrics()
        assert measured == space.metrics(config), config


def test_the_embedding_layer_norm_is_not_an_embedding(checkpoint: Path) -> None:
    supernet = SuperNetwork.from_pretrained(checkpoint)
    tables = sum(m.weight.numel() for m in (supernet.embeddings.word, supernet.embeddings.position, supernet.embeddings.token_type))
    space = space_for(SmallSpace, json.loads((checkpoint / "config.json").read_text()))
    m = space.metrics(space.smallest())
    # The smallest member keeps only the embeddings (tables + LayerNorm) and the classifier head.
    assert m["params"] - m["params_non_embedding"] == tables
    assert m["params_non_embedding"] == sum(p.numel() for p in supernet.embeddings.norm.parameters()) + sum(p.numel() for p in supernet.head.parameters())
