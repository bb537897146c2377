"""A tiny random BERT teacher with a hand-built WordPiece vocabulary, saved like a real model directory."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song in the tree",
    "my friend reads a book at night",
    "the sun rises over the hills",
    "a child plays with a red ball",
    "the river flows to the sea",
    "we walk to the old bridge",
    "the teacher writes on the board",
    "rain falls on the quiet town",
    "the train leaves at nine",
    "she paints the blue door",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_teacher(directory: Path, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Write config, weights and tokenizer of a random BertModel to `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for s in SENTENCES for w in s.split()})
    vocab = SPECIALS + words + ["##s", "##ing"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    return directory
