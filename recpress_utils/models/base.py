"""The interface every next-item model shares, and the pieces they would otherwise each rewrite.

A model maps left-padded sessions ``(B, L)`` to per-position hidden states ``(B, L, H)``
(:meth:`SequentialRecommender.hidden`, causal: position t sees only positions <= t), and its
output head maps hidden states to logits over all items (:meth:`head`). The split lets
training apply the head only at positions that have a target, and inference only at the last.
Column 0 of every logit row is the padding item and is set to ``-inf``.

Each model declares its head as ``self.output``, a ``nn.Sequential`` whose last module scores the
items: the paper's models a two-layer MLP (:func:`~recpress_utils.models.layers.mlp_head`), GRU4Rec
and the student one linear layer, SASRec the item embeddings themselves (with
:class:`~recpress_utils.models.layers.ItemBias`), popularity its counts. A head that is not a
plain stack overrides :meth:`head` and :meth:`item_output` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from recpress_utils.sequences import PAD


class SequentialRecommender(nn.Module, ABC):
    """Owns the item embedding; subclasses write :meth:`hidden` and declare ``self.output``.

    ``item_rows``: rows of the item embedding, ``n_items`` unless the model has extra tokens
    (BERT4Rec's [mask]).

    ``causal``: position t depends only on positions <= t (False only for bidirectional
    models, which the causality test skips). ``default_loss``: the name in
    :data:`recpress_utils.losses.LOSSES` a run uses when its config names none.
    """

    causal: ClassVar[bool] = True
    default_loss: ClassVar[str] = "cross_entropy"

    output: nn.Sequential  #: the head: its last module gives the logits (set by the subclass)

    def __init__(self, n_items: int, emb_dim: int, item_rows: int | None = None) -> None:
        super().__init__()
        if n_items < 2:
            raise ValueError(f"n_items counts the padding item, so it must be >= 2, not {n_items}")
        self.n_items = n_items
        self.emb_dim = emb_dim
        self.item_emb = nn.Embedding(item_rows or n_items, emb_dim, padding_idx=PAD)

    @abstractmethod
    def hidden(self, items: Tensor) -> Tensor:
        """Causal per-position states ``(B, L, H)`` of left-padded ``items`` ``(B, L)``."""

    def head(self, h: Tensor) -> Tensor:
        """Logits ``(..., n_items)`` of hidden states ``(..., H)``, padding column at -inf."""
        return self.mask_padding_logit(self.output(h))

    def output_states(self, h: Tensor) -> Tensor:
        """The head up to its last layer: the states that meet the item output vectors, so
        ``head(h)`` is ``output_states(h) @ W.T + b``."""
        return self.output[:-1](h)

    def item_output(self) -> tuple[Tensor, Tensor | None]:
        """Output vectors ``(n_items, width)`` and bias ``(n_items,)`` of the head's last layer:
        what the sampled losses score a few items with (:mod:`recpress_utils.losses`)."""
        return self.output[-1].weight, self.output[-1].bias

    def forward(self, items: Tensor) -> Tensor:
        """Logits ``(B, L, n_items)`` at every position: the next-item scores after each prefix."""
        return self.head(self.hidden(items))

    def last_logits(self, items: Tensor) -> Tensor:
        """Logits ``(B, n_items)`` after the whole session; the head runs at one position only."""
        return self.head(self.hidden(items)[:, -1])

    @staticmethod
    def mask_padding_logit(logits: Tensor) -> Tensor:
        """Set column 0 to -inf, so padding is never recommended and never a likely target.

        In place (no copy of a ``B x n_items`` matrix); autograd allows it because a linear
        layer's backward does not need its output.
        """
        logits[..., PAD] = float("-inf")
        return logits

    @staticmethod
    def attention_mask(items: Tensor) -> Tensor:
        """Boolean ``(B, 1, L, L)`` mask, True = query may attend to key (SDPA convention).

        Causal (key <= query) and padded keys are hidden; every position may attend to itself,
        so a padded query row is never empty (no NaN) and real rows never see padding.
        """
        length = items.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        real_key = (items != PAD)[:, None, None, :]
        itself = torch.eye(length, dtype=torch.bool, device=items.device)
        return (causal & real_key) | itself

    @torch.no_grad()
    def init_item_embeddings(self, weights: Tensor) -> None:
        """Start from pretrained (Node2Vec) vectors ``(n_items, emb_dim)``; row 0 stays zero.

        Extra rows past the catalogue (BERT4Rec's [mask] token) keep their initialisation.
        """
        expected = (self.n_items, self.emb_dim)
        if tuple(weights.shape) != expected:
            raise ValueError(
                f"item embeddings must have shape {expected} (n_items incl. padding, emb_dim), "
                f"got {tuple(weights.shape)}"
            )
        self.item_emb.weight[:self.n_items].copy_(weights)
        self.item_emb.weight[PAD].zero_()

    def recommend(self, items: Tensor, k: int, bucket: int = 128) -> tuple[Tensor, Tensor]:
        """Top-k item ids ``(B, k)`` and their logits, best first, for left-padded sessions.

        Runs in eval mode without autograd and restores the previous mode; item 0 is excluded.
        Requests are served in length buckets of ``bucket`` rows, each cut to its own longest
        session: a batch then costs what its sessions need, not ``B x`` the longest one (the
        models are left-padding invariant, so the result is the same).
        """
        if not 1 <= k < self.n_items:
            raise ValueError(f"k must be in [1, {self.n_items - 1}], got {k}")
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                lengths = (items != PAD).sum(dim=1)
                scores = torch.empty(items.shape[0], k, device=items.device)
                ids = torch.empty(items.shape[0], k, dtype=torch.long, device=items.device)
                for rows in torch.argsort(lengths, stable=True).split(bucket):
                    width = max(int(lengths[rows].max()), 1)
                    # column 0 is -inf, so a plain top-k never returns the padding item
                    scores[rows], ids[rows] = self.last_logits(items[rows, -width:]).topk(k, dim=-1)
        finally:
            self.train(was_training)
        return ids, scores
