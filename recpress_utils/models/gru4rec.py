"""GRU4Rec (Hidasi et al. 2016), the full-softmax variant: item embedding -> one GRU layer ->
dropout -> one linear layer to logits over all items.

Output: by default a separate ``Linear(gru_dim, n_items)`` (with a per-item bias), as in the
original GRU4Rec; it keeps the model directly comparable with the LSTM baseline (the same
recurrent core, only the MLP head dropped). ``tied=True`` is the official implementation's
``constrained_embedding``, part of its best settings for YooChoose: the output vectors are the
input item embeddings (``emb_dim == gru_dim``) plus a learned per-item bias, initialised small
(uniform, Glorot's bound) since they now also score. Both work with the sampled losses in
:mod:`recpress_utils.losses` through :meth:`GRU4Rec.item_output`.

Left padding is handled exactly as in :class:`~recpress_utils.models.baseline.LSTMBaseline`
(:func:`~recpress_utils.models.layers.shift_rows`): rows are rotated to right padding, run, rotated
back, and the states at padded positions are zeroed.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import ItemBias, shift_rows
from recpress_utils.sequences import PAD


class GRU4Rec(SequentialRecommender):
    """One-layer GRU over the session; its state after each item is mapped to item logits."""

    def __init__(self, n_items: int, emb_dim: int | None = None, gru_dim: int = 64,
                 dropout: float = 0.1, tied: bool = False) -> None:
        emb_dim = gru_dim if emb_dim is None else emb_dim  # one width to sweep (the tied model needs one)
        if tied and emb_dim != gru_dim:
            raise ValueError(f"tied output vectors are the item embeddings: emb_dim ({emb_dim}) must equal "
                             f"gru_dim ({gru_dim})")
        super().__init__(n_items, emb_dim)
        self.tied = tied
        self.gru = nn.GRU(emb_dim, gru_dim, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        if tied:
            self.output = nn.Sequential(ItemBias(n_items, learnable=True))
            bound = math.sqrt(6.0 / (n_items + emb_dim))
            nn.init.uniform_(self.item_emb.weight, -bound, bound)
            self.item_emb.weight.data[PAD].zero_()
        else:
            self.output = nn.Sequential(nn.Linear(gru_dim, n_items))

    def hidden(self, items: Tensor) -> Tensor:
        padded = items == PAD
        n_pad = padded.sum(dim=1)
        states, _ = self.gru(self.dropout(self.item_emb(shift_rows(items, n_pad))))
        states = shift_rows(states, -n_pad).masked_fill(padded[..., None], 0.0)
        return self.dropout(states)

    def head(self, h: Tensor) -> Tensor:
        """Logits ``h @ W.T + b`` over all items, padding column at -inf (W: tied or its own)."""
        weight, bias = self.item_output()
        return self.mask_padding_logit(nn.functional.linear(h, weight, bias))

    def item_output(self) -> tuple[Tensor, Tensor | None]:
        """Output vectors ``(n_items, gru_dim)`` and bias ``(n_items,)``: logits = h @ W.T + b."""
        if self.tied:
            return self.item_emb.weight, self.output[-1].bias
        return self.output[-1].weight, self.output[-1].bias
