"""Most-popular baseline (PopRec): every session gets the same scores, its items' training counts.

The score of item i is ``log(1 + count_i) + bias_i`` for every session and position:

* ``log_counts`` is a buffer set by :meth:`Popularity.fit_counts` from the training sessions
  (``log1p`` so unseen items stay finite; the order is the order of the counts). This is what
  the pipeline uses: call ``fit_counts(train.items)`` and evaluate, no training needed.
* ``bias`` is a learnable per-item vector initialised to zero, so the model also runs in the
  shared training loop: with cross-entropy on the next item and counts never set, the bias
  learns the (log) target frequencies, i.e. the popularity, by itself.

``hidden`` returns zeros ``(B, L, 1)`` (nothing depends on the session), so the model is
trivially causal and padding-invariant. The base's item embedding exists only to honour the
shared interface (``init_item_embeddings``); it is never read, hence the default ``emb_dim=1``.
:meth:`Popularity.recommend` breaks ties by the smaller item index (a stable sort), which
``topk`` does not promise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.sequences import PAD


class PopularityScores(nn.Module):
    """Output layer of :class:`Popularity`: ``log_counts + bias`` broadcast over positions."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("log_counts", torch.zeros(n_items))

    def forward(self, h: Tensor) -> Tensor:
        scores = self.log_counts + self.bias
        # h.sum(-1, keepdim=True) is 0 (hidden is zeros); keeps the graph and the device
        return h.sum(dim=-1, keepdim=True) + scores


class Popularity(SequentialRecommender):
    """Scores every item by its training popularity, identically for every session."""

    default_loss = "counts"  # fit_counts on the training sessions, no gradient steps

    def __init__(self, n_items: int, emb_dim: int = 1) -> None:
        super().__init__(n_items, emb_dim)
        self.output = nn.Sequential(PopularityScores(n_items))

    @torch.no_grad()
    def fit_counts(self, train_items: list[np.ndarray]) -> np.ndarray:
        """Set the log-count buffer from training sessions; returns the raw counts ``(n_items,)``.

        Padding (item 0) is not counted; ids outside ``1..n_items-1`` raise ``ValueError``.
        """
        flat = (np.concatenate([np.asarray(s, dtype=np.int64) for s in train_items])
                if len(train_items) else np.zeros(0, dtype=np.int64))
        flat = flat[flat != PAD]
        if flat.size and (flat.min() < 1 or flat.max() >= self.n_items):
            raise ValueError(f"item ids must be in [1, {self.n_items - 1}]")
        counts = np.bincount(flat, minlength=self.n_items)
        scores = self.output[-1]
        scores.log_counts.copy_(torch.from_numpy(np.log1p(counts)).to(scores.log_counts))
        return counts

    def hidden(self, items: Tensor) -> Tensor:
        return self.item_emb.weight.new_zeros(*items.shape, 1)

    def recommend(self, items: Tensor, k: int, bucket: int = 128) -> tuple[Tensor, Tensor]:
        """Top-k by score, ties by the smaller item id; the same list for every session."""
        if not 1 <= k < self.n_items:
            raise ValueError(f"k must be in [1, {self.n_items - 1}], got {k}")
        with torch.inference_mode():
            scores = self.head(self.hidden(items[:1, -1:]))[0, 0]
            order = torch.sort(scores, descending=True, stable=True).indices[:k]
            ids = order.expand(items.shape[0], k).clone()
            return ids, scores[order].expand(items.shape[0], k).clone()
