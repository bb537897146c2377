"""BERT's masked-token corruption (Devlin et al. 2019, §3.1) and random batches of packed text.

Pre-training text arrives as (N, S) blocks of contiguous tokens between [CLS] and [SEP]
(`trainers/encode.py` packs a language-modelling task that way), so batches need no padding.
"""
from __future__ import annotations

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from trainers.contract import TrainerError

#: label of positions that are not predicted (PyTorch's cross-entropy ignore index).
IGNORE = -100


def mask_tokens(input_ids: Tensor, tokenizer: PreTrainedTokenizerBase, mask_prob: float,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """BERT masking of (B, S) ids: returns (corrupted ids, labels with IGNORE where not predicted).

    Of the chosen positions 80% become [MASK], 10% a random token, 10% stay; special tokens are
    never chosen, and every row gets at least one chosen position so the loss is always defined.
    """
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    if tokenizer.mask_token_id is None:
        raise TrainerError("the teacher's tokenizer has no [MASK] token")
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    candidate = ~torch.isin(input_ids, special)  # (B, S)
    if not candidate.any(dim=1).all():
        raise TrainerError("a pre-training block holds only special tokens")
    draw = torch.rand(input_ids.shape, generator=generator)
    chosen = candidate & (draw < mask_prob)
    # Rows with nothing chosen get their candidate with the smallest draw.
    forced = torch.where(candidate, draw, torch.full_like(draw, 2.0)).argmin(dim=1)  # (B,)
    empty = ~chosen.any(dim=1)
    chosen[empty, forced[empty]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    action = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.clone()
    corrupted[chosen & (action < 0.8)] = tokenizer.mask_token_id
    random_pos = chosen & (action >= 0.8) & (action < 0.9)
    corrupted[random_pos] = torch.randint(tokenizer.vocab_size, input_ids.shape, generator=generator)[random_pos]
    return corrupted, labels


def sample_batch(blocks: Tensor, batch_size: int, generator: torch.Generator) -> Tensor:
    """(batch_size, S) rows drawn at random (with replacement across calls) from (N, S) blocks."""
    rows = torch.randint(blocks.shape[0], (min(batch_size, blocks.shape[0]),), generator=generator)
    return blocks[rows]
