"""Data sources (named assets, local files, hub), splits, tokenizers and encoding."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
import torch

from tests.asset_fixtures import shipped_assets  # noqa: F401  (a fixture)
from trainers.data import DataError, Task, load_data, load_model_dir, load_task, load_tokenizer
from trainers.data_named import hash_split
from trainers.encode import Encoded, encode, loaders

WORDS = "the a good bad movie film is was great awful plot fine dull".split()
TEXTS = [f"{a} {b} movie {c}" for a in WORDS for b in ("was", "is") for c in ("great", "awful", "fine")]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A local model folder: config.json and a word-level BERT tokenizer over WORDS."""
    from transformers import BertConfig, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    torch.set_num_threads(1)
    return load_tokenizer(str(tiny_model_dir))


def frame(n: int = len(TEXTS)) -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS[:n], "label": [["neg", "pos", "mid"][i % 3] for i in range(n)]})


@pytest.mark.parametrize("suffix", ["csv", "json", "jsonl", "parquet"])
def test_local_file_is_split_by_text_hash(tmp_path, suffix):
    path = tmp_path / f"reviews.{suffix}"
    df = frame()
    {"csv": lambda: df.to_csv(path, index=False), "json": lambda: df.to_json(path, orient="records"),
     "jsonl": lambda: df.to_json(path, orient="records", lines=True), "parquet": lambda: df.to_parquet(path)}[suffix]()
    task = load_data(str(path))
    assert task.kind == "classification" and task.label_names == ("mid", "neg", "pos") and task.num_labels == 3
    sizes = {s: len(ds) for s, ds in task.splits.items()}
    assert sum(sizes.values()) == len(TEXTS) and min(sizes.values()) > 0
    texts = [set(ds["text"]) for ds in task.splits.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    row = task.splits["test"][0]
    assert ["mid", "neg", "pos"][row["label"]] == df.set_index("text").loc[row["text"], "label"]
    again = load_data(str(path))
    assert all(again.splits[s]["text"] == task.splits[s]["text"] for s in task.splits)
    other_seed = load_data(str(path), seed=1)
    assert other_seed.splits["test"]["text"] != task.splits["test"]["text"]


def test_hash_split_keeps_duplicates_together_and_follows_fractions():
    df = pd.DataFrame({"text": [f"t{i % 500}" for i in range(1000)], "label": 0})
    parts = hash_split(df, seed=0)
    assert sum(len(p) for p in parts.values()) == 1000
    assert not set(parts["train"]["text"]) & set(parts["test"]["text"])
    assert 0.7 < len(parts["train"]) / 1000 < 0.9


def test_folder_with_train_and_test_gets_validation_from_train(tmp_path):
    frame()[:30].to_csv(tmp_path / "train.csv", index=False)
    frame()[30:].to_csv(tmp_path / "test.csv", index=False)
    task = load_data(str(tmp_path))
    assert len(task.splits["test"]) == len(TEXTS) - 30
    assert len(task.splits["train"]) + len(task.splits["validation"]) == 30 and len(task.splits["validation"]) > 0


def test_text_only_file_is_a_language_modelling_task(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n\n")
    task = load_data(str(path))
    assert task.kind == "language-modeling" and task.num_labels == 0
    assert task.splits["train"].column_names == ["text"]


def test_column_names_can_be_mapped(tmp_path):
    path = tmp_path / "d.csv"
    frame().rename(columns={"text": "sentence", "label": "y"}).to_csv(path, index=False)
    assert load_data(str(path), text_column="sentence", label_column="y").num_labels == 3
    with pytest.raises(DataError, match=r"no text column 'text'; columns: \['sentence', 'y'\]"):
        load_data(str(path))


def test_missing_file_and_offline_hub_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="does not exist") as missing:
        load_data(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="not a named data set .* nor a local file") as hub:
        load_data("someone/no-such-dataset")
    for error in (missing, hub):
        assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="is a model asset"):
        load_data("minilm-l6")


def test_hub_dataset_path_with_glue_like_splits(monkeypatch):
    """The hub path, fed locally: a ClassLabel column, another text column and an unlabelled test split."""
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"]),
                                  "idx": datasets.Value("int32")})

    def split(n: int, unlabelled: bool = False) -> datasets.Dataset:
        rows = {"sentence": TEXTS[:n], "label": [-1 if unlabelled else i % 2 for i in range(n)], "idx": list(range(n))}
        return datasets.Dataset.from_dict(rows, features=features)

    seen = []

    def load_dataset(name, config):
        seen.append((name, config))
        return datasets.DatasetDict(train=split(60), validation=split(12), test=split(10, unlabelled=True))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    task = load_data("glue", hub_config="sst2", text_column="sentence")
    assert seen == [("glue", "sst2")] and task.name == "glue/sst2"
    assert task.label_names == ("neg", "pos") and task.splits["validation"].num_rows == 12
    # The unlabelled test split is dropped and a labelled one is cut from train.
    assert task.splits["train"].num_rows + task.splits["test"].num_rows == 60
    assert set(task.splits["test"]["label"]) <= {0, 1}


def test_task_checks_its_splits_and_columns():
    ds = datasets.Dataset.from_dict({"text": ["a"], "label": [0]})
    with pytest.raises(DataError, match="splits must be train, validation, test"):
        Task("t", "classification", datasets.DatasetDict(train=ds), ("a", "b"))
    with pytest.raises(DataError, match="needs >= 2 labels"):
        Task("t", "classification", datasets.DatasetDict(train=ds, validation=ds, test=ds), ("a",))


def test_model_dir_and_tokenizer_sources(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LMNAS_HOME", str(tmp_path / "empty-home"))
    assert load_model_dir(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(DataError, match="neither a model asset .* nor a local model folder"):
        load_model_dir(str(tmp_path))
    with pytest.raises(DataError, match="is a data asset"):
        load_model_dir("trec6")
    with pytest.raises(Exception, match="lmnas assets fetch minilm-l6"):
        load_model_dir("minilm-l6")
    with pytest.raises(DataError, match="cannot load a tokenizer from 'someone/no-such-model'"):
        load_tokenizer("someone/no-such-model")


def test_encode_classification_to_fixed_width(tmp_path, tokenizer):
    path = tmp_path / "d.csv"
    frame().to_csv(path, index=False)
    task = load_data(str(path))
    full = encode(task, tokenizer, max_length=8)
    assert {s: len(e) for s, e in full.items()} == {s: len(ds) for s, ds in task.splits.items()}
    train = full["train"]
    assert train.input_ids.shape == (len(task.splits["train"]), 8) and train.labels.tolist() == task.splits["train"]["label"]
    assert train.input_ids[0, 0] == tokenizer.cls_token_id and train.attention_mask[0].sum() == 6  # 4 words + CLS, SEP
    small = encode(task, tokenizer, max_length=8, max_examples=5, seed=3)
    assert all(len(e) == 5 for e in small.values())
    rows = {tuple(r) for r in train.input_ids.tolist()}
    assert all(tuple(r) in rows for r in small["train"].input_ids.tolist())
    assert torch.equal(small["train"].input_ids, encode(task, tokenizer, max_length=8, max_examples=5, seed=3)["train"].input_ids)
    assert not torch.equal(small["train"].input_ids, encode(task, tokenizer, max_length=8, max_examples=5, seed=4)["train"].input_ids)


def test_loaders_give_model_ready_batches_in_a_seeded_order(tmp_path, tiny_model_dir):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": t, "label": i % 2} for i, t in enumerate(TEXTS)]))
    task, tok = load_task(str(path), str(tiny_model_dir))
    assert task.label_names == ("0", "1")
    first = next(iter(loaders(task, tok, batch_size=4, max_length=8, seed=1)["train"]))
    assert sorted(first) == ["attention_mask", "input_ids", "labels"] and first["input_ids"].shape == (4, 8)
    again = next(iter(loaders(task, tok, batch_size=4, max_length=8, seed=1)["train"]))
    assert torch.equal(first["input_ids"], again["input_ids"])


def test_language_model_blocks(tmp_path, tokenizer):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS))
    task = load_data(str(path))
    blocks = encode(task, tokenizer, max_length=10, splits=("train",))["train"]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in task.splits["train"]["text"])
    assert len(blocks) == tokens // 8 and blocks.labels is None  # 8 tokens + CLS + SEP per block
    assert (blocks.input_ids[:, 0] == tokenizer.cls_token_id).all() and (blocks.input_ids[:, -1] == tokenizer.sep_token_id).all()
    assert bool(blocks.attention_mask.all())
    assert len(encode(task, tokenizer, max_length=10, max_examples=3, splits=("train",))["train"]) == 3


def test_encoded_checks_shapes():
    with pytest.raises(ValueError, match="must be the same"):
        Encoded(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        Encoded(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), torch.zeros(3))


# ---------------------------------------------------------------------------------------------- shipped data
@pytest.mark.assets
def test_movie_reviews_labels_and_fixed_split(shipped_assets):  # noqa: F811
    task = load_data("movie-reviews")
    assert task.label_names == ("negative", "positive")
    assert {s: len(ds) for s, ds in task.splits.items()} == {"train": 8462, "validation": 1112, "test": 1031}
    balance = task.label_balance()
    assert sum(b["positive"] for b in balance.values()) == 5242
    assert sum(b["negative"] for b in balance.values()) == 5363
    assert balance["test"] == {"negative": 551, "positive": 480}
    texts = {s: set(ds["text"]) for s, ds in task.splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["validation"]
    assert not texts["validation"] & texts["test"]
    assert task.splits["test"][0]["text"] == load_data("movie-reviews").splits["test"][0]["text"]


@pytest.mark.assets
def test_other_shipped_datasets(shipped_assets):  # noqa: F811
    trec = load_data("trec6")
    assert trec.num_labels == 6 and len(trec.splits["test"]) == 500
    assert len(trec.splits["train"]) + len(trec.splits["validation"]) == 5452
    assert trec.splits["test"][0]["text"] == "How far is it from Denver to Aspen ?"
    assert trec.label_balance()["test"]["ABBR"] == 9
    sms = load_data("sms-spam")
    assert sum(len(ds) for ds in sms.splits.values()) == 4837
    assert sum(b["spam"] for b in sms.label_balance().values()) == 638
    bbc = load_data("bbc-news")
    assert bbc.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert sum(len(ds) for ds in bbc.splits.values()) == 2225
    wiki = load_data("wikitext2")
    assert wiki.kind == "language-modeling" and len(wiki.splits["validation"]) == 2461


@pytest.mark.assets
def test_minilm_tokenizer_encodes_shipped_data(shipped_assets):  # noqa: F811
    task, tok = load_task("wikitext2", "minilm-l6")
    blocks = encode(task, tok, max_length=32, max_examples=4, splits=("test",))["test"]
    assert blocks.input_ids.shape == (4, 32) and blocks.input_ids[0, 0] == 101 and blocks.input_ids[0, -1] == 102
