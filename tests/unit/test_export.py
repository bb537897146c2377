"""Exports load without this project's code, in a clean process, and give the same logits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from search_spaces.base import InvalidArchitectureError
from search_spaces.pruning import LargeSpace, MediumSpace, SmallSpace
from tests.unit.tiny_bert import SIZES, save_tiny_bert, tiny_batch
from trainers.supernet import SubNetwork, SuperNetwork
from trainers.supernet.export import MODELING_FILE, ONNX_FILE, export_compact, export_standard

WORDS = "the a movie film was is great awful fun dull plot actors story slow".split()
SENTENCES = ["the movie was great fun", "a dull film , slow plot"]


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> SuperNetwork:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(path)
    return SuperNetwork.from_pretrained(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ","]
    fillers = [f"w{i}" for i in range(SIZES["vocab_size"] - len(specials) - len(WORDS))]
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(specials + WORDS + fillers) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def run_clean(code: str, cwd: Path) -> dict:
    """Run `code` in a fresh interpreter (no PYTHONPATH, no project on sys.path); its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-I", "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_small_member_exports_as_a_standard_bert_loaded_in_a_clean_process(supernet: SuperNetwork, tokenizer: BertTokenizerFast, tmp_path: Path) -> None:
    space = SmallSpace(**asdict(supernet.shape))
    arch = space.architecture({"num_layers": 1, "num_heads": 2, "num_units": 17})
    export_standard(supernet.extract_sub_network(arch), tmp_path / "model", tokenizer=tokenizer)
    out = run_clean(
        f"""
        import json, sys, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        tok = AutoTokenizer.from_pretrained("model")
        model = AutoModelForSequenceClassification.from_pretrained("model").eval()
        batch = tok({SENTENCES!r}, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        print(json.dumps({{"logits": logits.tolist(), "batch": {{k: v.tolist() for k, v in batch.items()}},
                           "project": sorted({{"trainers", "search_spaces", "orchestrator"}} & set(sys.modules))}}))
        """,
        tmp_path,
    )
    assert out["project"] == []
    batch = {k: torch.tensor(v) for k, v in out["batch"].items()}
    assert batch["attention_mask"].min() == 0  # the two sentences differ in length: padding is exercised
    supernet.set_sub_network(arch)
    with torch.no_grad():
        expected = supernet(**batch)
    torch.testing.assert_close(torch.tensor(out["logits"]), expected, atol=1e-5, rtol=0)


def test_standard_export_without_padding_has_the_analytic_size(supernet: SuperNetwork, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    space = SmallSpace(**asdict(supernet.shape))
    config = {"num_layers": 1, "num_heads": 4, "num_units": 9}
    export_standard(supernet.extract_sub_network(space.architecture(config)), tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert sum(p.numel() for p in loaded.parameters()) == space.metrics(config)["params"]


def test_standard_export_refuses_a_layer_without_attention(supernet: SuperNetwork, tmp_path: Path) -> None:
    model = supernet.extract_sub_network(SubNetwork.first([2, 0], [8, 8]))
    with pytest.raises(InvalidArchitectureError, match="layer 1 has 0 heads and 8 FFN units; a standard BERT needs both"):
        export_standard(model, tmp_path)


LOAD_COMPACT = f"""
    import json, sys, torch
    sys.path.insert(0, "model")
    import {MODELING_FILE[:-3]} as modeling
    model = modeling.load("model")
    batch = {{k: torch.tensor(v) for k, v in json.load(open("batch.json")).items()}}
    with torch.no_grad():
        logits = model(**batch)
    print(json.dumps({{"logits": logits.tolist(), "heads": list(model.config.heads),
                       "foreign": sorted({{"trainers", "search_spaces", "orchestrator", "transformers"}} & set(sys.modules))}}))
    """


@pytest.mark.parametrize("cls", [MediumSpace, LargeSpace], ids=lambda c: c.name)
def test_per_layer_members_export_compact_and_load_with_torch_alone(cls: type, supernet: SuperNetwork, tmp_path: Path) -> None:
    space = cls(**asdict(supernet.shape))
    config = space.sample(np.random.default_rng(4))
    arch = space.architecture(config)
    export_compact(supernet.extract_sub_network(arch), tmp_path / "model", onnx=False)
    batch = tiny_batch()
    (tmp_path / "batch.json").write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    out = run_clean(LOAD_COMPACT, tmp_path)
    assert out["foreign"] == []
    assert out["heads"] == [h for h, on in zip(arch.num_heads, arch.layer_mask) if on]
    supernet.set_sub_network(arch)
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(out["logits"]), supernet(**batch), atol=1e-5, rtol=0)
    assert not (tmp_path / "model" / ONNX_FILE).exists()


def test_onnx_export_matches_onnxruntime_on_other_shapes(supernet: SuperNetwork, tokenizer: BertTokenizerFast, tmp_path: Path) -> None:
    import onnxruntime

    # Scattered heads and units (LARGE), a layer without attention: the hardest case.
    arch = SubNetwork(((), (1, 3)), (tuple(range(0, 64, 3)), (2, 5, 40)))
    model = supernet.extract_sub_network(arch)
    export_compact(model, tmp_path, tokenizer=tokenizer)
    assert (tmp_path / "tokenizer.json").is_file() or (tmp_path / "vocab.txt").is_file()
    session = onnxruntime.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    for batch in (tiny_batch(seed=5, batch=1, seq=5), tiny_batch(seed=6, batch=4, seq=30)):
        (logits,) = session.run(None, {k: v.numpy() for k, v in batch.items()})
        with torch.no_grad():
            np.testing.assert_allclose(logits, model(**batch).numpy(), atol=1e-5, rtol=0)
