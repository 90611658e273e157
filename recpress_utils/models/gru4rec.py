"""GRU4Rec (Hidasi et al. 2016), the full-softmax variant: item embedding -> one GRU layer ->
dropout -> one linear layer to logits over all items.

Output: a separate ``Linear(gru_dim, n_items)`` (with a per-item bias), as in the original
GRU4Rec, not the item embeddings reused; it keeps the model directly comparable with the LSTM
baseline (the same recurrent core, only the MLP head dropped) and still works with the sampled
losses in :mod:`recpress_utils.losses` through :meth:`GRU4Rec.item_output`.

Left padding is handled exactly as in :class:`~recpress_utils.models.baseline.LSTMBaseline`
(:func:`~recpress_utils.models.layers.shift_rows`): rows are rotated to right padding, run, rotated
back, and the states at padded positions are zeroed.
"""

from __future__ import annotations

from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import shift_rows
from recpress_utils.sequences import PAD


class GRU4Rec(SequentialRecommender):
    """One-layer GRU over the session; its state after each item is mapped to item logits."""

    def __init__(self, n_items: int, emb_dim: int = 64, gru_dim: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__(n_items, emb_dim, head_in=gru_dim, mlp_hidden=1, dropout=dropout)
        self.gru = nn.GRU(emb_dim, gru_dim, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Sequential(nn.Linear(gru_dim, n_items))

    def hidden(self, items: Tensor) -> Tensor:
        padded = items == PAD
        n_pad = padded.sum(dim=1)
        states, _ = self.gru(self.dropout(self.item_emb(shift_rows(items, n_pad))))
        states = shift_rows(states, -n_pad).masked_fill(padded[..., None], 0.0)
        return self.dropout(states)

    def item_output(self) -> tuple[Tensor, Tensor | None]:
        """Output vectors ``(n_items, gru_dim)`` and bias ``(n_items,)``: logits = h @ W.T + b."""
        return self.output[-1].weight, self.output[-1].bias
