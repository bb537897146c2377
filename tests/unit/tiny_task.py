"""A tiny labelled text task (train / validation / test csv files) in the tiny teacher's vocabulary."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.unit.tiny_teacher import SENTENCES


def save_tiny_task(directory: Path, rows: int = 48) -> Path:
    """Sentences labelled 1 when they mention "the" twice or more (learnable from tokens), else 0."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = [f"{SENTENCES[i % len(SENTENCES)]} {SENTENCES[(3 * i + 1) % len(SENTENCES)]}" for i in range(rows)]
    frame = pd.DataFrame({"text": texts, "label": [int(t.split().count("the") >= 3) for t in texts]})
    n = len(frame)
    for name, part in (("train", frame[: n // 2]), ("validation", frame[n // 2: 3 * n // 4]), ("test", frame[3 * n // 4:])):
        part.to_csv(directory / f"{name}.csv", index=False)
    return directory
