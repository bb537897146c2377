"""Readers for the data sets shipped as assets (see `trainers/assets.py`), and the split rule.

Every reader returns `train` / `validation` / `test` splits with a `text` column and, for the
classification sets, an integer `label` column. Where the source has no split of its own, rows
are split by `hash_split`: a row's split follows from the SHA-256 of its text, so the split is the
same on every machine and with every library version, and duplicated texts share a split (no
train/test leakage through duplicates).

- `movie-reviews`: positive when the mean human rating is > 0 (5,242 positive / 5,363 negative of
  10,605), split 80/10/10 by `hash_split` with seed 0: 8,462 / 1,112 / 1,031 rows (train
  4,231 / 4,231, validation 581 / 531, test 551 / 480 negative / positive).
- `sms-spam`: 4,837 messages (638 spam), 80/10/10 by `hash_split`.
- `trec6`: the first 5,452 rows are TREC's training set, the last 500 its TREC-10 test set;
  10% of training goes to validation by `hash_split`. Coarse labels in the file's order.
- `bbc-news`: 2,225 articles (title and body), labels are the sorted folder names, 80/10/10.
- `wikitext2`: the raw train / valid / test files, one row per non-blank line.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

TaskKind = Literal["classification", "language-modeling"]
SPLITS = ("train", "validation", "test")
#: the coarse classes in the order the file numbers them (checked against TREC's per-class counts).
TREC_COARSE = ("DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC")
TREC_TRAIN_ROWS = 5452


@dataclass(frozen=True)
class NamedData:
    kind: TaskKind
    #: split name -> frame with `text` (and `label`) columns
    frames: dict[str, pd.DataFrame]
    label_names: tuple[str, ...] = ()


def unit_interval(text: str, seed: int) -> float:
    """A number in [0, 1) fixed by the text and the seed."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(frame: pd.DataFrame, seed: int = 0, fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
               names: tuple[str, ...] = SPLITS) -> dict[str, pd.DataFrame]:
    """Split rows by the SHA-256 of their text: `fractions[i]` of the rows (in expectation) go to `names[i]`."""
    bounds = pd.Series(fractions).cumsum().tolist()
    u = frame["text"].map(lambda t: unit_interval(t, seed))
    which = u.map(lambda x: next((i for i, b in enumerate(bounds) if x < b), len(bounds) - 1))
    return {name: frame[which == i].reset_index(drop=True) for i, name in enumerate(names)}


def movie_reviews(folder: Path, seed: int) -> NamedData:
    # Tab-separated latin-1 with quotes inside the text: no quote processing.
    raw = pd.read_csv(folder / "movieReviewSnippets_GroundTruth.txt", sep="\t", encoding="latin-1",
                      quoting=csv.QUOTE_NONE)
    frame = pd.DataFrame({"text": raw["text"].astype(str), "label": (raw["sentiment"] > 0).astype("int64")})
    return NamedData("classification", hash_split(frame, seed), ("negative", "positive"))


def sms_spam(folder: Path, seed: int) -> NamedData:
    raw = pd.read_csv(folder / "sms-spam.csv", index_col=0)
    frame = pd.DataFrame({"text": raw["text"].astype(str), "label": raw["spam"].astype("int64")})
    return NamedData("classification", hash_split(frame, seed), ("ham", "spam"))


def trec6(folder: Path, seed: int) -> NamedData:
    raw = pd.read_csv(folder / "trec.csv", index_col=0)
    frame = pd.DataFrame({"text": raw["text"].astype(str), "label": raw["label-coarse"].astype("int64")})
    train, test = frame.iloc[:TREC_TRAIN_ROWS], frame.iloc[TREC_TRAIN_ROWS:].reset_index(drop=True)
    parts = hash_split(train, seed, (0.9, 0.1), ("train", "validation"))
    return NamedData("classification", {**parts, "test": test}, TREC_COARSE)


def bbc_news(folder: Path, seed: int) -> NamedData:
    labels = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    rows = [(read_text(path), i) for i, label in enumerate(labels) for path in sorted((folder / label).glob("*.txt"))]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    return NamedData("classification", hash_split(frame, seed), labels)


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:  # one article of the 2,225 is latin-1
        return data.decode("latin-1").strip()


def wikitext2(folder: Path, seed: int) -> NamedData:
    del seed  # the corpus has its own splits
    frames = {}
    for split, stem in zip(SPLITS, ("train", "valid", "test")):
        with gzip.open(folder / f"{stem}.raw.gz", "rt", encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
        frames[split] = pd.DataFrame({"text": lines})
    return NamedData("language-modeling", frames)


READERS: dict[str, Callable[[Path, int], NamedData]] = {
    "movie-reviews": movie_reviews,
    "sms-spam": sms_spam,
    "trec6": trec6,
    "bbc-news": bbc_news,
    "wikitext2": wikitext2,
}
