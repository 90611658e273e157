"""BERT4Rec's cloze (masked item) training loss (Sun et al., 2019), for models with a [mask] token
(:class:`~recpress_utils.models.bert4rec.BERT4Rec`: ``mask_id``, ``max_len``).

The shared loop gives ``inputs = s[:-1]`` and ``targets = s[1:]``; the full session is rebuilt as
the targets preceded by the first item (:func:`sessions_from_batch`). Two variants of every session
are scored in one batch:

* the cloze task of the paper: each real item is replaced by [mask] with probability
  ``mask_prob`` (at least one per non-empty session, padding never);
* only the last item masked: the BERT4Rec paper (Sec. 3.6) adds these samples to match the
  inference task (predicting an appended [mask] at the end); ``last_item_variant=False``
  gives the pure cloze recipe.

The loss is the full cross-entropy over all items at every masked position, averaged over the
masked positions of the batch (the paper averages per user first; with one last-item sample
per session the difference is small). Masking uses a ``torch.Generator`` seeded when the loss
is built, so a run is deterministic. Training never shows a masked target: :func:`mask_batch`
replaces it by [mask].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recpress_utils.losses.common import LossFn
from recpress_utils.sequences import PAD


def mask_batch(items: Tensor, generator: torch.Generator, mask_id: int,
               mask_prob: float = 0.2) -> tuple[Tensor, Tensor]:
    """Cloze masking of left-padded sessions ``items`` ``(B, L)``.

    Each real item is replaced by ``mask_id`` with probability ``mask_prob``; a non-empty
    session with none drawn gets one random real item masked. Returns ``(masked_inputs,
    targets)``, both ``(B, L)``: targets hold the original item at masked positions and 0
    elsewhere, so every position with a target shows [mask] in the input. Random numbers are
    drawn on the CPU from ``generator`` (deterministic for a seed, whatever the device).
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    real = (items != PAD).cpu()
    draws = torch.rand(items.shape, generator=generator)
    masked = (draws < mask_prob) & real
    # Rows with real items but nothing masked: mask the real item with the highest draw.
    missing = real.any(dim=1) & ~masked.any(dim=1)
    if missing.any():
        pick = draws.masked_fill(~real, -1.0).argmax(dim=1)
        masked[missing, pick[missing]] = True
    masked = masked.to(items.device)
    return (items.masked_fill(masked, mask_id),
            items.masked_fill(~masked, PAD))


def mask_last(items: Tensor, mask_id: int) -> tuple[Tensor, Tensor]:
    """Only the last item of each left-padded session masked: ``(masked_inputs, targets)``."""
    masked = torch.zeros_like(items, dtype=torch.bool)
    masked[:, -1] = items[:, -1] != PAD
    return items.masked_fill(masked, mask_id), items.masked_fill(~masked, PAD)


def sessions_from_batch(inputs: Tensor, targets: Tensor) -> Tensor:
    """The sessions ``(B, L + 1)``, left-padded, behind a next-item batch (``inputs = s[:-1]``,
    ``targets = s[1:]``, both left-padded to ``L``): the targets preceded by the session's first
    item in the window, which is the input just before the first target's column."""
    n_targets = (targets != PAD).sum(dim=1, keepdim=True)
    first_col = (inputs.shape[1] - n_targets).clamp(max=inputs.shape[1] - 1)  # same in both
    first = inputs.gather(1, first_col).masked_fill(n_targets == 0, PAD)
    full = torch.cat([torch.zeros_like(inputs[:, :1]), targets], dim=1)
    return full.scatter(1, first_col, first)


def masked_item_loss(mask_prob: float = 0.2, seed: int = 0,
                     last_item_variant: bool = True) -> LossFn:
    """BERT4Rec's cloze loss for :func:`recpress_utils.train.fit` (see the module docstring).

    Cross-entropy over all items at the masked positions of each session, plus (by default)
    at the last position of a copy with only the last item masked. Sessions longer than the
    model's ``max_len`` keep their latest items.
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    generator = torch.Generator().manual_seed(seed)

    def loss(model: torch.nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        if not hasattr(model, "mask_id"):
            raise TypeError(f"masked_item_loss needs a model with a [mask] token (BERT4Rec), "
                            f"got {type(model).__name__}")
        sessions = sessions_from_batch(inputs, targets)[:, -model.max_len:]
        masked_inputs, masked_targets = mask_batch(sessions, generator, model.mask_id, mask_prob)
        if last_item_variant:
            last_inputs, last_targets = mask_last(sessions, model.mask_id)
            masked_inputs = torch.cat([masked_inputs, last_inputs])
            masked_targets = torch.cat([masked_targets, last_targets])
        hidden = model.hidden(masked_inputs)
        where = masked_targets != PAD
        if not where.any():  # only empty sessions: nothing to predict
            return hidden.sum() * 0.0
        return F.cross_entropy(model.head(hidden[where]), masked_targets[where])

    loss.generator = generator  # its state is saved in training checkpoints (exact resume)
    return loss
