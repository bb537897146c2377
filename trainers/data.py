"""Data for trainers: a task (train / validation / test splits and label names) and a tokenizer.

A data source is, in this order: a named data asset (`movie-reviews`, `trec6`, `sms-spam`,
`bbc-news`, `wikitext2`; see `trainers/data_named.py` for their splits), a local file (csv, tsv,
json, jsonl, parquet; txt for language modelling) or a folder of `train.*` / `validation.*` /
`test.*` files, else a Hugging Face hub dataset name (for users with the internet). Columns are
`text` and an integer or string `label`; a source without labels is a language-modelling task.
A tokenizer comes from a named model asset (`minilm-l6`, `mpnet-base`), a local model folder, or a
hub name. Tensors and loaders for a task are built by `trainers/encode.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import pandas as pd

from trainers.assets import ASSETS, DEFAULT_MODEL, asset_path
from trainers.data_named import READERS, SPLITS, TaskKind, hash_split
from trainers.contract import TrainerError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LOCAL_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt")
#: other names sources give their splits.
SPLIT_ALIASES = {"valid": "validation", "dev": "validation", "val": "validation"}


class DataError(TrainerError):
    """A data source or tokenizer cannot be loaded (one line says what and how to fix it)."""


@dataclass(frozen=True)
class Task:
    """A data set ready for a trainer: `splits` has train / validation / test with a `text` column,
    and an integer `label` column in 0..num_labels-1 for classification."""

    name: str
    kind: TaskKind
    splits: datasets.DatasetDict
    label_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if sorted(self.splits) != sorted(SPLITS):
            raise DataError(f"task {self.name!r}: splits must be {', '.join(SPLITS)}, got {', '.join(self.splits)}")
        wanted = ["text", "label"] if self.kind == "classification" else ["text"]
        for split, ds in self.splits.items():
            if ds.column_names != wanted:
                raise DataError(f"task {self.name!r}: split {split!r} has columns {ds.column_names}, expected {wanted}")
        if self.kind == "classification" and len(self.label_names) < 2:
            raise DataError(f"task {self.name!r}: a classification task needs >= 2 labels, got {list(self.label_names)}")

    @property
    def num_labels(self) -> int:
        """Number of classes; 0 for language modelling."""
        return len(self.label_names)

    def label_balance(self) -> dict[str, dict[str, int]]:
        """Per split, the number of examples of each label name."""
        balance = {}
        for split, ds in self.splits.items():
            counts = pd.Series(ds["label"]).value_counts() if self.kind == "classification" else pd.Series()
            balance[split] = {name: int(counts.get(i, 0)) for i, name in enumerate(self.label_names)}
        return balance


def load_data(source: str, *, seed: int = 0, text_column: str = "text", label_column: str = "label",
              hub_config: str | None = None) -> Task:
    """The task named by `source` (see the module docstring for the order sources are tried in).

    `seed` changes the split of sources that have a single split (named assets included);
    `text_column` / `label_column` name the columns of local files and hub data sets;
    `hub_config` is the configuration of a hub data set (e.g. "sst2" of "glue").
    """
    if source in READERS:
        named = READERS[source](asset_path(source), seed)
        return frames_task(source, named.frames, "text", "label", seed, named.label_names)
    if source in ASSETS:
        raise DataError(f"{source!r} is a model asset, not a data set; data assets: {', '.join(READERS)}")
    path = Path(source).expanduser()
    if path.exists():
        return frames_task(path.name, local_frames(path), text_column, label_column, seed)
    if looks_local(source):
        raise DataError(f"data file {source!r} does not exist (named data sets: {', '.join(READERS)})")
    return hub_task(source, hub_config, text_column, label_column, seed)


def load_task(source: str, tokenizer_source: str | None = None, *, seed: int = 0, text_column: str = "text",
              label_column: str = "label", hub_config: str | None = None) -> tuple[Task, PreTrainedTokenizerBase]:
    """`load_data` of `source` and the tokenizer of `tokenizer_source` (default: the default model)."""
    task = load_data(source, seed=seed, text_column=text_column, label_column=label_column, hub_config=hub_config)
    return task, load_tokenizer(tokenizer_source or DEFAULT_MODEL)


def looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or source.endswith(LOCAL_SUFFIXES)


# ---------------------------------------------------------------------------------------------- local files
def local_frames(path: Path) -> dict[str, pd.DataFrame]:
    if path.is_file():
        return {"all": read_local(path)}
    found = {
        SPLIT_ALIASES.get(p.stem, p.stem): p for p in sorted(path.iterdir())
        if p.suffix in LOCAL_SUFFIXES and SPLIT_ALIASES.get(p.stem, p.stem) in SPLITS
    }
    if "train" not in found:
        raise DataError(f"folder {str(path)!r} has no train file; expected train / validation / test with a suffix "
                        f"in {', '.join(LOCAL_SUFFIXES)}")
    return {split: read_local(p) for split, p in found.items()}


def read_local(path: Path) -> pd.DataFrame:
    suffix = path.suffix
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".json", ".jsonl"):
            # Both a JSON array of records and JSON lines are common under either suffix.
            first = path.read_text(encoding="utf-8").lstrip()[:1]
            return pd.read_json(path, lines=first != "[")
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".txt":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return pd.DataFrame({"text": lines})
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {str(path)!r}: {one_line(e)}") from None
    raise DataError(f"unsupported data file {str(path)!r}; use one of {', '.join(LOCAL_SUFFIXES)}")


# ---------------------------------------------------------------------------------------------- hub
def hub_task(name: str, config: str | None, text_column: str, label_column: str, seed: int) -> Task:
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as e:  # offline, unknown name, missing config: the library raises many kinds
        raise DataError(f"data set {name!r} is not a named data set ({', '.join(READERS)}) nor a local file, and "
                        f"the Hugging Face hub could not provide it: {one_line(e)}") from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"hub data set {name!r} did not load as a dict of splits")
    feature = next(iter(loaded.values())).features.get(label_column)
    names = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else ()
    frames = {split: ds.to_pandas() for split, ds in loaded.items()}
    return frames_task(f"{name}/{config}" if config else name, frames, text_column, label_column, seed, names)


# ---------------------------------------------------------------------------------------------- normalising
def frames_task(name: str, frames: dict[str, pd.DataFrame], text_column: str, label_column: str, seed: int,
                label_names: tuple[str, ...] = ()) -> Task:
    """A Task from split frames: picks and renames columns, maps labels to 0..n-1, completes the splits."""
    for split, frame in frames.items():
        if text_column not in frame.columns:
            raise DataError(f"{name}: split {split!r} has no text column {text_column!r}; columns: {list(frame.columns)}")
    labelled = all(label_column in f.columns for f in frames.values())
    columns = {text_column: "text", label_column: "label"} if labelled else {text_column: "text"}
    frames = {SPLIT_ALIASES.get(s, s): f[list(columns)].rename(columns=columns) for s, f in frames.items()}
    if labelled:
        frames, label_names = encode_labels(name, frames, label_names)
    frames = complete_splits(name, frames, seed)
    splits = datasets.DatasetDict({
        s: datasets.Dataset.from_pandas(frames[s].astype({"text": str}), preserve_index=False) for s in SPLITS
    })
    return Task(name, "classification" if labelled else "language-modeling", splits, label_names)


def encode_labels(name: str, frames: dict[str, pd.DataFrame], names: tuple[str, ...]
                  ) -> tuple[dict[str, pd.DataFrame], tuple[str, ...]]:
    """Integer labels in 0..n-1: string labels become the index of their sorted name."""
    if all(pd.api.types.is_integer_dtype(f["label"]) for f in frames.values()):
        # A split whose labels are all negative is unlabelled (GLUE test sets): it cannot be scored.
        frames = {s: f for s, f in frames.items() if not (f["label"] < 0).all()}
        top = max(int(f["label"].max()) for f in frames.values())
        names = names or tuple(str(i) for i in range(top + 1))
        for split, f in frames.items():
            if int(f["label"].min()) < 0 or int(f["label"].max()) >= len(names):
                raise DataError(f"{name}: split {split!r} has labels outside 0..{len(names) - 1}")
        return frames, names
    names = tuple(sorted({str(v) for f in frames.values() for v in f["label"]}))
    index = {n: i for i, n in enumerate(names)}
    return {s: f.assign(label=f["label"].astype(str).map(index).astype("int64")) for s, f in frames.items()}, names


def complete_splits(name: str, frames: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """Train / validation / test from what the source has: one split is cut 80/10/10, a missing
    validation or test split is cut from train (10%), all by `hash_split` (stable, by text)."""
    if len(frames) == 1:
        return hash_split(next(iter(frames.values())), seed)
    if "train" not in frames:
        raise DataError(f"{name}: no train split among {', '.join(frames)}")
    frames = {s: f for s, f in frames.items() if s in SPLITS}
    for missing in [s for s in ("validation", "test") if s not in frames]:
        frames.update(hash_split(frames["train"], seed, (0.9, 0.1), ("train", missing)))
    return frames


# ---------------------------------------------------------------------------------------------- models
def load_model_dir(name_or_path: str | Path) -> Path:
    """The folder of a model asset (`minilm-l6`, `mpnet-base`) or of a local model (with config.json)."""
    name = str(name_or_path)
    if name in ASSETS:
        if ASSETS[name].kind != "model":
            raise DataError(f"{name!r} is a data asset, not a model; models: {', '.join(model_assets())}")
        return asset_path(name)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path
    raise DataError(f"{name!r} is neither a model asset ({', '.join(model_assets())}) nor a local model folder "
                    "with config.json")


def model_reference(name_or_path: str | Path) -> str:
    """What `from_pretrained` should get: a local folder when there is one, else the name (a hub id)."""
    name = str(name_or_path)
    if name in ASSETS or Path(name).expanduser().exists() or looks_local(name):
        return str(load_model_dir(name))
    return name


def load_tokenizer(source: str | Path = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    reference = model_reference(source)
    try:
        return AutoTokenizer.from_pretrained(reference)
    except Exception as e:  # offline hub, unknown name, broken folder: transformers raises many kinds
        raise DataError(f"cannot load a tokenizer from {str(source)!r}: {one_line(e)}") from None


def model_assets() -> list[str]:
    return [n for n, a in ASSETS.items() if a.kind == "model"]


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text[:300] + "...") if len(text) > 300 else (text or type(error).__name__)
