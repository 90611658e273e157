"""What every loss shares: the loss signature, the states at a batch's targets, and scoring a few
items without computing every logit."""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

from recpress_utils.sequences import PAD

#: loss(model, inputs (B, L), targets (B, L) with 0 = no target) -> scalar tensor
LossFn = Callable[[torch.nn.Module, Tensor, Tensor], Tensor]


def item_output(model: torch.nn.Module) -> tuple[Tensor, Tensor | None]:
    """``model.item_output()``: the output vectors ``(n_items, D)`` and bias, or a clear error."""
    if not hasattr(model, "item_output"):
        raise TypeError(f"{type(model).__name__} has no item_output(); this loss needs "
                        "the item output vectors")
    return model.item_output()


def scores_for(model: torch.nn.Module, hidden: Tensor, item_ids: Tensor) -> Tensor:
    """Logits of chosen items only: ``hidden (M, D)`` and ``item_ids`` either ``(M, K)`` (own
    items per row) or ``(K,)`` (the same items for every row); returns ``(M, K)``.

    Equals ``model.head(hidden).gather(-1, item_ids)`` (without the padding mask) at the cost
    of K instead of ``n_items`` dot products per row. The result is a new tensor whose backward
    does not need it, so callers may modify it in place.
    """
    weight, bias = item_output(model)
    vectors = weight[item_ids]
    if item_ids.dim() == 1:  # one fused product + bias: the (M, K) matrix is written once
        return hidden @ vectors.T if bias is None else torch.addmm(bias[item_ids], hidden, vectors.T)
    scores = (vectors @ hidden[..., :, None]).squeeze(-1)
    return scores if bias is None else scores + bias[item_ids]


def output_states(model: torch.nn.Module, hidden: Tensor) -> Tensor:
    """What the item output vectors multiply: ``model.output_states(hidden)`` for a model whose
    head has layers before them (the paper's models: an MLP), else ``hidden`` itself."""
    return model.output_states(hidden) if hasattr(model, "output_states") else hidden


def target_states(model: torch.nn.Module, inputs: Tensor, targets: Tensor,
                  positions: Literal["all", "last"]) -> tuple[Tensor, Tensor]:
    """Output states ``(M, D)`` (:func:`output_states`) and target ids ``(M,)`` at the positions
    that have a target."""
    hidden = model.hidden(inputs)
    if positions == "last":
        hidden, targets = hidden[:, -1:], targets[:, -1:]
    mask = targets != PAD
    return output_states(model, hidden[mask]), targets[mask]
