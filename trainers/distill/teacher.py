"""A frozen Hugging Face encoder used as a distillation teacher.

It loads a local model directory (config, weights and tokenizer files; never the hub), runs with
eager attention so the attention probabilities exist, and returns what layer-wise distillation
reads: every layer's hidden states and attention maps. `embedding_tables` exposes the embedding
weights a student is initialised from.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainers.contract import TrainerError


@dataclass(frozen=True)
class EmbeddingTables:
    """A teacher's embedding weights, rows in position order (position 0 first)."""

    word: Tensor  # (vocab, D)
    position: Tensor | None  # (positions, D); None for a model without absolute positions
    token_type: Tensor | None  # (types, D); None for a model without token types (MPNet)
    norm_weight: Tensor  # (D,)
    norm_bias: Tensor  # (D,)


@dataclass(frozen=True)
class TeacherOutput:
    #: embeddings first, then one (B, S, D) tensor per layer run.
    hidden_states: tuple[Tensor, ...]
    #: one (B, heads, S, S) attention-probability tensor per layer run.
    attentions: tuple[Tensor, ...]


class Teacher:
    """A frozen encoder and its tokenizer."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        config = model.config
        self.num_layers: int = config.num_hidden_layers
        self.hidden_size: int = config.hidden_size
        self.num_heads: int = config.num_attention_heads
        self.vocab_size: int = config.vocab_size
        # Transformers installs its output-capturing hooks on the modules present at the first
        # forward; one full forward now, so later truncated runs cannot leave layers without hooks.
        ids = torch.zeros(1, 2, dtype=torch.long, device=self.device)
        self(ids, torch.ones_like(ids))

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "Teacher":
        """Load a local model directory; a missing or unreadable one is a one-line TrainerError."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise TrainerError(f"teacher {str(path)!r} is not a model directory (no config.json)")
        try:
            model = AutoModel.from_pretrained(path, attn_implementation="eager", local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise TrainerError(f"cannot load teacher {str(path)!r}: {err}") from err
        return cls(model.to(device), tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        num_layers: int | None = None,
    ) -> TeacherOutput:
        """Run the embeddings and the first `num_layers` layers (all by default), in fp32 even inside a
        16-bit student's autocast: the targets are the same for every precision the student trains in,
        and a table of them (`teacher_cache.py`) serves all."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and getattr(self.model.config, "type_vocab_size", 0):
            kwargs["token_type_ids"] = token_type_ids
        with self._truncated(num_layers or self.num_layers), torch.autocast(input_ids.device.type, enabled=False):
            out = self.model(**kwargs, output_hidden_states=True, output_attentions=True)
        return TeacherOutput(hidden_states=tuple(out.hidden_states), attentions=tuple(out.attentions))

    @contextlib.contextmanager
    def _truncated(self, num_layers: int) -> Iterator[None]:
        """Run only the first layers when the encoder keeps them in `encoder.layer` (BERT, MPNet).

        Progressive distillation of an early block needs an early teacher layer; skipping the
        rest saves most of the teacher's cost in those stages.
        """
        if not 1 <= num_layers <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {num_layers}")
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if num_layers == self.num_layers or not isinstance(layers, nn.ModuleList):
            yield
            return
        encoder.layer = nn.ModuleList(list(layers)[:num_layers])  # type: ignore[union-attr]
        try:
            yield
        finally:
            encoder.layer = layers  # type: ignore[union-attr]

    def embedding_tables(self) -> EmbeddingTables:
        emb = self.model.embeddings
        norm = emb.LayerNorm
        position = getattr(emb, "position_embeddings", None)
        token_type = getattr(emb, "token_type_embeddings", None)
        positions = None
        if isinstance(position, nn.Embedding):
            # RoBERTa-style models (MPNet) number positions from padding_idx + 1.
            offset = 0 if position.padding_idx is None else position.padding_idx + 1
            positions = position.weight[offset:].detach()
        return EmbeddingTables(
            word=self.model.get_input_embeddings().weight.detach(),
            position=positions,
            token_type=token_type.weight.detach() if isinstance(token_type, nn.Embedding) else None,
            norm_weight=norm.weight.detach(),
            norm_bias=norm.bias.detach(),
        )


@lru_cache(maxsize=2)
def shared_teacher(source: str, device: str) -> Teacher:
    """The teacher of a model asset name or folder, loaded once per process: the trials a worker runs
    one after another share it (it is frozen, so they cannot change it)."""
    from trainers.data import load_model_dir

    return Teacher.load(load_model_dir(source), device)
